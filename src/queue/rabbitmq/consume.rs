//! Consuming: per route, one channel with a consumer on each priority queue, prefetch limited,
//! feeding an inbox that `lease` takes from (urgent first); and the leases this handle holds,
//! which are unacknowledged messages until settled.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Acker, Channel, Consumer};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::domain::LetterId;
use crate::route::Route;

use super::link::{CALL_TIMEOUT, Link, within};
use super::message::Msg;
use super::topology::{PRIORITIES, priority_level};
use super::{QueueError, RabbitQueue, lock};

/// A route's consumers (one per priority queue) on one channel, feeding one inbox.
pub(super) struct RouteConsumer {
    generation: u64,
    channel: Channel,
    pub(super) inbox: Arc<Inbox>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RouteConsumer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Messages a route's consumers received and `lease` has not taken yet, per priority.
#[derive(Default)]
pub(super) struct Inbox {
    state: StdMutex<InboxState>,
    pub(super) arrived: Notify,
}

#[derive(Default)]
struct InboxState {
    levels: [VecDeque<Incoming>; PRIORITIES.len()],
    stopped: bool,
}

pub(super) struct Incoming {
    pub(super) acker: Acker,
    pub(super) data: Vec<u8>,
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

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, level: usize, item: Incoming) {
        self.lock().levels[level].push_back(item);
        self.arrived.notify_waiters();
    }

    fn stop(&self) {
        let mut s = self.lock();
        s.stopped = true;
        // Their channel is gone: the broker hands these out again.
        for l in &mut s.levels {
            l.clear();
        }
        drop(s);
        self.arrived.notify_waiters();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().levels.iter().all(VecDeque::is_empty)
    }

    fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Up to `max` messages, most urgent first, first come first within a priority.
    pub(super) fn take(&self, max: usize) -> Vec<Incoming> {
        let mut s = self.lock();
        let mut out = Vec::new();
        for level in &mut s.levels {
            while out.len() < max {
                match level.pop_front() {
                    Some(i) => out.push(i),
                    None => break,
                }
            }
        }
        out
    }
}

/// Settles messages; returns how many could not be (their channel is gone, so the broker
/// hands them out again anyway).
pub(super) async fn settle(ackers: &[Acker], how: Settle) -> usize {
    let results = futures::future::join_all(ackers.iter().map(|a| async move {
        match how {
            Settle::Ack => a.ack(BasicAckOptions::default()).await,
            Settle::Requeue => a.reject(BasicRejectOptions { requeue: true }).await,
            Settle::Drop => a.reject(BasicRejectOptions { requeue: false }).await,
        }
    }))
    .await;
    results.iter().filter(|r| !matches!(r, Ok(true))).count()
}

/// Feeds one consumer's deliveries into its route's inbox until the consumer ends.
async fn forward(mut consumer: Consumer, inbox: Arc<Inbox>, level: usize, work: Arc<Notify>) {
    while let Some(next) = consumer.next().await {
        match next {
            Ok(d) => {
                inbox.push(
                    level,
                    Incoming {
                        acker: d.acker,
                        data: d.data,
                    },
                );
                work.notify_waiters();
            }
            Err(e) => {
                tracing::warn!(error = %e, "RabbitMQ consumer stopped; it restarts on the next lease");
                break;
            }
        }
    }
    inbox.stop();
    work.notify_waiters();
}

impl RabbitQueue {
    /// The inbox of `route`'s consumers, starting them if needed (first use, or their channel
    /// or connection died).
    pub(super) async fn inbox(&self, route: Route, max: usize) -> Result<Arc<Inbox>, QueueError> {
        let link = self.link().await?;
        let fresh = |c: &RouteConsumer| {
            c.generation == link.generation && c.channel.status().connected() && !c.inbox.stopped()
        };
        if let Some(c) = lock(&self.consumers).get(&route).filter(|c| fresh(c)) {
            return Ok(c.inbox.clone());
        }
        let _setup = self.consumer_setup.lock().await;
        if let Some(c) = lock(&self.consumers).get(&route).filter(|c| fresh(c)) {
            return Ok(c.inbox.clone());
        }
        let old = lock(&self.consumers).remove(&route);
        if let Some(old) = old {
            // Its unacknowledged messages go back to the queue.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), old.channel.close(200, "OK".into()))
                    .await;
        }
        // Room for the batch a worker holds and the next one.
        let prefetch = u16::try_from(max.saturating_mul(2).clamp(16, 4096)).unwrap_or(4096);
        let consumer = within(
            "starting a consumer",
            CALL_TIMEOUT,
            self.start_consumers(&link, route, prefetch),
        )
        .await?;
        let inbox = consumer.inbox.clone();
        lock(&self.consumers).insert(route, consumer);
        Ok(inbox)
    }

    async fn start_consumers(
        &self,
        link: &Link,
        route: Route,
        prefetch: u16,
    ) -> lapin::Result<RouteConsumer> {
        let channel = link.conn.create_channel().await?;
        // Per consumer: each priority queue may have `prefetch` unacknowledged messages here.
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await?;
        let mut rc = RouteConsumer {
            generation: link.generation,
            channel,
            inbox: Arc::new(Inbox::default()),
            tasks: Vec::new(),
        };
        for p in PRIORITIES {
            let consumer = rc
                .channel
                .basic_consume(
                    self.names.work(route, p).into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            rc.tasks.push(tokio::spawn(forward(
                consumer,
                rc.inbox.clone(),
                priority_level(p),
                self.work.clone(),
            )));
        }
        Ok(rc)
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
            settle(&expired, Settle::Requeue).await;
        }
    }
}
