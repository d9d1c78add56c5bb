-- Service instances sharing this database: each registers at start, heartbeats, and records
-- the last batch its writer committed (so a retry after a lost COMMIT answer can tell whether
-- the batch is already stored). Sessions record the instance that owns their socket, so the
-- sessions of an instance that died without closing them can be ended by another.

CREATE TABLE tetcore_instances (
    id           bigserial   PRIMARY KEY,
    hostname     text        NOT NULL,
    pid          integer     NOT NULL,
    version      text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    ended_by     bigint,
    last_batch   bigint      NOT NULL DEFAULT 0
);

COMMENT ON TABLE tetcore_instances IS
    'One row per start of a tetcore-analytics process against this database.';
COMMENT ON COLUMN tetcore_instances.id IS 'Instance id; peer_connections.instance_id refers to it.';
COMMENT ON COLUMN tetcore_instances.hostname IS 'Host name of the machine (or container) the instance runs on.';
COMMENT ON COLUMN tetcore_instances.pid IS 'Process id on that host.';
COMMENT ON COLUMN tetcore_instances.version IS 'tetcore-analytics version.';
COMMENT ON COLUMN tetcore_instances.started_at IS 'When the instance registered (database clock).';
COMMENT ON COLUMN tetcore_instances.heartbeat_at IS 'Last heartbeat (database clock), every INSTANCE_HEARTBEAT_S while the instance runs.';
COMMENT ON COLUMN tetcore_instances.ended_at IS 'When the instance stopped cleanly (its own clock of the database), or, if it died, its last heartbeat; NULL while it runs.';
COMMENT ON COLUMN tetcore_instances.ended_by IS 'Which instance ended it: its own id after a clean stop, another''s when that one found its heartbeat older than INSTANCE_DEAD_AFTER_S.';
COMMENT ON COLUMN tetcore_instances.last_batch IS 'Number of the last batch its writer committed (batches are numbered from 1 per instance); updated in the same transaction as the batch.';

CREATE INDEX tetcore_instances_live_idx ON tetcore_instances (heartbeat_at) WHERE ended_at IS NULL;

ALTER TABLE peer_connections ADD COLUMN instance_id bigint;
COMMENT ON COLUMN peer_connections.instance_id IS
    'The instance (tetcore_instances.id) whose socket carried this session; NULL for sessions stored before instances were recorded.';
COMMENT ON COLUMN peer_connections.ended_at IS
    'When the WebSocket closed (server clock); NULL while the session is live. If its instance died, the instance''s last heartbeat.';

CREATE INDEX peer_connections_instance_live_idx ON peer_connections (instance_id) WHERE ended_at IS NULL;
