//! Which lanes exist and which sender each carries: bounded, granted on first use, handed to
//! another sender when idle.
//!
//! A lane carries one sender's NORMAL or BULK letters for one route (`topology.rs`). Lanes are
//! not declared for every registered sender: a national gateway has thousands, and each quorum
//! queue holds broker memory and file handles (a broker with 1,024 open files stops taking
//! connections at about 300 queues). Each route and lower priority has instead up to
//! `broker.max_lanes` numbered lane queues, declared as they are first needed. A sender gets a
//! lane when a letter first needs one, and gives it up when the lane has been empty and
//! unused for `broker.lane_idle`; the lane then goes to the next sender that needs one. A
//! letter whose sender gets no lane, because all are taken, goes to the shared lane of its
//! route and priority: still delivered, shared with the other senders there by weight among
//! what the consumer holds, but first in, first out behind them.
//!
//! Lane queues are never deleted while serving, only handed over, so nothing can be lost to a
//! race: a gateway that has not heard yet that a lane changed hands publishes to it as
//! before, and its letter shares the lane with the new sender for a moment. The broker's
//! queues are bounded by `4 × max_lanes` plus the fixed ones, whatever the number of senders.
//!
//! RabbitMQ cannot list queues over AMQP, yet every gateway must find the lanes others
//! declared (to consume them) and who holds them, and a handle must find all of them to delete
//! an installation's or a test's queues. So the lanes are recorded, one persistent message
//! each (`mailbox.bulk.lane3 29403473`), in the lane record (`<prefix>lanes`), and every
//! change is made while holding the record: a session takes an exclusive queue
//! (`<prefix>lanes.lock`, which only one connection can declare) on a connection of its own,
//! takes every record message unacknowledged, then either gives them all back (closing the
//! connection: a read, or a session that died) or publishes the new record (confirmed) and
//! acknowledges the old. A lane is recorded before it is declared, so whatever exists can be
//! found.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use crate::domain::{Cvr, MAX_WEIGHT};

use super::call::{not_found, within};
use super::topology::{self, LaneId, LaneSlot, Names};
use super::{QueueError, RabbitQueue, lock};

/// How often a reader asks again for the lock another reader holds.
const LOCK_RETRY: Duration = Duration::from_millis(25);
/// How long a lane refused for the bound is not asked for again (its letters go to the shared
/// lane meanwhile), so a gateway over the bound does not open a record session per batch.
const REFUSAL_HOLDS: Duration = Duration::from_secs(2);
/// How often `tidy` reads the record to learn lanes other gateways declared or handed over.
const RECORD_REFRESH: Duration = Duration::from_secs(1);

/// The lane record: every lane queue, and the sender it carries if any.
pub(super) type Record = BTreeMap<LaneSlot, Option<Cvr>>;

/// What this handle knows about lanes.
#[derive(Default)]
pub(super) struct LaneBook {
    /// The lane queues in the record, as last read or changed by this handle: consumed and
    /// counted.
    slots: Record,
    /// Which lane queue carries a sender's lane, per the record.
    assigned: HashMap<LaneId, LaneSlot>,
    /// Lanes refused for the bound, and until when that answer holds.
    refused: HashMap<LaneId, Instant>,
    weights: Arc<HashMap<Cvr, u32>>,
    /// When the record was last read by `tidy`.
    refreshed: Option<Instant>,
}

impl LaneBook {
    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.assigned.clear();
        self.refused.clear();
    }

    /// Takes the record as the truth.
    fn replace(&mut self, record: &Record) {
        self.assigned = assignments(record);
        self.slots = record.clone();
        // A lane given up since a refusal may be had now.
        self.refused.retain(|l, _| {
            !record.iter().any(|(slot, owner)| {
                slot.route == l.route && slot.level == l.level && owner.is_none()
            })
        });
    }
}

fn assignments(record: &Record) -> HashMap<LaneId, LaneSlot> {
    record
        .iter()
        .filter_map(|(slot, owner)| {
            owner.map(|sender| {
                (
                    LaneId {
                        route: slot.route,
                        level: slot.level,
                        sender,
                    },
                    *slot,
                )
            })
        })
        .collect()
}

/// A sender's share while others have letters waiting: 1 unless `set_senders` said otherwise.
pub(super) fn weight_of(weights: &HashMap<Cvr, u32>, sender: Cvr) -> u32 {
    weights
        .get(&sender)
        .copied()
        .unwrap_or(1)
        .clamp(1, MAX_WEIGHT)
}

fn record_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("text/plain".into())
}

impl RabbitQueue {
    /// Every lane queue this handle knows of, in a stable order.
    pub(super) fn known_lanes(&self) -> Vec<LaneSlot> {
        lock(&self.lanes).slots.keys().copied().collect()
    }

    pub(super) fn weights(&self) -> Arc<HashMap<Cvr, u32>> {
        lock(&self.lanes).weights.clone()
    }

    pub(super) fn set_weights(&self, weights: HashMap<Cvr, u32>) {
        lock(&self.lanes).weights = Arc::new(weights);
    }

    /// Notes that lane queues were just used (published to, or a message received from one).
    pub(super) fn touch(&self, lanes: impl IntoIterator<Item = LaneSlot>) {
        let now = Instant::now();
        let mut activity = lock(&self.activity);
        for l in lanes {
            activity.insert(l, now);
        }
    }

    /// Takes the record as the truth; true when it names lane queues new to this handle.
    pub(super) fn learn_record(&self, record: &Record) -> bool {
        let added = {
            let mut book = lock(&self.lanes);
            let added = record.keys().any(|l| !book.slots.contains_key(l));
            book.replace(record);
            added
        };
        // Idle time counts from when this handle first heard of a lane.
        let now = Instant::now();
        let mut activity = lock(&self.activity);
        activity.retain(|l, _| record.contains_key(l));
        for l in record.keys() {
            activity.entry(*l).or_insert(now);
        }
        added
    }

    /// [`learn_record`](Self::learn_record), then starts consumers on lane queues new to this
    /// handle.
    async fn adopt(&self, record: Record) {
        if self.learn_record(&record) {
            self.attach_lanes().await;
            // Idle workers lease again, which starts consumers on the new lanes.
            self.work.notify_waiters();
        }
    }

    /// Which lane queue carries each of these lanes: those assigned, and those assigned now
    /// within the bound. Lanes left out go to their shared lane.
    pub(super) async fn grant_lanes(
        &self,
        wanted: impl IntoIterator<Item = LaneId>,
    ) -> Result<HashMap<LaneId, LaneSlot>, QueueError> {
        let mut wanted: Vec<LaneId> = wanted.into_iter().collect();
        wanted.sort_by_key(|l| (l.sender, l.level, l.route == topology::ROUTES[0]));
        wanted.dedup();
        let open = |book: &LaneBook, now: Instant| -> Vec<LaneId> {
            wanted
                .iter()
                .filter(|l| !book.assigned.contains_key(l))
                .filter(|l| book.refused.get(l).is_none_or(|until| *until <= now))
                .copied()
                .collect()
        };
        let granted = |book: &LaneBook| -> HashMap<LaneId, LaneSlot> {
            wanted
                .iter()
                .filter_map(|l| book.assigned.get(l).map(|s| (*l, *s)))
                .collect()
        };
        if open(&lock(&self.lanes), Instant::now()).is_empty() {
            return Ok(granted(&lock(&self.lanes)));
        }
        let _setup = self.lane_setup.lock().await;
        let todo = open(&lock(&self.lanes), Instant::now());
        if todo.is_empty() {
            return Ok(granted(&lock(&self.lanes)));
        }
        let max = self.timeouts.max_lanes;
        let record = within(
            "granting lanes",
            self.timeouts.call_timeout,
            grant(&self.uri, &self.names, &todo, max),
        )
        .await?;
        let now_assigned = assignments(&record);
        let refused: Vec<LaneId> = todo
            .iter()
            .filter(|l| !now_assigned.contains_key(l))
            .copied()
            .collect();
        {
            let mut book = lock(&self.lanes);
            let until = Instant::now() + REFUSAL_HOLDS;
            for l in &todo {
                book.refused.remove(l);
            }
            for l in &refused {
                book.refused.insert(*l, until);
            }
        }
        self.touch(todo.iter().filter_map(|l| now_assigned.get(l).copied()));
        if !refused.is_empty() {
            tracing::info!(
                max_lanes = max,
                senders = refused.len(),
                "every lane is taken: these senders' letters go to the shared lanes"
            );
        }
        self.adopt(record).await;
        Ok(granted(&lock(&self.lanes)))
    }

    /// Upkeep: learns the lanes other gateways declared or handed over, and gives up the
    /// lanes this handle has seen unused for `lane_idle` and that are empty.
    pub(super) async fn tidy_lanes(&self) -> Result<(), QueueError> {
        let due = lock(&self.lanes)
            .refreshed
            .is_none_or(|at| at.elapsed() >= RECORD_REFRESH);
        if !due {
            return Ok(());
        }
        lock(&self.lanes).refreshed = Some(Instant::now());
        let idle_for = self.timeouts.lane_idle;
        let idle: Vec<LaneSlot> = {
            let activity = lock(&self.activity);
            lock(&self.lanes)
                .assigned
                .values()
                .filter(|l| activity.get(l).is_none_or(|at| at.elapsed() >= idle_for))
                .copied()
                .collect()
        };
        let _setup = self.lane_setup.lock().await;
        let record = within(
            "tidying lanes",
            self.timeouts.call_timeout,
            release(&self.uri, &self.names, &idle),
        )
        .await?;
        self.adopt(record).await;
        Ok(())
    }

    /// Reads the record and takes it as the truth; returns every lane queue.
    pub(super) async fn refresh_lanes(&self) -> Result<Vec<LaneSlot>, QueueError> {
        let record = within(
            "reading the lane record",
            self.timeouts.call_timeout,
            read_record(&self.uri, &self.names),
        )
        .await?;
        let list: Vec<LaneSlot> = record.keys().copied().collect();
        self.adopt(record).await;
        Ok(list)
    }

    /// Which sender each lane queue carries, per the record read now (for operators and tests).
    pub async fn lane_owners(&self) -> Result<Vec<(String, Option<Cvr>)>, QueueError> {
        let record = within(
            "reading the lane record",
            self.timeouts.call_timeout,
            read_record(&self.uri, &self.names),
        )
        .await?;
        let list = record
            .iter()
            .map(|(slot, owner)| (self.names.lane(*slot), *owner))
            .collect();
        self.adopt(record).await;
        Ok(list)
    }
}

/// A session holding the lane record: the lock, the record's messages taken unacknowledged,
/// and what they say.
struct Session {
    conn: Connection,
    get: Channel,
    last: Option<Acker>,
    record: Record,
}

impl Session {
    async fn open(uri: &AMQPUri, names: &Names) -> Result<Session, String> {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("brevdue {} lane record", names.prefix()).into());
        let conn = Connection::connect_uri(uri.clone(), props)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        match Self::read(&conn, names).await {
            Ok((get, last, record)) => Ok(Session {
                conn,
                get,
                last,
                record,
            }),
            Err(e) => {
                close(&conn).await;
                Err(e)
            }
        }
    }

    async fn read(
        conn: &Connection,
        names: &Names,
    ) -> Result<(Channel, Option<Acker>, Record), String> {
        take_lock(conn, names)
            .await
            .map_err(|e| fail("locking the lane record", e))?;
        let get = conn
            .create_channel()
            .await
            .map_err(|e| fail("opening a channel", e))?;
        let mut record = Record::new();
        let mut last = None;
        while let Some(m) = get
            .basic_get(
                names.lane_record().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .map_err(|e| fail("reading the lane record", e))?
        {
            match LaneSlot::parse_entry(&String::from_utf8_lossy(&m.delivery.data)) {
                Some((slot, owner)) => {
                    record.insert(slot, owner);
                }
                None => tracing::warn!("unreadable lane record entry dropped"),
            }
            last = Some(m.delivery.acker);
        }
        Ok((get, last, record))
    }

    /// Replaces the record with `self.record` (confirmed), then ends the session.
    async fn commit(self, names: &Names) -> Result<Record, String> {
        let put = self
            .conn
            .create_channel()
            .await
            .map_err(|e| fail("opening a channel", e))?;
        put.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| fail("confirming", e))?;
        republish(&put, names, &self.record).await?;
        if let Some(last) = &self.last {
            last.ack(BasicAckOptions { multiple: true })
                .await
                .map_err(|e| fail("acknowledging the lane record", e))?;
        }
        // Acknowledgements have no answer: closing the channel waits until they were processed.
        self.get
            .close(200, "OK".into())
            .await
            .map_err(|e| fail("closing a channel", e))?;
        close(&self.conn).await;
        Ok(self.record)
    }

    /// Ends the session leaving the record as it was (the broker puts back what was taken).
    async fn abort(self) -> Record {
        close(&self.conn).await;
        self.record
    }
}

fn fail(what: &str, e: lapin::Error) -> String {
    format!("{what}: {e}")
}

async fn close(conn: &Connection) {
    // Closing the connection also releases the lock and gives back unacknowledged records.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "OK".into())).await;
}

/// Reads the lane record.
pub(super) async fn read_record(uri: &AMQPUri, names: &Names) -> Result<Record, String> {
    Ok(Session::open(uri, names).await?.abort().await)
}

/// Assigns a lane queue to each of `wanted` that has none, while there is one free or fewer
/// than `max` exist for its route and priority (a new one is recorded, then declared).
/// Returns the record as it is now.
async fn grant(
    uri: &AMQPUri,
    names: &Names,
    wanted: &[LaneId],
    max: usize,
) -> Result<Record, String> {
    let mut s = Session::open(uri, names).await?;
    let mut changed = false;
    let mut new_slots = Vec::new();
    for l in wanted {
        if assignments(&s.record).contains_key(l) {
            continue;
        }
        let same = |slot: &LaneSlot| slot.route == l.route && slot.level == l.level;
        let free = s
            .record
            .iter()
            .find(|(slot, owner)| same(slot) && owner.is_none())
            .map(|(slot, _)| *slot);
        let slot = match free {
            Some(slot) => slot,
            None => {
                let count = s.record.keys().filter(|slot| same(slot)).count();
                if count >= max {
                    continue;
                }
                let Ok(n) = u32::try_from(count) else {
                    continue;
                };
                let slot = LaneSlot {
                    route: l.route,
                    level: l.level,
                    n,
                };
                new_slots.push(slot);
                slot
            }
        };
        s.record.insert(slot, Some(l.sender));
        changed = true;
    }
    if !changed {
        return Ok(s.abort().await);
    }
    // Declared before recorded, with the record held: no gateway ever consumes a lane that is
    // not there. If recording fails, the queue is left empty and unrecorded, and the next
    // grant (which numbers lanes from the record) declares it again and records it.
    let declared = async {
        let ch = s.conn.create_channel().await?;
        topology::declare_lanes(&ch, names, &new_slots).await?;
        ch.close(200, "OK".into()).await
    }
    .await;
    if let Err(e) = declared {
        s.abort().await;
        return Err(fail("declaring lanes", e));
    }
    s.commit(names).await
}

/// Gives up those of `candidates` that are empty (their sender keeps no lane). Returns the
/// record as it is now.
async fn release(uri: &AMQPUri, names: &Names, candidates: &[LaneSlot]) -> Result<Record, String> {
    let mut s = Session::open(uri, names).await?;
    let mut changed = false;
    for slot in candidates {
        if !matches!(s.record.get(slot), Some(Some(_))) {
            continue;
        }
        match ready_on(&s.conn, &names.lane(*slot)).await {
            Ok(0) => {
                s.record.insert(*slot, None);
                changed = true;
            }
            Ok(_) => {}
            Err(e) => {
                s.abort().await;
                return Err(fail("checking an idle lane", e));
            }
        }
    }
    if changed {
        s.commit(names).await
    } else {
        Ok(s.abort().await)
    }
}

/// Messages ready in a queue (0 when it does not exist), on a channel of its own.
async fn ready_on(conn: &Connection, queue: &str) -> lapin::Result<u32> {
    let ch = conn.create_channel().await?;
    match topology::ready(&ch, queue).await {
        Ok(n) => {
            let _ = ch.close(200, "OK".into()).await;
            Ok(n)
        }
        Err(e) if not_found(&e) => Ok(0),
        Err(e) => Err(e),
    }
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

async fn republish(put: &Channel, names: &Names, record: &Record) -> Result<(), String> {
    let queue = names.lane_record();
    let bodies: Vec<Vec<u8>> = record
        .iter()
        .map(|(slot, owner)| slot.record_entry(*owner).into_bytes())
        .collect();
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
    fn weights() {
        let a = crate::domain::complete_cvr(2_940_347).unwrap();
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
