//! Opening a SQLite file of the gateway: the store's database and the embedded queue's use the
//! same durability settings, so they are opened by this one function.

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Why a SQLite file could not be opened. The path is in the message: this happens at start-up
/// and the operator needs to know which file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not create the directory {}", .dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open {}", .path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not bring the schema of {} up to date", .path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

impl OpenError {
    /// The message followed by each cause, for a caller whose own error still carries text.
    pub fn with_causes(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}

/// WAL pages after which a commit copies the log into the database file (SQLite's default is
/// 1,000, 4 MB). A group commit of a thousand letters dirties a page of each index whose keys
/// come in random order (message uuids, recipient pseudonyms) for nearly every letter, so with
/// the default nearly every commit also ran a checkpoint, on the committing writer's time, and
/// wrote those pages a second time. With a longer log a page dirtied by several commits is
/// copied once.
const WAL_CHECKPOINT_PAGES: u32 = 16_384;

/// Opens (creating if needed) a SQLite database with the durability settings every SQLite file
/// of the gateway uses, and runs `migrator`.
pub(crate) async fn open_sqlite(
    path: &Path,
    migrator: &sqlx::migrate::Migrator,
    db: &crate::backend::DatabaseOptions,
) -> Result<SqlitePool, OpenError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(db.busy_timeout)
        .foreign_keys(true)
        .pragma("wal_autocheckpoint", WAL_CHECKPOINT_PAGES.to_string());
    let pool = SqlitePoolOptions::new()
        .max_connections(db.sqlite_connections.max(1))
        .acquire_timeout(db.acquire_timeout)
        // A COMMIT that failed (disk full, I/O error) can leave the connection's transaction
        // open as far as sqlx knows; reused, it would refuse every later transaction. Such a
        // connection is closed instead and the pool opens a fresh one.
        .after_release(|conn, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
        })
        .connect_with(options)
        .await
        .map_err(|source| OpenError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
    migrator
        .run(&pool)
        .await
        .map_err(|source| OpenError::Migrate {
            path: path.to_path_buf(),
            source,
        })?;
    restrict_permissions(path);
    Ok(pool)
}

/// The database holds sealed letters only, but there is no reason for anyone else to read it.
/// Best effort: a file system without Unix permissions still works, so a failure is logged.
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", path.display());
        if let Err(e) = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            // The -shm file may not exist yet; that is not worth a warning.
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %p, error = %e, "could not restrict the file's permissions");
            }
        }
    }
}

/// `?, ?, …`: `n` anonymous placeholders, bound in the order they appear. A statement that uses
/// them must use no numbered ones: sqlx counts anonymous placeholders from 1 whatever precedes
/// them.
pub(crate) fn anonymous(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Splits `items` into the pieces multi-row statements take: each a power of two long, at
/// most `max` (a power of two). Every statement is a round trip to the connection's thread, so
/// fewer and larger ones are cheaper, as long as their values are anonymous `?` placeholders
/// ([`anonymous`]): sqlx looks each numbered one (`$n`, `?n`) up by name, a scan of the
/// statement's names, so binding grew with the square of the values (measured: 16 rows of 7
/// numbered values bound at 316 k rows/s, 1,024 rows at 13 k rows/s). Powers of two keep the
/// distinct statement texts, and so the prepared statements each connection caches, to a
/// handful per kind.
pub(crate) fn statement_chunks<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let max = max.max(1);
    let mut out = Vec::with_capacity(items.len() / max + 8);
    let mut rest = items;
    while !rest.is_empty() {
        let n = rest.len().min(max);
        let size = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod chunk_tests {
    use super::statement_chunks;

    #[test]
    fn pieces_are_powers_of_two_up_to_the_maximum_and_cover_everything() {
        let items: Vec<u32> = (0..109).collect();
        let pieces = statement_chunks(&items, 32);
        let sizes: Vec<usize> = pieces.iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![32, 32, 32, 8, 4, 1]);
        let joined: Vec<u32> = pieces.concat();
        assert_eq!(joined, items);
        assert!(statement_chunks::<u32>(&[], 32).is_empty());
        assert_eq!(statement_chunks(&[1, 2, 3], 1).len(), 3);
    }
}
