//! The queues and the exchange one RabbitMQ queue uses, all named from one prefix, declared
//! idempotently: the fixed ones on every (re)connect, a lane queue when it is first needed.
//!
//! - Urgent queues, one per route (`<prefix>mailbox.urgent`, `<prefix>print.urgent`), shared by
//!   every sender: urgent letters are few and go before everything else, so fairness between
//!   senders does not apply to them. Quorum queues in RabbitMQ 3.x have no message priorities,
//!   so urgency is a queue of its own that the consumer drains first.
//! - Lanes: per route and lower priority up to `broker.max_lanes` numbered quorum queues
//!   (`<prefix>mailbox.normal.lane0`, …), each carrying one sender's letters at a time
//!   (`lanes.rs` says which and how they change hands). A queue is first in, first out: with
//!   one queue per priority, a sender that floods a million letters puts everyone else's
//!   behind them. With a lane per sending sender the consumer sees every active sender's next
//!   letters side by side and shares batches between them by weight.
//! - Shared lanes, one per route and lower priority (`<prefix>mailbox.bulk.shared`), for the
//!   senders that find every lane taken.
//! - Returns queues, one per route (`<prefix>mailbox.returns`): where letters come back to from
//!   the delay tiers; the consumer puts each into its work queue again.
//! - The lane record (`<prefix>lanes`): one message per lane queue and its sender, so that a handle
//!   that did not create them (another gateway, an admin command, a test's clean-up) can find,
//!   consume, count and delete them; RabbitMQ's AMQP side cannot list queues. See `lanes.rs`.
//! - Delay queues (`<prefix>delay.<ms>ms`), one per delay tier, shared by all work queues: a
//!   quorum queue with a queue-wide message TTL that dead-letters expired messages to the
//!   default exchange under the routing key they were published with, which names their work
//!   queue (the route's returns queue). One TTL per queue because RabbitMQ only
//!   expires messages at the head of a queue: a single queue with per-message TTLs would hold a
//!   2 s retry behind a 10 min one. A delay that falls between tiers takes the largest tier not
//!   longer than what is left and, back in its work queue still early, is delayed again for the
//!   rest; a delay shorter than the smallest tier takes the smallest (due up to that much late,
//!   never early). Quorum rather than classic queues because only quorum queues dead-letter at
//!   least once (the message stays in the delay queue until its work queue confirmed it), so a
//!   broker crash during the hand-over loses nothing.
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

use crate::domain::{Cvr, Priority, Route};

use super::message::{DELAY_HEADER, route_name, tier_value};

/// Delay tiers in milliseconds: ×8 apart, from 250 ms to 18 h. A retry of 10 min takes three
/// hops at most; a letter scheduled days ahead cycles through the longest tier a few times.
pub const DELAY_TIERS_MS: [i64; 7] = [
    250, 2_000, 16_000, 128_000, 1_024_000, 8_192_000, 65_536_000,
];

pub const ROUTES: [Route; 2] = [Route::Mailbox, Route::Print];

/// The priorities that have a lane per sender, in the order the consumer drains them (after
/// the urgent queue).
pub const LANE_PRIORITIES: [Priority; 2] = [Priority::Normal, Priority::Bulk];

/// The delay tier for a message due in `remaining_ms` (> 0): the longest not past it.
pub fn tier_for(remaining_ms: i64) -> usize {
    DELAY_TIERS_MS
        .iter()
        .rposition(|t| *t <= remaining_ms)
        .unwrap_or(0)
}

fn level_name(priority: Priority) -> &'static str {
    match priority {
        Priority::Urgent => "urgent",
        Priority::Normal => "normal",
        Priority::Bulk => "bulk",
    }
}

/// One sender's lane: its NORMAL or BULK letters for one route. Which queue carries it is
/// decided by the lane record (a [`LaneSlot`] assigned to it), or it shares its route's and
/// priority's shared lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaneId {
    pub route: Route,
    /// Index into [`LANE_PRIORITIES`].
    pub level: usize,
    pub sender: Cvr,
}

impl LaneId {
    /// The lane a letter of this route and lower priority goes to; `None` for URGENT.
    pub fn of(route: Route, priority: Priority, sender: Cvr) -> Option<LaneId> {
        let level = LANE_PRIORITIES.iter().position(|p| *p == priority)?;
        Some(LaneId {
            route,
            level,
            sender,
        })
    }
}

/// A lane queue: the `n`th numbered lane of a route and lower priority, carrying one sender's
/// letters at a time. Lane queues are never deleted while serving (only with the whole
/// topology), so a letter published to one by a gateway that has not yet heard it changed
/// hands is still delivered: it only shares that lane with the new sender for a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaneSlot {
    pub route: Route,
    pub level: usize,
    pub n: u32,
}

impl LaneSlot {
    fn key(&self) -> (usize, usize, u32) {
        let route = ROUTES.iter().position(|r| *r == self.route).unwrap_or(0);
        (route, self.level, self.n)
    }

    /// The queue name without the prefix: `mailbox.bulk.lane3`.
    pub fn record(&self) -> String {
        format!(
            "{}.{}.lane{}",
            route_name(self.route),
            level_name(LANE_PRIORITIES[self.level.min(LANE_PRIORITIES.len() - 1)]),
            self.n
        )
    }

    /// What the lane record holds for a lane queue: its name, and its sender if it has one
    /// (`mailbox.bulk.lane3 29403473`).
    pub fn record_entry(&self, owner: Option<Cvr>) -> String {
        match owner {
            Some(s) => format!("{} {s}", self.record()),
            None => self.record(),
        }
    }

    /// Reads a lane record entry.
    pub fn parse_entry(text: &str) -> Option<(LaneSlot, Option<Cvr>)> {
        let mut words = text.split_whitespace();
        let name = words.next()?;
        let owner = match words.next() {
            Some(w) => Some(w.parse::<Cvr>().ok()?),
            None => None,
        };
        if words.next().is_some() {
            return None;
        }
        let mut parts = name.split('.');
        let (Some(route), Some(level), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let route = *ROUTES.iter().find(|r| route_name(**r) == route)?;
        let level = LANE_PRIORITIES
            .iter()
            .position(|p| level_name(*p) == level)?;
        let n = n.strip_prefix("lane")?.parse().ok()?;
        Some((LaneSlot { route, level, n }, owner))
    }
}

impl PartialOrd for LaneSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LaneSlot {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
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

    pub fn urgent(&self, route: Route) -> String {
        format!("{}{}.urgent", self.prefix, route_name(route))
    }

    /// A lane queue.
    pub fn lane(&self, slot: LaneSlot) -> String {
        format!("{}{}", self.prefix, slot.record())
    }

    /// The lane of a route and lower priority that senders without a lane of their own share
    /// (when `max_lanes` are taken).
    pub fn shared(&self, route: Route, level: usize) -> String {
        let priority = LANE_PRIORITIES[level.min(LANE_PRIORITIES.len() - 1)];
        format!(
            "{}{}.{}.shared",
            self.prefix,
            route_name(route),
            level_name(priority)
        )
    }

    /// Where letters come back to from the delay tiers, whatever their priority: a queue that
    /// always exists, so a letter never comes back to a lane that expired meanwhile. The
    /// consumer puts each into its work queue again.
    pub fn returns(&self, route: Route) -> String {
        format!("{}{}.returns", self.prefix, route_name(route))
    }

    /// Where the lanes are recorded.
    pub fn lane_record(&self) -> String {
        format!("{}lanes", self.prefix)
    }

    /// The exclusive queue whose owner alone may read or change the lane record.
    pub fn lane_record_lock(&self) -> String {
        format!("{}lanes.lock", self.prefix)
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

    /// The work queues every prefix has: urgent, shared lanes and returns, per route.
    pub fn fixed_work(&self) -> Vec<(Route, String)> {
        let mut q = Vec::new();
        for route in ROUTES {
            q.push((route, self.urgent(route)));
            q.push((route, self.returns(route)));
            for level in 0..LANE_PRIORITIES.len() {
                q.push((route, self.shared(route, level)));
            }
        }
        q
    }

    /// Every queue of the prefix that holds letters: the fixed ones and these lanes.
    pub(crate) fn letter_queues(&self, lanes: &[LaneSlot]) -> Vec<String> {
        let mut q: Vec<String> = self.fixed_work().into_iter().map(|(_, q)| q).collect();
        q.extend(lanes.iter().map(|l| self.lane(*l)));
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

/// The arguments of every work queue (urgent queues and lanes): quorum, dead-lettering to the
/// dead queue. Declaring a queue again must repeat them exactly.
fn work_args(names: &Names) -> FieldTable {
    let mut args = quorum();
    dead_lettering(&mut args, Some(&names.dead()));
    args
}

/// Declares a work queue (idempotent); returns how many messages it has ready.
pub async fn declare_work(ch: &Channel, names: &Names, queue: &str) -> lapin::Result<u32> {
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            work_args(names),
        )
        .await?;
    Ok(q.message_count())
}

/// How many messages a queue has ready, failing (and closing the channel) if it does not
/// exist. Consumers and counts use this rather than declaring: a gateway still running while
/// its queues are deleted (a test's clean-up, taking an installation down) must not bring
/// them back.
pub async fn ready(ch: &Channel, queue: &str) -> lapin::Result<u32> {
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable().passive(),
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// Declares the queues and exchange every prefix has; declaring what exists with the same
/// arguments changes nothing.
pub async fn declare(ch: &Channel, names: &Names) -> lapin::Result<()> {
    let durable = QueueDeclareOptions::durable();
    ch.queue_declare(names.dead().into(), durable, quorum())
        .await?;
    ch.queue_declare(names.lane_record().into(), durable, quorum())
        .await?;
    for (_, queue) in names.fixed_work() {
        declare_work(ch, names, &queue).await?;
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

/// Declares these lanes, pipelined on one channel.
pub async fn declare_lanes(ch: &Channel, names: &Names, lanes: &[LaneSlot]) -> lapin::Result<()> {
    let queues: Vec<String> = lanes.iter().map(|l| names.lane(*l)).collect();
    futures::future::try_join_all(queues.iter().map(|q| declare_work(ch, names, q))).await?;
    Ok(())
}

/// Deletes every queue and the exchange of a prefix, messages included, with these lanes.
/// The lane record goes last, so a deletion cut short can be finished by another call that
/// still finds it. Returns how many messages were dropped.
pub async fn delete(ch: &Channel, names: &Names, lanes: &[LaneSlot]) -> lapin::Result<u64> {
    let mut queues = names.letter_queues(lanes);
    queues.push(names.lane_record());
    let mut dropped = 0u64;
    for q in queues {
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
        let a = crate::domain::complete_cvr(2_940_347).unwrap();
        let slot = LaneSlot {
            route: Route::Mailbox,
            level: 1,
            n: 3,
        };
        assert_eq!(n.lane(slot), "t1.mailbox.bulk.lane3");
        assert_eq!(LaneId::of(Route::Print, Priority::Urgent, a), None);
        assert_eq!(n.shared(Route::Print, 0), "t1.print.normal.shared");
        assert_eq!(n.delay_queue(0), "t1.delay.250ms");
        let all = n.letter_queues(&[slot]);
        assert!(all.iter().all(|q| q.starts_with("t1.")));
        assert_eq!(all.len(), 8 + 1 + DELAY_TIERS_MS.len() + 1);
    }

    #[test]
    fn lane_record_entries_round_trip() {
        let a = crate::domain::complete_cvr(2_940_347).unwrap();
        for route in ROUTES {
            for level in 0..LANE_PRIORITIES.len() {
                let slot = LaneSlot { route, level, n: 7 };
                for owner in [None, Some(a)] {
                    assert_eq!(
                        LaneSlot::parse_entry(&slot.record_entry(owner)),
                        Some((slot, owner))
                    );
                }
            }
        }
        for bad in [
            "",
            "garbage",
            "mailbox.urgent.lane1",
            "mailbox.bulk.3",
            "mailbox.bulk.lane1 x",
        ] {
            assert_eq!(LaneSlot::parse_entry(bad), None, "{bad:?}");
        }
    }
}
