-- Time-range reads of recent messages (the cache's refresh, Grafana's time filters, the
-- purge's trim) without scanning whole partitions. Rows arrive in created_at order, so a BRIN
-- index is a few pages per partition and costs ingest next to nothing.
CREATE INDEX tetcore_logs_created_at_brin ON tetcore_logs USING brin (created_at);
