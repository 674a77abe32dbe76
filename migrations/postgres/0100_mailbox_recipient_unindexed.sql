-- The mailbox's index on recipient pseudonyms took its keys in random order, so every letter
-- delivered dirtied a page of its own in it, written to the journal at each commit (and, on
-- SQLite, again at the checkpoint): about a third of what the store wrote beside the letters.
-- Nothing in the gateway looks a mailbox up by recipient (the mailbox itself is Digital Post's;
-- the gateway hands letters over through the outbox), so the index goes.
DROP INDEX mailbox_recipient;
