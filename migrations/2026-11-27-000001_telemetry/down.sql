DROP FUNCTION tetcore_ensure_log_partitions(timestamptz, timestamptz, integer);
DROP FUNCTION tetcore_log_partitions();
DROP TABLE tetcore_logs;
DROP TABLE peer_connections;
