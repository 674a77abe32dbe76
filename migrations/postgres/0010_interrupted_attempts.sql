-- Delivery attempts begun in a row without an outcome recorded: the gateway died while handling
-- the letter. Counted before the work starts, reset when an outcome is recorded, so a letter
-- that takes the process down is dead-lettered instead of crash-looping it.
ALTER TABLE letters ADD COLUMN interrupted BIGINT NOT NULL DEFAULT 0;
-- Print batches holding claims on letters still waiting (start-up recovery looks for these).
CREATE INDEX letters_print_claims ON letters (print_batch) WHERE print_batch IS NOT NULL AND state IN (1, 2);
