//! The store contract: one suite, run against every backend.
//!
//! Each test is an async function of a [`Backend`]; `contract!` runs it once against SQLite (a
//! temporary file) and once against PostgreSQL (a fresh database per test, dropped afterwards
//! even when the test fails). Letters are sealed with the crate's real sealing, as the gateway
//! seals them. PostgreSQL is expected at 127.0.0.1:5432 (override the admin URL with
//! `BREVDUE_TEST_POSTGRES`); when it is not reachable the PostgreSQL tests fail and say how to
//! start it, they never pass silently.

mod common;

use common::backends::PgDatabase;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brevdue::domain::{
    Cvr, Document, Letter, LetterId, LetterState, MessageUuid, Priority, RecipientId, SenderKind,
};
use brevdue::domain::{RecipientStatus, Route, SenderInfo};
use brevdue::seal::{
    Binding, KekId, KeyRing, Pseudonymizer, RecipientTag, RowCipher, body, open, seal,
};
use brevdue::store::{
    InsertOutcome, LetterKey, NewLetter, PostgresStore, RecipientRow, SqliteStore, Store,
    StoreError, SubscriptionRow,
};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

enum Target {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgDatabase),
}

/// One backend's database for one test. `open` gives another store instance on the same
/// database, as another gateway process would have.
struct Backend {
    target: Target,
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.db");
        Backend {
            target: Target::Sqlite { _dir: dir, path },
        }
    }

    async fn postgres() -> Backend {
        Backend {
            target: Target::Postgres(PgDatabase::create().await),
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        match &self.target {
            Target::Sqlite { path, .. } => {
                Arc::new(SqliteStore::open(path).await.expect("open SQLite store"))
            }
            Target::Postgres(db) => Arc::new(
                PostgresStore::connect(&db.url, 8)
                    .await
                    .expect("open PostgreSQL store"),
            ),
        }
    }

    fn name(&self) -> &'static str {
        match self.target {
            Target::Sqlite { .. } => "SQLite",
            Target::Postgres(_) => "PostgreSQL",
        }
    }
}

async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Backend::sqlite().await).await
}

async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Backend::postgres().await).await
}

/// Runs every named contract test against every backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_sqlite(super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_postgres(super::$name).await
                }
            )*
        }
    };
}

contract!(
    insert_then_resend_is_existing,
    same_uuid_twice_in_one_batch,
    same_uuid_from_two_senders,
    letter_is_scoped_to_its_sender,
    load_for_delivery_returns_the_sealed_letter,
    mark_delivered_exactly_once,
    attempts_failure_and_reopen,
    undelivered_lists_only_waiting_letters,
    print_batch_recorded,
    state_counts,
    senders_and_generations,
    import_registry_is_all_or_nothing,
    import_registry_replaces_subscriptions,
    load_registry_round_trip,
    concurrent_instances_store_each_pair_once,
);

// ---------------------------------------------------------------------------------------------
// Letters, sealed for real
// ---------------------------------------------------------------------------------------------

fn cvr(s: &str) -> Cvr {
    s.parse().expect("valid CVR")
}

const AUTHORITY: &str = "29403473";
const BANK: &str = "10103940";

fn ring() -> KeyRing {
    KeyRing::from_keys(KekId(1), [(KekId(1), [3u8; 32])]).expect("key ring")
}

fn plain_letter(uuid: MessageUuid, text: &str, size: usize) -> Letter {
    let mut content = format!("%PDF-1.4\n{text}\n").into_bytes();
    content.resize(size.max(content.len()), b'x');
    Letter {
        message_uuid: uuid,
        recipient: "0101901234".parse().expect("CPR"),
        title: "Contract test letter".into(),
        main_document: Document {
            filename: "a.pdf".into(),
            media_type: "application/pdf".into(),
            content,
        },
        attachments: vec![],
        print_fallback: false,
        priority: Priority::Normal,
        sender_reference: String::new(),
    }
}

/// A letter as the pipeline hands it to the store: digested, fingerprinted and sealed.
fn sealed_letter(
    ring: &KeyRing,
    sender: Cvr,
    uuid: MessageUuid,
    tag: RecipientTag,
    text: &str,
    size: usize,
) -> NewLetter {
    let letter = plain_letter(uuid, text, size);
    let letter_id = LetterId::new();
    let lid = letter_id.to_string();
    let content = body::content_digest(&letter);
    let sealed = seal(
        ring,
        &Binding {
            letter_id: &lid,
            sender,
            recipient: &tag,
        },
        body::encode(&letter),
    )
    .expect("seal");
    NewLetter {
        letter_id,
        sender,
        message_uuid: uuid,
        recipient_tag: tag,
        fingerprint: body::fingerprint(&letter, &content),
        content_sha256: content,
        route: Route::Mailbox,
        priority: Priority::Normal,
        sealed,
        accepted_at_ms: 1_700_000_000_000,
        not_before_ms: None,
    }
}

fn letter(sender: Cvr, text: &str) -> NewLetter {
    sealed_letter(&ring(), sender, MessageUuid::random(), [1u8; 32], text, 256)
}

fn existing(outcome: &InsertOutcome) -> &brevdue::store::LetterRecord {
    match outcome {
        InsertOutcome::Existing(r) => r,
        InsertOutcome::Inserted => panic!("expected Existing, got Inserted"),
    }
}

async fn state_of(store: &Arc<dyn Store>, l: &NewLetter) -> LetterState {
    store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("letter exists")
        .state
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

async fn insert_then_resend_is_existing(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(AUTHORITY);
    let uuid = MessageUuid::random();
    let first = sealed_letter(&ring, sender, uuid, [1; 32], "original", 512);
    let out = store
        .insert_letters(std::slice::from_ref(&first))
        .await
        .expect("insert");
    assert_eq!(out, vec![InsertOutcome::Inserted]);
    let stored = store
        .letter(sender, LetterKey::MessageUuid(uuid))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!(stored.letter_id, first.letter_id);
    assert_eq!(stored.fingerprint, first.fingerprint);
    assert_eq!(stored.content_sha256, first.content_sha256);
    assert_eq!(stored.state, LetterState::Accepted);
    assert_eq!(stored.attempts, 0);

    // The same letter again, under the new letter id a gateway would give it.
    let same = sealed_letter(&ring, sender, uuid, [1; 32], "original", 512);
    let out = store.insert_letters(&[same]).await.expect("resend");
    assert_eq!(existing(&out[0]), &stored);

    // Other content under the same uuid: the store still returns the original, unchanged;
    // telling the two apart by fingerprint is the caller's job.
    let changed = sealed_letter(&ring, sender, uuid, [1; 32], "changed", 512);
    assert_ne!(changed.fingerprint, first.fingerprint);
    let out = store.insert_letters(&[changed]).await.expect("conflict");
    assert_eq!(existing(&out[0]), &stored);
    assert_eq!(existing(&out[0]).fingerprint, first.fingerprint);
    assert_eq!(store.state_counts().await.expect("counts").accepted, 1);
}

async fn same_uuid_twice_in_one_batch(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(AUTHORITY);
    let uuid = MessageUuid::random();
    let a = sealed_letter(&ring, sender, uuid, [1; 32], "a", 256);
    let again = sealed_letter(&ring, sender, uuid, [1; 32], "a, other content", 256);
    let other = letter(sender, "other");
    let out = store
        .insert_letters(&[a.clone(), again, other.clone(), a.clone()])
        .await
        .expect("insert");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0], InsertOutcome::Inserted);
    assert_eq!(existing(&out[1]).letter_id, a.letter_id);
    assert_eq!(existing(&out[1]).fingerprint, a.fingerprint);
    assert_eq!(out[2], InsertOutcome::Inserted);
    // The very same letter (same letter id) twice: still stored once.
    assert_eq!(existing(&out[3]).letter_id, a.letter_id);
    assert_eq!(store.state_counts().await.expect("counts").accepted, 2);
    assert!(store.insert_letters(&[]).await.expect("empty").is_empty());
}

async fn same_uuid_from_two_senders(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let uuid = MessageUuid::random();
    let from_authority = sealed_letter(&ring, cvr(AUTHORITY), uuid, [1; 32], "x", 256);
    let from_bank = sealed_letter(&ring, cvr(BANK), uuid, [1; 32], "x", 256);
    let out = store
        .insert_letters(&[from_authority.clone(), from_bank.clone()])
        .await
        .expect("insert");
    assert_eq!(out, vec![InsertOutcome::Inserted, InsertOutcome::Inserted]);
    for l in [&from_authority, &from_bank] {
        let r = store
            .letter(l.sender, LetterKey::MessageUuid(uuid))
            .await
            .expect("letter")
            .expect("stored");
        assert_eq!(r.letter_id, l.letter_id);
        assert_eq!(r.sender, l.sender);
    }
}

async fn letter_is_scoped_to_its_sender(b: Backend) {
    let store = b.open().await;
    let l = letter(cvr(AUTHORITY), "mine");
    store
        .insert_letters(std::slice::from_ref(&l))
        .await
        .expect("insert");
    for key in [
        LetterKey::LetterId(l.letter_id),
        LetterKey::MessageUuid(l.message_uuid),
    ] {
        let own = store.letter(l.sender, key).await.expect("own");
        assert_eq!(own.expect("own letter").letter_id, l.letter_id);
        let other = store.letter(cvr(BANK), key).await.expect("other");
        assert!(other.is_none(), "another sender must not see the letter");
    }
    let unknown = store
        .letter(l.sender, LetterKey::LetterId(LetterId::new()))
        .await
        .expect("unknown");
    assert!(unknown.is_none());
}

async fn load_for_delivery_returns_the_sealed_letter(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(BANK);
    let tag = [9u8; 32];
    let a = sealed_letter(
        &ring,
        sender,
        MessageUuid::random(),
        tag,
        "deliver me",
        4096,
    );
    let c = letter(sender, "another");
    store
        .insert_letters(&[a.clone(), c.clone()])
        .await
        .expect("insert");
    let missing = LetterId::new();
    let loaded = store
        .load_for_delivery(&[c.letter_id, missing, a.letter_id])
        .await
        .expect("load");
    let ids: Vec<LetterId> = loaded.iter().map(|l| l.record.letter_id).collect();
    assert_eq!(
        ids,
        vec![c.letter_id, a.letter_id],
        "missing ids are left out"
    );
    let got = &loaded[1];
    assert_eq!(got.recipient_tag, tag);
    assert_eq!(got.sealed.kek_id, a.sealed.kek_id);
    assert_eq!(got.sealed.nonce, a.sealed.nonce);
    assert_eq!(got.sealed.wrapped_key, a.sealed.wrapped_key);
    assert_eq!(got.sealed.ciphertext, a.sealed.ciphertext);
    let lid = a.letter_id.to_string();
    let plain = open(
        &ring,
        &Binding {
            letter_id: &lid,
            sender,
            recipient: &tag,
        },
        &got.sealed,
    )
    .expect("the stored letter opens");
    let decoded = body::decode(&plain).expect("decode");
    assert_eq!(
        decoded,
        plain_letter(a.message_uuid, "deliver me", 4096),
        "what comes out is what went in"
    );
}

async fn mark_delivered_exactly_once(b: Backend) {
    let store = b.open().await;
    let tag = [7u8; 32];
    let ring = ring();
    let a = sealed_letter(&ring, cvr(BANK), MessageUuid::random(), tag, "a", 256);
    let c = letter(cvr(BANK), "c");
    store
        .insert_letters(&[a.clone(), c.clone()])
        .await
        .expect("insert");
    let first = store
        .mark_delivered(
            &[a.letter_id],
            LetterState::Delivered,
            1_700_000_001_000,
            None,
        )
        .await
        .expect("deliver");
    assert_eq!(first, vec![a.letter_id]);
    let second = store
        .mark_delivered(
            &[a.letter_id],
            LetterState::Delivered,
            1_700_000_002_000,
            None,
        )
        .await
        .expect("deliver again");
    assert!(second.is_empty(), "a letter is delivered once: {second:?}");
    assert_eq!(store.mailbox_count(&tag).await.expect("mailbox"), 1);
    let r = store
        .letter(a.sender, LetterKey::LetterId(a.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!(r.state, LetterState::Delivered);
    assert_eq!(r.delivered_at_ms, Some(1_700_000_001_000));

    // A mixed call changes only the waiting letter, and answers in the order asked.
    let unknown = LetterId::new();
    let changed = store
        .mark_delivered(
            &[a.letter_id, unknown, c.letter_id],
            LetterState::PrintSpooled,
            1_700_000_003_000,
            Some("batch-1"),
        )
        .await
        .expect("print");
    assert_eq!(changed, vec![c.letter_id]);
    assert_eq!(state_of(&store, &a).await, LetterState::Delivered);
    assert_eq!(state_of(&store, &c).await, LetterState::PrintSpooled);
    assert_eq!(store.mailbox_count(&tag).await.expect("mailbox"), 1);
    assert!(
        store
            .mark_delivered(&[], LetterState::Delivered, 0, None)
            .await
            .expect("empty")
            .is_empty()
    );
}

async fn attempts_failure_and_reopen(b: Backend) {
    let store = b.open().await;
    let l = letter(cvr(AUTHORITY), "flaky");
    let done = letter(cvr(AUTHORITY), "done");
    store
        .insert_letters(&[l.clone(), done.clone()])
        .await
        .expect("insert");
    store
        .record_attempt(l.letter_id, "mailbox timed out")
        .await
        .expect("attempt");
    store
        .record_attempt(l.letter_id, "mailbox refused")
        .await
        .expect("attempt");
    let r = store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!((r.attempts, r.detail.as_str()), (2, "mailbox refused"));
    assert_eq!(r.state, LetterState::Accepted);

    store
        .mark_failed(l.letter_id, "retries spent")
        .await
        .expect("fail");
    let r = store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!(
        (r.state, r.detail.as_str()),
        (LetterState::Failed, "retries spent")
    );
    assert!(
        store
            .undelivered()
            .await
            .expect("undelivered")
            .iter()
            .all(|p| p.letter_id != l.letter_id)
    );

    assert!(store.reopen(l.letter_id).await.expect("reopen"));
    let r = store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!((r.state, r.detail.as_str()), (LetterState::Accepted, ""));
    assert!(!store.reopen(l.letter_id).await.expect("reopen again"));

    // A delivered letter does not fail afterwards, nor reopen.
    store
        .mark_delivered(&[done.letter_id], LetterState::Delivered, 1, None)
        .await
        .expect("deliver");
    store
        .mark_failed(done.letter_id, "late failure")
        .await
        .expect("fail");
    assert_eq!(state_of(&store, &done).await, LetterState::Delivered);
    assert!(!store.reopen(done.letter_id).await.expect("reopen"));
}

async fn undelivered_lists_only_waiting_letters(b: Backend) {
    let store = b.open().await;
    let sender = cvr(AUTHORITY);
    let accepted = letter(sender, "accepted");
    let mut scheduled = letter(sender, "scheduled");
    scheduled.not_before_ms = Some(1_800_000_000_000);
    scheduled.route = Route::Print;
    scheduled.priority = Priority::Urgent;
    let delivered = letter(sender, "delivered");
    let failed = letter(sender, "failed");
    let all = [
        accepted.clone(),
        scheduled.clone(),
        delivered.clone(),
        failed.clone(),
    ];
    store.insert_letters(&all).await.expect("insert");
    assert_eq!(state_of(&store, &scheduled).await, LetterState::Scheduled);
    store
        .mark_delivered(&[delivered.letter_id], LetterState::Delivered, 5, None)
        .await
        .expect("deliver");
    store
        .mark_failed(failed.letter_id, "gone")
        .await
        .expect("fail");

    let mut pending = store.undelivered().await.expect("undelivered");
    pending.sort_by_key(|p| p.not_before_ms);
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert_eq!(pending[0].letter_id, accepted.letter_id);
    assert_eq!(pending[0].not_before_ms, 0);
    assert_eq!(pending[0].route, Route::Mailbox);
    assert_eq!(pending[0].accepted_at_ms, accepted.accepted_at_ms);
    assert_eq!(pending[1].letter_id, scheduled.letter_id);
    assert_eq!(pending[1].not_before_ms, 1_800_000_000_000);
    assert_eq!(pending[1].route, Route::Print);
    assert_eq!(pending[1].priority, Priority::Urgent);
}

async fn print_batch_recorded(b: Backend) {
    let store = b.open().await;
    let l = letter(cvr(AUTHORITY), "print me");
    let other = letter(cvr(AUTHORITY), "print me too");
    store
        .insert_letters(&[l.clone(), other.clone()])
        .await
        .expect("insert");
    assert!(
        store
            .print_batch_letters("batch-7")
            .await
            .expect("recorded")
            .is_empty()
    );
    store
        .mark_delivered(
            &[l.letter_id],
            LetterState::PrintSpooled,
            9,
            Some("batch-7"),
        )
        .await
        .expect("spool");
    // A letter already spooled elsewhere is not recorded in a second batch.
    store
        .mark_delivered(
            &[l.letter_id, other.letter_id],
            LetterState::PrintSpooled,
            10,
            Some("batch-8"),
        )
        .await
        .expect("spool");
    assert_eq!(
        store
            .print_batch_letters("batch-7")
            .await
            .expect("recorded"),
        vec![l.letter_id]
    );
    assert_eq!(
        store
            .print_batch_letters("batch-8")
            .await
            .expect("recorded"),
        vec![other.letter_id]
    );
    assert!(
        store
            .print_batch_letters("batch-9")
            .await
            .expect("recorded")
            .is_empty()
    );
}

async fn state_counts(b: Backend) {
    let store = b.open().await;
    assert_eq!(
        store.state_counts().await.expect("counts"),
        Default::default()
    );
    let sender = cvr(BANK);
    let ls: Vec<NewLetter> = (0..6).map(|i| letter(sender, &format!("{i}"))).collect();
    let mut ls = ls;
    ls[5].not_before_ms = Some(1);
    store.insert_letters(&ls).await.expect("insert");
    store
        .mark_delivered(&[ls[0].letter_id], LetterState::Delivered, 1, None)
        .await
        .expect("deliver");
    store
        .mark_delivered(
            &[ls[1].letter_id, ls[2].letter_id],
            LetterState::PrintSpooled,
            1,
            Some("b"),
        )
        .await
        .expect("print");
    store.mark_failed(ls[3].letter_id, "x").await.expect("fail");
    let c = store.state_counts().await.expect("counts");
    assert_eq!(
        (
            c.accepted,
            c.scheduled,
            c.delivered,
            c.print_spooled,
            c.failed
        ),
        (1, 1, 1, 2, 1)
    );
}

async fn senders_and_generations(b: Backend) {
    let store = b.open().await;
    let g0 = store.generations().await.expect("generations");
    let bank = SenderInfo {
        cvr: cvr(BANK),
        name: "Banken A/S".into(),
        kind: SenderKind::Private,
        suspended: false,
        limits: Default::default(),
    };
    store.add_sender(&bank, [1; 32]).await.expect("add");
    let g1 = store.generations().await.expect("generations");
    assert_eq!(g1.senders, g0.senders + 1);
    assert_eq!(g1.registry, g0.registry);

    let again = store.add_sender(&bank, [2; 32]).await;
    assert!(
        matches!(again, Err(StoreError::SenderExists(c)) if c == bank.cvr),
        "{again:?}"
    );
    assert_eq!(store.generations().await.expect("generations"), g1);

    store
        .add_sender_cert(bank.cvr, [3; 32])
        .await
        .expect("re-issue");
    let unknown = store.add_sender_cert(cvr(AUTHORITY), [4; 32]).await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownSender(_))),
        "{unknown:?}"
    );
    store.set_suspended(bank.cvr, true).await.expect("suspend");
    let unknown = store.set_suspended(cvr(AUTHORITY), true).await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownSender(_))),
        "{unknown:?}"
    );
    assert_eq!(
        store.generations().await.expect("generations").senders,
        g0.senders + 3
    );

    let authority = SenderInfo {
        cvr: cvr(AUTHORITY),
        name: "Styrelsen".into(),
        kind: SenderKind::Public,
        suspended: false,
        limits: Default::default(),
    };
    store.add_sender(&authority, [5; 32]).await.expect("add");
    let (mut senders, mut certs) = store.senders().await.expect("senders");
    senders.sort_by_key(|s| s.cvr);
    certs.sort();
    let mut suspended_bank = bank.clone();
    suspended_bank.suspended = true;
    let mut expected = vec![suspended_bank, authority.clone()];
    expected.sort_by_key(|s| s.cvr);
    assert_eq!(senders, expected);
    assert_eq!(
        certs,
        vec![
            ([1; 32], bank.cvr),
            ([3; 32], bank.cvr),
            ([5; 32], authority.cvr)
        ]
    );

    // Every change counts, also when several store instances change at once.
    let other = b.open().await;
    let (x, y) = tokio::join!(
        store.set_suspended(bank.cvr, false),
        other.set_suspended(authority.cvr, true)
    );
    x.expect("unsuspend");
    y.expect("suspend");
    assert_eq!(
        other.generations().await.expect("generations").senders,
        g0.senders + 6
    );
}

struct Registry {
    pseudonyms: Pseudonymizer,
    rows: RowCipher,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            pseudonyms: Pseudonymizer::new(&[5; 32]),
            rows: RowCipher::new(&[6; 32]).expect("row cipher"),
        }
    }

    fn recipient(&self, id: &str, status: RecipientStatus) -> RecipientRow {
        let id: RecipientId = id.parse().expect("recipient id");
        let tag = self.pseudonyms.tag(&id);
        RecipientRow {
            sealed_key: self.rows.seal_key(id.index_key(), &tag).expect("seal key"),
            tag,
            status,
        }
    }

    fn subscription(&self, line: u64, id: &str, sender: &str) -> SubscriptionRow {
        let id: RecipientId = id.parse().expect("recipient id");
        SubscriptionRow {
            line,
            tag: self.pseudonyms.tag(&id),
            sender: cvr(sender),
        }
    }

    fn tag(&self, id: &str) -> RecipientTag {
        self.pseudonyms.tag(&id.parse().expect("recipient id"))
    }
}

/// The stored registry as comparable sets: (tag, id's index key, status), (tag, sender).
type RegistrySets = (
    HashSet<(RecipientTag, u64, RecipientStatus)>,
    HashSet<(RecipientTag, Cvr)>,
);

async fn registry_sets(store: &Arc<dyn Store>, reg: &Registry) -> RegistrySets {
    let stored = store.load_registry().await.expect("load registry");
    let recipients = stored
        .recipients
        .iter()
        .map(|(tag, sealed, status)| (*tag, reg.rows.open_key(sealed, tag).expect("open"), *status))
        .collect();
    let subscriptions = stored
        .subscriptions
        .iter()
        .map(|(tag, sealed, sender)| {
            reg.rows
                .open_key(sealed, tag)
                .expect("subscriber key opens");
            (*tag, *sender)
        })
        .collect();
    (recipients, subscriptions)
}

const ANNA: &str = "0101901111";
const BO: &str = "0101902222";
const CARL: &str = "0101903333";
const COMPANY: &str = "61126228";

async fn import_registry_is_all_or_nothing(b: Backend) {
    let store = b.open().await;
    let reg = Registry::new();
    store
        .import_registry(
            &[reg.recipient(ANNA, RecipientStatus::Active)],
            &[reg.subscription(2, ANNA, BANK)],
        )
        .await
        .expect("first import");
    let before = registry_sets(&store, &reg).await;
    let g = store.generations().await.expect("generations");

    // BO is new in this file, CARL is nowhere: the whole import fails, BO included.
    let result = store
        .import_registry(
            &[
                reg.recipient(BO, RecipientStatus::Exempt),
                reg.recipient(ANNA, RecipientStatus::Closed),
            ],
            &[
                reg.subscription(2, BO, BANK),
                reg.subscription(3, CARL, BANK),
                reg.subscription(4, ANNA, AUTHORITY),
                reg.subscription(5, COMPANY, BANK),
                reg.subscription(6, CARL, AUTHORITY),
            ],
        )
        .await;
    match result {
        Err(StoreError::UnknownSubscribers(lines)) => assert_eq!(lines, vec![3, 5, 6]),
        other => panic!("expected UnknownSubscribers, got {other:?}"),
    }
    assert_eq!(registry_sets(&store, &reg).await, before, "nothing changed");
    assert_eq!(store.generations().await.expect("generations"), g);
}

async fn import_registry_replaces_subscriptions(b: Backend) {
    let store = b.open().await;
    let reg = Registry::new();
    let other_bank = "25313763";
    store
        .import_registry(
            &[
                reg.recipient(ANNA, RecipientStatus::Active),
                reg.recipient(BO, RecipientStatus::Active),
            ],
            &[
                reg.subscription(2, ANNA, BANK),
                reg.subscription(3, ANNA, other_bank),
                reg.subscription(4, BO, BANK),
            ],
        )
        .await
        .expect("first import");
    let g = store.generations().await.expect("generations");
    // ANNA (known from before) now subscribes to the authority only, listed twice; BO is not
    // named, so BO's subscriptions stay; ANNA's status changes.
    store
        .import_registry(
            &[reg.recipient(ANNA, RecipientStatus::Exempt)],
            &[
                reg.subscription(2, ANNA, AUTHORITY),
                reg.subscription(3, ANNA, AUTHORITY),
            ],
        )
        .await
        .expect("second import");
    assert_eq!(
        store.generations().await.expect("generations").registry,
        g.registry + 1
    );
    let (recipients, subscriptions) = registry_sets(&store, &reg).await;
    let statuses: HashMap<RecipientTag, RecipientStatus> =
        recipients.iter().map(|(t, _, s)| (*t, *s)).collect();
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[&reg.tag(ANNA)], RecipientStatus::Exempt);
    assert_eq!(statuses[&reg.tag(BO)], RecipientStatus::Active);
    let expected: HashSet<(RecipientTag, Cvr)> =
        [(reg.tag(ANNA), cvr(AUTHORITY)), (reg.tag(BO), cvr(BANK))]
            .into_iter()
            .collect();
    assert_eq!(subscriptions, expected);
}

async fn load_registry_round_trip(b: Backend) {
    let store = b.open().await;
    let reg = Registry::new();
    let people = [
        (ANNA, RecipientStatus::Active),
        (BO, RecipientStatus::Exempt),
        (CARL, RecipientStatus::Closed),
        (COMPANY, RecipientStatus::Active),
    ];
    let rows: Vec<RecipientRow> = people
        .iter()
        .map(|(id, status)| reg.recipient(id, *status))
        .collect();
    // A recipient listed twice ends with the last status.
    let mut with_repeat = rows.clone();
    with_repeat.push(reg.recipient(BO, RecipientStatus::Active));
    store
        .import_registry(
            &with_repeat,
            &[
                reg.subscription(2, ANNA, BANK),
                reg.subscription(3, COMPANY, BANK),
                reg.subscription(4, COMPANY, "25313763"),
            ],
        )
        .await
        .expect("import");
    let (recipients, subscriptions) = registry_sets(&store, &reg).await;
    let expected: HashSet<(RecipientTag, u64, RecipientStatus)> = people
        .iter()
        .map(|(id, status)| {
            let rid: RecipientId = id.parse().expect("id");
            let status = if *id == BO {
                RecipientStatus::Active
            } else {
                *status
            };
            (reg.tag(id), rid.index_key(), status)
        })
        .collect();
    assert_eq!(recipients, expected);
    let expected: HashSet<(RecipientTag, Cvr)> = [
        (reg.tag(ANNA), cvr(BANK)),
        (reg.tag(COMPANY), cvr(BANK)),
        (reg.tag(COMPANY), cvr("25313763")),
    ]
    .into_iter()
    .collect();
    assert_eq!(subscriptions, expected);
    // And a second instance (another gateway) reads the same.
    let other = b.open().await;
    assert_eq!(registry_sets(&other, &reg).await.0, recipients);
}

/// Two store instances (two gateways) get the same 500 (sender, uuid) pairs at the same time,
/// in opposite orders and overlapping batches: each pair is stored once, and exactly one of the
/// two is told `Inserted`.
async fn concurrent_instances_store_each_pair_once(b: Backend) {
    let one = b.open().await;
    let two = b.open().await;
    let ring = ring();
    let senders = [cvr(AUTHORITY), cvr(BANK)];
    let pairs: Vec<(Cvr, MessageUuid)> = (0..500)
        .map(|i| (senders[i % 2], MessageUuid::random()))
        .collect();
    // Each gateway seals its own copy, with its own letter id.
    let build = |order: &mut dyn Iterator<Item = &(Cvr, MessageUuid)>| -> Vec<NewLetter> {
        order
            .map(|(s, u)| sealed_letter(&ring, *s, *u, [1; 32], "same letter", 256))
            .collect()
    };
    let forward = build(&mut pairs.iter());
    let backward = build(&mut pairs.iter().rev());

    // Each gateway commits its letters as several batches at once, as its committer would
    // under load from several streams: batches of the two gateways overlap in time.
    async fn insert_all(
        store: Arc<dyn Store>,
        letters: Vec<NewLetter>,
    ) -> Vec<(NewLetter, InsertOutcome)> {
        let batches: Vec<_> = letters
            .chunks(100)
            .map(|chunk| {
                let (store, chunk) = (store.clone(), chunk.to_vec());
                tokio::spawn(async move {
                    let outcomes = store.insert_letters(&chunk).await.expect("insert");
                    assert_eq!(outcomes.len(), chunk.len());
                    chunk.into_iter().zip(outcomes).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(letters.len());
        for batch in batches {
            out.extend(batch.await.expect("batch"));
        }
        out
    }
    let (a, c) = tokio::join!(
        insert_all(one.clone(), forward),
        insert_all(two.clone(), backward)
    );

    let mut by_pair: HashMap<(Cvr, MessageUuid), Vec<(NewLetter, InsertOutcome)>> = HashMap::new();
    for (l, o) in a.into_iter().chain(c) {
        by_pair
            .entry((l.sender, l.message_uuid))
            .or_default()
            .push((l, o));
    }
    assert_eq!(by_pair.len(), 500);
    for (pair, results) in &by_pair {
        assert_eq!(results.len(), 2);
        let inserted: Vec<&NewLetter> = results
            .iter()
            .filter(|(_, o)| *o == InsertOutcome::Inserted)
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            inserted.len(),
            1,
            "{pair:?} inserted {} times",
            inserted.len()
        );
        let winner = inserted[0].letter_id;
        for (_, o) in results {
            if let InsertOutcome::Existing(r) = o {
                assert_eq!(r.letter_id, winner, "Existing names the stored letter");
            }
        }
        let stored = one
            .letter(pair.0, LetterKey::MessageUuid(pair.1))
            .await
            .expect("letter")
            .expect("stored");
        assert_eq!(stored.letter_id, winner);
    }
    assert_eq!(two.state_counts().await.expect("counts").accepted, 500);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_postgres_is_unavailable_quickly() {
    let started = Instant::now();
    let result = PostgresStore::open("postgres://postgres@127.0.0.1:1/brevdue").await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{:?}",
        result.err()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn open_accepts_postgres_urls() {
    let db = PgDatabase::create().await;
    for url in [
        db.url.clone(),
        db.url.replacen("postgres://", "postgresql://", 1),
    ] {
        let store = brevdue::store::open(&url.parse().expect("a store URL"))
            .await
            .expect("open");
        store.ping().await.expect("ping");
    }
}

// ---------------------------------------------------------------------------------------------
// A measurement, not a test: `cargo test --test store_contract -- --ignored --nocapture`
// ---------------------------------------------------------------------------------------------

async fn insert_rate(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(AUTHORITY);
    let letters: Vec<NewLetter> = (0..10_000)
        .map(|i| {
            sealed_letter(
                &ring,
                sender,
                MessageUuid::random(),
                [1; 32],
                &i.to_string(),
                10_000,
            )
        })
        .collect();
    let started = Instant::now();
    for chunk in letters.chunks(1024) {
        store.insert_letters(chunk).await.expect("insert");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: insert_letters, 10,000 letters of 10 KB in batches of 1024: {:.0} letters/s ({secs:.2} s)",
        b.name(),
        10_000.0 / secs
    );
    assert_eq!(store.state_counts().await.expect("counts").accepted, 10_000);
}

#[tokio::test]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn measure_insert_rate_sqlite() {
    with_sqlite(insert_rate).await
}

#[tokio::test]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn measure_insert_rate_postgres() {
    with_postgres(insert_rate).await
}
