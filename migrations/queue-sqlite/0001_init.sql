-- The embedded delivery queue: letter references only, never content.

CREATE TABLE deliveries (
    letter_id   TEXT    PRIMARY KEY,
    route       INTEGER NOT NULL,      -- 1 mailbox, 2 print
    priority    INTEGER NOT NULL,      -- 3 urgent first
    not_before  INTEGER NOT NULL,      -- unix ms
    enqueued_at INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX deliveries_due ON deliveries (route, priority DESC, not_before, enqueued_at);

CREATE TABLE dead_letters (
    letter_id   TEXT    PRIMARY KEY,
    route       INTEGER NOT NULL,
    priority    INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    failed_at   INTEGER NOT NULL,
    last_error  TEXT    NOT NULL
);
