DROP TABLE tetcore_writer_batches;
COMMENT ON COLUMN tetcore_instances.last_batch IS 'Number of the last batch its writer committed (batches are numbered from 1 per instance); updated in the same transaction as the batch.';
