-- The gateway's store. Letters are kept only as ciphertext; recipients only as keyed pseudonyms
-- (`tag`) and sealed ids. Nothing here holds a CPR number, a title or letter content in clear.

CREATE TABLE senders (
    cvr        INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('public', 'private')),
    suspended  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

-- SHA-256 of each client certificate issued to a sender: the certificate says who calls.
CREATE TABLE sender_certs (
    fingerprint BLOB    PRIMARY KEY,
    cvr         INTEGER NOT NULL REFERENCES senders (cvr),
    issued_at   INTEGER NOT NULL
);

CREATE TABLE recipients (
    tag        BLOB    PRIMARY KEY,  -- HMAC of the normalised id
    sealed_key BLOB    NOT NULL,     -- the id, encrypted, for rebuilding the in-memory index
    status     INTEGER NOT NULL      -- 0 active, 1 exempt, 2 closed
) WITHOUT ROWID;

CREATE TABLE subscriptions (
    tag        BLOB    NOT NULL REFERENCES recipients (tag),
    sender_cvr INTEGER NOT NULL,
    PRIMARY KEY (tag, sender_cvr)
) WITHOUT ROWID;

CREATE TABLE letters (
    letter_id      TEXT    PRIMARY KEY,
    sender_cvr     INTEGER NOT NULL,
    message_uuid   TEXT    NOT NULL,
    recipient_tag  BLOB    NOT NULL,
    fingerprint    BLOB    NOT NULL,
    content_sha256 TEXT    NOT NULL,
    route          INTEGER NOT NULL,  -- 1 mailbox, 2 print
    priority       INTEGER NOT NULL,
    state          INTEGER NOT NULL,  -- LetterState code
    kek_id         INTEGER NOT NULL,
    wrapped_key    BLOB    NOT NULL,
    nonce          BLOB    NOT NULL,
    ciphertext     BLOB    NOT NULL,
    accepted_at    INTEGER NOT NULL,  -- unix ms
    not_before     INTEGER,           -- unix ms; not delivered before
    delivered_at   INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    detail         TEXT    NOT NULL DEFAULT '',
    print_batch    TEXT,
    UNIQUE (sender_cvr, message_uuid)
);

CREATE INDEX letters_undelivered ON letters (state) WHERE state IN (1, 2);
CREATE INDEX letters_print_batch ON letters (print_batch) WHERE print_batch IS NOT NULL;

CREATE TABLE mailbox (
    letter_id     TEXT    PRIMARY KEY REFERENCES letters (letter_id),
    recipient_tag BLOB    NOT NULL,
    delivered_at  INTEGER NOT NULL
);
CREATE INDEX mailbox_recipient ON mailbox (recipient_tag);

-- Change counters: running gateways poll them to pick up admin changes without a restart.
CREATE TABLE meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('senders_generation', 0), ('registry_generation', 0);
