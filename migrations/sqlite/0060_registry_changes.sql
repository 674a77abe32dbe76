-- The registry at national scale: one row per recipient, its subscriptions folded into it, and a
-- change log that running gateways follow to apply changes to their index as deltas.
--
-- `senders` lists the private senders a recipient subscribed to, as comma-separated CVR numbers
-- in ascending order (NULL or '' for none). One row per recipient instead of one per subscription
-- halves the rows an import writes and a gateway reads at start, and a subscription change is
-- one row's update.
ALTER TABLE recipients ADD COLUMN senders TEXT;
UPDATE recipients SET senders = (
    SELECT group_concat(sender_cvr, ',')
    FROM (SELECT sender_cvr FROM subscriptions s WHERE s.tag = recipients.tag ORDER BY sender_cvr)
);
DROP TABLE subscriptions;

-- Every registry change, numbered in commit order (one writer at a time). Each entry holds the
-- recipient's whole state after the change (status NULL: removed), so applying an entry twice
-- changes nothing. kind: 0 import (a new generation: gateways reload), 1 subscribe,
-- 2 unsubscribe, 3 status, 4 remove. `origin` says who made it (a file, an operator).
CREATE TABLE registry_changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    tag        BLOB,
    sealed_key BLOB,
    status     INTEGER,
    senders    TEXT,
    origin     TEXT    NOT NULL
);
CREATE INDEX registry_changes_at ON registry_changes (at_ms);
-- What a gateway needs to know about the registry it loads at start: it follows changes after the
-- import generation it read. Stores that held a registry before the change log get one entry.
INSERT INTO registry_changes (at_ms, kind, origin)
    SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000, 0, 'migration'
    WHERE EXISTS (SELECT 1 FROM recipients);
DELETE FROM meta WHERE key = 'registry_generation';
