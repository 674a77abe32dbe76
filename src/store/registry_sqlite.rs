//! The registry on SQLite: imports as multi-row statements in key order inside one
//! transaction, with a page cache sized for the job; changes worked out in memory and written
//! as a few statements. One writer at a time is SQLite's own rule, so change numbers commit in
//! order without any lock of ours.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::Row;

use super::SqliteStore;
use super::StoreError;
use super::registry::{
    AppliedChanges, CHANGE_COLUMNS, ChangeKind, ChangePage, ChangeRequest, RegistryHead,
    RegistryImport, RegistryStore, ScanPart, StoredRecipient, Working, logged_change_from,
    parse_senders, plan_changes, senders_text,
};
use super::rows::{status_code, status_from, tag_from};
use super::shared::Backend;
use crate::seal::RecipientTag;

/// Rows per multi-row statement: four parameters each, under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 4_096;
/// Tags per `IN (…)` list.
const TAGS_PER_STATEMENT: usize = 1_000;
/// The page cache an import's connection gets (KiB, as SQLite's negative `cache_size`): the
/// table's interior pages for millions of keys stay in memory.
const IMPORT_CACHE_KIB: i64 = 512 * 1024;
/// What every other connection runs with (SQLite's default).
const DEFAULT_CACHE_KIB: i64 = 2_000;

fn values(rows: usize, columns: usize) -> String {
    let one = format!("({})", vec!["?"; columns].join(", "));
    vec![one; rows].join(", ")
}

fn upsert_sql(rows: usize, keep_senders: bool) -> String {
    let senders = if keep_senders {
        "COALESCE(excluded.senders, recipients.senders)"
    } else {
        "excluded.senders"
    };
    format!(
        "INSERT INTO recipients (tag, sealed_key, status, senders) VALUES {} \
         ON CONFLICT (tag) DO UPDATE SET status = excluded.status, senders = {senders}{}",
        values(rows, 4),
        if keep_senders {
            ""
        } else {
            ", sealed_key = excluded.sealed_key"
        }
    )
}

async fn set_cache(conn: &mut sqlx::SqliteConnection, kib: i64) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = -{kib}")))
        .execute(conn)
        .await?;
    Ok(())
}

async fn newest_seq(conn: &mut sqlx::SqliteConnection) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM registry_changes")
        .fetch_one(conn)
        .await?;
    Ok(row.try_get("seq")?)
}

impl SqliteStore {
    async fn import_in(
        &self,
        conn: &mut sqlx::SqliteConnection,
        import: &RegistryImport,
        origin: &str,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<i64, StoreError> {
        let mut tx = sqlx::Connection::begin_with(&mut *conn, Self::BEGIN_WRITE).await?;
        let mut unknown = Vec::new();
        for s in &import.subscribers {
            let text = senders_text(import.senders_of(s.senders));
            let done = sqlx::query("UPDATE recipients SET senders = ? WHERE tag = ?")
                .bind(text)
                .bind(&s.tag[..])
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                unknown.extend_from_slice(&s.lines);
            }
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(StoreError::UnknownSubscribers(unknown));
        }
        let mut written = 0u64;
        for chunk in import.recipients.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert_sql(chunk.len(), true);
            let texts: Vec<Option<String>> = chunk
                .iter()
                .map(|r| r.senders.and_then(|s| senders_text(import.senders_of(s))))
                .collect();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for (r, text) in chunk.iter().zip(&texts) {
                q = q
                    .bind(&r.tag[..])
                    .bind(&r.sealed_key[..])
                    .bind(status_code(r.status))
                    .bind(text.as_deref());
            }
            q.execute(&mut *tx).await?;
            written += chunk.len() as u64;
            progress(written);
        }
        let seq = sqlx::query(
            "INSERT INTO registry_changes (at_ms, kind, origin) VALUES (?, ?, ?) RETURNING seq",
        )
        .bind(crate::clock::now_ms())
        .bind(ChangeKind::Import.code())
        .bind(origin)
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?;
        // What a gateway sizes its index by at start, instead of counting millions of rows.
        if !import.recipients.is_empty() {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('registry_imported_recipients', ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(import.recipients.len() as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(seq)
    }

    async fn current_states(
        tx: &mut sqlx::SqliteConnection,
        changes: &[ChangeRequest],
    ) -> Result<HashMap<RecipientTag, Working>, StoreError> {
        let mut tags: Vec<RecipientTag> = changes.iter().map(|c| c.tag).collect();
        tags.sort_unstable();
        tags.dedup();
        let mut states = HashMap::with_capacity(tags.len());
        for chunk in tags.chunks(TAGS_PER_STATEMENT) {
            let sql = format!(
                "SELECT tag, sealed_key, status, senders FROM recipients WHERE tag IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for t in chunk {
                q = q.bind(&t[..]);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let mut senders = Vec::new();
                parse_senders(row.try_get::<Option<&str>, _>("senders")?, &mut senders)?;
                states.insert(
                    tag_from(row.try_get("tag")?)?,
                    Some((
                        row.try_get::<Vec<u8>, _>("sealed_key")?,
                        status_from(row.try_get("status")?)?,
                        senders,
                    )),
                );
            }
        }
        Ok(states)
    }
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn import_registry(
        &self,
        import: &RegistryImport,
        origin: &str,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<i64, StoreError> {
        let mut conn = self.pool().acquire().await?;
        set_cache(&mut conn, IMPORT_CACHE_KIB).await?;
        let result = self.import_in(&mut conn, import, origin, progress).await;
        // The connection goes back to the pool with the usual cache (and is closed instead if
        // even that fails: the pool drops connections left in a bad state).
        let reset = set_cache(&mut conn, DEFAULT_CACHE_KIB).await;
        let seq = result?;
        reset?;
        Ok(seq)
    }

    async fn scan_registry(
        &self,
        part: ScanPart,
        each: &mut (dyn for<'a> FnMut(StoredRecipient<'a>) -> Result<(), StoreError> + Send),
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin_with(Self::BEGIN_SNAPSHOT).await?;
        let head = newest_seq(&mut tx).await?;
        let mut senders = Vec::new();
        {
            let sql = format!(
                "SELECT tag, sealed_key, status, senders FROM recipients{}",
                part.predicate(false)
            );
            let (lower, upper) = part.bounds();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for bound in [lower, upper].into_iter().flatten() {
                q = q.bind(bound.to_vec());
            }
            let mut rows = q.fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let tag: RecipientTag = row
                    .try_get::<&[u8], _>(0)?
                    .try_into()
                    .map_err(|_| super::rows::corrupt("recipient tag length"))?;
                parse_senders(row.try_get::<Option<&str>, _>(3)?, &mut senders)?;
                each(StoredRecipient {
                    tag: &tag,
                    sealed_key: row.try_get::<&[u8], _>(1)?,
                    status: status_from(row.try_get(2)?)?,
                    senders: &senders,
                })?;
            }
        }
        tx.commit().await?;
        Ok(head)
    }

    async fn apply_registry_changes(
        &self,
        changes: &[ChangeRequest],
        origin: &str,
    ) -> Result<AppliedChanges, StoreError> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let current = Self::current_states(&mut tx, changes).await?;
        let plan = plan_changes(changes, current)?;
        let (keep, gone): (Vec<_>, Vec<_>) = plan.writes.iter().partition(|(_, s)| s.is_some());
        for chunk in keep.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert_sql(chunk.len(), false);
            let texts: Vec<Option<String>> = chunk
                .iter()
                .map(|(_, s)| s.as_ref().and_then(|(_, _, senders)| senders_text(senders)))
                .collect();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for ((tag, state), text) in chunk.iter().zip(&texts) {
                if let Some((sealed, status, _)) = state {
                    q = q
                        .bind(&tag[..])
                        .bind(&sealed[..])
                        .bind(status_code(*status))
                        .bind(text.as_deref());
                }
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in gone.chunks(TAGS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM recipients WHERE tag IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for (tag, _) in chunk {
                q = q.bind(&tag[..]);
            }
            q.execute(&mut *tx).await?;
        }
        let at_ms = crate::clock::now_ms();
        // Seven parameters per entry.
        for chunk in plan.log.chunks(4_096) {
            let sql = format!(
                "INSERT INTO registry_changes (at_ms, kind, tag, sealed_key, status, senders, origin) VALUES {}",
                values(chunk.len(), 7)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for e in chunk {
                q = q
                    .bind(at_ms)
                    .bind(e.kind.code())
                    .bind(&e.tag[..])
                    .bind(&e.sealed_key[..])
                    .bind(e.now.as_ref().map(|(s, _)| status_code(*s)))
                    .bind(e.now.as_ref().and_then(|(_, t)| t.as_deref()))
                    .bind(origin);
            }
            q.execute(&mut *tx).await?;
        }
        let last_seq = newest_seq(&mut tx).await?;
        tx.commit().await?;
        let count = plan.log.len();
        Ok(AppliedChanges {
            first_seq: last_seq - count as i64 + 1,
            last_seq,
            count,
        })
    }

    async fn registry_changes_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<ChangePage, StoreError> {
        let mut tx = self.pool().begin_with(Self::BEGIN_SNAPSHOT).await?;
        let pruned: i64 = sqlx::query(
            "SELECT COALESCE(MAX(value), 0) AS v FROM meta WHERE key = 'registry_pruned_through'",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
        if after < pruned {
            return Ok(ChangePage::Pruned);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM registry_changes WHERE seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ChangePage::Changes(
            rows.iter()
                .map(logged_change_from)
                .collect::<Result<_, _>>()?,
        ))
    }

    async fn registry_head(&self) -> Result<RegistryHead, StoreError> {
        let mut tx = self.pool().begin_with(Self::BEGIN_SNAPSHOT).await?;
        let seq = newest_seq(&mut tx).await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM recipients")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        tx.commit().await?;
        Ok(RegistryHead {
            seq,
            recipients: super::rows::count_from(n)?,
        })
    }

    async fn registry_size_hint(&self) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(value), 0) AS n FROM meta WHERE key = 'registry_imported_recipients'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
    }

    async fn registry_newest_seq(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool().acquire().await?;
        newest_seq(&mut conn).await
    }

    async fn prune_registry_changes(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let newest = newest_seq(&mut tx).await?;
        let through: Option<i64> =
            sqlx::query("SELECT MAX(seq) AS s FROM registry_changes WHERE at_ms < ? AND seq < ?")
                .bind(before_ms)
                .bind(newest)
                .fetch_one(&mut *tx)
                .await?
                .try_get("s")?;
        let Some(through) = through else {
            return Ok(0);
        };
        let gone = sqlx::query("DELETE FROM registry_changes WHERE seq <= ?")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('registry_pruned_through', ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(through)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }
}
