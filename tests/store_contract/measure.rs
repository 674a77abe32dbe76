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
