-- Per client certificate: when it stops being valid (from the certificate itself; NULL for
-- certificates issued before this was recorded) and when an operator revoked it (NULL: in use).
-- A revoked certificate is refused by every gateway within its refresh interval.
ALTER TABLE sender_certs ADD COLUMN expires_at INTEGER;
ALTER TABLE sender_certs ADD COLUMN revoked_at INTEGER;
