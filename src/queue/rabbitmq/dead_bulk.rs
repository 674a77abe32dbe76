//! Taking many letters off the dead queue in one pass, for operators' bulk jobs: `take_dead`
//! reads the whole dead queue for one letter, which for thousands of letters would read it
//! thousands of times. Here it is read once; the messages of the letters asked for are
//! acknowledged (gone), every other one goes back when the channel closes.

use std::collections::HashSet;
use std::time::Duration;

use lapin::{Acker, Channel};

use crate::domain::LetterId;

use super::dead::ack_taken;
use super::{QueueError, RabbitQueue};

/// How many times the dead queue is read for letters still missing.
const TAKE_READS: u32 = 6;
/// The pause before the second read; it grows by this much for every further one.
const TAKE_PAUSE: Duration = Duration::from_millis(250);

impl RabbitQueue {
    /// Takes the dead-queue messages of `ids` (all copies of each); returns the ids found.
    ///
    /// Two things make one read not enough. A read does not always see every message (the
    /// broker hands back those of an earlier read, or of another reader, in its own time), so
    /// while letters asked for are missing the queue is read again, after a growing pause, up
    /// to [`TAKE_READS`] times. And a quorum queue may ignore acknowledgements that arrive
    /// just before their channel closes and hand those messages back (RabbitMQ
    /// rabbitmq-server#10327, seen here as thousands of retried letters left among the dead),
    /// so a take holds only once a later read finds none of the letters: each read waits
    /// a moment (`dead::ACK_SETTLE`) after its acknowledgements, and reads go on until one takes nothing.
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
            let first_time = found.iter().filter(|id| missing.remove(id)).count();
            tracing::debug!(
                read,
                taken = found.len(),
                again = found.len() - first_time,
                missing = missing.len(),
                "read the dead queue for a bulk take"
            );
            let nothing_more = found.is_empty();
            taken.extend(found);
            if missing.is_empty() && nothing_more {
                break;
            }
        }
        taken.sort();
        taken.dedup();
        Ok(taken)
    }

    /// Reads the dead queue again until a read finds no message of `wanted` (at most
    /// [`TAKE_READS`] times), taking every one found: the messages a take acknowledged that
    /// the broker handed back all the same (see `take_dead_many`).
    pub(super) async fn take_again(&self, wanted: &HashSet<LetterId>) -> Result<(), QueueError> {
        for read in 0..TAKE_READS {
            tokio::time::sleep(TAKE_PAUSE * (read + 1)).await;
            let found = self.take_dead_once(wanted).await?;
            if found.is_empty() {
                return Ok(());
            }
            tracing::debug!(read, taken = found.len(), "dead letters taken again");
        }
        Ok(())
    }

    /// One read of the whole dead queue, taking the messages of `wanted`.
    async fn take_dead_once(
        &self,
        wanted: &HashSet<LetterId>,
    ) -> Result<Vec<LetterId>, QueueError> {
        let (link, ch) = self.dead_channel().await?;
        let taken = self.take_wanted_on(&ch, wanted).await;
        // Also after a failed read: closing gives back every message read and not taken.
        self.close_dead_channel(&link, ch).await;
        taken
    }

    async fn take_wanted_on(
        &self,
        ch: &Channel,
        wanted: &HashSet<LetterId>,
    ) -> Result<Vec<LetterId>, QueueError> {
        let read = self.read_dead(ch).await?;
        let seen = read.len();
        let found: Vec<(LetterId, Acker)> = read
            .into_iter()
            .filter_map(|(m, a)| m.map(|m| (m.letter_id(), a)))
            .filter(|(id, _)| wanted.contains(id))
            .collect();
        tracing::debug!(seen, wanted = found.len(), "dead queue read through");
        let ackers: Vec<Acker> = found.iter().map(|(_, a)| a.clone()).collect();
        ack_taken(&ackers).await?;
        let mut taken: Vec<LetterId> = found.into_iter().map(|(id, _)| id).collect();
        taken.sort();
        taken.dedup();
        Ok(taken)
    }
}
