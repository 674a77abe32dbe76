-- Per-sender share and limits (see src/registry/limits.rs). NULL means no limit of that kind.
ALTER TABLE senders ADD COLUMN weight INTEGER NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 1000);
ALTER TABLE senders ADD COLUMN rate_per_s INTEGER CHECK (rate_per_s > 0);
ALTER TABLE senders ADD COLUMN burst INTEGER CHECK (burst > 0);
ALTER TABLE senders ADD COLUMN max_in_flight INTEGER CHECK (max_in_flight > 0);
ALTER TABLE senders ADD COLUMN max_letter_bytes INTEGER CHECK (max_letter_bytes > 0);
