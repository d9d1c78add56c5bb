-- Readers that follow new messages by their receive time (created_at) with a small margin for
-- commits in flight, like the service's cache, miss rows committed long after they were
-- received: the backlog written after an outage or under back-pressure. The writer marks each
-- such batch here, in the batch's own transaction, with the oldest receive time in it, so a
-- reader can look back that far once.

CREATE TABLE tetcore_late_batches (
    id          bigserial   PRIMARY KEY,
    marked_at   timestamptz NOT NULL DEFAULT now(),
    oldest      timestamptz NOT NULL,
    instance_id bigint      NOT NULL
);

COMMENT ON TABLE tetcore_late_batches IS
    'Batches of messages committed more than 2 s after the oldest of them was received (the backlog after an outage): a reader that follows created_at should look back to oldest once. Kept a day.';
COMMENT ON COLUMN tetcore_late_batches.id IS 'Mark id.';
COMMENT ON COLUMN tetcore_late_batches.marked_at IS 'When the batch''s transaction ran (database clock).';
COMMENT ON COLUMN tetcore_late_batches.oldest IS 'The oldest created_at among the batch''s messages.';
COMMENT ON COLUMN tetcore_late_batches.instance_id IS 'The instance that wrote the batch (tetcore_instances.id).';

CREATE INDEX tetcore_late_batches_marked_at_idx ON tetcore_late_batches (marked_at);
