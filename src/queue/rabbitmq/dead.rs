//! The dead queue, read without losing anything: messages are fetched unacknowledged on a
//! channel of their own, and closing that channel gives back every one not taken. Dead letters
//! are few, so reading them all is cheap. Two operators listing at the same moment may each see
//! part of the list.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use lapin::options::BasicGetOptions;
use lapin::{Acker, Channel};

use crate::clock::now_ms;
use crate::domain::LetterId;

use super::call::within;
use super::consume::{Settle, settle};
use super::link::Link;
use super::message::Msg;
use super::{DeadLetter, Delivery, QueueError, RabbitQueue};

impl RabbitQueue {
    /// The raw bodies of every message in every queue of this prefix, read without taking them
    /// (the channel is closed and RabbitMQ puts them all back). For audits: the plaintext scan
    /// proves messages carry letter references only.
    pub async fn peek_all(&self) -> Result<Vec<Vec<u8>>, QueueError> {
        let lanes = self.refresh_lanes().await?;
        let link = self.link().await?;
        // The lane record holds lane names only, and holding its messages would hide them
        // from a gateway reading it now.
        let queues = self.names.letter_queues(&lanes);
        within("reading the queues", self.timeouts.call_timeout, async {
            let ch = link.conn.create_channel().await?;
            let mut bodies = Vec::new();
            for q in &queues {
                while let Some(m) = ch
                    .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
                    .await?
                {
                    bodies.push(m.delivery.data.clone());
                }
            }
            ch.close(200, "OK".into()).await?;
            Ok::<_, lapin::Error>(bodies)
        })
        .await
    }

    /// A channel of its own for reading the dead queue.
    pub(super) async fn dead_channel(&self) -> Result<(Arc<Link>, Channel), QueueError> {
        let link = self.link().await?;
        let ch = within(
            "opening a channel",
            self.timeouts.call_timeout,
            link.conn.create_channel(),
        )
        .await?;
        Ok((link, ch))
    }

    /// Closes a dead-queue channel, which gives back every message it read and did not
    /// acknowledge. Called on every path, a failed read included: a channel left open holds
    /// what it read, hidden from every other reader, until its connection ends. If it does
    /// not close, the connection is ended so the broker gives them back (the next call
    /// reconnects).
    pub(super) async fn close_dead_channel(&self, link: &Link, ch: Channel) {
        let limit = self.timeouts.call_timeout;
        if within("closing a channel", limit, ch.close(200, "OK".into()))
            .await
            .is_err()
        {
            tracing::warn!("a dead-queue channel did not close; ending its connection");
            let _ = tokio::time::timeout(limit, link.conn.close(200, "OK".into())).await;
        }
    }

    /// Every message ready on the dead queue, read unacknowledged on `ch`. Each read is timed
    /// on its own: a long dead queue on a busy broker takes longer than one call's limit.
    /// Undecodable messages are `None` (logged here, left in the queue).
    pub(super) async fn read_dead(
        &self,
        ch: &Channel,
    ) -> Result<Vec<(Option<Msg>, Acker)>, QueueError> {
        let dead = self.names.dead();
        let mut read = Vec::new();
        loop {
            let got = within(
                "reading the dead letters",
                self.timeouts.call_timeout,
                ch.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false }),
            )
            .await?;
            let Some(m) = got else { break };
            let msg = match Msg::decode(&m.delivery.data) {
                Ok(msg) => Some(msg),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable dead letter left in its queue");
                    None
                }
            };
            read.push((msg, m.delivery.acker));
        }
        Ok(read)
    }

    /// Every dead letter, one entry per letter, oldest failure first.
    pub(super) async fn list_dead(&self) -> Result<Vec<DeadLetter>, QueueError> {
        // Read everything without acknowledging, then close the channel: RabbitMQ puts every
        // message back.
        let (link, ch) = self.dead_channel().await?;
        let read = self.read_dead(&ch).await;
        self.close_dead_channel(&link, ch).await;
        let msgs = read?.into_iter().filter_map(|(m, _)| m);
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

    /// Takes one dead letter's message(s) off the dead queue, after publishing a fresh copy to
    /// its work queue when `revive`. Every other dead message goes back untouched.
    pub(super) async fn take_dead(&self, id: LetterId, revive: bool) -> Result<bool, QueueError> {
        let (link, ch) = self.dead_channel().await?;
        let taken = self.take_dead_on(&ch, id, revive).await;
        self.close_dead_channel(&link, ch).await;
        if taken? {
            // Copies the broker handed back despite their acknowledgement (see
            // `take_dead_many`): taken too, without reviving the letter a second time.
            self.take_again(&HashSet::from([id])).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn take_dead_on(
        &self,
        ch: &Channel,
        id: LetterId,
        revive: bool,
    ) -> Result<bool, QueueError> {
        let found: Vec<(Msg, Acker)> = self
            .read_dead(ch)
            .await?
            .into_iter()
            .filter_map(|(m, a)| m.filter(|m| m.letter_id() == id).map(|m| (m, a)))
            .collect();
        if revive && let Some((msg, _)) = found.first() {
            let fresh = Msg::new(Delivery {
                not_before_ms: 0,
                enqueued_at_ms: now_ms(),
                ..msg.delivery
            });
            // To the letter's own lane (declared first if this handle has not seen its sender).
            self.publish_work(&[fresh], 0).await?;
        }
        let ackers: Vec<Acker> = found.iter().map(|(_, a)| a.clone()).collect();
        ack_taken(&ackers).await?;
        Ok(!found.is_empty())
    }
}

/// How long acknowledgements are given before their channel is closed (see `take_dead_many`).
pub(super) const ACK_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Acknowledges the dead messages a read takes, then gives the broker [`ACK_SETTLE`] before
/// their channel may close (see `take_dead_many`).
pub(super) async fn ack_taken(ackers: &[Acker]) -> Result<(), QueueError> {
    if ackers.is_empty() {
        return Ok(());
    }
    if settle(ackers, Settle::Ack).await > 0 {
        return Err(super::call::refused(
            "connection lost while taking dead letters off their queue".into(),
        ));
    }
    tokio::time::sleep(ACK_SETTLE).await;
    Ok(())
}
