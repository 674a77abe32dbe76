//! Delivery: workers that take queued letters to the recipient's mailbox or to the print spool.
//!
//! A worker leases a round of letters from the queue and counts an attempt on each in the store
//! before it does any work, so a letter that takes the process down (it ran out of memory, it
//! aborted) has that attempt on record: one interrupted too often in a row is dead-lettered
//! instead of being tried again, and can never crash-loop the gateway. Letters that were
//! interrupted before are handled last, one at a time, so they cannot take their round down
//! with them.
//!
//! Letters are then handled one at a time: loaded, opened (which also proves they were not
//! altered), handed over and dropped, so a worker holds one letter's content whatever the
//! round's size. Mailbox letters are recorded delivered together at the end of the round; print
//! letters are staged into print batches of at most `batch_bytes` (`print_batch.rs`). The
//! store's state change is conditional, so a letter handed out twice (a lease that ran out, a
//! queue entry written twice after a crash) is delivered once. Failures go back to the queue
//! with exponential back-off until the letter has been due for its maximum age, then to the
//! dead letters, where operators can see, retry or purge them (`failure.rs`).

//!
//! Both routes hand over MeMo: the print spool keeps each letter's MeMo message beside its
//! documents, and the mailbox outbox keeps the MeMo message of every letter handed to a
//! mailbox, sealed, in batches bounded by `batch_bytes` like print. A letter that came as MeMo
//! goes on byte for byte as it came; one sent as fields gets a message in
//! `memo.produce_version`.

mod failure;
pub mod mailbox;
mod order;
pub mod print;
mod print_batch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_ms;
use crate::directory::Directory;
use crate::domain::{LetterId, LetterState, Route};
use crate::error_report::chain;
use crate::queue::{Leased, Queue};
use crate::seal::{Binding, body, open_owned};
use crate::store::{Store, StoredLetter};
use crate::telemetry;

use failure::{Failure, due_at, report};
pub use mailbox::{MailboxOutbox, OutboxEntry, OutboxError, OutboxWriter};
pub use order::HandOverOrder;
pub use print::{PrintLetter, PrintSpool};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// False: this instance only accepts letters, and their deliveries wait in the queue for an
    /// instance that delivers (separate intake and delivery instances, or delivery held while
    /// the print side is under maintenance).
    pub enabled: bool,
    /// Letter references a worker takes from the queue at once (one round). Letters are loaded
    /// `load_bytes` at a time, so this bounds no content in memory.
    pub batch: usize,
    /// Mailbox workers, each leasing its own rounds: while one waits for its commits another
    /// loads and opens letters; rounds are still recorded delivered in the order they were
    /// leased (`order.rs`). Measured from outside (200,000 letters of 10 KB, embedded), two
    /// workers kept delivery level with intake (under 1 % waiting at its end) where one left
    /// 23-31 % waiting. Print has one worker (its batches are published in order).
    pub mailbox_workers: usize,
    /// The most ciphertext a worker loads from the store at once (the first letter always,
    /// however large): letters come in a couple of round trips per chunk, not one each.
    pub load_bytes: ByteSize,
    /// The most document bytes in one print batch; a round cuts a new batch past it.
    pub batch_bytes: ByteSize,
    /// The most sealed MeMo bytes in one mailbox outbox batch: past it the batch is synced,
    /// recorded and published, and a new one begun. Entries are written to the batch file as
    /// they are made, so this bounds no memory.
    pub outbox_batch_bytes: ByteSize,
    /// How long a taken letter stays with its worker before it is handed out again.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// First retry delay; doubled each attempt.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// After this long since it became due (accepted, or its scheduled time) a failing letter
    /// ends FAILED and is dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// A letter whose delivery was interrupted (the gateway died while handling it) this many
    /// times in a row ends FAILED and is dead-lettered without another try.
    pub max_interrupted: u32,
    /// How long an idle worker waits before looking at the queue again.
    #[serde(with = "humantime_serde")]
    pub idle_poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            // A round's commits (lease, attempts, outbox sync, delivered, ack) are shared by
            // its letters: measured from outside, 1,024 let delivery keep up with a third more
            // of intake than 256 did.
            batch: 1024,
            mailbox_workers: 2,
            load_bytes: ByteSize::mib(8),
            batch_bytes: ByteSize::mib(64),
            outbox_batch_bytes: ByteSize::mib(16),
            lease: Duration::from_secs(120),
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            max_age: Duration::from_secs(72 * 3600),
            max_interrupted: 3,
            idle_poll: Duration::from_millis(250),
        }
    }
}

/// What delivery needs, shared by its workers.
pub struct Deliverer {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub directory: Arc<Directory>,
    pub spool: PrintSpool,
    /// Where mailbox hand-offs keep their MeMo messages.
    pub mailbox: MailboxOutbox,
    pub config: DeliveryConfig,
    /// The MeMo version written for letters sent as fields.
    pub memo: crate::memo::MemoConfig,
    /// Routes operators hold: asked before every lease, and by the maximum age.
    pub holds: Arc<crate::operators::Holds>,
    /// Mailbox rounds record their deliveries in the order they were leased (`order.rs`).
    pub mailbox_order: HandOverOrder,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("delivery store")]
    Store(#[from] crate::store::StoreError),
    #[error("delivery queue")]
    Queue(#[from] crate::queue::QueueError),
    #[error("print spool")]
    Spool(#[from] print::SpoolError),
    #[error("{0}")]
    Outbox(#[from] OutboxError),
}

/// One leased letter in a round, with what counting its attempt found.
struct Turn {
    leased: Leased,
    /// Earlier attempts in a row that ended without an outcome (the gateway died).
    interrupted: u32,
}

/// What a round hands over at its end: letters to record delivered (mailbox) and to
/// acknowledge.
#[derive(Default)]
struct RoundEnd {
    /// Opened mailbox letters with when each was accepted and became due.
    mailbox: Vec<(Leased, i64, i64)>,
    /// The round's place in line for recording mailbox deliveries (none for print).
    place: Option<order::Place>,
    /// The outbox batch their sealed MeMo messages are being written to, entry by entry.
    outbox: Option<mailbox::OutboxWriter>,
    ack: Vec<LetterId>,
}

impl Deliverer {
    /// Finishes what a crash left half-done in the print spool. Run before the workers start.
    pub async fn recover_spool(&self) -> Result<(), DeliverError> {
        print_batch::recover(self).await?;
        for u in self.mailbox.unfinished()? {
            let recorded = self.store.print_batch_letters(&u.batch).await?;
            let keep = recorded.into_iter().collect();
            self.mailbox.finish_unfinished(&u, &keep)?;
            tracing::info!(
                batch = u.batch,
                "finished a mailbox batch a crash left unpublished"
            );
        }
        Ok(())
    }

    /// Starts the mailbox workers and the print worker.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, cancel: CancellationToken) {
        let mailbox = std::iter::repeat_n(Route::Mailbox, self.config.mailbox_workers.max(1));
        for route in mailbox.chain([Route::Print]) {
            let me = self.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move { me.run(route, cancel).await });
        }
    }

    async fn run(self: Arc<Self>, route: Route, cancel: CancellationToken) {
        while !cancel.is_cancelled() {
            // A held route's letters stay in the queue untouched until it is released.
            if self.holds.is_held(route) {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(self.config.idle_poll) => continue,
                }
            }
            let lease = self
                .queue
                .lease(route, self.config.batch, self.config.lease);
            let (leased, place) = match route {
                Route::Mailbox => self.mailbox_order.lease(lease).await,
                Route::Print => (lease.await, None),
            };
            let leased = match leased {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %chain(&e), route = telemetry::route_label(route), "queue unavailable; delivery paused");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            // Held while this worker waited for letters: they go back untried.
            if self.holds.is_held(route) && !leased.is_empty() {
                for l in &leased {
                    let back = self
                        .queue
                        .retry(
                            l.delivery.letter_id,
                            crate::clock::now_ms(),
                            "the route is held by an operator",
                        )
                        .await;
                    if let Err(e) = back {
                        // The lease runs out and the letter is handed out again.
                        tracing::warn!(error = %chain(&e), "could not give a letter of a held route back to the queue");
                    }
                }
                continue;
            }
            if leased.is_empty() {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = self.queue.wait_for_work(self.config.idle_poll) => continue,
                }
            }
            self.deliver_round(route, leased, place).await;
        }
    }

    /// One round: count the attempts, then every letter one at a time, the suspects last.
    async fn deliver_round(&self, route: Route, leased: Vec<Leased>, place: Option<order::Place>) {
        let ids: Vec<LetterId> = leased.iter().map(|l| l.delivery.letter_id).collect();
        let counts = match self.store.begin_attempts(&ids).await {
            Ok(c) => c,
            Err(e) => {
                // Nothing was tried: without the attempt on record no work starts.
                let id = report(&e, route, "could not count delivery attempts", ids.len());
                for l in &leased {
                    self.fail_one(l, Failure::Store, id, None).await;
                }
                return;
            }
        };
        let interrupted: HashMap<LetterId, u32> = counts
            .iter()
            .map(|c| (c.letter_id, c.interrupted))
            .collect();
        let mut end = RoundEnd {
            place,
            ..RoundEnd::default()
        };
        let (mut first, mut suspects) = (Vec::new(), Vec::new());
        for l in leased {
            match interrupted.get(&l.delivery.letter_id) {
                // Not waiting any more (delivered, failed, or gone): only the ack is left.
                None => end.ack.push(l.delivery.letter_id),
                Some(&n) if n >= self.config.max_interrupted.max(1) => {
                    let id = crate::error_report::ErrorId::new();
                    tracing::error!(error_id = %id, letter = %l.delivery.letter_id, interrupted = n, "delivery was interrupted repeatedly; the letter is dead-lettered");
                    self.fail_one(&l, Failure::Interrupted, id, None).await;
                }
                Some(&n) if n > 0 => suspects.push(Turn {
                    leased: l,
                    interrupted: n,
                }),
                Some(_) => first.push(Turn {
                    leased: l,
                    interrupted: 0,
                }),
            }
        }
        let mut batch = print_batch::PrintRound::new();
        self.deliver_turns(route, &first, &mut batch, &mut end)
            .await;
        self.finish(route, &mut batch, &mut end).await;
        // Each suspect alone, its outcome recorded before the next one is touched.
        for t in &suspects {
            tracing::info!(letter = %t.leased.delivery.letter_id, interrupted = t.interrupted, "retrying a letter whose delivery was interrupted, on its own");
            self.deliver_turns(route, std::slice::from_ref(t), &mut batch, &mut end)
                .await;
            self.finish(route, &mut batch, &mut end).await;
        }
    }

    /// Loads the turns' letters `load_bytes` at a time and hands each chunk over; a chunk's
    /// content is dropped before the next is loaded.
    async fn deliver_turns(
        &self,
        route: Route,
        turns: &[Turn],
        batch: &mut print_batch::PrintRound,
        end: &mut RoundEnd,
    ) {
        let mut next = 0;
        while next < turns.len() {
            let ids: Vec<LetterId> = turns[next..]
                .iter()
                .map(|t| t.leased.delivery.letter_id)
                .collect();
            let loaded = match self
                .store
                .load_within(&ids, self.config.load_bytes.as_u64())
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    let eid = report(&e, route, "could not load letters for delivery", ids.len());
                    for t in &turns[next..] {
                        self.fail_one(&t.leased, Failure::Store, eid, None).await;
                    }
                    return;
                }
            };
            let chunk = &turns[next..next + loaded.consumed.clamp(1, ids.len())];
            next += chunk.len();
            let mut found: HashMap<LetterId, StoredLetter> = loaded
                .letters
                .into_iter()
                .map(|s| (s.record.letter_id, s))
                .collect();
            let mut waiting = Vec::with_capacity(chunk.len());
            for t in chunk {
                let id = t.leased.delivery.letter_id;
                match found.remove(&id) {
                    // Gone, or not waiting any more (delivered, failed, cancelled): only the
                    // ack is left.
                    Some(s)
                        if matches!(
                            s.record.state,
                            LetterState::Accepted | LetterState::Scheduled
                        ) =>
                    {
                        waiting.push((t.leased.clone(), s));
                    }
                    _ => end.ack.push(id),
                }
            }
            match route {
                Route::Mailbox => self.deliver_mailbox(waiting, end).await,
                Route::Print => {
                    for (l, s) in waiting {
                        self.deliver_print(&l, s, batch, end).await;
                    }
                }
            }
        }
    }

    /// Opens a chunk of mailbox letters and writes their sealed MeMo messages to the outbox
    /// batch, all in one blocking task (real work for large letters, and one hand-off per chunk
    /// instead of one per letter); records the batch once it passes `outbox_batch_bytes`.
    async fn deliver_mailbox(&self, letters: Vec<(Leased, StoredLetter)>, end: &mut RoundEnd) {
        if letters.is_empty() {
            return;
        }
        let route = Route::Mailbox;
        let directory = self.directory.clone();
        let memo_config = self.memo.clone();
        let outbox = self.mailbox.clone();
        let writer = end.outbox.take();
        let work = tokio::task::spawn_blocking(move || {
            write_mailbox_chunk(&directory, &memo_config, &outbox, writer, letters)
        })
        .await;
        let (writer, results) = match work {
            Ok(w) => w,
            Err(e) => {
                // The task died with the chunk (and the batch it was writing): everything in
                // that batch goes back to the queue.
                let e = OutboxError::Task(e.to_string());
                let eid = report(
                    &e,
                    route,
                    "could not write the mailbox outbox",
                    end.mailbox.len(),
                );
                for (l, _, due) in std::mem::take(&mut end.mailbox) {
                    self.fail_one(&l, Failure::Store, eid, Some(due)).await;
                }
                return;
            }
        };
        end.outbox = writer;
        for (l, accepted_at, due, result) in results {
            match result {
                Ok(()) => end.mailbox.push((l, accepted_at, due)),
                Err(ChunkError::Open(e)) => {
                    let eid = report(&e, route, "a sealed letter could not be opened", 1);
                    self.fail_one(&l, Failure::Unreadable, eid, Some(due)).await;
                }
                Err(ChunkError::Memo(e)) => {
                    let eid = report(&e, route, "a mailbox MeMo message could not be made", 1);
                    self.fail_one(&l, Failure::Unreadable, eid, Some(due)).await;
                }
                Err(ChunkError::Write(e)) => {
                    let eid = report(&e, route, "could not write the mailbox outbox", 1);
                    self.fail_one(&l, Failure::Store, eid, Some(due)).await;
                }
            }
        }
        let full = end
            .outbox
            .as_ref()
            .is_some_and(|w| w.bytes() >= self.config.outbox_batch_bytes.as_u64());
        if full {
            self.flush_mailbox(route, end).await;
        }
    }

    /// Opens and stages one print letter; its content is dropped on return.
    async fn deliver_print(
        &self,
        l: &Leased,
        mut s: StoredLetter,
        batch: &mut print_batch::PrintRound,
        end: &mut RoundEnd,
    ) {
        let route = Route::Print;
        let due = due_at(s.record.accepted_at_ms, s.record.not_before_ms);
        let (letter, memo) = match open_letter(&self.directory, &mut s) {
            Ok(o) => o,
            Err(e) => {
                let eid = report(&e, route, "a sealed letter could not be opened", 1);
                self.fail_one(l, Failure::Unreadable, eid, Some(due)).await;
                return;
            }
        };
        let accepted_at = s.record.accepted_at_ms;
        let p = print_letter(&self.directory, s, letter, memo, &self.memo);
        batch.add(self, l.clone(), p, accepted_at, due, end).await;
    }

    /// Hands the round's mailbox letters over: their MeMo messages written to the outbox under
    /// a temporary name (synced), the letters recorded delivered with that batch id (so
    /// recovery can finish the outbox after a crash), then the outbox batch published with the
    /// letters the store recorded.
    async fn flush_mailbox(&self, route: Route, end: &mut RoundEnd) {
        let Some(writer) = end.outbox.take() else {
            return;
        };
        let handed = std::mem::take(&mut end.mailbox);
        let ids: Vec<LetterId> = handed
            .iter()
            .map(|(l, _, _)| l.delivery.letter_id)
            .collect();
        let accepted_at: HashMap<LetterId, i64> = handed
            .iter()
            .map(|(l, at, _)| (l.delivery.letter_id, *at))
            .collect();
        let batch = writer.batch().to_string();
        let written = writer.written();
        let wrote = tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(|e| OutboxError::Task(e.to_string()))
            .and_then(|r| r);
        if handed.is_empty() {
            // Only failed letters were written: the batch is discarded at the next start.
            return;
        }
        if let Err(e) = wrote {
            let eid = report(&e, route, "could not write the mailbox outbox", ids.len());
            for (l, _, due) in &handed {
                self.fail_one(l, Failure::Store, eid, Some(*due)).await;
            }
            return;
        }
        // Written and synced in parallel with other rounds; recorded after the rounds leased
        // before this one.
        if let Some(place) = end.place.as_mut() {
            place.wait().await;
        }
        let now = now_ms();
        match self
            .store
            .mark_delivered(&ids, LetterState::Delivered, now, Some(&batch))
            .await
        {
            Ok(changed) => {
                if let Err(e) =
                    self.mailbox
                        .publish(&batch, &changed.iter().copied().collect(), written)
                {
                    // Delivered in the store; the outbox batch is finished at the next start.
                    report(
                        &e,
                        route,
                        "could not publish a mailbox outbox batch",
                        written,
                    );
                }
                record_delivered(route, &changed, &accepted_at, now);
                end.ack.extend(ids);
            }
            Err(e) => {
                // Not acknowledged: the letters are retried (their attempt is counted); the
                // unpublished outbox batch is discarded at the next start, as the store does
                // not know it.
                let eid = report(&e, route, "could not record mailbox deliveries", ids.len());
                for (l, _, due) in &handed {
                    self.fail_one(l, Failure::Store, eid, Some(*due)).await;
                }
            }
        }
    }

    /// Records what the round handed over so far: the print batch published, the mailbox
    /// letters delivered, everything settled acknowledged.
    async fn finish(&self, route: Route, batch: &mut print_batch::PrintRound, end: &mut RoundEnd) {
        batch.finish(self, end).await;
        self.flush_mailbox(route, end).await;
        if !end.ack.is_empty() {
            let ack = std::mem::take(&mut end.ack);
            if let Err(e) = self.queue.ack(&ack).await {
                // Handed out again later and skipped as delivered: nothing is lost.
                tracing::warn!(error = %chain(&e), letters = ack.len(), "could not acknowledge delivered letters");
            }
        }
    }
}

/// Opens a stored letter (which also proves it was not altered) and decodes it. Its
/// ciphertext is decrypted in place, so it is gone from `s` after.
fn open_letter(
    directory: &Directory,
    s: &mut StoredLetter,
) -> Result<(crate::domain::Letter, Option<Vec<u8>>), OpenError> {
    let letter_id = s.record.letter_id.to_string();
    let binding = Binding {
        letter_id: &letter_id,
        sender: s.record.sender,
        recipient: &s.recipient_tag,
    };
    let plain = open_owned(&directory.keyring(), &binding, &mut s.sealed)?;
    Ok(body::decode_with_memo(&plain)?)
}

/// Why one letter of a mailbox chunk was not handed over.
enum ChunkError {
    Open(OpenError),
    Memo(OutboxError),
    Write(OutboxError),
}

/// One letter of a chunk: the lease, when it was accepted and became due, and how it went.
type ChunkResult = (Leased, i64, i64, Result<(), ChunkError>);

/// Opens each letter, makes and seals its MeMo message and appends it to the outbox batch
/// (begun here when there is none), one letter at a time: each letter's content and message
/// are dropped before the next is opened. Runs on the blocking pool.
fn write_mailbox_chunk(
    directory: &Directory,
    memo_config: &crate::memo::MemoConfig,
    outbox: &MailboxOutbox,
    mut writer: Option<mailbox::OutboxWriter>,
    letters: Vec<(Leased, StoredLetter)>,
) -> (Option<mailbox::OutboxWriter>, Vec<ChunkResult>) {
    let mut results = Vec::with_capacity(letters.len());
    for (l, mut s) in letters {
        let accepted_at = s.record.accepted_at_ms;
        let due = due_at(accepted_at, s.record.not_before_ms);
        let result = (|| {
            let (letter, memo) = open_letter(directory, &mut s).map_err(ChunkError::Open)?;
            let entry =
                mailbox_entry(directory, memo_config, s, letter, memo).map_err(ChunkError::Memo)?;
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(
                    outbox
                        .begin_batch(&LetterId::new().to_string())
                        .map_err(ChunkError::Write)?,
                ),
            };
            w.append(&entry).map_err(ChunkError::Write)
        })();
        results.push((l, accepted_at, due, result));
    }
    (writer, results)
}

/// Why a sealed letter did not open.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("opening the envelope")]
    Seal(#[from] crate::seal::SealError),
    #[error("decoding the letter")]
    Body(#[from] body::BodyError),
}

/// Counts the letters that changed state now (not those a duplicate queue entry handed out
/// again) and how long each waited since it was accepted.
fn record_delivered(
    route: Route,
    changed: &[LetterId],
    accepted_at: &HashMap<LetterId, i64>,
    now: i64,
) {
    telemetry::delivered(route, changed.len());
    for id in changed {
        if let Some(at) = accepted_at.get(id) {
            let waited = Duration::from_millis((now - at).max(0) as u64);
            telemetry::delivery_lag(route, waited);
        }
    }
}

/// Exponential back-off: initial × 2^attempts, capped.
pub fn backoff(config: &DeliveryConfig, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX);
    config
        .retry_initial
        .saturating_mul(factor)
        .min(config.retry_max)
}

/// The sealed MeMo message of one letter for its mailbox.
fn mailbox_entry(
    directory: &Directory,
    memo_config: &crate::memo::MemoConfig,
    s: StoredLetter,
    letter: crate::domain::Letter,
    memo: Option<Vec<u8>>,
) -> Result<OutboxEntry, OutboxError> {
    let memo = memo.unwrap_or_else(|| produce_memo(directory, &s, letter, memo_config));
    OutboxEntry::seal(
        &directory.keyring(),
        s.record.letter_id,
        s.record.sender,
        &s.recipient_tag,
        memo,
    )
}

fn sender_of(directory: &Directory, cvr: crate::domain::Cvr) -> crate::domain::SenderInfo {
    directory.sender(cvr).unwrap_or(crate::domain::SenderInfo {
        cvr,
        name: String::new(),
        kind: crate::domain::SenderKind::Public,
        suspended: false,
        limits: Default::default(),
    })
}

/// The MeMo message for a letter sent as fields, in the configured version. `createdDateTime`
/// is the acceptance time, so the same letter always gives the same message.
fn produce_memo(
    directory: &Directory,
    s: &StoredLetter,
    letter: crate::domain::Letter,
    memo_config: &crate::memo::MemoConfig,
) -> Vec<u8> {
    let sender = sender_of(directory, s.record.sender);
    let created = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(s.record.accepted_at_ms) * 1_000_000,
    )
    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    crate::memo::write(&crate::memo::MemoMessage::from_owned_letter(
        letter,
        &sender,
        created,
        memo_config.produce_version,
    ))
}

/// A letter for the print spool, with its MeMo form: the message as the sender submitted it,
/// or one made from the letter.
fn print_letter(
    directory: &Directory,
    s: StoredLetter,
    letter: crate::domain::Letter,
    memo: Option<Vec<u8>>,
    memo_config: &crate::memo::MemoConfig,
) -> PrintLetter {
    // The print spool keeps the letter beside its message.
    let memo = memo.unwrap_or_else(|| produce_memo(directory, &s, letter.clone(), memo_config));
    PrintLetter {
        letter_id: s.record.letter_id,
        sender: s.record.sender,
        sender_name: sender_of(directory, s.record.sender).name,
        letter,
        memo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = DeliveryConfig {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            ..DeliveryConfig::default()
        };
        assert_eq!(backoff(&c, 0), Duration::from_secs(1));
        assert_eq!(backoff(&c, 3), Duration::from_secs(8));
        assert_eq!(backoff(&c, 10), Duration::from_secs(60));
        assert_eq!(backoff(&c, 1000), Duration::from_secs(60));
    }
}
