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
//! How the trait's meaning maps onto RabbitMQ:
//! - `enqueue` publishes every item (pipelined) and returns once the broker confirmed all of
//!   them: persistent messages in quorum queues, so durable. Not idempotent: the same letter
//!   enqueued twice is two messages; delivery skips letters the store already has delivered.
//! - `lease` takes what this gateway's consumers (one channel per route, prefetch limited)
//!   have received, urgent queue first. A leased message stays unacknowledged at the broker
//!   until `ack`, `retry` or `dead_letter` settles it; if the gateway dies its connection
//!   closes and RabbitMQ hands the message out again, which is the lease running out. A lease
//!   this handle holds longer than `lease` is given back (requeued) at the next `lease` call.
//! - `retry` publishes the letter to the delay path with its new due time and one more
//!   attempt, confirmed, then acknowledges the original; `dead_letter` publishes it to the
//!   dead queue, confirmed, then acknowledges. If the acknowledgement is lost the original
//!   comes back too: a duplicate the store makes harmless.
//! - The connection is checked before every call; a dead one (broker restart, network) is
//!   replaced, the topology declared again and consumers started again. Publishes in flight
//!   when it died fail with `Unavailable`; their callers retry.

mod message;
mod topology;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::domain::LetterId;
use crate::route::Route;

use super::{DeadLetter, Delivery, Leased, Queue, QueueDepth, QueueError};
use message::Msg;
use topology::{Names, PRIORITIES, priority_level, tier_for};

/// Connecting and declaring the topology.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Any other broker call, including waiting for the confirms of one enqueue.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `lease` waits for a first message when nothing is buffered.
const FIRST_DELIVERY_WAIT: Duration = Duration::from_millis(50);
const DEFAULT_PREFIX: &str = "brevdue.";

pub struct RabbitQueue {
    uri: AMQPUri,
    /// `host:port/vhost` for messages: never the credentials.
    broker: String,
    names: Names,
    /// The live connection; replaced when found dead.
    link: Mutex<Option<Arc<Link>>>,
    generation: AtomicU64,
    /// Serialises starting consumers.
    consumer_setup: Mutex<()>,
    consumers: StdMutex<HashMap<Route, RouteConsumer>>,
    /// Deliveries handed out by `lease` and not yet settled, by letter. Their messages are
    /// unacknowledged at the broker; the ackers settle them on the channel they came on.
    held: StdMutex<HashMap<LetterId, Held>>,
    /// Signalled when a consumer buffers a message (or stops).
    work: Arc<Notify>,
}

/// One connection with its confirm-mode publishing channel.
struct Link {
    conn: Connection,
    publish: Channel,
    generation: u64,
}

impl Link {
    fn healthy(&self) -> bool {
        self.conn.status().connected() && self.publish.status().connected()
    }
}

/// A route's consumers (one per priority queue) on one channel, feeding one inbox.
struct RouteConsumer {
    generation: u64,
    channel: Channel,
    inbox: Arc<Inbox>,
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
struct Inbox {
    state: StdMutex<InboxState>,
    arrived: Notify,
}

#[derive(Default)]
struct InboxState {
    levels: [VecDeque<Incoming>; PRIORITIES.len()],
    stopped: bool,
}

struct Incoming {
    acker: Acker,
    data: Vec<u8>,
}

struct Held {
    msg: Msg,
    /// Usually one; more when copies of the same letter arrived while it was held.
    ackers: Vec<Acker>,
    until: Instant,
}

#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Requeue,
    Drop,
}

/// A message ready to publish.
struct Outgoing {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
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

    fn is_empty(&self) -> bool {
        self.lock().levels.iter().all(VecDeque::is_empty)
    }

    fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Up to `max` messages, most urgent first, first come first within a priority.
    fn take(&self, max: usize) -> Vec<Incoming> {
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

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(format!("RabbitMQ {what}: {e}"))
}

/// Runs one broker call under a deadline.
async fn within<T, E: std::fmt::Display>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(unavailable(what, format!("no answer within {limit:?}"))),
    }
}

/// Settles messages; returns how many could not be (their channel is gone, so the broker
/// hands them out again anyway).
async fn settle(ackers: &[Acker], how: Settle) -> usize {
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

/// Splits `?prefix=` off the URL and checks the rest.
fn parse_url(url: &str) -> Result<(AMQPUri, String, String), QueueError> {
    let invalid = |why: &str| {
        QueueError::InvalidUrl(format!(
            "{why} (amqp://USER:PASS@HOST:PORT/VHOST[?prefix=NAME])"
        ))
    };
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut prefix = DEFAULT_PREFIX.to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("prefix=") {
            Some(p) => prefix = p.to_string(),
            None => rest.push(pair),
        }
    }
    let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if prefix.is_empty() || prefix.len() > 100 || !prefix.chars().all(name_ok) {
        return Err(invalid("prefix: 1 to 100 letters, digits, '.', '_' or '-'"));
    }
    let lapin_url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut uri: AMQPUri = lapin_url.parse().map_err(|e: String| invalid(&e))?;
    if uri.scheme != AMQPScheme::AMQP {
        return Err(invalid("only amqp:// is supported"));
    }
    // The URI parser reads only domain names and falls back to localhost for an IP address.
    let authority = base
        .split_once("://")
        .map_or("", |(_, r)| r.split('/').next().unwrap_or(""));
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    uri.authority.host = host.to_string();
    let broker = format!(
        "{}:{}/{}",
        uri.authority.host, uri.authority.port, uri.vhost
    );
    Ok((uri, prefix, broker))
}

impl RabbitQueue {
    /// Connects and declares the topology, so a wrong URL or credentials fail at start-up.
    pub async fn open(url: &str) -> Result<RabbitQueue, QueueError> {
        let (uri, prefix, broker) = parse_url(url)?;
        let q = RabbitQueue {
            uri,
            broker,
            names: Names::new(&prefix),
            link: Mutex::new(None),
            generation: AtomicU64::new(0),
            consumer_setup: Mutex::new(()),
            consumers: StdMutex::new(HashMap::new()),
            held: StdMutex::new(HashMap::new()),
            work: Arc::new(Notify::new()),
        };
        q.link().await?;
        Ok(q)
    }

    /// The prefix every queue and exchange name of this queue starts with.
    pub fn prefix(&self) -> &str {
        self.names.prefix()
    }

    /// Deletes this prefix's queues (with their messages) and exchange: for tests and for
    /// taking an installation down. Returns how many messages were dropped.
    pub async fn delete_topology(&self) -> Result<u64, QueueError> {
        lock(&self.consumers).clear();
        let link = self.link().await?;
        let dropped = within("deleting the queues", CALL_TIMEOUT, async {
            let ch = link.conn.create_channel().await?;
            let n = topology::delete(&ch, &self.names).await?;
            ch.close(200, "OK".into()).await?;
            Ok::<_, lapin::Error>(n)
        })
        .await?;
        self.invalidate(link.generation).await;
        Ok(dropped)
    }

    /// The live connection, reconnecting (and redeclaring the topology) if it died.
    async fn link(&self) -> Result<Arc<Link>, QueueError> {
        let mut slot = self.link.lock().await;
        if let Some(l) = slot.as_ref() {
            if l.healthy() {
                return Ok(l.clone());
            }
            tracing::warn!(broker = %self.broker, "RabbitMQ connection lost; reconnecting");
        }
        if let Some(old) = slot.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), old.conn.close(200, "OK".into()))
                .await;
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let what = format!("at {}", self.broker);
        let link = within(&what, CONNECT_TIMEOUT, self.connect(generation)).await?;
        let link = Arc::new(link);
        *slot = Some(link.clone());
        Ok(link)
    }

    async fn connect(&self, generation: u64) -> Result<Link, String> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("brevdue {}", self.names.prefix()).into());
        let conn = Connection::connect_uri(self.uri.clone(), props)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let setup = conn.create_channel().await.map_err(|e| e.to_string())?;
        topology::declare(&setup, &self.names)
            .await
            .map_err(|e| format!("declaring the queues failed: {e}"))?;
        let _ = setup.close(200, "OK".into()).await;
        let publish = conn.create_channel().await.map_err(|e| e.to_string())?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Link {
            conn,
            publish,
            generation,
        })
    }

    /// Drops the connection of `generation` so the next call starts afresh.
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.link.lock().await;
        if slot.as_ref().is_some_and(|l| l.generation == generation)
            && let Some(old) = slot.take()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), old.conn.close(200, "OK".into()))
                .await;
        }
    }

    /// Where a letter reference goes: its work queue when due, else the delay tier for what is
    /// left of its wait.
    fn to_work(&self, msg: &Msg, now: i64) -> Outgoing {
        let d = &msg.delivery;
        let routing_key = self.names.work(d.route, d.priority);
        let remaining = d.not_before_ms - now;
        let (exchange, tier) = if remaining <= 0 {
            (String::new(), None)
        } else {
            (self.names.delay_exchange(), Some(tier_for(remaining)))
        };
        Outgoing {
            exchange,
            routing_key,
            body: msg.encode(),
            properties: msg.properties(tier),
        }
    }

    fn to_dead(&self, msg: &Msg) -> Outgoing {
        Outgoing {
            exchange: String::new(),
            routing_key: self.names.dead(),
            body: msg.encode(),
            properties: msg.properties(None),
        }
    }

    /// Publishes everything, then waits for every confirm: durable on `Ok`.
    async fn publish(&self, out: &[Outgoing]) -> Result<(), QueueError> {
        if out.is_empty() {
            return Ok(());
        }
        let link = self.link().await?;
        let confirmations = within("publishing", CALL_TIMEOUT, async {
            let sends = out.iter().map(|o| {
                link.publish.basic_publish(
                    o.exchange.as_str().into(),
                    o.routing_key.as_str().into(),
                    // Mandatory: a message no queue takes comes back instead of vanishing.
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &o.body,
                    o.properties.clone(),
                )
            });
            let confirms = futures::future::try_join_all(sends).await?;
            futures::future::try_join_all(confirms).await
        })
        .await?;
        for c in confirmations {
            match c {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    // A queue is missing (deleted by hand?): declare everything again next time.
                    self.invalidate(link.generation).await;
                    return Err(QueueError::Unavailable(format!(
                        "RabbitMQ could not route a message to {:?} ({}); the queues are declared again on the next call",
                        returned.delivery.routing_key.as_str(),
                        returned.reply_text.as_str()
                    )));
                }
                Confirmation::Nack(_) => {
                    return Err(QueueError::Unavailable(
                        "RabbitMQ refused to store a message (negative confirm)".into(),
                    ));
                }
                Confirmation::NotRequested => {
                    return Err(QueueError::Unavailable(
                        "RabbitMQ publisher confirms are not enabled on the channel".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The inbox of `route`'s consumers, starting them if needed (first use, or their channel
    /// or connection died).
    async fn inbox(&self, route: Route, max: usize) -> Result<Arc<Inbox>, QueueError> {
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
    async fn expire_leases(&self) {
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

    /// Takes one dead letter's message(s) off the dead queue, after publishing a fresh copy to
    /// its work queue when `revive`. Every other dead message goes back untouched.
    async fn take_dead(&self, id: LetterId, revive: bool) -> Result<bool, QueueError> {
        let link = self.link().await?;
        let dead = self.names.dead();
        let ch = within(
            "opening a channel",
            CALL_TIMEOUT,
            link.conn.create_channel(),
        )
        .await?;
        let mut found: Vec<(Msg, Acker)> = Vec::new();
        loop {
            let got = within(
                "reading the dead letters",
                CALL_TIMEOUT,
                ch.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false }),
            )
            .await?;
            let Some(m) = got else { break };
            if let Ok(msg) = Msg::decode(&m.delivery.data)
                && msg.letter_id() == id
            {
                found.push((msg, m.delivery.acker));
            }
        }
        if revive && let Some((msg, _)) = found.first() {
            let fresh = Msg::new(Delivery {
                not_before_ms: 0,
                enqueued_at_ms: now_ms(),
                ..msg.delivery
            });
            self.publish(&[self.to_work(&fresh, 0)]).await?;
        }
        let ackers: Vec<Acker> = found.iter().map(|(_, a)| a.clone()).collect();
        let failed = settle(&ackers, Settle::Ack).await;
        // Closing the channel returns every message it read and did not acknowledge.
        let _ = within(
            "closing a channel",
            CALL_TIMEOUT,
            ch.close(200, "OK".into()),
        )
        .await;
        if failed > 0 {
            return Err(QueueError::Unavailable(
                "RabbitMQ connection lost while taking a dead letter off its queue".into(),
            ));
        }
        Ok(!found.is_empty())
    }
}

#[async_trait]
impl Queue for RabbitQueue {
    async fn enqueue(&self, items: &[Delivery]) -> Result<(), QueueError> {
        let now = now_ms();
        let out: Vec<Outgoing> = items
            .iter()
            .map(|d| self.to_work(&Msg::new(*d), now))
            .collect();
        self.publish(&out).await
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
        let mut out = Vec::new();
        let mut early: Vec<(Msg, Acker)> = Vec::new();
        let mut corrupt: Vec<Acker> = Vec::new();
        {
            let mut held = lock(&self.held);
            for i in inbox.take(max) {
                let msg = match Msg::decode(&i.data) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable message moved to the dead queue");
                        corrupt.push(i.acker);
                        continue;
                    }
                };
                if msg.delivery.not_before_ms > now {
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
        settle(&corrupt, Settle::Drop).await;
        if !early.is_empty() {
            // Back from a delay tier shorter than the wait: delay again for the rest.
            let again: Vec<Outgoing> = early.iter().map(|(m, _)| self.to_work(m, now)).collect();
            let ackers: Vec<Acker> = early.into_iter().map(|(_, a)| a).collect();
            match self.publish(&again).await {
                Ok(()) => {
                    settle(&ackers, Settle::Ack).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not delay scheduled letters again; they go back to their queue");
                    settle(&ackers, Settle::Requeue).await;
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
        match settle(&ackers, Settle::Ack).await {
            0 => Ok(()),
            n => Err(QueueError::Unavailable(format!(
                "RabbitMQ connection lost before {n} acknowledgements; those letters are handed out again and skipped as delivered"
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
        let mut msg = h.msg.clone();
        msg.attempts = msg.attempts.saturating_add(1);
        msg.delivery.not_before_ms = not_before_ms;
        match self.publish(&[self.to_work(&msg, now_ms())]).await {
            Ok(()) => {
                settle(&h.ackers, Settle::Ack).await;
                Ok(())
            }
            Err(e) => {
                settle(&h.ackers, Settle::Requeue).await;
                Err(e)
            }
        }
    }

    async fn dead_letter(&self, id: LetterId, error: &str) -> Result<(), QueueError> {
        let Some(h) = lock(&self.held).remove(&id) else {
            return Ok(());
        };
        let mut msg = h.msg.clone();
        msg.attempts = msg.attempts.saturating_add(1);
        msg.delivery.not_before_ms = 0;
        msg.failed_at_ms = Some(now_ms());
        msg.error = Some(error.to_string());
        match self.publish(&[self.to_dead(&msg)]).await {
            Ok(()) => {
                settle(&h.ackers, Settle::Ack).await;
                Ok(())
            }
            Err(e) => {
                settle(&h.ackers, Settle::Requeue).await;
                Err(e)
            }
        }
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let link = self.link().await?;
        let dead = self.names.dead();
        let msgs = within("listing the dead letters", CALL_TIMEOUT, async {
            // Read everything without acknowledging, then close the channel: RabbitMQ puts
            // every message back. Dead letters are few.
            let ch = link.conn.create_channel().await?;
            let mut msgs = Vec::new();
            while let Some(m) = ch
                .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false })
                .await?
            {
                match Msg::decode(&m.delivery.data) {
                    Ok(msg) => msgs.push(msg),
                    Err(e) => tracing::warn!(error = %e, "unreadable dead letter skipped"),
                }
            }
            ch.close(200, "OK".into()).await?;
            Ok::<_, lapin::Error>(msgs)
        })
        .await?;
        // One entry per letter (copies can exist after a lost acknowledgement): the latest.
        let mut by_letter: HashMap<LetterId, DeadLetter> = HashMap::new();
        for m in msgs {
            let d = m.dead_letter();
            match by_letter.entry(m.letter_id()) {
                Entry::Occupied(mut e) if e.get().failed_at_ms < d.failed_at_ms => {
                    e.insert(d);
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(v) => {
                    v.insert(d);
                }
            }
        }
        let mut list: Vec<DeadLetter> = by_letter.into_values().collect();
        list.sort_by_key(|d| (d.failed_at_ms, d.delivery.letter_id));
        Ok(list)
    }

    async fn revive(&self, id: LetterId) -> Result<bool, QueueError> {
        self.take_dead(id, true).await
    }

    async fn purge(&self, id: LetterId) -> Result<bool, QueueError> {
        self.take_dead(id, false).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let link = self.link().await?;
        within("counting messages", CALL_TIMEOUT, async {
            let ch = link.conn.create_channel().await?;
            let passive = QueueDeclareOptions::durable().passive();
            let mut d = QueueDepth::default();
            for route in [Route::Mailbox, Route::Print] {
                for p in PRIORITIES {
                    let q = ch
                        .queue_declare(
                            self.names.work(route, p).into(),
                            passive,
                            FieldTable::default(),
                        )
                        .await?;
                    let n = u64::from(q.message_count());
                    match route {
                        Route::Mailbox => d.mailbox += n,
                        Route::Print => d.print += n,
                    }
                }
            }
            let q = ch
                .queue_declare(self.names.dead().into(), passive, FieldTable::default())
                .await?;
            d.dead = u64::from(q.message_count());
            ch.close(200, "OK".into()).await?;
            Ok::<_, lapin::Error>(d)
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_prefix_and_host() {
        let (uri, prefix, broker) =
            parse_url("amqp://u:p%40ss@10.1.2.3:5673/%2f?heartbeat=10&prefix=t-1.").unwrap();
        assert_eq!(prefix, "t-1.");
        assert_eq!(uri.authority.host, "10.1.2.3");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.authority.userinfo.password, "p@ss");
        assert_eq!(uri.query.heartbeat, Some(10));
        assert_eq!(broker, "10.1.2.3:5673//");
        assert!(!broker.contains("p@ss"));
        let (_, prefix, _) = parse_url("amqp://guest:guest@rabbit/").unwrap();
        assert_eq!(prefix, DEFAULT_PREFIX);
        assert!(parse_url("amqp://h/?prefix=a/b").is_err());
        assert!(parse_url("amqps://h/").is_err());
    }
}
