-- An instance runs several writers (DB_WRITERS), each on its own connection with its own
-- share of the sockets and its own batch numbers. Each records the last batch it committed
-- here, in the batch's own transaction, so a retry after a lost COMMIT answer can tell whether
-- its batch is stored. tetcore_instances.last_batch is no longer written.

CREATE TABLE tetcore_writer_batches (
    instance_id bigint  NOT NULL,
    writer      integer NOT NULL,
    last_batch  bigint  NOT NULL,
    PRIMARY KEY (instance_id, writer)
);

COMMENT ON TABLE tetcore_writer_batches IS
    'The last batch each writer of each instance committed: one row per (instance, writer), updated in the same transaction as the batch.';
COMMENT ON COLUMN tetcore_writer_batches.instance_id IS 'The instance (tetcore_instances.id).';
COMMENT ON COLUMN tetcore_writer_batches.writer IS 'The writer within the instance, from 0 to DB_WRITERS - 1.';
COMMENT ON COLUMN tetcore_writer_batches.last_batch IS 'Number of the last batch this writer committed (numbered from 1 per writer).';
COMMENT ON COLUMN tetcore_instances.last_batch IS
    'Unused since the writers record their batches in tetcore_writer_batches (kept for compatibility; 0 for instances started since).';
