//! The store: accepted letters (sealed), their life, the mailboxes, senders and the registry.
//!
//! One small trait, one file per backend, chosen once at start-up from a URL (`open`). Every
//! method's doc says what it guarantees. Rows never hold a recipient id, title or content in
//! clear: callers hand in pseudonyms and sealed bytes.

mod blobs;
mod compact;
mod follow;
pub(crate) mod follow_sql;
mod jobs;
mod jobs_sql;
mod operators;
mod operators_sql;
mod postgres;
mod registry;
mod registry_pg;
mod registry_sqlite;
mod rows;
mod shared;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{DatabaseOptions, StoreUrl};

use crate::domain::{
    BatchId, Cvr, LetterId, LetterState, MessageUuid, Priority, Route, SenderInfo, SenderLimits,
};
use crate::seal::{ContentDigest, RecipientTag, Sealed};

pub use blobs::BlobError;
pub use follow::{
    BatchCounts, BatchRejection, EventPage, EventQuery, FollowStore, ListQuery, StoredEvent, signal,
};
pub use jobs::{JobKind, JobRecord, JobStep, JobStore, NewJob, OperatorLetter, Selection};
pub use operators::{
    AuditEntry, HeldSpan, NewAudit, OperatorCert, OperatorRevocation, OperatorStore, RouteHold,
    SenderActivity,
};
pub use postgres::PostgresStore;
pub use registry::{
    AppliedChanges, ChangeKind, ChangePage, ChangeProblem, ChangeRequest, ImportRow, LoggedChange,
    LoggedState, MAX_CHANGE_PROBLEMS, RegistryHead, RegistryImport, RegistryStore, ScanPart,
    SenderRange, StoredRecipient, SubscriberRow,
};
pub use sqlite::SqliteStore;

/// Why a store operation failed, typed so that a caller can decide what to do: only
/// `Unavailable` is worth retrying as is. Messages are short and name no host or file (they may
/// end up in front of a client); the cause, with those details, is the error's `source()`, for
/// the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable")]
    Unavailable(#[source] Cause),
    #[error("a sender with CVR {0} is already registered")]
    SenderExists(Cvr),
    #[error("no sender with CVR {0} is registered")]
    UnknownSender(Cvr),
    #[error("sender {0} has no certificate with that fingerprint")]
    UnknownCertificate(Cvr),
    #[error("operator {0} already has a certificate in use (revoke it first)")]
    OperatorExists(String),
    #[error("no operator certificate matches {0}")]
    UnknownOperator(String),
    #[error("subscriptions name recipients that are neither in the registry nor in the recipients file (lines {})", lines_list(.0))]
    UnknownSubscribers(Vec<u64>),
    /// Registry changes that cannot be made (each with its index in the batch): none was made.
    #[error("{total} registry change(s) cannot be made, none was made")]
    RegistryChanges {
        problems: Vec<(usize, ChangeProblem)>,
        total: usize,
    },
    /// A rule the database enforces refused the write: retrying the same write cannot succeed.
    #[error("the store refused the change: it breaks a {rule} constraint")]
    Constraint {
        rule: Rule,
        #[source]
        source: sqlx::Error,
    },
    /// A stored value does not fit its type (a CVR out of range, a digest of the wrong length,
    /// a letter's content missing): nothing is guessed or truncated.
    #[error("stored data is damaged: {what}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Option<Cause>,
    },
    #[error(
        "store URL {0:?} is not supported (use sqlite://PATH or postgres://USER@HOST/DATABASE)"
    )]
    UnsupportedUrl(String),
}

/// What lies behind an unavailable store or damaged data.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error("database")]
    Database(#[source] sqlx::Error),
    /// Connecting at start-up; `server` names host, port and database (never the password).
    #[error("connecting to {server}")]
    Connect {
        server: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("bringing the schema of {server} up to date")]
    Migrate {
        server: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error(transparent)]
    Sqlite(#[from] crate::db::sqlite::OpenError),
    #[error("letter content segments")]
    Blobs(#[from] BlobError),
    /// The blocking task that reads or writes segments panicked or was cancelled.
    #[error("letter content task")]
    Task(#[from] tokio::task::JoinError),
    /// Another gateway's conflicting letter was not visible after the insert waited for it.
    #[error("a letter that conflicted on insert could not be read back")]
    ConflictNotVisible,
}

/// The kind of database constraint a refused write broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Unique,
    ForeignKey,
    NotNull,
    Check,
    Exclusion,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rule::Unique => "uniqueness",
            Rule::ForeignKey => "foreign key",
            Rule::NotNull => "not-null",
            Rule::Check => "check",
            Rule::Exclusion => "exclusion",
        })
    }
}

impl StoreError {
    /// Whether the same operation later can succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

fn lines_list(lines: &[u64]) -> String {
    let shown: Vec<String> = lines.iter().take(20).map(u64::to_string).collect();
    if lines.len() > 20 {
        format!("{}, … {} in all", shown.join(", "), lines.len())
    } else {
        shown.join(", ")
    }
}

impl StoreError {
    /// A conflict with a concurrent transaction that the database resolved by failing this
    /// one (PostgreSQL's deadlock detected, 40P01, or serialisation failure, 40001; SQLite's
    /// busy or locked database): the same transaction tried again can succeed.
    pub fn is_conflict(&self) -> bool {
        let StoreError::Unavailable(Cause::Database(sqlx::Error::Database(d))) = self else {
            return false;
        };
        matches!(
            d.code().as_deref(),
            Some("40P01" | "40001" | "5" | "6" | "517" | "262")
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        let rule = match &e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => {
                return StoreError::Corrupt {
                    what: "a stored row",
                    source: Some(Cause::Database(e)),
                };
            }
            sqlx::Error::Database(d) => match d.kind() {
                ErrorKind::UniqueViolation => Some(Rule::Unique),
                ErrorKind::ForeignKeyViolation => Some(Rule::ForeignKey),
                ErrorKind::NotNullViolation => Some(Rule::NotNull),
                ErrorKind::CheckViolation => Some(Rule::Check),
                ErrorKind::ExclusionViolation => Some(Rule::Exclusion),
                // Disk full, locked, I/O error, connection lost mid-statement: may pass.
                _ => None,
            },
            _ => None,
        };
        match rule {
            // A constraint the database enforces: retrying the same write cannot succeed.
            Some(rule) => StoreError::Constraint { rule, source: e },
            None => StoreError::Unavailable(Cause::Database(e)),
        }
    }
}

impl From<BlobError> for StoreError {
    fn from(e: BlobError) -> Self {
        StoreError::Unavailable(Cause::Blobs(e))
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Unavailable(Cause::Task(e))
    }
}

/// Which of a sender's certificates to revoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// One certificate, by the SHA-256 fingerprint `senders list` shows.
    Fingerprint([u8; 32]),
    /// Every certificate but the one issued last (after a re-issue).
    AllButNewest,
}

/// A client certificate as the store knows it (never the certificate or its key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRecord {
    pub fingerprint: [u8; 32],
    pub cvr: Cvr,
    pub issued_at_ms: i64,
    /// None for certificates issued before expiry was recorded.
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// An accepted, sealed letter to store.
#[derive(Clone, Debug)]
pub struct NewLetter {
    pub letter_id: LetterId,
    pub sender: Cvr,
    pub message_uuid: MessageUuid,
    pub recipient_tag: RecipientTag,
    /// Identity of the submission for idempotency: content plus delivery options.
    pub fingerprint: ContentDigest,
    pub content_sha256: ContentDigest,
    pub route: Route,
    pub priority: Priority,
    pub sealed: Sealed,
    pub accepted_at_ms: i64,
    /// Not delivered before this time (unix ms), if set.
    pub not_before_ms: Option<i64>,
    pub batch_id: Option<BatchId>,
    /// The sender's own correlation text, kept as given.
    pub sender_reference: String,
}

/// What the store knows of a letter's life (no content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LetterRecord {
    pub letter_id: LetterId,
    pub sender: Cvr,
    pub message_uuid: MessageUuid,
    pub fingerprint: ContentDigest,
    pub content_sha256: ContentDigest,
    pub route: Route,
    pub priority: Priority,
    pub state: LetterState,
    pub accepted_at_ms: i64,
    pub not_before_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
    /// Delivery attempts made, the successful one included.
    pub attempts: u32,
    pub detail: String,
    pub batch_id: Option<BatchId>,
    pub sender_reference: String,
}

/// The result of storing one letter.
#[derive(Clone, Debug, PartialEq, Eq)]
// One per letter of a commit batch, dropped when its receipts are out: the unboxed record
// costs a little memory for that moment and saves an allocation per duplicate.
#[allow(clippy::large_enum_variant)]
pub enum InsertOutcome {
    Inserted,
    /// The sender already has a letter with this message uuid; here it is, unchanged.
    Existing(LetterRecord),
}

/// A letter as delivery needs it.
#[derive(Clone, Debug)]
pub struct StoredLetter {
    pub record: LetterRecord,
    pub recipient_tag: RecipientTag,
    pub sealed: Sealed,
}

/// Letters loaded within a byte budget (`Store::load_within`).
#[derive(Debug, Default)]
pub struct Loaded {
    /// In the order asked for; ids not in the store are left out.
    pub letters: Vec<StoredLetter>,
    /// How many of the ids asked for were handled (loaded or missing): the caller asks again
    /// for the rest.
    pub consumed: usize,
}

/// How a sender names one of its letters.
#[derive(Clone, Copy, Debug)]
pub enum LetterKey {
    LetterId(LetterId),
    MessageUuid(MessageUuid),
}

/// A delivery the queue should hold (used to re-queue after a crash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingDelivery {
    pub letter_id: LetterId,
    pub sender: Cvr,
    pub route: Route,
    pub priority: Priority,
    pub not_before_ms: i64,
    pub accepted_at_ms: i64,
}

/// Change counters, bumped by every admin change, polled by running gateways. (The registry
/// has its own change log: [`RegistryStore`].)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generations {
    pub senders: i64,
}

/// What `Store::begin_attempts` found for one letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptCount {
    pub letter_id: LetterId,
    /// Attempts so far, the one just begun included.
    pub attempts: u32,
    /// Attempts in a row before this one that ended without an outcome: the gateway died.
    pub interrupted: u32,
}

/// Letters by state, for operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub accepted: u64,
    pub scheduled: u64,
    pub delivered: u64,
    pub print_spooled: u64,
    pub failed: u64,
    pub cancelled: u64,
}

#[async_trait]
/// Every store also keeps what senders following their letters read (see `follow`), the
/// registry with its change log (see `registry`) and what operators are and did (see
/// `operators`, `jobs`).
pub trait Store:
    FollowStore + RegistryStore + OperatorStore + JobStore + Send + Sync + 'static
{
    /// Stores accepted letters in one transaction. Durable (committed and synced) on return.
    /// Per letter, in order: `Inserted`, or `Existing` when the sender already has that message
    /// uuid (stored earlier or earlier in this same batch); an existing letter is never changed.
    async fn insert_letters(&self, letters: &[NewLetter])
    -> Result<Vec<InsertOutcome>, StoreError>;

    /// One of `sender`'s letters; another sender's letter is `None`.
    async fn letter(&self, sender: Cvr, key: LetterKey)
    -> Result<Option<LetterRecord>, StoreError>;

    /// The letters with these ids (missing ids are left out).
    async fn load_for_delivery(&self, ids: &[LetterId]) -> Result<Vec<StoredLetter>, StoreError>;

    /// The first letters of `ids`, in order, as many as fit in `max_bytes` of ciphertext (the
    /// first one always, however large), in a couple of round trips rather than one per
    /// letter: delivery's reads. `consumed` says how many ids were handled.
    async fn load_within(&self, ids: &[LetterId], max_bytes: u64) -> Result<Loaded, StoreError>;

    /// Moves letters to `Delivered` (and into the recipient's mailbox, in the same transaction)
    /// or `PrintSpooled` (recording the print batch). Only letters still waiting and not claimed
    /// by another print batch (`claim_print`) change: the same waiting condition a recall has,
    /// so a cancelled letter never changes. The ids that changed are returned, so a letter is
    /// delivered exactly once however often this is called for it. Each change writes its
    /// event in the same transaction (attempts were counted before the work, by
    /// `begin_attempts`). Durable on return.
    async fn mark_delivered(
        &self,
        ids: &[LetterId],
        state: LetterState,
        at_ms: i64,
        print_batch: Option<&str>,
    ) -> Result<Vec<LetterId>, StoreError>;

    /// Counts one more delivery attempt on each of these letters that is still waiting, before
    /// any work is done on it. Durable on return, so an attempt the process dies in is on
    /// record. Per waiting letter (others are left out): the attempts so far, this one
    /// included, and how many attempts in a row before this one ended without an outcome
    /// recorded (`record_failure`, a delivery, a failure).
    async fn begin_attempts(&self, ids: &[LetterId]) -> Result<Vec<AttemptCount>, StoreError>;

    /// Records why a begun attempt failed (a fixed text: no recipient data, nothing a sender
    /// wrote, no error chain). The attempt itself was counted by `begin_attempts`.
    async fn record_failure(&self, id: LetterId, detail: &str) -> Result<(), StoreError>;

    /// Claims waiting letters for print batch `batch` before it is published: each of `ids`
    /// still waiting and not claimed by another batch gets the batch's name. Returns the
    /// claimed ones (a letter already claimed by `batch` included). Durable on return.
    async fn claim_print(&self, ids: &[LetterId], batch: &str)
    -> Result<Vec<LetterId>, StoreError>;

    /// Gives up a print batch's claims on letters still waiting (the batch was not published).
    async fn release_print(&self, batch: &str) -> Result<(), StoreError>;

    /// Print batches that hold claims on letters still waiting (start-up recovery).
    async fn claimed_print_batches(&self) -> Result<Vec<String>, StoreError>;

    /// Ends a letter as `Failed` after its retries are spent.
    async fn mark_failed(&self, id: LetterId, detail: &str) -> Result<(), StoreError>;

    /// Puts a failed letter back to waiting (an operator's retry from the dead letters).
    async fn reopen(&self, id: LetterId) -> Result<bool, StoreError>;

    /// Every letter accepted but not yet delivered, for re-queueing after a crash.
    async fn undelivered(&self) -> Result<Vec<PendingDelivery>, StoreError>;

    /// Records that the queue holds these letters' deliveries (it confirmed them), at `at_ms`.
    /// Idempotent: a letter marked again gets the later time. Durable on return.
    async fn mark_queued(&self, ids: &[LetterId], at_ms: i64) -> Result<(), StoreError>;

    /// Waiting letters accepted at or before `accepted_by_ms` whose delivery is not known to be
    /// queued: no mark, or marked before `stale_before_ms` while already due then. Oldest
    /// first, at most `limit`. What the outbox sweep re-queues.
    async fn unqueued(
        &self,
        accepted_by_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// Drops up to `limit` marks of letters no longer waiting; returns how many.
    async fn forget_finished_marks(&self, limit: usize) -> Result<u64, StoreError>;

    /// Drops every publish marker (the queue lost what it held). Durable on return.
    async fn forget_all_marks(&self) -> Result<(), StoreError>;

    /// Bytes the store takes on disk: SQLite's database, journal and content segments, or the
    /// PostgreSQL database. For `brevdue_store_bytes`.
    async fn stored_bytes(&self) -> Result<u64, StoreError>;

    /// Purges the content (ciphertext and wrapped data key) of up to `limit` letters handed to
    /// print before `delivered_before_ms`; returns how many. Never touches a letter that is
    /// waiting, or one in a mailbox (the mailbox's until it deletes it). The row stays: status,
    /// events and the idempotency key outlive the content. Durable on return.
    async fn purge_content(
        &self,
        delivered_before_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError>;

    /// Gives back the disk purged content took: SQLite removes content segments no letter
    /// points into, and rewrites those mostly purged whose letters are all done; PostgreSQL
    /// leaves it to autovacuum. Returns the bytes freed.
    async fn compact(&self) -> Result<u64, StoreError>;

    /// The letters recorded as printed in this batch (decides a half-written spool batch's
    /// fate after a crash: none means discard, otherwise publish exactly these).
    async fn print_batch_letters(&self, batch: &str) -> Result<Vec<LetterId>, StoreError>;

    /// How many letters are in the recipient's mailbox. For tests: it scans the mailbox table
    /// (no index on recipients, which would cost a random page write per letter delivered).
    async fn mailbox_count(&self, tag: &RecipientTag) -> Result<u64, StoreError>;

    async fn state_counts(&self) -> Result<StateCounts, StoreError>;

    /// Registers a sender with its first certificate. Refuses a CVR already registered.
    async fn add_sender(
        &self,
        sender: &SenderInfo,
        cert_fingerprint: [u8; 32],
    ) -> Result<(), StoreError>;

    /// Records one more certificate for a registered sender (re-issue).
    async fn add_sender_cert(&self, cvr: Cvr, cert_fingerprint: [u8; 32])
    -> Result<(), StoreError>;

    async fn set_suspended(&self, cvr: Cvr, suspended: bool) -> Result<(), StoreError>;

    /// Replaces a sender's share and limits (checked by the caller).
    async fn set_sender_limits(&self, cvr: Cvr, limits: &SenderLimits) -> Result<(), StoreError>;

    /// All senders and the fingerprints of their certificates that are not revoked.
    async fn senders(&self) -> Result<(Vec<SenderInfo>, Vec<([u8; 32], Cvr)>), StoreError>;

    /// Records when a certificate stops being valid (shown by `senders list`; TLS itself
    /// refuses an expired certificate). Durable on return.
    async fn record_cert_expiry(
        &self,
        fingerprint: [u8; 32],
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Revokes certificates of `cvr` and returns the fingerprints it revoked (none when they
    /// were revoked already: idempotent). Durable on return; every running gateway refuses them
    /// within its refresh interval. `UnknownCertificate` when a named fingerprint is not one of
    /// this sender's.
    async fn revoke_certs(&self, cvr: Cvr, which: Revocation) -> Result<Vec<[u8; 32]>, StoreError>;

    /// Every certificate ever issued, with its dates and whether it is revoked.
    async fn certificates(&self) -> Result<Vec<CertRecord>, StoreError>;

    async fn generations(&self) -> Result<Generations, StoreError>;

    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store a URL names: SQLite, created if missing, or PostgreSQL, whose schema is
/// created or migrated on open. The one place that chooses a backend.
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, &DatabaseOptions::default()).await
}

/// [`open`] with the configured pool sizes and deadlines.
pub async fn open_with(
    url: &StoreUrl,
    options: &DatabaseOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        StoreUrl::Postgres(u) => Ok(Arc::new(PostgresStore::connect_with(u, options).await?)),
        StoreUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open_with(path, options).await?)),
    }
}
