//! The cost of events at intake: storing letters in the embedded store as the gateway does
//! (each letter's ACCEPTED event in the same transaction, under the sender's event-number
//! lock) beside storing the same letters without events, in the same run, on the same disk.
//! Prints events written per second and the intake with events as a ratio of intake without.
//!
//! Letters are sealed before timing (sealing has its own bench); a batch is 512 letters of
//! 1 KB, about what the group committer hands the store under load.

use std::hint::black_box;
use std::time::{Duration, Instant};

use brevdue::domain::{Cvr, Document, Letter, LetterId, MessageUuid, Priority, Route};
use brevdue::seal::{Binding, KekId, KeyRing, body, seal};
use brevdue::store::{NewLetter, SqliteStore, Store};
use criterion::{BatchSize, Criterion, Throughput};

const BATCH: usize = 512;
const SIZE: usize = 1024;

fn sealed_batch(ring: &KeyRing, sender: Cvr) -> Vec<NewLetter> {
    (0..BATCH)
        .map(|i| {
            let mut content = format!("%PDF-1.4\nletter {i}\n").into_bytes();
            content.resize(SIZE, b'x');
            let letter = Letter {
                message_uuid: MessageUuid::random(),
                recipient: "0101901234".parse().unwrap_or_else(|_| panic!("cpr")),
                title: "Kontoudtog".into(),
                main_document: Document {
                    filename: "a.pdf".into(),
                    media_type: "application/pdf".into(),
                    content,
                },
                attachments: vec![],
                print_fallback: false,
                priority: Priority::Normal,
                sender_reference: String::new(),
            };
            let letter_id = LetterId::new();
            let lid = letter_id.to_string();
            let tag = [1u8; 32];
            let digest = body::content_digest(&letter);
            let sealed = seal(
                ring,
                &Binding {
                    letter_id: &lid,
                    sender,
                    recipient: &tag,
                },
                body::encode(&letter),
            )
            .unwrap_or_else(|e| panic!("seal: {e}"));
            NewLetter {
                letter_id,
                sender,
                message_uuid: letter.message_uuid,
                recipient_tag: tag,
                fingerprint: body::fingerprint(&letter, &digest),
                content_sha256: digest,
                route: Route::Mailbox,
                priority: Priority::Normal,
                sealed,
                accepted_at_ms: brevdue::clock::now_ms(),
                not_before_ms: None,
                batch_id: Some("bench".parse().unwrap_or_else(|_| panic!("batch id"))),
                sender_reference: String::new(),
            }
        })
        .collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let ring = KeyRing::from_keys(KekId(1), [(KekId(1), [3u8; 32])])
        .unwrap_or_else(|e| panic!("key ring: {e}"));
    let sender: Cvr = "29403473".parse().unwrap_or_else(|_| panic!("cvr"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let (with, without) = rt.block_on(async {
        let with = SqliteStore::open(&dir.path().join("with.db"))
            .await
            .unwrap_or_else(|e| panic!("store: {e}"));
        let without = SqliteStore::open(&dir.path().join("without.db"))
            .await
            .unwrap_or_else(|e| panic!("store: {e}"))
            .without_intake_events_for_bench();
        (with, without)
    });
    let store = |s: &SqliteStore, letters: Vec<NewLetter>| {
        rt.block_on(s.insert_letters(&letters))
            .unwrap_or_else(|e| panic!("insert: {e}"))
    };

    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = c.benchmark_group("events");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("intake_with_events", |b| {
        b.iter_batched(
            || sealed_batch(&ring, sender),
            |l| black_box(store(&with, l)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("intake_without_events", |b| {
        b.iter_batched(
            || sealed_batch(&ring, sender),
            |l| black_box(store(&without, l)),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // The same comparison as one figure: rounds alternate between the stores so that the
    // disk's moods fall on both alike.
    const ROUNDS: usize = 20;
    let mut spent = [Duration::ZERO; 2];
    for _ in 0..ROUNDS {
        for (i, s) in [&with, &without].into_iter().enumerate() {
            let letters = sealed_batch(&ring, sender);
            let t = Instant::now();
            black_box(store(s, letters));
            spent[i] += t.elapsed();
        }
    }
    let letters = (ROUNDS * BATCH) as f64;
    let with_rate = letters / spent[0].as_secs_f64();
    let without_rate = letters / spent[1].as_secs_f64();
    println!("\n== intake cost of events, embedded store, {BATCH}-letter batches of {SIZE} B ==");
    println!("  with events     {with_rate:>10.0} letters/s = {with_rate:.0} events written/s");
    println!("  without events  {without_rate:>10.0} letters/s (ceiling)");
    println!(
        "  ratio           {:>10.2} (intake with events / without; the cost is {:.0} %)",
        with_rate / without_rate,
        (1.0 - with_rate / without_rate) * 100.0
    );
}
