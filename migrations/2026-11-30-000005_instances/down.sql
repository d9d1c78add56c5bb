DROP INDEX peer_connections_instance_live_idx;
COMMENT ON COLUMN peer_connections.ended_at IS 'When the WebSocket closed (server clock); NULL while the session is live or if the server stopped without closing it.';
ALTER TABLE peer_connections DROP COLUMN instance_id;
DROP TABLE tetcore_instances;
