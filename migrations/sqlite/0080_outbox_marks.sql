-- Publish markers: a letter whose delivery the queue confirmed (see src/outbox/). The sweep
-- re-queues waiting letters without one, so a restart does not republish the whole backlog and
-- a crash between a batch's commit and its publish is repaired while the gateway runs.
CREATE TABLE outbox_marks (
    letter_id TEXT    PRIMARY KEY,
    marked_at INTEGER NOT NULL  -- unix ms
) WITHOUT ROWID;
