-- Back to migration 12: arrivals keyed by text, in a table of that name.
DROP VIEW tetcore_block_arrivals;

CREATE TABLE tetcore_block_arrivals (
    genesis_hash text COLLATE "C" NOT NULL,
    kind         text COLLATE "C" NOT NULL CHECK (kind IN ('best', 'finalized')),
    height       bigint      NOT NULL,
    hash         text COLLATE "C" NOT NULL,
    peer_id      text COLLATE "C" NOT NULL,
    received_at  timestamptz NOT NULL,
    node_ts      timestamptz,
    PRIMARY KEY (genesis_hash, kind, height, hash, peer_id)
);

COMMENT ON TABLE tetcore_block_arrivals IS
    'When each node first reported each block: block.import (kind best) and notify.finalized (kind finalized), one row per chain, block and node.';
COMMENT ON COLUMN tetcore_block_arrivals.genesis_hash IS 'The chain (tetcore_chains.genesis_hash).';
COMMENT ON COLUMN tetcore_block_arrivals.kind IS 'best: the node imported the block as its new best (block.import); finalized: the node finalized it (notify.finalized).';
COMMENT ON COLUMN tetcore_block_arrivals.height IS 'Block number (height of the message).';
COMMENT ON COLUMN tetcore_block_arrivals.hash IS 'Block hash (best of the message).';
COMMENT ON COLUMN tetcore_block_arrivals.peer_id IS 'The reporting node (libp2p peer id, peer_connections.peer_id).';
COMMENT ON COLUMN tetcore_block_arrivals.received_at IS 'When the server received the node''s first report of the block (server clock).';
COMMENT ON COLUMN tetcore_block_arrivals.node_ts IS 'The node''s own time on that report (its ts; node clocks can be wrong); NULL when unreadable.';

INSERT INTO tetcore_block_arrivals
SELECT b.genesis_hash, b.kind, b.height, b.hash, p.peer_id, a.received_at, a.node_ts
FROM tetcore_arrivals a
JOIN tetcore_blocks b ON b.id = a.block_id
JOIN tetcore_peers p ON p.id = a.peer_ref;

CREATE INDEX tetcore_block_arrivals_peer_idx ON tetcore_block_arrivals (peer_id, kind, received_at);
CREATE INDEX tetcore_block_arrivals_received_idx ON tetcore_block_arrivals (genesis_hash, kind, received_at);
CREATE INDEX tetcore_block_arrivals_age_idx ON tetcore_block_arrivals USING brin (received_at);

DROP TABLE tetcore_arrivals;
DROP TABLE tetcore_peers;
ALTER TABLE tetcore_blocks DROP COLUMN id;
COMMENT ON TABLE tetcore_blocks IS
    'Propagation of each block: when the first node reported it and how long the others took (from tetcore_block_arrivals; a node''s delay is its received_at minus first_at). Percentiles are of the nodes'' delays, the first node''s 0 included, nearest-rank (percentile_disc).';

CREATE OR REPLACE FUNCTION tetcore_derive(p_from timestamptz, p_to timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DROP TABLE IF EXISTS pg_temp.tetcore_derive_rows;
    CREATE TEMP TABLE tetcore_derive_rows ON COMMIT DROP AS
    SELECT l.created_at, l.peer_connection_id, p.genesis_hash, p.peer_id, l.msg,
           CASE WHEN l.msg IN ('block.import', 'notify.finalized')
                THEN tetcore_int(l.logs->>'height')
                WHEN l.msg IN ('afg.received_prevote', 'afg.received_precommit')
                THEN tetcore_int(l.logs->>'target_number') END AS height,
           CASE WHEN l.msg IN ('block.import', 'notify.finalized')
                THEN l.logs->>'best'
                WHEN l.msg IN ('afg.received_prevote', 'afg.received_precommit')
                THEN l.logs->>'target_hash' END AS hash,
           CASE WHEN l.msg IN ('block.import', 'notify.finalized')
                THEN tetcore_time(l.logs->>'ts') END AS node_ts,
           CASE WHEN l.msg IN ('afg.received_prevote', 'afg.received_precommit')
                THEN l.logs->>'voter' END AS voter,
           CASE WHEN l.msg IN ('sysinfo.hwbench', 'afg.authority_set') THEN l.logs END AS logs
    -- OFFSET 0 keeps the subquery whole, so each message's kind is taken out of it once.
    FROM (SELECT created_at, peer_connection_id, logs, logs->>'msg' AS msg FROM tetcore_logs
          WHERE created_at >= p_from AND created_at < p_to
            AND logs->>'msg' IN ('block.import', 'notify.finalized', 'system.connected',
                                 'sysinfo.hwbench', 'afg.received_prevote',
                                 'afg.received_precommit', 'afg.authority_set')
          OFFSET 0) l
    JOIN peer_connections p ON p.id = l.peer_connection_id
    WHERE p.genesis_hash IS NOT NULL AND p.peer_id IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;

    INSERT INTO tetcore_chains AS c (genesis_hash, name, first_seen, last_seen)
    SELECT DISTINCT ON (r.genesis_hash) r.genesis_hash, coalesce(p.chain, ''),
           min(r.created_at) OVER w, r.created_at
    FROM tetcore_derive_rows r JOIN peer_connections p ON p.id = r.peer_connection_id
    WHERE r.msg = 'system.connected'
    WINDOW w AS (PARTITION BY r.genesis_hash)
    ORDER BY r.genesis_hash, r.created_at DESC
    ON CONFLICT (genesis_hash) DO UPDATE SET
        name = CASE WHEN excluded.last_seen >= c.last_seen THEN excluded.name ELSE c.name END,
        first_seen = least(c.first_seen, excluded.first_seen),
        last_seen = greatest(c.last_seen, excluded.last_seen);

    INSERT INTO tetcore_block_arrivals AS a
        (genesis_hash, kind, height, hash, peer_id, received_at, node_ts)
    SELECT DISTINCT ON (genesis_hash, kind, height, hash, peer_id)
           genesis_hash, kind, height, hash, peer_id, created_at, node_ts
    FROM (SELECT *, CASE msg WHEN 'block.import' THEN 'best' ELSE 'finalized' END AS kind
          FROM tetcore_derive_rows
          WHERE msg IN ('block.import', 'notify.finalized') AND height IS NOT NULL
            AND hash IS NOT NULL) r
    ORDER BY genesis_hash, kind, height, hash, peer_id, created_at
    ON CONFLICT (genesis_hash, kind, height, hash, peer_id) DO UPDATE SET
        received_at = excluded.received_at, node_ts = excluded.node_ts
        WHERE excluded.received_at < a.received_at;

    INSERT INTO tetcore_node_minutes AS m (genesis_hash, minute, peer_id, best_height, finalized_height)
    SELECT genesis_hash, date_trunc('minute', created_at), peer_id,
           max(height) FILTER (WHERE msg = 'block.import'),
           max(height) FILTER (WHERE msg = 'notify.finalized')
    FROM tetcore_derive_rows
    WHERE msg IN ('block.import', 'notify.finalized') AND height IS NOT NULL
    GROUP BY 1, 2, 3
    ON CONFLICT (genesis_hash, minute, peer_id) DO UPDATE SET
        best_height = greatest(m.best_height, excluded.best_height),
        finalized_height = greatest(m.finalized_height, excluded.finalized_height);

    INSERT INTO tetcore_node_hours AS h
        (genesis_hash, hour, peer_id, name, implementation, version, authority, seen_at)
    SELECT DISTINCT ON (p.genesis_hash, s.hour, p.peer_id)
           p.genesis_hash, s.hour, p.peer_id, p.name, p.implementation, p.version, p.authority,
           s.seen_at
    FROM (SELECT peer_connection_id, date_trunc('hour', created_at) AS hour,
                 max(created_at) AS seen_at
          FROM tetcore_derive_rows GROUP BY 1, 2) s
    JOIN peer_connections p ON p.id = s.peer_connection_id
    ORDER BY p.genesis_hash, s.hour, p.peer_id, s.seen_at DESC
    ON CONFLICT (genesis_hash, hour, peer_id) DO UPDATE SET
        name = excluded.name, implementation = excluded.implementation,
        version = excluded.version, authority = excluded.authority, seen_at = excluded.seen_at
        WHERE excluded.seen_at >= h.seen_at;

    INSERT INTO tetcore_hardware AS hw
        (genesis_hash, peer_id, reported_at, authority, cpu, memory, core_count, linux_kernel,
         linux_distro, is_virtual_machine)
    SELECT DISTINCT ON (r.genesis_hash, r.peer_id, r.created_at)
           r.genesis_hash, r.peer_id, r.created_at, p.authority, p.sysinfo->>'cpu',
           tetcore_int(p.sysinfo->>'memory'), tetcore_int(p.sysinfo->>'core_count'),
           p.sysinfo->>'linux_kernel', p.sysinfo->>'linux_distro',
           CASE p.sysinfo->>'is_virtual_machine' WHEN 'true' THEN true WHEN 'false' THEN false END
    FROM tetcore_derive_rows r JOIN peer_connections p ON p.id = r.peer_connection_id
    WHERE r.msg = 'system.connected' AND p.sysinfo IS NOT NULL
    ON CONFLICT (genesis_hash, peer_id, reported_at) DO UPDATE SET
        authority = excluded.authority, cpu = excluded.cpu, memory = excluded.memory,
        core_count = excluded.core_count, linux_kernel = excluded.linux_kernel,
        linux_distro = excluded.linux_distro, is_virtual_machine = excluded.is_virtual_machine;

    INSERT INTO tetcore_hardware AS hw
        (genesis_hash, peer_id, reported_at, authority, cpu_hashrate_score,
         parallel_cpu_hashrate_score, parallel_cpu_cores, memory_memcpy_score,
         disk_sequential_write_score, disk_random_write_score)
    SELECT DISTINCT ON (r.genesis_hash, r.peer_id, p.connected_at)
           r.genesis_hash, r.peer_id, p.connected_at, p.authority,
           tetcore_int(r.logs->>'cpu_hashrate_score'),
           tetcore_int(r.logs->>'parallel_cpu_hashrate_score'),
           tetcore_int(r.logs->>'parallel_cpu_cores'),
           tetcore_int(r.logs->>'memory_memcpy_score'),
           tetcore_int(r.logs->>'disk_sequential_write_score'),
           tetcore_int(r.logs->>'disk_random_write_score')
    FROM tetcore_derive_rows r JOIN peer_connections p ON p.id = r.peer_connection_id
    WHERE r.msg = 'sysinfo.hwbench' AND p.connected_at IS NOT NULL
    ORDER BY r.genesis_hash, r.peer_id, p.connected_at, r.created_at DESC
    ON CONFLICT (genesis_hash, peer_id, reported_at) DO UPDATE SET
        cpu_hashrate_score = excluded.cpu_hashrate_score,
        parallel_cpu_hashrate_score = excluded.parallel_cpu_hashrate_score,
        parallel_cpu_cores = excluded.parallel_cpu_cores,
        memory_memcpy_score = excluded.memory_memcpy_score,
        disk_sequential_write_score = excluded.disk_sequential_write_score,
        disk_random_write_score = excluded.disk_random_write_score;

    INSERT INTO tetcore_grandpa_votes AS v
        (genesis_hash, kind, voter, target_number, target_hash, first_at)
    SELECT genesis_hash, kind, voter, target_number, target_hash, min(created_at)
    FROM (SELECT genesis_hash, created_at,
                 CASE msg WHEN 'afg.received_prevote' THEN 'prevote' ELSE 'precommit' END AS kind,
                 voter, height AS target_number, hash AS target_hash
          FROM tetcore_derive_rows
          WHERE msg IN ('afg.received_prevote', 'afg.received_precommit')) r
    WHERE voter IS NOT NULL AND target_number IS NOT NULL AND target_hash IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (genesis_hash, kind, voter, target_number, target_hash) DO UPDATE SET
        first_at = excluded.first_at WHERE excluded.first_at < v.first_at;

    INSERT INTO tetcore_authority_sets AS s (genesis_hash, set_id, authorities, first_at)
    SELECT DISTINCT ON (genesis_hash, set_id) genesis_hash, set_id,
           tetcore_jsonb(authorities),
           created_at
    FROM (SELECT genesis_hash, created_at, tetcore_int(logs->>'authority_set_id') AS set_id,
                 logs->>'authorities' AS authorities
          FROM tetcore_derive_rows WHERE msg = 'afg.authority_set') r
    WHERE set_id IS NOT NULL
    ORDER BY genesis_hash, set_id, created_at
    ON CONFLICT (genesis_hash, set_id) DO UPDATE SET
        authorities = excluded.authorities, first_at = excluded.first_at
        WHERE excluded.first_at < s.first_at;

    -- Summaries, recomputed whole for every key this window touched.
    INSERT INTO tetcore_blocks AS b
        (genesis_hash, kind, height, hash, first_at, first_peer_id, nodes, p50_ms, p90_ms,
         p99_ms, max_ms)
    SELECT a.genesis_hash, a.kind, a.height, a.hash, min(a.received_at),
           (array_agg(a.peer_id ORDER BY a.received_at, a.peer_id))[1], count(*),
           tetcore_ms(percentile_disc(0.5) WITHIN GROUP (ORDER BY a.received_at) - min(a.received_at)),
           tetcore_ms(percentile_disc(0.9) WITHIN GROUP (ORDER BY a.received_at) - min(a.received_at)),
           tetcore_ms(percentile_disc(0.99) WITHIN GROUP (ORDER BY a.received_at) - min(a.received_at)),
           tetcore_ms(max(a.received_at) - min(a.received_at))
    FROM tetcore_block_arrivals a
    WHERE (a.genesis_hash, a.kind, a.height, a.hash) IN (
        SELECT DISTINCT genesis_hash,
               CASE msg WHEN 'block.import' THEN 'best' ELSE 'finalized' END, height, hash
        FROM tetcore_derive_rows
        WHERE msg IN ('block.import', 'notify.finalized') AND height IS NOT NULL
          AND hash IS NOT NULL)
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (genesis_hash, kind, height, hash) DO UPDATE SET
        first_at = excluded.first_at, first_peer_id = excluded.first_peer_id,
        nodes = excluded.nodes, p50_ms = excluded.p50_ms, p90_ms = excluded.p90_ms,
        p99_ms = excluded.p99_ms, max_ms = excluded.max_ms;

    INSERT INTO tetcore_chain_minutes AS c (genesis_hash, minute, best_height, finalized_height, nodes)
    SELECT m.genesis_hash, m.minute, max(m.best_height), max(m.finalized_height), count(*)
    FROM tetcore_node_minutes m
    WHERE (m.genesis_hash, m.minute) IN (
        SELECT DISTINCT genesis_hash, date_trunc('minute', created_at) FROM tetcore_derive_rows
        WHERE msg IN ('block.import', 'notify.finalized'))
    GROUP BY 1, 2
    ON CONFLICT (genesis_hash, minute) DO UPDATE SET
        best_height = excluded.best_height, finalized_height = excluded.finalized_height,
        nodes = excluded.nodes;

    DELETE FROM tetcore_version_hours v
    WHERE (v.genesis_hash, v.hour) IN (
        SELECT DISTINCT genesis_hash, date_trunc('hour', created_at) FROM tetcore_derive_rows);
    INSERT INTO tetcore_version_hours (genesis_hash, hour, implementation, version, nodes)
    SELECT h.genesis_hash, h.hour, coalesce(h.implementation, ''), coalesce(h.version, ''), count(*)
    FROM tetcore_node_hours h
    WHERE (h.genesis_hash, h.hour) IN (
        SELECT DISTINCT genesis_hash, date_trunc('hour', created_at) FROM tetcore_derive_rows)
    GROUP BY 1, 2, 3, 4;

    RETURN n;
END
$$;
ALTER FUNCTION tetcore_derive(timestamptz, timestamptz) RESET work_mem;
