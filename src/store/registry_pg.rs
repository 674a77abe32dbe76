//! The registry on PostgreSQL: imports through binary COPY (straight into the table when it is
//! empty, through a staging table otherwise), changes as array statements. Every registry
//! writer (import or change) first takes an exclusive lock on `registry_changes`, so change
//! numbers commit in number order across all gateways: a reader that has seen entry n never
//! sees an entry below n appear later. Plain reads are not blocked by that lock.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::Row;

use super::PostgresStore;
use super::StoreError;
use super::registry::{
    AppliedChanges, CHANGE_COLUMNS, ChangeKind, ChangePage, ChangeRequest, ImportRow, RegistryHead,
    RegistryImport, RegistryStore, ScanPart, StoredRecipient, Working, logged_change_from,
    parse_senders, plan_changes, senders_text,
};
use super::rows::{corrupt, count_from, status_code, status_from, tag_from};
use super::shared::Backend;
use crate::seal::RecipientTag;

/// Rows per COPY message sent to the server.
const COPY_ROWS: usize = 16_384;
/// Elements per array statement.
const ARRAY_CHUNK: usize = 50_000;

const LOCK_WRITERS: &str = "LOCK TABLE registry_changes IN EXCLUSIVE MODE";

/// PostgreSQL's binary COPY framing: the signature, no flags, no header extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

fn copy_field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            out.extend_from_slice(&(v.len() as i32).to_be_bytes());
            out.extend_from_slice(v);
        }
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

/// One import row in binary COPY form: `tag, sealed_key, status, senders`.
fn copy_row(out: &mut Vec<u8>, row: &ImportRow, import: &RegistryImport) {
    out.extend_from_slice(&4i16.to_be_bytes());
    copy_field(out, Some(&row.tag));
    copy_field(out, Some(&row.sealed_key));
    copy_field(out, Some(&status_code(row.status).to_be_bytes()));
    let text = row.senders.and_then(|s| senders_text(import.senders_of(s)));
    copy_field(out, text.as_deref().map(str::as_bytes));
}

async fn newest_seq(conn: &mut sqlx::PgConnection) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0)::BIGINT AS seq FROM registry_changes")
        .fetch_one(conn)
        .await?;
    Ok(row.try_get("seq")?)
}

impl PostgresStore {
    async fn copy_recipients(
        conn: &mut sqlx::PgConnection,
        table: &str,
        import: &RegistryImport,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), StoreError> {
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {table} (tag, sealed_key, status, senders) FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut buf = Vec::with_capacity(COPY_ROWS * 96);
        buf.extend_from_slice(COPY_HEADER);
        let mut sent = 0u64;
        for chunk in import.recipients.chunks(COPY_ROWS) {
            for row in chunk {
                copy_row(&mut buf, row, import);
            }
            copy.send(std::mem::take(&mut buf)).await?;
            buf.reserve(COPY_ROWS * 96);
            sent += chunk.len() as u64;
            progress(sent);
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        copy.send(buf).await?;
        copy.finish().await?;
        Ok(())
    }

    async fn current_states(
        tx: &mut sqlx::PgConnection,
        changes: &[ChangeRequest],
    ) -> Result<HashMap<RecipientTag, Working>, StoreError> {
        let mut tags: Vec<RecipientTag> = changes.iter().map(|c| c.tag).collect();
        tags.sort_unstable();
        tags.dedup();
        let mut states = HashMap::with_capacity(tags.len());
        for chunk in tags.chunks(ARRAY_CHUNK) {
            let list: Vec<&[u8]> = chunk.iter().map(|t| &t[..]).collect();
            let rows = sqlx::query(
                "SELECT tag, sealed_key, status, senders FROM recipients \
                 WHERE tag = ANY($1::bytea[])",
            )
            .bind(&list)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
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
impl RegistryStore for PostgresStore {
    async fn import_registry(
        &self,
        import: &RegistryImport,
        origin: &str,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        sqlx::query(LOCK_WRITERS).execute(&mut *tx).await?;

        let mut unknown = Vec::new();
        for chunk in import.subscribers.chunks(ARRAY_CHUNK) {
            let tags: Vec<&[u8]> = chunk.iter().map(|s| &s.tag[..]).collect();
            let texts: Vec<Option<String>> = chunk
                .iter()
                .map(|s| senders_text(import.senders_of(s.senders)))
                .collect();
            let updated = sqlx::query(
                "UPDATE recipients r SET senders = u.senders \
                 FROM UNNEST($1::bytea[], $2::text[]) AS u (tag, senders) \
                 WHERE r.tag = u.tag RETURNING r.tag",
            )
            .bind(&tags)
            .bind(&texts)
            .fetch_all(&mut *tx)
            .await?;
            let found: std::collections::HashSet<RecipientTag> = updated
                .iter()
                .map(|r| tag_from(r.try_get("tag")?))
                .collect::<Result<_, _>>()?;
            for s in chunk.iter().filter(|s| !found.contains(&s.tag)) {
                unknown.extend_from_slice(&s.lines);
            }
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(StoreError::UnknownSubscribers(unknown));
        }

        let empty: bool = sqlx::query("SELECT NOT EXISTS (SELECT 1 FROM recipients) AS empty")
            .fetch_one(&mut *tx)
            .await?
            .try_get("empty")?;
        if empty {
            // The first load of a registry: straight into the table.
            Self::copy_recipients(&mut tx, "recipients", import, progress).await?;
        } else {
            sqlx::query(
                "CREATE TEMP TABLE registry_import \
                 (tag BYTEA, sealed_key BYTEA, status BIGINT, senders TEXT) ON COMMIT DROP",
            )
            .execute(&mut *tx)
            .await?;
            Self::copy_recipients(&mut tx, "registry_import", import, progress).await?;
            sqlx::query(
                "INSERT INTO recipients (tag, sealed_key, status, senders) \
                 SELECT tag, sealed_key, status, senders FROM registry_import \
                 ON CONFLICT (tag) DO UPDATE SET status = excluded.status, \
                 senders = COALESCE(excluded.senders, recipients.senders)",
            )
            .execute(&mut *tx)
            .await?;
        }
        let seq: i64 = sqlx::query(
            "INSERT INTO registry_changes (at_ms, kind, origin) VALUES ($1, $2, $3) RETURNING seq",
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
                "INSERT INTO meta (key, value) VALUES ('registry_imported_recipients', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(import.recipients.len() as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
                part.predicate(true)
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
                    .map_err(|_| corrupt("recipient tag length"))?;
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
        sqlx::query(LOCK_WRITERS).execute(&mut *tx).await?;
        let current = Self::current_states(&mut tx, changes).await?;
        let plan = plan_changes(changes, current)?;
        let (keep, gone): (Vec<_>, Vec<_>) = plan.writes.iter().partition(|(_, s)| s.is_some());
        for chunk in keep.chunks(ARRAY_CHUNK) {
            let mut tags = Vec::with_capacity(chunk.len());
            let mut keys = Vec::with_capacity(chunk.len());
            let mut statuses = Vec::with_capacity(chunk.len());
            let mut texts = Vec::with_capacity(chunk.len());
            for (tag, state) in chunk {
                if let Some((sealed, status, senders)) = state {
                    tags.push(&tag[..]);
                    keys.push(&sealed[..]);
                    statuses.push(status_code(*status));
                    texts.push(senders_text(senders));
                }
            }
            sqlx::query(
                "INSERT INTO recipients (tag, sealed_key, status, senders) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[], $4::text[]) \
                 ON CONFLICT (tag) DO UPDATE SET sealed_key = excluded.sealed_key, \
                 status = excluded.status, senders = excluded.senders",
            )
            .bind(&tags)
            .bind(&keys)
            .bind(&statuses)
            .bind(&texts)
            .execute(&mut *tx)
            .await?;
        }
        for chunk in gone.chunks(ARRAY_CHUNK) {
            let tags: Vec<&[u8]> = chunk.iter().map(|(t, _)| &t[..]).collect();
            sqlx::query("DELETE FROM recipients WHERE tag = ANY($1::bytea[])")
                .bind(&tags)
                .execute(&mut *tx)
                .await?;
        }
        let at_ms = crate::clock::now_ms();
        let mut first_seq = i64::MAX;
        let mut last_seq = 0;
        for chunk in plan.log.chunks(ARRAY_CHUNK) {
            let kinds: Vec<i64> = chunk.iter().map(|e| e.kind.code()).collect();
            let tags: Vec<&[u8]> = chunk.iter().map(|e| &e.tag[..]).collect();
            let keys: Vec<&[u8]> = chunk.iter().map(|e| &e.sealed_key[..]).collect();
            let statuses: Vec<Option<i64>> = chunk
                .iter()
                .map(|e| e.now.as_ref().map(|(s, _)| status_code(*s)))
                .collect();
            let texts: Vec<Option<&str>> = chunk
                .iter()
                .map(|e| e.now.as_ref().and_then(|(_, t)| t.as_deref()))
                .collect();
            // ORDER BY the position: entries are numbered in the order of the batch.
            let row = sqlx::query(
                "WITH written AS ( \
                   INSERT INTO registry_changes (at_ms, kind, tag, sealed_key, status, senders, origin) \
                   SELECT $1, k, t, s, st, se, $2 \
                   FROM UNNEST($3::bigint[], $4::bytea[], $5::bytea[], $6::bigint[], $7::text[]) \
                        WITH ORDINALITY AS u (k, t, s, st, se, n) \
                   ORDER BY n RETURNING seq) \
                 SELECT MIN(seq) AS first, MAX(seq) AS last FROM written",
            )
            .bind(at_ms)
            .bind(origin)
            .bind(&kinds)
            .bind(&tags)
            .bind(&keys)
            .bind(&statuses)
            .bind(&texts)
            .fetch_one(&mut *tx)
            .await?;
            first_seq = first_seq.min(row.try_get::<Option<i64>, _>("first")?.unwrap_or(i64::MAX));
            last_seq = last_seq.max(row.try_get::<Option<i64>, _>("last")?.unwrap_or(0));
        }
        tx.commit().await?;
        Ok(AppliedChanges {
            first_seq: first_seq.min(last_seq),
            last_seq,
            count: plan.log.len(),
        })
    }

    async fn registry_changes_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<ChangePage, StoreError> {
        let mut tx = self.pool().begin_with(Self::BEGIN_SNAPSHOT).await?;
        let pruned: i64 = sqlx::query(
            "SELECT COALESCE(MAX(value), 0)::BIGINT AS v FROM meta \
             WHERE key = 'registry_pruned_through'",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
        if after < pruned {
            return Ok(ChangePage::Pruned);
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM registry_changes WHERE seq > $1 ORDER BY seq LIMIT $2"
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
            recipients: count_from(n)?,
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
        sqlx::query(LOCK_WRITERS).execute(&mut *tx).await?;
        let newest = newest_seq(&mut tx).await?;
        let through: Option<i64> =
            sqlx::query("SELECT MAX(seq) AS s FROM registry_changes WHERE at_ms < $1 AND seq < $2")
                .bind(before_ms)
                .bind(newest)
                .fetch_one(&mut *tx)
                .await?
                .try_get("s")?;
        let Some(through) = through else {
            return Ok(0);
        };
        let gone = sqlx::query("DELETE FROM registry_changes WHERE seq <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('registry_pruned_through', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(through)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }
}
