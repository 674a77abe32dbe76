-- The gateway's store on PostgreSQL: the same tables and meaning as migrations/sqlite. Letters are
-- kept only as ciphertext; recipients only as keyed pseudonyms (`tag`) and sealed ids. Nothing here
-- holds a CPR number, a title or letter content in clear.
--
-- Integers are BIGINT throughout, as SQLite's INTEGER is 64-bit: the store code binds and reads
-- i64 for both backends, and the few bytes saved by smaller types are nothing beside a sealed
-- letter. Several gateway instances share one database: every rule two of them could race on is a
-- constraint here, not a check in code.

CREATE TABLE senders (
    cvr        BIGINT  PRIMARY KEY,
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('public', 'private')),
    suspended  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT  NOT NULL
);

-- SHA-256 of each client certificate issued to a sender: the certificate says who calls.
CREATE TABLE sender_certs (
    fingerprint BYTEA  PRIMARY KEY,
    cvr         BIGINT NOT NULL REFERENCES senders (cvr),
    issued_at   BIGINT NOT NULL
);

CREATE TABLE recipients (
    tag        BYTEA  PRIMARY KEY,  -- HMAC of the normalised id
    sealed_key BYTEA  NOT NULL,     -- the id, encrypted, for rebuilding the in-memory index
    status     BIGINT NOT NULL      -- 0 active, 1 exempt, 2 closed
);

CREATE TABLE subscriptions (
    tag        BYTEA  NOT NULL REFERENCES recipients (tag),
    sender_cvr BIGINT NOT NULL,
    PRIMARY KEY (tag, sender_cvr)
);

CREATE TABLE letters (
    letter_id      TEXT   PRIMARY KEY,
    sender_cvr     BIGINT NOT NULL,
    message_uuid   TEXT   NOT NULL,
    recipient_tag  BYTEA  NOT NULL,
    fingerprint    BYTEA  NOT NULL,
    content_sha256 TEXT   NOT NULL,
    route          BIGINT NOT NULL,  -- 1 mailbox, 2 print
    priority       BIGINT NOT NULL,
    state          BIGINT NOT NULL,  -- LetterState code
    kek_id         BIGINT NOT NULL,
    wrapped_key    BYTEA  NOT NULL,
    nonce          BYTEA  NOT NULL,
    ciphertext     BYTEA  NOT NULL,
    accepted_at    BIGINT NOT NULL,  -- unix ms
    not_before     BIGINT,           -- unix ms; not delivered before
    delivered_at   BIGINT,
    attempts       BIGINT NOT NULL DEFAULT 0,
    detail         TEXT   NOT NULL DEFAULT '',
    print_batch    TEXT,
    -- The idempotency key, enforced by the database so that two gateway instances can never
    -- both accept the same (sender, uuid): the second insert waits for the first to commit and
    -- then does nothing (ON CONFLICT DO NOTHING).
    CONSTRAINT letters_sender_message_uuid UNIQUE (sender_cvr, message_uuid)
);

-- Ciphertext does not compress: keep it out of line (TOAST) but skip the compression attempt.
ALTER TABLE letters ALTER COLUMN ciphertext SET STORAGE EXTERNAL;

CREATE INDEX letters_undelivered ON letters (state) WHERE state IN (1, 2);
CREATE INDEX letters_print_batch ON letters (print_batch) WHERE print_batch IS NOT NULL;

CREATE TABLE mailbox (
    letter_id     TEXT   PRIMARY KEY REFERENCES letters (letter_id),
    recipient_tag BYTEA  NOT NULL,
    delivered_at  BIGINT NOT NULL
);
CREATE INDEX mailbox_recipient ON mailbox (recipient_tag);

-- Change counters: running gateways poll them to pick up admin changes without a restart. An
-- admin change bumps its counter in its own transaction; the row lock makes concurrent bumps
-- from several processes add up instead of overwriting each other.
CREATE TABLE meta (
    key   TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('senders_generation', 0), ('registry_generation', 0);
