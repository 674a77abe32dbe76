-- Letter ciphertext moves to append-only segment files (see src/store/blobs.rs); the row keeps
-- where it is. `ciphertext` stays for letters stored before this change (and is empty after).
ALTER TABLE letters ADD COLUMN blob_segment INTEGER;
ALTER TABLE letters ADD COLUMN blob_offset INTEGER;
ALTER TABLE letters ADD COLUMN blob_len INTEGER;
