-- Network analytics: what the raw messages say about each chain, kept in tables of their own
-- for DERIVED_RETENTION_D days after the raw messages expire. tetcore_derive(from, to) reads
-- the raw messages received in a window once and folds them in; every statement is an upsert
-- whose result does not depend on order or repetition (least, greatest, newest-wins, and
-- summaries recomputed from their inputs), so windows may overlap, several instances may run
-- it, and a rebuild is the same function over all raw messages that still exist.

-- A node's own clock (logs->>'ts'), or NULL when it is not a time PostgreSQL reads.
CREATE FUNCTION tetcore_time(value text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    IF value !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$' THEN
        RETURN NULL;
    END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION tetcore_time(text) IS
    'The text as a timestamptz if it is an RFC 3339 time with an offset, else NULL (never an error): tetcore_time(logs->>''ts'').';

-- JSON sent encoded in a string (afg.authority_set's authorities), or NULL when it is not JSON.
CREATE FUNCTION tetcore_jsonb(value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    RETURN value::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION tetcore_jsonb(text) IS
    'The text as jsonb if it is JSON, else NULL (never an error): tetcore_jsonb(logs->>''authorities'').';

-- Milliseconds in an interval, as a double.
CREATE FUNCTION tetcore_ms(value interval) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM value) * 1000)::double precision
$$;

COMMENT ON FUNCTION tetcore_ms(interval) IS 'The interval in milliseconds (a double; microseconds exact, as in 40.123).';

CREATE TABLE tetcore_chains (
    genesis_hash text        PRIMARY KEY,
    name         text        NOT NULL,
    first_seen   timestamptz NOT NULL,
    last_seen    timestamptz NOT NULL
);

COMMENT ON TABLE tetcore_chains IS 'Every chain (by genesis hash) a node reported, derived from system.connected.';
COMMENT ON COLUMN tetcore_chains.genesis_hash IS 'Genesis block hash as the nodes send it (0x + 64 hex).';
COMMENT ON COLUMN tetcore_chains.name IS 'Chain name of the newest system.connected for this genesis hash.';
COMMENT ON COLUMN tetcore_chains.first_seen IS 'When the first system.connected for this chain was received (server clock).';
COMMENT ON COLUMN tetcore_chains.last_seen IS 'When the newest system.connected for this chain was received (server clock).';

CREATE TABLE tetcore_block_arrivals (
    genesis_hash text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('best', 'finalized')),
    height       bigint      NOT NULL,
    hash         text        NOT NULL,
    peer_id      text        NOT NULL,
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

CREATE INDEX tetcore_block_arrivals_peer_idx ON tetcore_block_arrivals (peer_id, kind, received_at);
CREATE INDEX tetcore_block_arrivals_received_idx ON tetcore_block_arrivals (genesis_hash, kind, received_at);
-- For the retention of the derived tables, which deletes by age across all chains.
CREATE INDEX tetcore_block_arrivals_age_idx ON tetcore_block_arrivals USING brin (received_at);

CREATE TABLE tetcore_blocks (
    genesis_hash  text             NOT NULL,
    kind          text             NOT NULL CHECK (kind IN ('best', 'finalized')),
    height        bigint           NOT NULL,
    hash          text             NOT NULL,
    first_at      timestamptz      NOT NULL,
    first_peer_id text             NOT NULL,
    nodes         integer          NOT NULL,
    p50_ms        double precision NOT NULL,
    p90_ms        double precision NOT NULL,
    p99_ms        double precision NOT NULL,
    max_ms        double precision NOT NULL,
    PRIMARY KEY (genesis_hash, kind, height, hash)
);

COMMENT ON TABLE tetcore_blocks IS
    'Propagation of each block: when the first node reported it and how long the others took (from tetcore_block_arrivals; a node''s delay is its received_at minus first_at). Percentiles are of the nodes'' delays, the first node''s 0 included, nearest-rank (percentile_disc).';
COMMENT ON COLUMN tetcore_blocks.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_blocks.kind IS 'best (imported, block.import) or finalized (notify.finalized).';
COMMENT ON COLUMN tetcore_blocks.height IS 'Block number.';
COMMENT ON COLUMN tetcore_blocks.hash IS 'Block hash.';
COMMENT ON COLUMN tetcore_blocks.first_at IS 'When the first node''s report was received (server clock).';
COMMENT ON COLUMN tetcore_blocks.first_peer_id IS 'The node that reported it first (ties: lowest peer id).';
COMMENT ON COLUMN tetcore_blocks.nodes IS 'How many nodes reported it.';
COMMENT ON COLUMN tetcore_blocks.p50_ms IS 'Median delay after first_at over the reporting nodes, in milliseconds.';
COMMENT ON COLUMN tetcore_blocks.p90_ms IS '90th percentile delay, ms.';
COMMENT ON COLUMN tetcore_blocks.p99_ms IS '99th percentile delay, ms.';
COMMENT ON COLUMN tetcore_blocks.max_ms IS 'Delay of the last node to report it, ms.';

CREATE INDEX tetcore_blocks_first_at_idx ON tetcore_blocks (genesis_hash, kind, first_at);

CREATE TABLE tetcore_node_minutes (
    genesis_hash     text        NOT NULL,
    minute           timestamptz NOT NULL,
    peer_id          text        NOT NULL,
    best_height      bigint,
    finalized_height bigint,
    PRIMARY KEY (genesis_hash, minute, peer_id)
);

COMMENT ON TABLE tetcore_node_minutes IS
    'Each node''s best and finalized height per minute it reported them (block.import and notify.finalized).';
COMMENT ON COLUMN tetcore_node_minutes.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_node_minutes.minute IS 'The minute (server clock, start of the minute, UTC).';
COMMENT ON COLUMN tetcore_node_minutes.peer_id IS 'The node (libp2p peer id).';
COMMENT ON COLUMN tetcore_node_minutes.best_height IS 'Highest best block height the node reported in the minute.';
COMMENT ON COLUMN tetcore_node_minutes.finalized_height IS 'Highest finalized height the node reported in the minute.';

CREATE INDEX tetcore_node_minutes_peer_idx ON tetcore_node_minutes (peer_id, minute);
CREATE INDEX tetcore_node_minutes_age_idx ON tetcore_node_minutes USING brin (minute);

CREATE TABLE tetcore_chain_minutes (
    genesis_hash     text        NOT NULL,
    minute           timestamptz NOT NULL,
    best_height      bigint,
    finalized_height bigint,
    nodes            integer     NOT NULL,
    PRIMARY KEY (genesis_hash, minute)
);

COMMENT ON TABLE tetcore_chain_minutes IS
    'Each chain''s best and finalized height per minute: the highest its nodes reported (from tetcore_node_minutes).';
COMMENT ON COLUMN tetcore_chain_minutes.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_chain_minutes.minute IS 'The minute (server clock, UTC).';
COMMENT ON COLUMN tetcore_chain_minutes.best_height IS 'Highest best height any node reported in the minute.';
COMMENT ON COLUMN tetcore_chain_minutes.finalized_height IS 'Highest finalized height any node reported in the minute.';
COMMENT ON COLUMN tetcore_chain_minutes.nodes IS 'Nodes that reported a height in the minute.';

CREATE TABLE tetcore_node_hours (
    genesis_hash   text        NOT NULL,
    hour           timestamptz NOT NULL,
    peer_id        text        NOT NULL,
    name           text,
    implementation text,
    version        text,
    authority      boolean,
    seen_at        timestamptz NOT NULL,
    PRIMARY KEY (genesis_hash, hour, peer_id)
);

COMMENT ON TABLE tetcore_node_hours IS
    'Each node heard from in each hour (a block imported or finalized, a connection, a hardware or GRANDPA report), with what it ran (from its session''s system.connected); a node that changed version within the hour has the newest.';
COMMENT ON COLUMN tetcore_node_hours.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_node_hours.hour IS 'The hour (server clock, UTC).';
COMMENT ON COLUMN tetcore_node_hours.peer_id IS 'The node (libp2p peer id).';
COMMENT ON COLUMN tetcore_node_hours.name IS 'Node name (--name).';
COMMENT ON COLUMN tetcore_node_hours.implementation IS 'Client implementation, e.g. "Parity Polkadot".';
COMMENT ON COLUMN tetcore_node_hours.version IS 'Client version string.';
COMMENT ON COLUMN tetcore_node_hours.authority IS 'Whether it ran as an authority.';
COMMENT ON COLUMN tetcore_node_hours.seen_at IS 'The newest message of the node in the hour that was folded in (server clock).';

CREATE INDEX tetcore_node_hours_peer_idx ON tetcore_node_hours (peer_id, hour);
CREATE INDEX tetcore_node_hours_age_idx ON tetcore_node_hours USING brin (hour);

CREATE TABLE tetcore_version_hours (
    genesis_hash   text        NOT NULL,
    hour           timestamptz NOT NULL,
    implementation text        NOT NULL,
    version        text        NOT NULL,
    nodes          integer     NOT NULL,
    PRIMARY KEY (genesis_hash, hour, implementation, version)
);

COMMENT ON TABLE tetcore_version_hours IS
    'How many nodes of each chain ran each implementation and version in each hour (from tetcore_node_hours; unknown ones as '''').';
COMMENT ON COLUMN tetcore_version_hours.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_version_hours.hour IS 'The hour (server clock, UTC).';
COMMENT ON COLUMN tetcore_version_hours.implementation IS 'Client implementation ('''' when not reported).';
COMMENT ON COLUMN tetcore_version_hours.version IS 'Client version ('''' when not reported).';
COMMENT ON COLUMN tetcore_version_hours.nodes IS 'Nodes heard from in the hour running it.';

CREATE TABLE tetcore_hardware (
    genesis_hash                text        NOT NULL,
    peer_id                     text        NOT NULL,
    reported_at                 timestamptz NOT NULL,
    authority                   boolean,
    cpu                         text,
    memory                      bigint,
    core_count                  bigint,
    linux_kernel                text,
    linux_distro                text,
    is_virtual_machine          boolean,
    cpu_hashrate_score          bigint,
    parallel_cpu_hashrate_score bigint,
    parallel_cpu_cores          bigint,
    memory_memcpy_score         bigint,
    disk_sequential_write_score bigint,
    disk_random_write_score     bigint,
    PRIMARY KEY (genesis_hash, peer_id, reported_at)
);

COMMENT ON TABLE tetcore_hardware IS
    'What each node said about its hardware each time it connected: sysinfo of system.connected and the scores of sysinfo.hwbench (modern clients; a connection that sent neither has no row).';
COMMENT ON COLUMN tetcore_hardware.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_hardware.peer_id IS 'The node (libp2p peer id).';
COMMENT ON COLUMN tetcore_hardware.reported_at IS 'When its system.connected was received (server clock): one row per connection.';
COMMENT ON COLUMN tetcore_hardware.authority IS 'Whether it ran as an authority then.';
COMMENT ON COLUMN tetcore_hardware.cpu IS 'sysinfo.cpu: CPU model.';
COMMENT ON COLUMN tetcore_hardware.memory IS 'sysinfo.memory: memory in bytes.';
COMMENT ON COLUMN tetcore_hardware.core_count IS 'sysinfo.core_count: CPU cores.';
COMMENT ON COLUMN tetcore_hardware.linux_kernel IS 'sysinfo.linux_kernel.';
COMMENT ON COLUMN tetcore_hardware.linux_distro IS 'sysinfo.linux_distro.';
COMMENT ON COLUMN tetcore_hardware.is_virtual_machine IS 'sysinfo.is_virtual_machine.';
COMMENT ON COLUMN tetcore_hardware.cpu_hashrate_score IS 'sysinfo.hwbench cpu_hashrate_score: BLAKE2-256 on one core, MiB/s.';
COMMENT ON COLUMN tetcore_hardware.parallel_cpu_hashrate_score IS 'sysinfo.hwbench parallel_cpu_hashrate_score: BLAKE2-256 on parallel_cpu_cores cores, MiB/s per core.';
COMMENT ON COLUMN tetcore_hardware.parallel_cpu_cores IS 'sysinfo.hwbench parallel_cpu_cores: cores of the parallel benchmark.';
COMMENT ON COLUMN tetcore_hardware.memory_memcpy_score IS 'sysinfo.hwbench memory_memcpy_score: memory copy, MiB/s.';
COMMENT ON COLUMN tetcore_hardware.disk_sequential_write_score IS 'sysinfo.hwbench disk_sequential_write_score: MiB/s.';
COMMENT ON COLUMN tetcore_hardware.disk_random_write_score IS 'sysinfo.hwbench disk_random_write_score: MiB/s.';

CREATE INDEX tetcore_hardware_reported_idx ON tetcore_hardware (genesis_hash, reported_at);
CREATE INDEX tetcore_hardware_peer_idx ON tetcore_hardware (peer_id, reported_at);

CREATE TABLE tetcore_grandpa_votes (
    genesis_hash  text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('prevote', 'precommit')),
    voter         text        NOT NULL,
    target_number bigint      NOT NULL,
    target_hash   text        NOT NULL,
    first_at      timestamptz NOT NULL,
    PRIMARY KEY (genesis_hash, kind, voter, target_number, target_hash)
);

COMMENT ON TABLE tetcore_grandpa_votes IS
    'GRANDPA votes nodes saw (afg.received_prevote and afg.received_precommit, sent at verbosity 1 and up): one row per chain, voter and target.';
COMMENT ON COLUMN tetcore_grandpa_votes.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_grandpa_votes.kind IS 'prevote or precommit.';
COMMENT ON COLUMN tetcore_grandpa_votes.voter IS 'The voting authority, as the node printed it.';
COMMENT ON COLUMN tetcore_grandpa_votes.target_number IS 'Height of the block voted for.';
COMMENT ON COLUMN tetcore_grandpa_votes.target_hash IS 'Hash of the block voted for.';
COMMENT ON COLUMN tetcore_grandpa_votes.first_at IS 'When the first node''s report of the vote was received (server clock).';

CREATE INDEX tetcore_grandpa_votes_first_at_idx ON tetcore_grandpa_votes (genesis_hash, first_at);

CREATE TABLE tetcore_authority_sets (
    genesis_hash text        NOT NULL,
    set_id       bigint      NOT NULL,
    authorities  jsonb,
    first_at     timestamptz NOT NULL,
    PRIMARY KEY (genesis_hash, set_id)
);

COMMENT ON TABLE tetcore_authority_sets IS 'GRANDPA authority sets as nodes announced them (afg.authority_set).';
COMMENT ON COLUMN tetcore_authority_sets.genesis_hash IS 'The chain.';
COMMENT ON COLUMN tetcore_authority_sets.set_id IS 'authority_set_id.';
COMMENT ON COLUMN tetcore_authority_sets.authorities IS 'The authorities (a JSON list; the node sends it encoded in a string); NULL when unreadable.';
COMMENT ON COLUMN tetcore_authority_sets.first_at IS 'When the set was first announced (server clock).';

CREATE TABLE tetcore_derive_progress (
    id            integer     PRIMARY KEY CHECK (id = 1),
    derived_until timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE tetcore_derive_progress IS
    'How far the derived tables have folded in the raw messages (one row, shared by every instance).';
COMMENT ON COLUMN tetcore_derive_progress.id IS 'Always 1.';
COMMENT ON COLUMN tetcore_derive_progress.derived_until IS 'Messages received before this (server clock) are folded in.';
COMMENT ON COLUMN tetcore_derive_progress.updated_at IS 'When a pass last ran (database clock); late batches (tetcore_late_batches) marked from a minute before it on are folded in by the next.';

-- Derived data starts from the raw messages received from now on; `tetcore-analytics rebuild`
-- folds in the older ones.
INSERT INTO tetcore_derive_progress (id, derived_until) VALUES (1, now());

CREATE FUNCTION tetcore_derive(p_from timestamptz, p_to timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DROP TABLE IF EXISTS pg_temp.tetcore_derive_rows;
    CREATE TEMP TABLE tetcore_derive_rows ON COMMIT DROP AS
    SELECT l.created_at, p.genesis_hash, p.peer_id, p.chain, p.name, p.implementation, p.version,
           p.authority, p.connected_at, p.sysinfo, l.logs->>'msg' AS msg,
           CASE WHEN l.logs->>'msg' IN ('block.import', 'notify.finalized')
                THEN tetcore_int(l.logs->>'height') END AS height,
           CASE WHEN l.logs->>'msg' IN ('block.import', 'notify.finalized')
                THEN l.logs->>'best' END AS hash,
           CASE WHEN l.logs->>'msg' IN ('block.import', 'notify.finalized')
                THEN tetcore_time(l.logs->>'ts') END AS node_ts,
           CASE WHEN l.logs->>'msg' IN ('sysinfo.hwbench', 'afg.received_prevote',
                                        'afg.received_precommit', 'afg.authority_set')
                THEN l.logs END AS logs
    FROM tetcore_logs l
    JOIN peer_connections p ON p.id = l.peer_connection_id
    WHERE l.created_at >= p_from AND l.created_at < p_to
      AND p.genesis_hash IS NOT NULL AND p.peer_id IS NOT NULL
      AND l.logs->>'msg' IN ('block.import', 'notify.finalized', 'system.connected', 'sysinfo.hwbench', 'afg.received_prevote',
                             'afg.received_precommit', 'afg.authority_set');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;

    INSERT INTO tetcore_chains AS c (genesis_hash, name, first_seen, last_seen)
    SELECT DISTINCT ON (genesis_hash) genesis_hash, coalesce(chain, ''), min(created_at) OVER w,
           created_at
    FROM tetcore_derive_rows WHERE msg = 'system.connected'
    WINDOW w AS (PARTITION BY genesis_hash)
    ORDER BY genesis_hash, created_at DESC
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
    SELECT DISTINCT ON (genesis_hash, date_trunc('hour', created_at), peer_id)
           genesis_hash, date_trunc('hour', created_at), peer_id, name, implementation, version,
           authority, created_at
    FROM tetcore_derive_rows
    ORDER BY genesis_hash, date_trunc('hour', created_at), peer_id, created_at DESC
    ON CONFLICT (genesis_hash, hour, peer_id) DO UPDATE SET
        name = excluded.name, implementation = excluded.implementation,
        version = excluded.version, authority = excluded.authority, seen_at = excluded.seen_at
        WHERE excluded.seen_at >= h.seen_at;

    INSERT INTO tetcore_hardware AS hw
        (genesis_hash, peer_id, reported_at, authority, cpu, memory, core_count, linux_kernel,
         linux_distro, is_virtual_machine)
    SELECT DISTINCT ON (genesis_hash, peer_id, created_at)
           genesis_hash, peer_id, created_at, authority, sysinfo->>'cpu',
           tetcore_int(sysinfo->>'memory'), tetcore_int(sysinfo->>'core_count'),
           sysinfo->>'linux_kernel', sysinfo->>'linux_distro',
           CASE sysinfo->>'is_virtual_machine' WHEN 'true' THEN true WHEN 'false' THEN false END
    FROM tetcore_derive_rows WHERE msg = 'system.connected' AND sysinfo IS NOT NULL
    ON CONFLICT (genesis_hash, peer_id, reported_at) DO UPDATE SET
        authority = excluded.authority, cpu = excluded.cpu, memory = excluded.memory,
        core_count = excluded.core_count, linux_kernel = excluded.linux_kernel,
        linux_distro = excluded.linux_distro, is_virtual_machine = excluded.is_virtual_machine;

    INSERT INTO tetcore_hardware AS hw
        (genesis_hash, peer_id, reported_at, authority, cpu_hashrate_score,
         parallel_cpu_hashrate_score, parallel_cpu_cores, memory_memcpy_score,
         disk_sequential_write_score, disk_random_write_score)
    SELECT DISTINCT ON (genesis_hash, peer_id, connected_at)
           genesis_hash, peer_id, connected_at, authority,
           tetcore_int(logs->>'cpu_hashrate_score'),
           tetcore_int(logs->>'parallel_cpu_hashrate_score'),
           tetcore_int(logs->>'parallel_cpu_cores'),
           tetcore_int(logs->>'memory_memcpy_score'),
           tetcore_int(logs->>'disk_sequential_write_score'),
           tetcore_int(logs->>'disk_random_write_score')
    FROM tetcore_derive_rows WHERE msg = 'sysinfo.hwbench' AND connected_at IS NOT NULL
    ORDER BY genesis_hash, peer_id, connected_at, created_at DESC
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
                 logs->>'voter' AS voter, tetcore_int(logs->>'target_number') AS target_number,
                 logs->>'target_hash' AS target_hash
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

COMMENT ON FUNCTION tetcore_derive(timestamptz, timestamptz) IS
    'Folds the raw messages received in [from, to) into the derived tables (tetcore_chains, tetcore_block_arrivals, tetcore_blocks, tetcore_node_minutes, tetcore_chain_minutes, tetcore_node_hours, tetcore_version_hours, tetcore_hardware, tetcore_grandpa_votes, tetcore_authority_sets); returns the messages it read. Idempotent: running it again, or on overlapping windows, changes nothing.';
