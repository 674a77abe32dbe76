//! The store contract: one suite, run against every backend.
//!
//! Each test is an async function of a [`harness::Backend`]; `contract!` runs it once against
//! SQLite (a temporary file) and once against PostgreSQL (a fresh database per test, dropped
//! afterwards even when the test fails). Letters are sealed with the crate's real sealing, as
//! the gateway seals them. PostgreSQL is expected at 127.0.0.1:5432 (override the admin URL with
//! `BREVDUE_TEST_POSTGRES`); when it is not reachable the PostgreSQL tests fail and say how to
//! start it, they never pass silently.
//!
//! One module per topic: `idempotency` (a resend is never stored twice), `letters` (reading a
//! letter's life), `delivery` (mailbox and print, exactly once), `follow` (events, recall, batches,
//! listing), `senders`, `registry`,
//! `postgres_only` and `measure` (ignored by default).

#[path = "../common/mod.rs"]
mod common;

/// Runs every named contract test of the calling module against every backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::with_sqlite(super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::with_postgres(super::$name).await
                }
            )*
        }
    };
}

mod fixtures;
mod harness;

mod delivery;
mod follow;
mod idempotency;
mod letters;
mod measure;
mod outbox;
mod postgres_only;
mod registry;
mod retention;
mod senders;
