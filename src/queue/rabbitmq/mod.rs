//! The RabbitMQ queue, for several gateways sharing one broker: durable quorum queues,
//! persistent messages, publisher confirms, broker dead-lettering for delays.
//!
//! URL: `amqp://USER:PASS@HOST:PORT/VHOST` (vhost URL-encoded: `%2f` is `/`), optionally with
//! `?prefix=NAME` (letters, digits, `.`, `_`, `-`; default `brevdue.`) that every queue and
//! exchange name starts with: gateways sharing a broker use the same prefix, tests one each.
//! lapin's own query parameters (`heartbeat`, `connection_timeout`, …) pass through.
//! `amqps://` is refused: brevdue is built with ring as its only crypto provider and no TLS
//! for AMQP.
//!
//! Queues: one shared urgent queue per route, and per sender, route and lower priority a lane
//! granted on first use (`topology.rs`), so that a sender flooding the gateway queues behind
//! itself, not in front of everyone else. Lanes are bounded (`broker.max_lanes`; senders
//! beyond share a lane per route and priority) and handed to another sender when idle, so the
//! broker's queues grow with the senders sending at once, up to the bound, never with the
//! senders registered; which lanes exist is recorded on the broker (`lanes.rs`).
//!
//! How the trait's meaning maps onto RabbitMQ:
//! - `enqueue` grants the lanes it needs and has not seen yet (within the bound), then
//!   publishes every item (pipelined) and returns once the broker confirmed all of them:
//!   persistent messages in quorum queues, so durable. Lane queues are never deleted while
//!   serving, so a letter published to a lane that changed hands meanwhile still lands in a
//!   queue that exists. Not idempotent: the same letter enqueued twice is two messages;
//!   delivery skips letters the store already has delivered.
//! - `lease` takes what this gateway's consumers (one channel per route, a consumer per queue,
//!   prefetch limited) have received: urgent first, then NORMAL, then BULK, each shared between
//!   senders by weight (`inbox.rs`). A leased message stays unacknowledged at the broker
//!   until `ack`, `retry` or `dead_letter` settles it; if the gateway dies its connection
//!   closes and RabbitMQ hands the message out again, which is the lease running out. A lease
//!   this handle holds longer than `lease` is given back (requeued) at the next `lease` call.
//! - `retry` publishes the letter to the delay path with its new due time and one more
//!   attempt, confirmed, then acknowledges the original; `dead_letter` publishes it to the
//!   dead queue, confirmed, then acknowledges. If the acknowledgement is lost the original
//!   comes back too: a duplicate the store makes harmless.
//! - `set_senders` sets the weights; it declares nothing (a registered sender costs the broker
//!   nothing until it sends).
//! - `tidy` (every refresh) reads the lane record, so this gateway consumes lanes others
//!   granted, and gives up lanes it has seen unused for `broker.lane_idle` that are empty.
//! - `depth` counts the ready messages of the fixed work queues and of every known lane.
//! - The connection is checked before every call; a dead one (broker restart, network) is
//!   replaced, the topology declared again, the lane record read again and consumers started
//!   again on every known lane. Publishes in flight when it died fail with `Unavailable`;
//!   their callers retry.

mod call;
mod consume;
mod dead;
mod dead_bulk;
mod inbox;
mod lanes;
mod link;
mod message;
mod topology;
mod url;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::Acker;
use lapin::uri::AMQPUri;
use tokio::sync::{Mutex, Notify};

use crate::clock::now_ms;
use crate::domain::{LetterId, Route};

use super::{DeadLetter, Delivery, Leased, Queue, QueueDepth, QueueError, SenderShare};
use crate::backend::BrokerOptions;
use call::{Outgoing, within};
use consume::{Held, RouteConsumer, Settle};
use lanes::LaneBook;
use link::Link;
use message::Msg;
use topology::{LaneId, LaneSlot, Names, tier_for};

/// How long `lease` waits for a first message when nothing is buffered.
const FIRST_DELIVERY_WAIT: Duration = Duration::from_millis(50);

pub struct RabbitQueue {
    uri: AMQPUri,
    /// `host:port/vhost` for messages: never the credentials.
    broker: String,
    names: Names,
    /// The live connection; replaced when found dead.
    link: Mutex<Option<Arc<Link>>>,
    generation: AtomicU64,
    /// Set when a connect found none of this prefix's queues (see `Queue::take_reset`).
    reset: AtomicBool,
    /// Serialises starting consumers.
    consumer_setup: Mutex<()>,
    consumers: StdMutex<HashMap<Route, RouteConsumer>>,
    /// Deliveries handed out by `lease` and not yet settled, by letter. Their messages are
    /// unacknowledged at the broker; the ackers settle them on the channel they came on.
    held: StdMutex<HashMap<LetterId, Held>>,
    /// Signalled when a consumer buffers a message (or stops), or lanes are learnt.
    work: Arc<Notify>,
    /// Which lanes exist, and the senders' weights.
    lanes: StdMutex<LaneBook>,
    /// When this handle last published to or received from each known lane.
    activity: Arc<StdMutex<HashMap<LaneSlot, Instant>>>,
    /// Serialises declaring lanes.
    lane_setup: Mutex<()>,
    /// Deadlines of broker calls (configuration).
    timeouts: BrokerOptions,
}

impl RabbitQueue {
    /// Connects and declares the topology, so a wrong URL or credentials fail at start-up.
    pub async fn open(url: &str) -> Result<RabbitQueue, QueueError> {
        Self::open_with(url, BrokerOptions::default()).await
    }

    /// [`open`](Self::open) with the configured deadlines.
    pub async fn open_with(url: &str, timeouts: BrokerOptions) -> Result<RabbitQueue, QueueError> {
        let (uri, prefix, broker) = url::parse_url(url)?;
        let q = RabbitQueue {
            uri,
            broker,
            names: Names::new(&prefix),
            link: Mutex::new(None),
            generation: AtomicU64::new(0),
            reset: AtomicBool::new(false),
            consumer_setup: Mutex::new(()),
            consumers: StdMutex::new(HashMap::new()),
            held: StdMutex::new(HashMap::new()),
            work: Arc::new(Notify::new()),
            lanes: StdMutex::new(LaneBook::default()),
            activity: Arc::new(StdMutex::new(HashMap::new())),
            lane_setup: Mutex::new(()),
            timeouts,
        };
        q.link().await?;
        Ok(q)
    }

    /// The prefix every queue and exchange name of this queue starts with.
    pub fn prefix(&self) -> &str {
        self.names.prefix()
    }

    /// Deletes this prefix's queues (with their messages), every lane included, and
    /// exchange: for tests and for taking an installation down. Returns how many messages were
    /// dropped.
    pub async fn delete_topology(&self) -> Result<u64, QueueError> {
        lock(&self.consumers).clear();
        let lanes = self.refresh_lanes().await?;
        let link = self.link().await?;
        let dropped = within("deleting the queues", self.timeouts.call_timeout, async {
            let ch = link.conn.create_channel().await?;
            let n = topology::delete(&ch, &self.names, &lanes).await?;
            ch.close(200, "OK".into()).await?;
            Ok::<_, lapin::Error>(n)
        })
        .await?;
        lock(&self.lanes).clear();
        self.invalidate(link.generation).await;
        Ok(dropped)
    }

    /// The names of this prefix's lanes (the lane record read now): for operators and tests.
    pub async fn lane_names(&self) -> Result<Vec<String>, QueueError> {
        let lanes = self.refresh_lanes().await?;
        Ok(lanes.iter().map(|l| self.names.lane(*l)).collect())
    }

    /// Where a letter reference goes: its work queue when due (its sender's lane if granted,
    /// else the shared lane), else the delay tier for what is left of its wait, from which it
    /// comes back to the route's returns queue.
    fn to_work(&self, msg: &Msg, now: i64, granted: &HashMap<LaneId, LaneSlot>) -> Outgoing {
        let d = &msg.delivery;
        let remaining = d.not_before_ms - now;
        let (exchange, tier, routing_key) = if remaining > 0 {
            (
                self.names.delay_exchange(),
                Some(tier_for(remaining)),
                self.names.returns(d.route),
            )
        } else {
            let queue = match LaneId::of(d.route, d.priority, d.sender) {
                None => self.names.urgent(d.route),
                Some(lane) => match granted.get(&lane) {
                    Some(slot) => self.names.lane(*slot),
                    None => self.names.shared(d.route, lane.level),
                },
            };
            (String::new(), None, queue)
        };
        Outgoing {
            exchange,
            routing_key,
            body: msg.encode(),
            properties: msg.properties(tier),
        }
    }

    /// The lane a message due now goes to, if it is one of a sender's.
    fn lane_for(msg: &Msg, now: i64) -> Option<LaneId> {
        let d = &msg.delivery;
        if d.not_before_ms > now {
            return None;
        }
        LaneId::of(d.route, d.priority, d.sender)
    }

    /// Publishes letter references to their work queues (or delay tiers), granting the lanes
    /// not seen yet first.
    async fn publish_work(&self, msgs: &[Msg], now: i64) -> Result<(), QueueError> {
        let granted = self
            .grant_lanes(msgs.iter().filter_map(|m| Self::lane_for(m, now)))
            .await?;
        let out: Vec<Outgoing> = msgs
            .iter()
            .map(|m| self.to_work(m, now, &granted))
            .collect();
        self.touch(granted.values().copied());
        self.publish(&out).await
    }

    fn to_dead(&self, msg: &Msg) -> Outgoing {
        Outgoing {
            exchange: String::new(),
            routing_key: self.names.dead(),
            body: msg.encode(),
            properties: msg.properties(None),
        }
    }
}

#[async_trait]
impl Queue for RabbitQueue {
    async fn enqueue(&self, items: &[Delivery]) -> Result<(), QueueError> {
        let msgs: Vec<Msg> = items.iter().map(|d| Msg::new(*d)).collect();
        self.publish_work(&msgs, now_ms()).await
    }

    async fn lease(
        &self,
        route: Route,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError> {
        self.expire_leases().await;
        if max == 0 {
            return Ok(Vec::new());
        }
        let inbox = self.inbox(route, max).await?;
        inbox.warm_up().await;
        if inbox.is_empty() {
            let arrived = inbox.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if inbox.is_empty() {
                let _ = tokio::time::timeout(FIRST_DELIVERY_WAIT, arrived).await;
            }
        }
        let now = now_ms();
        let until = Instant::now() + lease;
        let weights = self.weights();
        let mut out = Vec::new();
        let mut early: Vec<(Msg, Acker)> = Vec::new();
        let mut corrupt: Vec<Acker> = Vec::new();
        {
            let mut held = lock(&self.held);
            for i in inbox.take(max, &weights) {
                let Some(msg) = i.msg else {
                    corrupt.push(i.acker);
                    continue;
                };
                if i.returned || msg.delivery.not_before_ms > now {
                    early.push((msg, i.acker));
                    continue;
                }
                match held.entry(msg.letter_id()) {
                    // Another copy of a letter already out: settled together with it.
                    Entry::Occupied(mut e) => e.get_mut().ackers.push(i.acker),
                    Entry::Vacant(v) => {
                        out.push(msg.leased());
                        v.insert(Held {
                            msg,
                            ackers: vec![i.acker],
                            until,
                        });
                    }
                }
            }
        }
        // The work queues dead-letter rejected messages to the dead queue.
        self.settle(&corrupt, Settle::Drop).await;
        if !early.is_empty() {
            // Back from a delay tier: into its work queue, or, still early (the tier was
            // shorter than the wait), delayed again for the rest.
            let (again, ackers): (Vec<Msg>, Vec<Acker>) = early.into_iter().unzip();
            match self.publish_work(&again, now).await {
                Ok(()) => {
                    self.settle(&ackers, Settle::Ack).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not delay scheduled letters again; they go back to their queue");
                    self.settle(&ackers, Settle::Requeue).await;
                }
            }
        }
        Ok(out)
    }

    async fn ack(&self, ids: &[LetterId]) -> Result<(), QueueError> {
        let ackers: Vec<Acker> = {
            let mut held = lock(&self.held);
            ids.iter()
                .filter_map(|id| held.remove(id))
                .flat_map(|h| h.ackers)
                .collect()
        };
        match self.settle(&ackers, Settle::Ack).await {
            0 => Ok(()),
            n => Err(call::refused(format!(
                "connection lost before {n} acknowledgements; those letters are handed out again and skipped as delivered"
            ))),
        }
    }

    async fn retry(
        &self,
        id: LetterId,
        not_before_ms: i64,
        _error: &str,
    ) -> Result<(), QueueError> {
        let Some(h) = lock(&self.held).remove(&id) else {
            return Ok(());
        };
        if h.ackers.iter().all(Acker::poisoned) {
            // Its channel died: the broker has already put the message back (without the
            // attempt counted); another copy would only be a duplicate.
            return Ok(());
        }
        let mut msg = h.msg.clone();
        msg.attempts = msg.attempts.saturating_add(1);
        msg.delivery.not_before_ms = not_before_ms;
        match self.publish_work(&[msg], now_ms()).await {
            Ok(()) => {
                self.settle(&h.ackers, Settle::Ack).await;
                Ok(())
            }
            Err(e) => {
                self.settle(&h.ackers, Settle::Requeue).await;
                Err(e)
            }
        }
    }

    async fn dead_letter(&self, id: LetterId, error: &str) -> Result<(), QueueError> {
        let Some(h) = lock(&self.held).remove(&id) else {
            tracing::debug!(letter = %id, "dead-lettering a letter whose lease is gone: nothing published");
            return Ok(());
        };
        // Published even when the channel the lease came on has died: the copy the broker put
        // back is skipped by delivery (the store says FAILED), so this is the one operators see.
        let mut msg = h.msg.clone();
        msg.attempts = msg.attempts.saturating_add(1);
        msg.delivery.not_before_ms = 0;
        msg.failed_at_ms = Some(now_ms());
        msg.error = Some(error.to_string());
        match self.publish(&[self.to_dead(&msg)]).await {
            Ok(()) => {
                self.settle(&h.ackers, Settle::Ack).await;
                Ok(())
            }
            Err(e) => {
                self.settle(&h.ackers, Settle::Requeue).await;
                Err(e)
            }
        }
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        self.list_dead().await
    }

    async fn revive(&self, id: LetterId) -> Result<bool, QueueError> {
        self.take_dead(id, true).await
    }

    async fn take_dead_letters(&self, ids: &[LetterId]) -> Result<Vec<LetterId>, QueueError> {
        self.take_dead_many(ids).await
    }

    async fn purge(&self, id: LetterId) -> Result<bool, QueueError> {
        self.take_dead(id, false).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        match self.count_ready().await {
            Ok(d) => Ok(d),
            // A lane another gateway removed since this handle read the record.
            Err(_) => {
                self.refresh_lanes().await?;
                self.count_ready().await
            }
        }
    }

    async fn set_senders(&self, shares: &[SenderShare]) -> Result<(), QueueError> {
        self.set_weights(shares.iter().map(|s| (s.sender, s.weight)).collect());
        Ok(())
    }

    async fn tidy(&self) -> Result<(), QueueError> {
        self.tidy_lanes().await
    }

    fn take_reset(&self) -> bool {
        self.reset.swap(false, Ordering::SeqCst)
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let notified = self.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let buffered = lock(&self.consumers).values().any(|c| !c.inbox.is_empty());
        if !buffered {
            let _ = tokio::time::timeout(max_wait, notified).await;
        }
    }
}

impl RabbitQueue {
    /// Ready messages in the fixed work queues and every known lane, by route, and dead ones.
    async fn count_ready(&self) -> Result<QueueDepth, QueueError> {
        let mut queues: Vec<(Route, String)> = self.names.fixed_work();
        queues.extend(
            self.known_lanes()
                .into_iter()
                .map(|l| (l.route, self.names.lane(l))),
        );
        let link = self.link().await?;
        within("counting messages", self.timeouts.call_timeout, async {
            let ch = link.conn.create_channel().await?;
            // Pipelined: hundreds of lanes are counted in a few round trips' time.
            let counts =
                futures::future::try_join_all(queues.iter().map(|(_, q)| topology::ready(&ch, q)))
                    .await?;
            let mut d = QueueDepth::default();
            for ((route, _), n) in queues.iter().zip(counts) {
                match route {
                    Route::Mailbox => d.mailbox += u64::from(n),
                    Route::Print => d.print += u64::from(n),
                }
            }
            d.dead = u64::from(topology::ready(&ch, &self.names.dead()).await?);
            ch.close(200, "OK".into()).await?;
            Ok::<_, lapin::Error>(d)
        })
        .await
    }
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for RabbitQueue {
    fn drop(&mut self) {
        // Stopping the consumers and closing the connection gives every unsettled message back
        // to the broker, as a crash would.
        lock(&self.consumers).clear();
        if let Some(link) = self.link.get_mut().take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), link.conn.close(200, "OK".into()))
                        .await;
            });
        }
    }
}
