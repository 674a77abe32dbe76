//! Consuming: per route, one channel with a consumer on the urgent queue, the returns queue,
//! the shared lanes and every known lane, feeding the route's inbox (`inbox.rs`, which also decides
//! the order `lease` takes messages in); and the leases this handle holds, which are
//! unacknowledged messages until settled.
//!
//! Prefetch (per consumer, so per lane) is twice the batch a worker leases. A lease can only
//! share out what the consumers hold, and a leased message counts against its lane's prefetch
//! until it is acknowledged, so with less than that a lane runs dry between a batch and the
//! broker's refill after its acknowledgement: a lone flooding sender would get half-full
//! batches, and a heavier sender's share would go to a lighter one whenever its lane ran dry.
//! Only lanes with letters waiting hold anything, so the gateway holds at most two batches per
//! backlogged lane (about 150 KB at the default batch of 256), not the backlog.
//!
//! When a route's consumers (re)start, the first lease waits briefly for what their queues
//! held (see `inbox.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Consumer};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::domain::{LetterId, Route};

use super::call::{unavailable, within};
use super::inbox::{Inbox, Incoming, Slot};
use super::link::Link;
use super::message::Msg;
use super::topology::{LANE_PRIORITIES, LaneSlot, ROUTES, ready};
use super::{QueueError, RabbitQueue, lock};

/// How long the first lease after consumers (re)started waits for what their queues held.
const WARM_UP_WAIT: Duration = Duration::from_secs(5);

/// How long settling a batch of messages may take before it counts as failed.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// A route's consumers on one channel, feeding one inbox.
pub(super) struct RouteConsumer {
    generation: u64,
    channel: Channel,
    prefetch: u16,
    pub(super) inbox: Arc<Inbox>,
    tasks: Vec<JoinHandle<()>>,
    /// The lanes this channel consumes.
    lanes: HashSet<LaneSlot>,
}

impl Drop for RouteConsumer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(super) struct Held {
    pub(super) msg: Msg,
    /// Usually one; more when copies of the same letter arrived while it was held.
    pub(super) ackers: Vec<Acker>,
    pub(super) until: Instant,
}

#[derive(Clone, Copy)]
pub(super) enum Settle {
    Ack,
    Requeue,
    Drop,
}

/// Settles messages; returns how many could not be (their channel is gone, so the broker
/// hands them out again anyway, or it did not answer within [`SETTLE_WAIT`]).
pub(super) async fn settle(ackers: &[Acker], how: Settle) -> usize {
    try_settle(ackers, how).await.unwrap_or(ackers.len())
}

/// [`settle`], or `None` when the connection did not take the settlements within
/// [`SETTLE_WAIT`]. A settlement is only a frame handed to the connection, but one on a
/// connection that broke mid-call may never be answered, and a delivery round waiting on it
/// would hold up every mailbox round after it.
async fn try_settle(ackers: &[Acker], how: Settle) -> Option<usize> {
    let all = futures::future::join_all(ackers.iter().map(|a| async move {
        match how {
            Settle::Ack => a.ack(BasicAckOptions::default()).await,
            Settle::Requeue => a.reject(BasicRejectOptions { requeue: true }).await,
            Settle::Drop => a.reject(BasicRejectOptions { requeue: false }).await,
        }
    }));
    let results = tokio::time::timeout(SETTLE_WAIT, all).await.ok()?;
    Some(results.iter().filter(|r| !matches!(r, Ok(true))).count())
}

/// Feeds one consumer's deliveries into its route's inbox until the consumer ends. `expect`
/// counts down what its queue held at the start (see the warm-up).
async fn forward(
    mut consumer: Consumer,
    inbox: Arc<Inbox>,
    slot: Slot,
    mut expect: u32,
    work: Arc<Notify>,
    activity: Arc<StdMutex<HashMap<LaneSlot, Instant>>>,
) {
    loop {
        let Some(next) = consumer.next().await else {
            if let Slot::Lane(lane) = slot {
                // The broker cancelled the consumer: its lane queue was deleted (with the
                // topology, or by hand). The route's other queues go on; the lane is consumed
                // again if the record names it again.
                inbox.lock().detached.push(lane);
                if expect > 0 {
                    inbox.warmed();
                }
                work.notify_waiters();
                return;
            }
            break;
        };
        match next {
            Ok(d) => {
                if let Slot::Lane(lane) = slot {
                    lock(&activity).insert(lane, Instant::now());
                }
                inbox.push(slot, Incoming::new(d.acker, &d.data, slot));
                if expect > 0 {
                    expect -= 1;
                    if expect == 0 {
                        inbox.warmed();
                    }
                }
                work.notify_waiters();
            }
            Err(e) => {
                tracing::warn!(error = %e, ?slot, "RabbitMQ consumer stopped; it restarts on the next lease");
                break;
            }
        }
    }
    inbox.stop();
    work.notify_waiters();
}

impl RabbitQueue {
    /// The inbox of `route`'s consumers, starting them if needed (first use, or their channel
    /// or connection died) and adding consumers for lanes learnt since.
    pub(super) async fn inbox(&self, route: Route, max: usize) -> Result<Arc<Inbox>, QueueError> {
        let link = self.link().await?;
        let known: Vec<LaneSlot> = self.lanes_of(route);
        {
            let mut consumers = lock(&self.consumers);
            if let Some(c) = consumers.get_mut(&route).filter(|c| fresh(c, &link)) {
                for gone in c.inbox.take_detached() {
                    c.lanes.remove(&gone);
                }
                if known.iter().all(|l| c.lanes.contains(l)) {
                    return Ok(c.inbox.clone());
                }
            }
        }
        let _setup = self.consumer_setup.lock().await;
        if let Some(inbox) = self.attach_lanes_locked(route, &link).await? {
            return Ok(inbox);
        }
        self.stop_consumers(route).await;
        // Room for the batch a worker holds and the next one (see the module comment).
        let prefetch = u16::try_from(max.saturating_mul(2).clamp(16, 4096)).unwrap_or(4096);
        let known = self.lanes_of(route);
        let channel = within(
            "opening a consumer channel",
            self.timeouts.call_timeout,
            link.conn.create_channel(),
        )
        .await?;
        let started = within(
            "starting consumers",
            self.timeouts.call_timeout,
            self.start_consumers(&link, channel.clone(), route, &known, prefetch),
        )
        .await;
        let consumer = match started {
            Ok(c) => c,
            Err(e) => {
                // Consumers that did start would go on receiving up to their prefetch on a
                // channel nobody reads, and those messages would stay out until the
                // connection closed: close it, so the broker has them back at once.
                close_channel(&channel).await;
                return Err(e);
            }
        };
        let inbox = consumer.inbox.clone();
        lock(&self.consumers).insert(route, consumer);
        Ok(inbox)
    }

    /// Starts consuming lanes learnt since the running consumers started, at once rather than
    /// at the next lease, so the broker pushes a new sender's first letters straight away.
    pub(super) async fn attach_lanes(&self) {
        let Ok(link) = self.link().await else {
            return;
        };
        let _setup = self.consumer_setup.lock().await;
        for route in ROUTES {
            if let Err(e) = self.attach_lanes_locked(route, &link).await {
                tracing::warn!(error = %e, "could not consume new lanes; retried at the next lease");
            }
        }
    }

    /// With `consumer_setup` held: the inbox of `route`'s running consumers after adding
    /// consumers for lanes they lack, or `None` when the route has none running.
    async fn attach_lanes_locked(
        &self,
        route: Route,
        link: &Link,
    ) -> Result<Option<Arc<Inbox>>, QueueError> {
        let known = self.lanes_of(route);
        let running = lock(&self.consumers)
            .get_mut(&route)
            .filter(|c| fresh(c, link))
            .map(|c| {
                for gone in c.inbox.take_detached() {
                    c.lanes.remove(&gone);
                }
                let missing: Vec<LaneSlot> = known
                    .iter()
                    .filter(|s| !c.lanes.contains(s))
                    .copied()
                    .collect();
                (c.channel.clone(), c.inbox.clone(), c.prefetch, missing)
            });
        let Some((channel, inbox, prefetch, missing)) = running else {
            return Ok(None);
        };
        if missing.is_empty() {
            return Ok(Some(inbox));
        }
        let added = within(
            "starting consumers",
            self.timeouts.call_timeout,
            self.consume_lanes(&channel, &missing, &inbox, prefetch, false),
        )
        .await;
        match added {
            Ok(tasks) => {
                if let Some(c) = lock(&self.consumers).get_mut(&route) {
                    c.tasks.extend(tasks);
                    c.lanes.extend(missing);
                }
                Ok(Some(inbox))
            }
            Err(e) => {
                // The channel may be half set up: the route starts afresh at the next lease.
                self.stop_consumers(route).await;
                Err(e)
            }
        }
    }

    /// Stops a route's consumers; their unacknowledged messages go back to the queues.
    async fn stop_consumers(&self, route: Route) {
        let old = lock(&self.consumers).remove(&route);
        if let Some(old) = old {
            close_channel(&old.channel).await;
        }
    }

    async fn start_consumers(
        &self,
        link: &Link,
        channel: Channel,
        route: Route,
        lanes: &[LaneSlot],
        prefetch: u16,
    ) -> Result<RouteConsumer, QueueError> {
        // Per consumer: each queue may have `prefetch` unacknowledged messages here.
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await
            .map_err(broker)?;
        let inbox = Arc::new(Inbox::default());
        inbox.lock().warm_until = Some(Instant::now() + WARM_UP_WAIT);
        let mut rc = RouteConsumer {
            generation: link.generation,
            channel,
            prefetch,
            inbox: inbox.clone(),
            tasks: Vec::new(),
            lanes: HashSet::new(),
        };
        let mut fixed = vec![
            (Slot::Urgent, self.names.urgent(route)),
            (Slot::Returns, self.names.returns(route)),
        ];
        for level in 0..LANE_PRIORITIES.len() {
            fixed.push((Slot::Shared(level), self.names.shared(route, level)));
        }
        let tasks = self
            .consume_queues(&rc.channel, &fixed, &inbox, prefetch, true)
            .await?;
        rc.tasks.extend(tasks);
        let tasks = self
            .consume_lanes(&rc.channel, lanes, &inbox, prefetch, true)
            .await?;
        rc.tasks.extend(tasks);
        rc.lanes.extend(lanes.iter().copied());
        Ok(rc)
    }

    /// Consumes these lanes (pipelined), which must exist. `warm`: the first lease waits for
    /// what they hold.
    async fn consume_lanes(
        &self,
        channel: &Channel,
        lanes: &[LaneSlot],
        inbox: &Arc<Inbox>,
        prefetch: u16,
        warm: bool,
    ) -> Result<Vec<JoinHandle<()>>, QueueError> {
        let queues: Vec<(Slot, String)> = lanes
            .iter()
            .map(|l| (Slot::Lane(*l), self.names.lane(*l)))
            .collect();
        self.consume_queues(channel, &queues, inbox, prefetch, warm)
            .await
    }

    async fn consume_queues(
        &self,
        channel: &Channel,
        queues: &[(Slot, String)],
        inbox: &Arc<Inbox>,
        prefetch: u16,
        warm: bool,
    ) -> Result<Vec<JoinHandle<()>>, QueueError> {
        let waiting = futures::future::try_join_all(queues.iter().map(|(_, q)| ready(channel, q)))
            .await
            .map_err(broker)?;
        let consumers =
            futures::future::try_join_all(queues.iter().map(|(_, q)| consume(channel, q)))
                .await
                .map_err(broker)?;
        let tasks = queues
            .iter()
            .zip(waiting)
            .zip(consumers)
            .map(|(((slot, _), waiting), consumer)| {
                let expect = if warm {
                    waiting.min(prefetch.into())
                } else {
                    0
                };
                self.spawn_forward(consumer, inbox, *slot, expect)
            })
            .collect();
        Ok(tasks)
    }

    /// The known lanes of one route.
    fn lanes_of(&self, route: Route) -> Vec<LaneSlot> {
        self.known_lanes()
            .into_iter()
            .filter(|l| l.route == route)
            .collect()
    }

    fn spawn_forward(
        &self,
        consumer: Consumer,
        inbox: &Arc<Inbox>,
        slot: Slot,
        expect: u32,
    ) -> JoinHandle<()> {
        if expect > 0 {
            inbox.expect();
        }
        tokio::spawn(forward(
            consumer,
            inbox.clone(),
            slot,
            expect,
            self.work.clone(),
            self.activity.clone(),
        ))
    }

    /// Settles messages received by this handle's consumers; returns how many could not be.
    /// When they are not taken in time the live connection is dropped (the messages' own, or a
    /// newer one beside an older connection that broke; held messages do not record which), so
    /// the broker hands out again everything it had out with it, and delivery skips what the
    /// store already has delivered.
    pub(super) async fn settle(&self, ackers: &[Acker], how: Settle) -> usize {
        match try_settle(ackers, how).await {
            Some(failed) => failed,
            None => {
                tracing::warn!(
                    messages = ackers.len(),
                    "RabbitMQ did not take settlements within {SETTLE_WAIT:?}; reconnecting, and the messages are handed out again"
                );
                self.invalidate_current().await;
                ackers.len()
            }
        }
    }

    /// Gives back leases held longer than they were granted for.
    pub(super) async fn expire_leases(&self) {
        let now = Instant::now();
        let expired: Vec<Acker> = {
            let mut held = lock(&self.held);
            let ids: Vec<LetterId> = held
                .iter()
                .filter(|(_, h)| h.until <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| held.remove(id))
                .flat_map(|h| h.ackers)
                .collect()
        };
        if !expired.is_empty() {
            tracing::warn!(
                letters = expired.len(),
                "leases ran out without an outcome; the letters are handed out again"
            );
            self.settle(&expired, Settle::Requeue).await;
        }
    }
}

/// Closes a consumer channel, giving its unacknowledged messages back to the broker. Best
/// effort and bounded: a channel being closed is one that is no longer wanted.
async fn close_channel(channel: &Channel) {
    let _ = tokio::time::timeout(Duration::from_secs(1), channel.close(200, "OK".into())).await;
}

/// Consumers of the live connection whose channel and consumers still run.
fn fresh(c: &RouteConsumer, link: &Link) -> bool {
    c.generation == link.generation && c.channel.status().connected() && !c.inbox.stopped()
}

async fn consume(channel: &Channel, queue: &str) -> lapin::Result<Consumer> {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

fn broker(e: lapin::Error) -> QueueError {
    unavailable("consumer", e)
}
