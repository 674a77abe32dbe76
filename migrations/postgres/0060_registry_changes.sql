-- The registry at national scale (see migrations/sqlite/0060): one row per recipient with its
-- subscriptions folded in, and the change log running gateways follow.
ALTER TABLE recipients ADD COLUMN senders TEXT;
UPDATE recipients r SET senders = s.senders
FROM (
    SELECT tag, string_agg(sender_cvr::text, ',' ORDER BY sender_cvr) AS senders
    FROM subscriptions GROUP BY tag
) s
WHERE s.tag = r.tag;
DROP TABLE subscriptions;

-- Numbered in commit order: writers take an exclusive lock on this table in their transaction
-- (see src/store/registry_pg.rs), so a reader that has seen entry n never sees an entry below n
-- commit later.
CREATE TABLE registry_changes (
    seq        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms      BIGINT  NOT NULL,
    kind       BIGINT  NOT NULL,
    tag        BYTEA,
    sealed_key BYTEA,
    status     BIGINT,
    senders    TEXT,
    origin     TEXT    NOT NULL
);
CREATE INDEX registry_changes_at ON registry_changes (at_ms);
INSERT INTO registry_changes (at_ms, kind, origin)
    SELECT (extract(epoch FROM now()) * 1000)::BIGINT, 0, 'migration'
    WHERE EXISTS (SELECT 1 FROM recipients);
DELETE FROM meta WHERE key = 'registry_generation';
