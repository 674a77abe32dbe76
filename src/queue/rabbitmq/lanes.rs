//! Which senders have lanes, and their weights.
//!
//! A sender's lanes are declared before anything is published to them: for every sender
//! `set_senders` names, and in `enqueue` (and wherever a letter goes back to its lane) for a
//! sender this handle has not seen yet. A publish through the default exchange to a queue that
//! does not exist would vanish; publishing is also mandatory (`link.rs`), so if a lane was
//! deleted behind our back the publish fails instead of losing the letter.
//!
//! RabbitMQ cannot list queues over AMQP, yet a handle must find lanes it did not declare:
//! another gateway's, those of a sender removed from the registry that still hold letters, and
//! all of them when a test's or an installation's queues are deleted. So a sender is recorded,
//! before its lanes are declared, as one persistent message in the lane record
//! (`<prefix>lanes`). Reading the record takes every message off it unacknowledged, puts back
//! one per sender (confirmed), then acknowledges what it took: a reader that dies half-way
//! leaves the originals to come back, and duplicates (two gateways recording the same sender)
//! shrink to one. Readers take turns through an exclusive queue (`<prefix>lanes.lock`) on a
//! connection of their own, since messages one reader holds are invisible to another; the lock
//! goes with that connection, however the reading ends.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use crate::domain::{Cvr, MAX_WEIGHT};

use super::call::{Outgoing, within};
use super::topology::{self, Names};
use super::{QueueError, RabbitQueue, lock};

/// How often a reader asks again for the lock another reader holds.
const LOCK_RETRY: Duration = Duration::from_millis(25);
/// Senders whose lanes are declared in one go (one deadline).
const DECLARE_CHUNK: usize = 64;

/// What this handle knows about lanes.
#[derive(Default)]
pub(super) struct LaneBook {
    /// Senders recorded as having lanes: consumed, counted and deleted.
    known: BTreeSet<Cvr>,
    /// Senders whose lanes this handle has declared: safe to publish to.
    declared: HashSet<Cvr>,
    weights: Arc<HashMap<Cvr, u32>>,
}

impl LaneBook {
    pub(super) fn clear(&mut self) {
        self.known.clear();
        self.declared.clear();
    }

    pub(super) fn forget_declared(&mut self) {
        self.declared.clear();
    }
}

/// A sender's share while others have letters waiting: 1 unless `set_senders` said otherwise.
pub(super) fn weight_of(weights: &HashMap<Cvr, u32>, sender: Cvr) -> u32 {
    weights
        .get(&sender)
        .copied()
        .unwrap_or(1)
        .clamp(1, MAX_WEIGHT)
}

fn record_body(sender: Cvr) -> Vec<u8> {
    sender.to_string().into_bytes()
}

fn record_sender(body: &[u8]) -> Option<Cvr> {
    std::str::from_utf8(body).ok()?.trim().parse().ok()
}

fn record_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("text/plain".into())
}

impl RabbitQueue {
    /// Every sender with lanes this handle knows of, in a stable order.
    pub(super) fn known_senders(&self) -> Vec<Cvr> {
        lock(&self.lanes).known.iter().copied().collect()
    }

    pub(super) fn known_count(&self) -> usize {
        lock(&self.lanes).known.len()
    }

    pub(super) fn weights(&self) -> Arc<HashMap<Cvr, u32>> {
        lock(&self.lanes).weights.clone()
    }

    pub(super) fn set_weights(&self, weights: HashMap<Cvr, u32>) {
        lock(&self.lanes).weights = Arc::new(weights);
    }

    /// Adds senders found in the lane record.
    pub(super) fn learn(&self, senders: impl IntoIterator<Item = Cvr>) {
        let added = {
            let mut book = lock(&self.lanes);
            let before = book.known.len();
            book.known.extend(senders);
            book.known.len() > before
        };
        if added {
            // Idle workers lease again, which starts consumers on the new lanes.
            self.work.notify_waiters();
        }
    }

    /// Makes sure every lane of these senders exists (recorded first, then declared), so a
    /// letter published to one is never dropped for want of a queue, and that running
    /// consumers consume them.
    pub(super) async fn ensure_lanes(
        &self,
        senders: impl IntoIterator<Item = Cvr>,
    ) -> Result<(), QueueError> {
        if self.declare_lanes(senders).await? {
            self.attach_lanes().await;
        }
        Ok(())
    }

    /// Records and declares the lanes of senders this handle has not declared yet. True when
    /// there were any.
    pub(super) async fn declare_lanes(
        &self,
        senders: impl IntoIterator<Item = Cvr>,
    ) -> Result<bool, QueueError> {
        let missing = |book: &LaneBook, senders: &[Cvr]| -> Vec<Cvr> {
            let mut m: Vec<Cvr> = senders
                .iter()
                .filter(|s| !book.declared.contains(s))
                .copied()
                .collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        let senders: Vec<Cvr> = senders.into_iter().collect();
        if missing(&lock(&self.lanes), &senders).is_empty() {
            return Ok(false);
        }
        let _setup = self.lane_setup.lock().await;
        let todo = missing(&lock(&self.lanes), &senders);
        for chunk in todo.chunks(DECLARE_CHUNK) {
            let unrecorded: Vec<Cvr> = {
                let book = lock(&self.lanes);
                chunk
                    .iter()
                    .filter(|s| !book.known.contains(s))
                    .copied()
                    .collect()
            };
            // Recorded before declared: whatever exists can always be found and deleted.
            let records: Vec<Outgoing> = unrecorded
                .iter()
                .map(|s| Outgoing {
                    exchange: String::new(),
                    routing_key: self.names.lane_record(),
                    body: record_body(*s),
                    properties: record_properties(),
                })
                .collect();
            self.publish(&records).await?;
            self.learn(unrecorded);
            let link = self.link().await?;
            within("declaring lanes", self.timeouts.call_timeout, async {
                let ch = link.conn.create_channel().await?;
                topology::declare_lanes(&ch, &self.names, chunk).await?;
                ch.close(200, "OK".into()).await?;
                Ok::<_, lapin::Error>(())
            })
            .await?;
            lock(&self.lanes).declared.extend(chunk.iter().copied());
        }
        Ok(!todo.is_empty())
    }
}

/// Reads the lane record: every sender that has (or had) lanes under this prefix.
pub(super) async fn read_record(uri: &AMQPUri, names: &Names) -> Result<Vec<Cvr>, String> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("brevdue {} lane record", names.prefix()).into());
    let conn = Connection::connect_uri(uri.clone(), props)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let read = read_locked(&conn, names).await;
    // Closing the connection also releases the lock.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "OK".into())).await;
    read
}

async fn read_locked(conn: &Connection, names: &Names) -> Result<Vec<Cvr>, String> {
    let fail = |what: &str, e: lapin::Error| format!("{what}: {e}");
    let _lock = take_lock(conn, names)
        .await
        .map_err(|e| fail("locking the lane record", e))?;
    let get = conn
        .create_channel()
        .await
        .map_err(|e| fail("opening a channel", e))?;
    let mut senders = BTreeSet::new();
    let mut last = None;
    while let Some(m) = get
        .basic_get(
            names.lane_record().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .map_err(|e| fail("reading the lane record", e))?
    {
        match record_sender(&m.delivery.data) {
            Some(s) => {
                senders.insert(s);
            }
            None => tracing::warn!("unreadable lane record dropped"),
        }
        last = Some(m.delivery.acker);
    }
    let Some(last) = last else {
        return Ok(Vec::new());
    };
    let put = conn
        .create_channel()
        .await
        .map_err(|e| fail("opening a channel", e))?;
    put.confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| fail("confirming", e))?;
    republish(&put, names, &senders).await?;
    last.ack(BasicAckOptions { multiple: true })
        .await
        .map_err(|e| fail("acknowledging the lane record", e))?;
    // Acknowledgements have no answer: closing the channel waits until they were processed.
    get.close(200, "OK".into())
        .await
        .map_err(|e| fail("closing a channel", e))?;
    Ok(senders.into_iter().collect())
}

/// The lock: an exclusive queue only one connection at a time can declare.
async fn take_lock(conn: &Connection, names: &Names) -> lapin::Result<Channel> {
    loop {
        let ch = conn.create_channel().await?;
        let declared = ch
            .queue_declare(
                names.lane_record_lock().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(_) => return Ok(ch),
            Err(e) if held_by_another(&e) => tokio::time::sleep(LOCK_RETRY).await,
            Err(e) => return Err(e),
        }
    }
}

fn held_by_another(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        e.kind(),
        lapin::ErrorKind::ProtocolError(p)
            if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED))
    )
}

async fn republish(put: &Channel, names: &Names, senders: &BTreeSet<Cvr>) -> Result<(), String> {
    let queue = names.lane_record();
    let bodies: Vec<Vec<u8>> = senders.iter().map(|s| record_body(*s)).collect();
    let sends = bodies.iter().map(|body| {
        put.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            body,
            record_properties(),
        )
    });
    let confirms = futures::future::try_join_all(sends)
        .await
        .map_err(|e| format!("writing the lane record: {e}"))?;
    let confirmed = futures::future::try_join_all(confirms)
        .await
        .map_err(|e| format!("writing the lane record: {e}"))?;
    if confirmed
        .iter()
        .all(|c| matches!(c, Confirmation::Ack(None)))
    {
        Ok(())
    } else {
        Err("RabbitMQ did not store the lane record".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_weights() {
        let a = crate::domain::complete_cvr(2_940_347).unwrap();
        assert_eq!(record_sender(&record_body(a)), Some(a));
        assert_eq!(record_sender(b"garbage"), None);
        let weights = HashMap::from([
            (a, 0),
            (crate::domain::complete_cvr(1_000_000).unwrap(), 5_000),
        ]);
        assert_eq!(weight_of(&weights, a), 1);
        assert_eq!(
            weight_of(&weights, crate::domain::complete_cvr(1_000_000).unwrap()),
            MAX_WEIGHT
        );
        assert_eq!(
            weight_of(&weights, crate::domain::complete_cvr(3_000_000).unwrap()),
            1
        );
    }
}
