-- Per-sender share and limits (see src/registry/limits.rs). NULL means no limit of that kind.
ALTER TABLE senders
    ADD COLUMN weight           BIGINT NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000),
    ADD COLUMN rate_per_s       BIGINT CHECK (rate_per_s > 0),
    ADD COLUMN burst            BIGINT CHECK (burst > 0),
    ADD COLUMN max_in_flight    BIGINT CHECK (max_in_flight > 0),
    ADD COLUMN max_letter_bytes BIGINT CHECK (max_letter_bytes > 0);
