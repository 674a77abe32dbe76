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

impl RabbitQueue {
    /// Takes the dead-queue messages of `ids` (all copies of each); returns the ids found.
    /// A read does not always see every message (the broker hands back those of an earlier
    /// read in its own time), so reads are repeated until one finds nothing more asked for.
    pub(super) async fn take_dead_many(
        &self,
        ids: &[LetterId],
    ) -> Result<Vec<LetterId>, QueueError> {
        let mut wanted: HashSet<LetterId> = ids.iter().copied().collect();
        let mut taken = Vec::new();
        for _ in 0..8 {
            let found = self.take_dead_once(&wanted).await?;
            if found.is_empty() {
                break;
            }
            for id in &found {
                wanted.remove(id);
            }
            taken.extend(found);
            if wanted.is_empty() {
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
