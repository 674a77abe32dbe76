//! Taking many letters off the dead queue in one pass, for operators' bulk jobs: `take_dead`
//! reads the whole dead queue for one letter, which for thousands of letters would read it
//! thousands of times. Here it is read once; the messages of the letters asked for are
//! acknowledged (gone), every other one goes back when the channel closes.

use std::collections::HashSet;

use lapin::Acker;
use lapin::options::BasicGetOptions;

use crate::domain::LetterId;

use super::call::within;
use super::consume::{Settle, settle};
use super::message::Msg;
use super::{QueueError, RabbitQueue};

/// How many times the dead queue is read for letters still missing.
const TAKE_READS: u32 = 6;
/// The pause before the second read; it grows by this much for every further one.
const TAKE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

impl RabbitQueue {
    /// Takes the dead-queue messages of `ids` (all copies of each); returns the ids found.
    /// A read does not always see every message (the broker hands back those of an earlier
    /// read, or of another reader, in its own time), so while letters asked for are missing
    /// the queue is read again, after a growing pause, up to [`TAKE_READS`] times. Letters
    /// that are not there at all cost those pauses once per job, not per letter.
    pub(super) async fn take_dead_many(
        &self,
        ids: &[LetterId],
    ) -> Result<Vec<LetterId>, QueueError> {
        let wanted: HashSet<LetterId> = ids.iter().copied().collect();
        let mut missing = wanted.clone();
        let mut taken = Vec::new();
        for read in 0..TAKE_READS {
            if read > 0 {
                tokio::time::sleep(TAKE_PAUSE * read).await;
            }
            // Every copy of every letter asked for, also of those already found once.
            let found = self.take_dead_once(&wanted).await?;
            for id in &found {
                missing.remove(id);
            }
            taken.extend(found);
            if missing.is_empty() {
                break;
            }
        }
        taken.sort();
        taken.dedup();
        Ok(taken)
    }

    /// One read of the whole dead queue, taking the messages of `wanted`.
    async fn take_dead_once(
        &self,
        wanted: &HashSet<LetterId>,
    ) -> Result<Vec<LetterId>, QueueError> {
        let link = self.link().await?;
        let dead = self.names.dead();
        let ch = within(
            "opening a channel",
            self.timeouts.call_timeout,
            link.conn.create_channel(),
        )
        .await?;
        let mut found: Vec<(LetterId, Acker)> = Vec::new();
        loop {
            let got = within(
                "reading the dead letters",
                self.timeouts.call_timeout,
                ch.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: false }),
            )
            .await?;
            let Some(m) = got else { break };
            if let Ok(msg) = Msg::decode(&m.delivery.data)
                && wanted.contains(&msg.letter_id())
            {
                found.push((msg.letter_id(), m.delivery.acker));
            }
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
                "connection lost while taking dead letters off their queue".into(),
            ));
        }
        let mut taken: Vec<LetterId> = found.into_iter().map(|(id, _)| id).collect();
        taken.sort();
        taken.dedup();
        Ok(taken)
    }
}
