DROP FUNCTION tetcore_ensure_log_partitions(date, integer);
DROP TABLE tetcore_logs;
DROP TABLE peer_connections;
