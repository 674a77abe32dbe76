//! One backend's database for one test, and the runners `contract!` calls.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use brevdue::store::{PostgresStore, SqliteStore, Store};

use crate::common::backends::PgDatabase;

enum Target {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgDatabase),
}

/// One backend's database for one test. `open` gives another store instance on the same
/// database, as another gateway process would have.
pub struct Backend {
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

    pub async fn open(&self) -> Arc<dyn Store> {
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

    pub fn name(&self) -> &'static str {
        match self.target {
            Target::Sqlite { .. } => "SQLite",
            Target::Postgres(_) => "PostgreSQL",
        }
    }
}

pub async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Backend::sqlite().await).await
}

pub async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Backend::postgres().await).await
}
