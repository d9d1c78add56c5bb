-- One node's messages of one kind, newest first (/nodes/logs?msg=, /nodes/log_stats) straight
-- from an index. It replaces the fleet-wide (msg, created_at) index: fleet-wide reads by kind
-- are time-range reads, which the BRIN index on created_at serves; ingest keeps two btrees.
DROP INDEX tetcore_logs_msg_created_at_idx;
CREATE INDEX tetcore_logs_peer_msg_created_at_idx
    ON tetcore_logs (peer_connection_id, (logs ->> 'msg'), created_at);
