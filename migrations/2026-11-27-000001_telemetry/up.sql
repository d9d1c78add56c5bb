-- The telemetry schema: one row per node session, one row per message.
-- This schema is a public interface (Grafana and analysts query it directly):
-- change it only through new migrations, and keep every COMMENT true.

CREATE TABLE peer_connections (
    id             bigserial   PRIMARY KEY,
    ip_addr        text        NOT NULL,
    audit          boolean     NOT NULL DEFAULT false,
    telemetry_id   numeric(20, 0) NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz,
    connected_at   timestamptz,
    peer_id        text,
    name           text,
    chain          text,
    version        text,
    authority      boolean,
    startup_time   bigint,
    implementation text,
    genesis_hash   text,
    target_os      text,
    target_arch    text,
    target_env     text,
    sysinfo        jsonb
);

COMMENT ON TABLE peer_connections IS
    'One row per node session: a telemetry id on one WebSocket connection. A process that runs several nodes (a collator) has one row per id; a node that reconnects gets a new row.';
COMMENT ON COLUMN peer_connections.id IS 'Session id; tetcore_logs.peer_connection_id refers to it.';
COMMENT ON COLUMN peer_connections.ip_addr IS 'IP address of the client that opened the WebSocket, without port.';
COMMENT ON COLUMN peer_connections.audit IS 'True when the node connected to /audit: its logs are kept for ever instead of LOG_EXPIRY_H hours.';
COMMENT ON COLUMN peer_connections.telemetry_id IS 'The envelope "id" the node used for this session (u64); 0 for the flat 2020 (slog) format, which has none.';
COMMENT ON COLUMN peer_connections.created_at IS 'When the server saw the first message of this session (server clock).';
COMMENT ON COLUMN peer_connections.ended_at IS 'When the WebSocket closed (server clock); NULL while the session is live or if the server stopped without closing it.';
COMMENT ON COLUMN peer_connections.connected_at IS 'When the latest system.connected message of this session arrived (server clock); NULL if none did.';
COMMENT ON COLUMN peer_connections.peer_id IS 'libp2p peer id of the node (network_id of system.connected, 12D3KooW...); NULL until system.connected arrives.';
COMMENT ON COLUMN peer_connections.name IS 'Node name (--name), from system.connected.';
COMMENT ON COLUMN peer_connections.chain IS 'Chain name, from system.connected.';
COMMENT ON COLUMN peer_connections.version IS 'Client version string, from system.connected.';
COMMENT ON COLUMN peer_connections.authority IS 'Whether the node runs as an authority (validator), from system.connected.';
COMMENT ON COLUMN peer_connections.startup_time IS 'Node start time in milliseconds since the Unix epoch (node clock), from system.connected.';
COMMENT ON COLUMN peer_connections.implementation IS 'Client implementation name, e.g. "Substrate Node", from system.connected.';
COMMENT ON COLUMN peer_connections.genesis_hash IS 'Genesis block hash, 0x-prefixed hex, from system.connected.';
COMMENT ON COLUMN peer_connections.target_os IS 'Operating system the node was built for (modern clients only).';
COMMENT ON COLUMN peer_connections.target_arch IS 'CPU architecture the node was built for (modern clients only).';
COMMENT ON COLUMN peer_connections.target_env IS 'Target environment (gnu, musl, ...) the node was built for (modern clients only).';
COMMENT ON COLUMN peer_connections.sysinfo IS 'Hardware description from system.connected (cpu, memory, core_count, linux_kernel, linux_distro, is_virtual_machine; modern clients only).';

-- Newest session of a peer: /nodes and dashboards.
CREATE INDEX peer_connections_peer_id_created_at_idx ON peer_connections (peer_id, created_at DESC);
-- Live sessions: small, because only open sessions are in it.
CREATE INDEX peer_connections_live_idx ON peer_connections (id) WHERE ended_at IS NULL;

CREATE SEQUENCE tetcore_logs_id_seq AS bigint;

-- Messages. Partitioned first by audit (kept for ever, or not), then the expiring rows by
-- time range, so that retention drops whole ranges instead of deleting row by row.
CREATE TABLE tetcore_logs (
    id                 bigint      NOT NULL DEFAULT nextval('tetcore_logs_id_seq'),
    peer_connection_id bigint      NOT NULL,
    created_at         timestamptz NOT NULL,
    audit              boolean     NOT NULL,
    logs               jsonb       NOT NULL
) PARTITION BY LIST (audit);

ALTER SEQUENCE tetcore_logs_id_seq OWNED BY tetcore_logs.id;

COMMENT ON TABLE tetcore_logs IS
    'One row per telemetry message. Partitioned by audit, and the non-audit rows by time ranges of created_at (tetcore_logs_expiring_pYYYYMMDD_HH, 1 to 24 hours wide depending on LOG_EXPIRY_H), so expired ranges are dropped whole.';
COMMENT ON COLUMN tetcore_logs.id IS 'Row id, unique (from tetcore_logs_id_seq); not a time order across instances, use created_at.';
COMMENT ON COLUMN tetcore_logs.peer_connection_id IS 'The session (peer_connections.id) that sent the message.';
COMMENT ON COLUMN tetcore_logs.created_at IS 'When the server received the message (server clock; node clocks are unreliable, the node''s own time is logs->>''ts'').';
COMMENT ON COLUMN tetcore_logs.audit IS 'Copy of peer_connections.audit: audit rows are kept for ever, the others for LOG_EXPIRY_H hours.';
COMMENT ON COLUMN tetcore_logs.logs IS
    'The message, normalised so logs->>''msg'' works for every era: the flat 2020 object as sent, or the payload of an enveloped message with the envelope''s "ts" and "id" added. NUL characters, which jsonb refuses, are replaced by U+FFFD and "_sanitized": true is added.';

CREATE TABLE tetcore_logs_audit PARTITION OF tetcore_logs FOR VALUES IN (true);
CREATE TABLE tetcore_logs_expiring PARTITION OF tetcore_logs FOR VALUES IN (false)
    PARTITION BY RANGE (created_at);
CREATE TABLE tetcore_logs_expiring_default PARTITION OF tetcore_logs_expiring DEFAULT;

COMMENT ON TABLE tetcore_logs_audit IS 'Messages of sessions opened on /audit: never purged.';
COMMENT ON TABLE tetcore_logs_expiring IS 'Messages of sessions opened on /: one partition per time range (1 to 24 hours, aligned to UTC midnight), dropped when expired.';
COMMENT ON TABLE tetcore_logs_expiring_default IS 'Safety net for rows whose time has no partition yet; tetcore_ensure_log_partitions moves them into their partition when it is made. Normally empty.';

-- Messages of one session over time, and of one kind over time.
CREATE INDEX tetcore_logs_peer_connection_id_created_at_idx ON tetcore_logs (peer_connection_id, created_at);
CREATE INDEX tetcore_logs_msg_created_at_idx ON tetcore_logs ((logs ->> 'msg'), created_at);

-- The partitions of tetcore_logs_expiring and their ranges [lo, hi), read from the catalog.
CREATE FUNCTION tetcore_log_partitions()
RETURNS TABLE (name text, lo timestamptz, hi timestamptz, rows_estimate bigint)
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']*)''\)')::timestamptz,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']*)''\)')::timestamptz,
           greatest(c.reltuples, 0)::bigint
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'tetcore_logs_expiring'::regclass
      AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
$$;

COMMENT ON FUNCTION tetcore_log_partitions() IS
    'The time partitions of tetcore_logs_expiring with their ranges [lo, hi) and PostgreSQL''s row estimate.';

-- Creates partitions of tetcore_logs_expiring, `width_hours` wide and aligned to UTC midnight,
-- covering [first, last). A slot that overlaps an existing partition (made with another width)
-- is covered hour by hour where free. Rows that landed in the default partition for a new
-- partition's range are moved into it. Safe to call from several instances at once.
CREATE FUNCTION tetcore_ensure_log_partitions(first timestamptz, last timestamptz, width_hours integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    width interval := make_interval(hours => width_hours);
    slot timestamptz;
    lo timestamptz;
    hi timestamptz;
    part text;
    created integer := 0;
BEGIN
    IF width_hours NOT IN (1, 2, 3, 4, 6, 8, 12, 24) THEN
        RAISE EXCEPTION 'width_hours must divide a day, got %', width_hours;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tetcore_logs_expiring partitions'));
    slot := date_trunc('day', first AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    slot := slot + width * floor(extract(epoch FROM first - slot) / extract(epoch FROM width));
    WHILE slot < last LOOP
        FOR lo, hi IN
            SELECT slot, slot + width
            WHERE NOT EXISTS (SELECT 1 FROM tetcore_log_partitions() p WHERE p.lo < slot + width AND p.hi > slot)
            UNION ALL
            SELECT h, h + interval '1 hour'
            FROM generate_series(slot, slot + width - interval '1 hour', interval '1 hour') h
            WHERE EXISTS (SELECT 1 FROM tetcore_log_partitions() p WHERE p.lo < slot + width AND p.hi > slot)
              AND NOT EXISTS (SELECT 1 FROM tetcore_log_partitions() p WHERE p.lo < h + interval '1 hour' AND p.hi > h)
        LOOP
            part := format('tetcore_logs_expiring_p%s', to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD_HH24'));
            EXECUTE format('CREATE TABLE %I (LIKE tetcore_logs_expiring INCLUDING DEFAULTS)', part);
            EXECUTE format(
                'WITH moved AS (DELETE FROM tetcore_logs_expiring_default WHERE created_at >= %L AND created_at < %L RETURNING *)
                 INSERT INTO %I SELECT * FROM moved', lo, hi, part);
            EXECUTE format('ALTER TABLE tetcore_logs_expiring ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                part, lo, hi);
            EXECUTE format('COMMENT ON TABLE %I IS %L', part,
                format('Non-audit messages received from %s to %s (UTC).',
                    to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                    to_char(hi AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')));
            created := created + 1;
        END LOOP;
        slot := slot + width;
    END LOOP;
    RETURN created;
END
$$;

COMMENT ON FUNCTION tetcore_ensure_log_partitions(timestamptz, timestamptz, integer) IS
    'Creates missing time partitions of tetcore_logs_expiring; called by the service at start-up and on every purge pass, with a width that follows LOG_EXPIRY_H.';

SELECT tetcore_ensure_log_partitions(now() - interval '1 day', now() + interval '8 days', 24);
