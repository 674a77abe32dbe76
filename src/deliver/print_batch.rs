//! The print side of a delivery round: letters staged one at a time into print batches of at
//! most `batch_bytes`, each batch claimed in the store, published, and only then recorded
//! PRINT_SPOOLED.
//!
//! The order is what makes the legal clock honest: a letter is PRINT_SPOOLED (its `delivered_at`
//! set) only once its files are in a published batch the print house can collect. The claim
//! before publishing (the batch's name on the letter, for letters still waiting and not claimed
//! by another batch) is what keeps a letter out of two batches when two gateways hold it at
//! once. A batch that cannot be published is given up whole: its claim released, its staged
//! files removed at once, and its letters retried like any failed delivery. A crash between the
//! steps is finished at the next start ([`recover`]): a staged batch the store has claims for is
//! published, a published one whose letters are not yet recorded is recorded, and a claim whose
//! batch is nowhere is released.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::clock::now_ms;
use crate::domain::{LetterId, LetterState, Route};
use crate::error_report::chain;
use crate::queue::Leased;

use super::failure::{Failure, report};
use super::print::{PrintLetter, SpoolError, StagedBatch};
use super::{DeliverError, Deliverer, RoundEnd, record_delivered};

/// A letter staged in the current batch.
struct Entry {
    leased: Leased,
    accepted_at_ms: i64,
    due_at_ms: i64,
}

/// The print batch a round is filling.
#[derive(Default)]
pub(super) struct PrintRound {
    staged: Option<StagedBatch>,
    entries: Vec<Entry>,
}

impl PrintRound {
    pub(super) fn new() -> Self {
        PrintRound::default()
    }

    /// Stages one letter (its content is dropped on return); a batch past `batch_bytes` is
    /// finished at once. A letter that cannot be staged fails alone.
    pub(super) async fn add(
        &mut self,
        d: &Deliverer,
        leased: Leased,
        letter: PrintLetter,
        accepted_at_ms: i64,
        due_at_ms: i64,
        end: &mut RoundEnd,
    ) {
        let staged = match self.staged.take() {
            Some(s) => s,
            None => match d.spool.begin(&LetterId::new().to_string()) {
                Ok(s) => s,
                Err(e) => {
                    let id = report(&e, Route::Print, "could not start a print batch", 1);
                    d.fail_one(&leased, Failure::Print, id, Some(due_at_ms))
                        .await;
                    return;
                }
            },
        };
        let written = tokio::task::spawn_blocking(move || {
            let mut staged = staged;
            let r = staged.add(&letter);
            (staged, r)
        })
        .await;
        match written {
            Ok((staged, Ok(()))) => {
                self.staged = Some(staged);
                self.entries.push(Entry {
                    leased,
                    accepted_at_ms,
                    due_at_ms,
                });
            }
            Ok((staged, Err(e))) => {
                self.staged = Some(staged);
                let id = report(&e, Route::Print, "could not stage a letter for print", 1);
                d.fail_one(&leased, Failure::Print, id, Some(due_at_ms))
                    .await;
            }
            Err(join) => {
                // The writer panicked: the batch went with it (its files are removed on drop),
                // so every letter in it is retried.
                let e = SpoolError::from_join(join);
                let id = report(&e, Route::Print, "the print batch writer failed", 1);
                d.fail_one(&leased, Failure::Print, id, Some(due_at_ms))
                    .await;
                self.fail_all(d, Failure::Print, id).await;
            }
        }
        if self
            .staged
            .as_ref()
            .is_some_and(|s| s.bytes() >= d.config.batch_bytes.as_u64())
        {
            self.finish(d, end).await;
        }
    }

    async fn fail_all(
        &mut self,
        d: &Deliverer,
        failure: Failure,
        id: crate::error_report::ErrorId,
    ) {
        for e in std::mem::take(&mut self.entries) {
            d.fail_one(&e.leased, failure, id, Some(e.due_at_ms)).await;
        }
    }

    /// Claims, publishes and records the current batch, if there is one.
    pub(super) async fn finish(&mut self, d: &Deliverer, end: &mut RoundEnd) {
        let Some(staged) = self.staged.take() else {
            return;
        };
        if self.entries.is_empty() {
            return;
        }
        let batch = staged.name().to_string();
        let ids = staged.letters().to_vec();
        let claimed: HashSet<LetterId> = match d.store.claim_print(&ids, &batch).await {
            Ok(c) => c.into_iter().collect(),
            Err(e) => {
                drop(staged);
                let id = report(
                    &e,
                    Route::Print,
                    "could not claim letters for a print batch",
                    ids.len(),
                );
                self.fail_all(d, Failure::Store, id).await;
                return;
            }
        };
        let entries = std::mem::take(&mut self.entries);
        let (mine, others): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|e| claimed.contains(&e.leased.delivery.letter_id));
        // Another batch holds these (a second copy of the letter, on another gateway): look
        // again shortly, when it is recorded and only the acknowledgement is left.
        for e in &others {
            let again = now_ms() + d.config.retry_initial.as_millis() as i64;
            if let Err(err) = d.queue.retry(e.leased.delivery.letter_id, again, "").await {
                tracing::warn!(error = %chain(&err), "could not put back a letter another print batch holds");
            }
        }
        if mine.is_empty() {
            return;
        }
        let keep = claimed.clone();
        let published = tokio::task::spawn_blocking(move || staged.publish(&keep))
            .await
            .map_err(SpoolError::from_join)
            .and_then(|r| r);
        if let Err(e) = published {
            let id = report(
                &e,
                Route::Print,
                "could not publish a print batch",
                mine.len(),
            );
            if let Err(e) = d.store.release_print(&batch).await {
                // Released at the next start (the batch is nowhere); until then the letters
                // wait, they are never lost.
                tracing::warn!(error = %chain(&e), "could not release a print batch's claim");
            }
            for e in &mine {
                d.fail_one(&e.leased, Failure::Print, id, Some(e.due_at_ms))
                    .await;
            }
            return;
        }
        let ids: Vec<LetterId> = mine.iter().map(|e| e.leased.delivery.letter_id).collect();
        let accepted_at: HashMap<LetterId, i64> = mine
            .iter()
            .map(|e| (e.leased.delivery.letter_id, e.accepted_at_ms))
            .collect();
        let now = now_ms();
        if let Some(changed) = record_spooled(d, &ids, &batch, now).await {
            record_delivered(Route::Print, &changed, &accepted_at, now);
            end.ack.extend(ids);
        }
    }
}

/// Records a published batch's letters PRINT_SPOOLED, trying again while the store does not
/// answer, for as long as the letters' lease lasts. `None` if it never answered: the batch
/// stays claimed and published, and the next start records it.
async fn record_spooled(
    d: &Deliverer,
    ids: &[LetterId],
    batch: &str,
    now: i64,
) -> Option<Vec<LetterId>> {
    let deadline = tokio::time::Instant::now() + d.config.lease;
    let mut wait = Duration::from_millis(200);
    loop {
        match d
            .store
            .mark_delivered(ids, LetterState::PrintSpooled, now, Some(batch))
            .await
        {
            Ok(changed) => return Some(changed),
            Err(e) => {
                let id = report(
                    &e,
                    Route::Print,
                    "could not record a published print batch",
                    ids.len(),
                );
                if tokio::time::Instant::now() + wait > deadline {
                    tracing::error!(error_id = %id, "a published print batch is not recorded yet; the next start records it");
                    return None;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Finishes what a crash left between the steps. Run before the workers start.
pub(super) async fn recover(d: &Deliverer) -> Result<(), DeliverError> {
    for u in d.spool.unfinished()? {
        let recorded = d.store.print_batch_letters(&u.batch).await?;
        if recorded.is_empty() {
            d.spool.discard_unfinished(&u)?;
            tracing::info!(
                batch = u.batch,
                "discarded an unclaimed print batch; its letters are still queued"
            );
        } else {
            d.spool
                .publish_unfinished(&u, &recorded.iter().copied().collect())?;
            d.store
                .mark_delivered(
                    &recorded,
                    LetterState::PrintSpooled,
                    now_ms(),
                    Some(&u.batch),
                )
                .await?;
            tracing::info!(
                batch = u.batch,
                "published a print batch a crash left unfinished"
            );
        }
    }
    for batch in d.store.claimed_print_batches().await? {
        // Checked in this order: a live owner renames its staged batch into the print directory,
        // so a batch not staged any more is either published by now or given up.
        if d.spool.is_being_staged(&batch)? {
            continue;
        }
        if d.spool.is_published(&batch) {
            let letters = d.store.print_batch_letters(&batch).await?;
            d.store
                .mark_delivered(&letters, LetterState::PrintSpooled, now_ms(), Some(&batch))
                .await?;
            tracing::info!(
                batch,
                "recorded a published print batch a crash left unrecorded"
            );
        } else {
            d.store.release_print(&batch).await?;
            tracing::info!(
                batch,
                "released the claim of a print batch that was never published"
            );
        }
    }
    Ok(())
}
