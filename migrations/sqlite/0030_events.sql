-- Following letters: batches, sender references, the per-sender event log and recall.
--
-- `sender_reference` is the sender's own correlation text, returned on status and in events; it
-- is kept as given (the API documents that it must not carry personal data).
ALTER TABLE letters ADD COLUMN batch_id TEXT;
ALTER TABLE letters ADD COLUMN sender_reference TEXT NOT NULL DEFAULT '';
CREATE INDEX letters_batch ON letters (sender_cvr, batch_id) WHERE batch_id IS NOT NULL;
-- Listing: a sender's letters newest first; letter ids (UUIDv7) break ties within a millisecond.
CREATE INDEX letters_sender_accepted ON letters (sender_cvr, accepted_at, letter_id);

-- One row per sender: the last event number handed out, and up to which events were pruned
-- by retention. Allocating numbers takes this row's lock until commit, so a sender's events
-- commit in number order even when several gateways write them: a reader that has seen event
-- n never finds an event below n committed later (no gap on resume).
CREATE TABLE event_seq (
    sender_cvr     INTEGER PRIMARY KEY,
    last_seq       INTEGER NOT NULL,
    pruned_through INTEGER NOT NULL DEFAULT 0
);

-- A letter's state changes, written in the transaction of the change.
CREATE TABLE events (
    sender_cvr INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    letter_id  TEXT    NOT NULL,
    state      INTEGER NOT NULL,  -- the LetterState entered
    at         INTEGER NOT NULL,  -- unix ms
    detail     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (sender_cvr, seq)
) WITHOUT ROWID;

-- Letters of a batch that were refused (they are not stored as letters), for batch counts.
-- Keyed by message uuid, so a resent refused letter counts once, with its latest reason.
CREATE TABLE batch_rejections (
    sender_cvr   INTEGER NOT NULL,
    batch_id     TEXT    NOT NULL,
    message_uuid TEXT    NOT NULL,
    reason       INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (sender_cvr, batch_id, message_uuid)
) WITHOUT ROWID;
