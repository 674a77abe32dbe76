//! A measurement, not a test: `cargo test --test store_contract -- --ignored --nocapture`.

use crate::fixtures::*;

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

/// What the outbox costs the store: marking a second's intake, and one sweep over a backlog of
/// waiting letters that are all marked (the common case: it finds nothing).
async fn outbox_cost(b: Backend) {
    const WAITING: usize = 100_000;
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(AUTHORITY);
    let mut ids = Vec::with_capacity(WAITING);
    for _ in 0..WAITING / 1000 {
        let letters: Vec<NewLetter> = (0..1000)
            .map(|i| {
                sealed_letter(
                    &ring,
                    sender,
                    MessageUuid::random(),
                    [1; 32],
                    &i.to_string(),
                    64,
                )
            })
            .collect();
        ids.extend(letters.iter().map(|l| l.letter_id));
        store.insert_letters(&letters).await.expect("insert");
    }
    let started = Instant::now();
    for chunk in ids.chunks(8_000) {
        store.mark_queued(chunk, 1).await.expect("mark");
    }
    let mark = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let found = store.unqueued(i64::MAX, 0, 10_000).await.expect("sweep");
    let sweep = started.elapsed().as_secs_f64();
    assert!(found.is_empty());
    eprintln!(
        "{}: marking {WAITING} letters in statements of 8,000: {:.0} markers/s; one sweep over {WAITING} waiting letters, all marked: {:.0} ms",
        b.name(),
        WAITING as f64 / mark,
        sweep * 1000.0
    );
}

#[tokio::test]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn measure_outbox_cost_sqlite() {
    with_sqlite(outbox_cost).await
}

#[tokio::test]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn measure_outbox_cost_postgres() {
    with_postgres(outbox_cost).await
}
