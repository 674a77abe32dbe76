//! What only PostgreSQL has: a server that may be unreachable, and its URL forms.

use crate::common::backends::PgDatabase;
use crate::fixtures::*;

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
