-- The latest state of every node session, kept by the writers in each batch's own transaction
-- (so it is exactly as stored, whichever instance wrote it). The cache and /nodes read this
-- small table instead of re-reading the newest messages, whose cost grew with the ingest rate.

CREATE TABLE tetcore_node_state (
    peer_connection_id bigint      PRIMARY KEY REFERENCES peer_connections (id) ON DELETE CASCADE,
    last_message_at    timestamptz NOT NULL,
    best_height        bigint,
    finalized_height   bigint,
    peers              bigint,
    txcount            bigint,
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (fillfactor = 70);

COMMENT ON TABLE tetcore_node_state IS
    'The latest state of each node session, as its stored messages tell it; one row per session that sent a message since migration 10 (and those that sent one in the two minutes before it), updated in the transaction that stores the messages. Deleted with its session.';
COMMENT ON COLUMN tetcore_node_state.peer_connection_id IS 'The session (peer_connections.id).';
COMMENT ON COLUMN tetcore_node_state.last_message_at IS 'When the newest message of the session was received (server clock, as tetcore_logs.created_at).';
COMMENT ON COLUMN tetcore_node_state.best_height IS 'height of the newest block.import (a number, or a string of at most 18 digits; other values are skipped).';
COMMENT ON COLUMN tetcore_node_state.finalized_height IS 'height of the newest notify.finalized (same rule).';
COMMENT ON COLUMN tetcore_node_state.peers IS 'peers of the newest system.interval that has it (same rule).';
COMMENT ON COLUMN tetcore_node_state.txcount IS 'txcount of the newest system.interval that has it (same rule).';
COMMENT ON COLUMN tetcore_node_state.updated_at IS 'When a writer last changed the row (database clock, at the statement; its transaction commits right after).';

-- The state of sessions heard from in the last two minutes, from their messages, so the live
-- fleet is known right after the upgrade (a node still talking fills its row with its next
-- message anyway). Not the whole hour the cache kept: at 10,000 nodes that is 36 million
-- messages to read before the service starts.
INSERT INTO tetcore_node_state (peer_connection_id, last_message_at, best_height, finalized_height, peers, txcount)
SELECT l.peer_connection_id, max(l.created_at),
    (array_agg((l.logs->>'height')::bigint ORDER BY l.created_at DESC, l.id DESC)
        FILTER (WHERE l.logs->>'msg' = 'block.import' AND l.logs->>'height' ~ '^[0-9]{1,18}$'))[1],
    (array_agg((l.logs->>'height')::bigint ORDER BY l.created_at DESC, l.id DESC)
        FILTER (WHERE l.logs->>'msg' = 'notify.finalized' AND l.logs->>'height' ~ '^[0-9]{1,18}$'))[1],
    (array_agg((l.logs->>'peers')::bigint ORDER BY l.created_at DESC, l.id DESC)
        FILTER (WHERE l.logs->>'msg' = 'system.interval' AND l.logs->>'peers' ~ '^[0-9]{1,18}$'))[1],
    (array_agg((l.logs->>'txcount')::bigint ORDER BY l.created_at DESC, l.id DESC)
        FILTER (WHERE l.logs->>'msg' = 'system.interval' AND l.logs->>'txcount' ~ '^[0-9]{1,18}$'))[1]
FROM tetcore_logs l
WHERE l.created_at > now() - interval '2 minutes'
  AND EXISTS (SELECT 1 FROM peer_connections p WHERE p.id = l.peer_connection_id)
GROUP BY l.peer_connection_id;
