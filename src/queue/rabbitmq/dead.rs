//! The dead queue, read without losing anything: messages are fetched unacknowledged on a
//! channel of their own, and closing that channel gives back every one not taken. Dead letters
//! are few, so reading them all is cheap. Two operators listing at the same moment may each see
//! part of the list.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use lapin::Acker;
use lapin::options::BasicGetOptions;

use crate::clock::now_ms;
use crate::domain::LetterId;

use super::call::within;
use super::consume::{Settle, settle};
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

    /// Every dead letter, one entry per letter, oldest failure first.
    pub(super) async fn list_dead(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let link = self.link().await?;
        let dead = self.names.dead();
        let msgs = within(
            "listing the dead letters",
            self.timeouts.call_timeout,
            async {
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
            },
        )
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

    /// Takes one dead letter's message(s) off the dead queue, after publishing a fresh copy to
    /// its work queue when `revive`. Every other dead message goes back untouched.
    pub(super) async fn take_dead(&self, id: LetterId, revive: bool) -> Result<bool, QueueError> {
        let link = self.link().await?;
        let dead = self.names.dead();
        let ch = within(
            "opening a channel",
            self.timeouts.call_timeout,
            link.conn.create_channel(),
        )
        .await?;
        let mut found: Vec<(Msg, Acker)> = Vec::new();
        loop {
            let got = within(
                "reading the dead letters",
                self.timeouts.call_timeout,
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
            // To the letter's own lane (declared first if this handle has not seen its sender).
            self.publish_work(&[fresh], 0).await?;
        }
        let ackers: Vec<Acker> = found.iter().map(|(_, a)| a.clone()).collect();
        let failed = settle(&ackers, Settle::Ack).await;
        // Closing the channel returns every message it read and did not acknowledge.
        let _ = within(
            "closing a channel",
            self.timeouts.call_timeout,
            ch.close(200, "OK".into()),
        )
        .await;
        if failed > 0 {
            return Err(super::call::refused(
                "connection lost while taking a dead letter off its queue".into(),
            ));
        }
        Ok(!found.is_empty())
    }
}
