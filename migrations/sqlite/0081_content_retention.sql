-- Letters handed to print whose content retention has not purged yet (src/store/compact.rs):
-- what the purge looks for, by when they were delivered, without reading the history.
CREATE INDEX letters_content_kept ON letters (delivered_at) WHERE state = 4 AND length(wrapped_key) > 0;
