-- Fair share between senders: each delivery carries its sender and a virtual time stamped at
-- enqueue (start-time fair queuing, see src/queue/fair.rs). Within a priority, deliveries are
-- handed out in virtual-time order, which interleaves senders by weight however deep one
-- sender's backlog is.
ALTER TABLE deliveries ADD COLUMN sender INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN vtime INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN sender INTEGER NOT NULL DEFAULT 0;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_fair ON deliveries (route, priority DESC, vtime);
