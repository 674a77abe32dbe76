//! The queues and the exchange one RabbitMQ queue uses, all named from one prefix, declared
//! idempotently on every (re)connect.
//!
//! - Work queues, one per route and priority (`<prefix>mailbox.urgent`, `.normal`, `.bulk`,
//!   the same for `print`): quorum queues in RabbitMQ 3.x have no message priorities, so
//!   urgency is a queue of its own and the consumer drains the urgent queue first.
//! - Delay queues (`<prefix>delay.<ms>ms`), one per delay tier, shared by all work queues: a
//!   quorum queue with a queue-wide message TTL that dead-letters expired messages to the
//!   default exchange under the routing key they were published with, which names their work
//!   queue. One TTL per queue because RabbitMQ only expires messages at the head of a queue: a
//!   single queue with per-message TTLs would hold a 2 s retry behind a 10 min one. A delay
//!   that falls between tiers takes the largest tier not longer than what is left and, back
//!   in its work queue still early, is delayed again for the rest; a delay shorter than the
//!   smallest tier takes the smallest (due up to that much late, never early). Quorum rather
//!   than classic queues because only quorum queues dead-letter at least once (the message
//!   stays in the delay queue until its work queue confirmed it), so a broker crash during
//!   the hand-over loses nothing.
//! - The delay exchange (`<prefix>delay`, headers type) routes a message to its tier by a
//!   header, keeping the routing key free to name the work queue.
//! - The dead queue (`<prefix>dead`): letters whose retries are spent, for operators. Work
//!   queues dead-letter to it too, so a message the broker itself drops (rejected, or over a
//!   delivery limit set by policy) lands there instead of vanishing.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::domain::Priority;
use crate::route::Route;

use super::message::{DELAY_HEADER, route_name, tier_value};

/// Delay tiers in milliseconds: ×8 apart, from 250 ms to 18 h. A retry of 10 min takes three
/// hops at most; a letter scheduled days ahead cycles through the longest tier a few times.
pub const DELAY_TIERS_MS: [i64; 7] = [
    250, 2_000, 16_000, 128_000, 1_024_000, 8_192_000, 65_536_000,
];

/// Priorities in the order the consumer drains them.
pub const PRIORITIES: [Priority; 3] = [Priority::Urgent, Priority::Normal, Priority::Bulk];

/// The delay tier for a message due in `remaining_ms` (> 0): the longest not past it.
pub fn tier_for(remaining_ms: i64) -> usize {
    DELAY_TIERS_MS
        .iter()
        .rposition(|t| *t <= remaining_ms)
        .unwrap_or(0)
}

pub fn priority_level(p: Priority) -> usize {
    match p {
        Priority::Urgent => 0,
        Priority::Normal => 1,
        Priority::Bulk => 2,
    }
}

/// Every name derives from the prefix, so several gateways sharing a broker (same prefix)
/// share the queues, and tests (a prefix each) never see each other's messages.
#[derive(Clone, Debug)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn work(&self, route: Route, priority: Priority) -> String {
        let level = match priority {
            Priority::Urgent => "urgent",
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        };
        format!("{}{}.{level}", self.prefix, route_name(route))
    }

    pub fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }

    pub fn delay_exchange(&self) -> String {
        format!("{}delay", self.prefix)
    }

    pub fn delay_queue(&self, tier: usize) -> String {
        format!("{}delay.{}ms", self.prefix, DELAY_TIERS_MS[tier])
    }

    pub(crate) fn all_queues(&self) -> Vec<String> {
        let mut q = Vec::new();
        for route in [Route::Mailbox, Route::Print] {
            for p in PRIORITIES {
                q.push(self.work(route, p));
            }
        }
        q.extend((0..DELAY_TIERS_MS.len()).map(|t| self.delay_queue(t)));
        q.push(self.dead());
        q
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args
}

/// Quorum queue arguments for dead-lettering to the default exchange at least once (which
/// RabbitMQ allows only with `reject-publish` overflow; no length limit is set, so it never
/// rejects).
fn dead_lettering(args: &mut FieldTable, routing_key: Option<&str>) {
    args.insert("x-dead-letter-exchange".into(), text(""));
    if let Some(key) = routing_key {
        args.insert("x-dead-letter-routing-key".into(), text(key));
    }
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
}

/// Declares everything; declaring what exists with the same arguments changes nothing.
pub async fn declare(ch: &Channel, names: &Names) -> lapin::Result<()> {
    let durable = QueueDeclareOptions::durable();
    let dead = names.dead();
    ch.queue_declare(dead.as_str().into(), durable, quorum())
        .await?;
    for route in [Route::Mailbox, Route::Print] {
        for p in PRIORITIES {
            let mut args = quorum();
            dead_lettering(&mut args, Some(&dead));
            ch.queue_declare(names.work(route, p).into(), durable, args)
                .await?;
        }
    }
    let exchange = names.delay_exchange();
    ch.exchange_declare(
        exchange.as_str().into(),
        ExchangeKind::Headers,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await?;
    for (tier, ttl) in DELAY_TIERS_MS.iter().enumerate() {
        let queue = names.delay_queue(tier);
        let mut args = quorum();
        // The largest tier (65,536,000 ms) fits an i32.
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(*ttl as i32));
        dead_lettering(&mut args, None);
        ch.queue_declare(queue.as_str().into(), durable, args)
            .await?;
        let mut binding = FieldTable::default();
        binding.insert("x-match".into(), text("all"));
        binding.insert(DELAY_HEADER.into(), tier_value(tier));
        ch.queue_bind(
            queue.into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            binding,
        )
        .await?;
    }
    Ok(())
}

/// Deletes every queue and the exchange of a prefix, messages included. Returns how many
/// messages were dropped.
pub async fn delete(ch: &Channel, names: &Names) -> lapin::Result<u64> {
    let mut dropped = 0u64;
    for q in names.all_queues() {
        dropped += u64::from(
            ch.queue_delete(q.into(), QueueDeleteOptions::default())
                .await?,
        );
    }
    ch.exchange_delete(
        names.delay_exchange().into(),
        ExchangeDeleteOptions::default(),
    )
    .await?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_never_deliver_early() {
        assert_eq!(tier_for(1), 0);
        assert_eq!(tier_for(250), 0);
        assert_eq!(tier_for(1_999), 0);
        assert_eq!(tier_for(2_000), 1);
        assert_eq!(tier_for(600_000), 3);
        assert_eq!(tier_for(i64::MAX), DELAY_TIERS_MS.len() - 1);
        for w in DELAY_TIERS_MS.windows(2) {
            assert!(w[0] < w[1]);
        }
    }

    #[test]
    fn names_share_the_prefix() {
        let n = Names::new("t1.");
        assert_eq!(n.work(Route::Print, Priority::Urgent), "t1.print.urgent");
        assert_eq!(n.delay_queue(0), "t1.delay.250ms");
        assert!(n.all_queues().iter().all(|q| q.starts_with("t1.")));
        assert_eq!(n.all_queues().len(), 6 + DELAY_TIERS_MS.len() + 1);
    }
}
