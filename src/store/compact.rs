//! What retention does in the store: purging delivered letters' content, counting the bytes
//! the store takes, and giving back the disk purged content took (SQLite's content segments).
//!
//! Purging clears a letter's ciphertext and its wrapped data key (so a copy in a backup or a
//! journal can never be opened either), in batches, each its own transaction; the row stays,
//! since the letter's status, its events and its idempotency key outlive its content. Only
//! letters handed to print qualify: waiting letters are never touched, and a mailbox letter
//! belongs to the mailbox until it deletes it.
//!
//! Segments are append-only, so purged content stays on disk until its segment goes: a
//! segment no letter points into is removed, and one mostly purged (live bytes under half its
//! size) whose letters are all done is rewritten: its live content is appended to the current
//! segment (durable first), the rows are pointed there in one transaction, then the old file
//! is removed. A crash in between leaves a copy nothing points to, never a row without content.
//! Segments with a waiting letter are left alone, so delivery never reads a segment being
//! removed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sqlx::{PgPool, Row, SqlitePool};

use super::StoreError;
use super::blobs::{BlobLog, BlobRef};
use super::rows::corrupt;

/// SQLite: up to `$2` letters handed to print (state 4) before `$1` whose content is kept,
/// through the `letters_content_kept` partial index (migration 0081).
pub(super) const PURGE_SQLITE: &str = "UPDATE letters SET ciphertext = X'', wrapped_key = X'', \
     blob_segment = NULL, blob_offset = NULL, blob_len = NULL WHERE letter_id IN (\
     SELECT letter_id FROM letters WHERE state = 4 AND length(wrapped_key) > 0 \
     AND delivered_at < $1 LIMIT $2)";

/// PostgreSQL: the same, over the same partial index.
pub(super) const PURGE_POSTGRES: &str = "UPDATE letters SET ciphertext = ''::bytea, \
     wrapped_key = ''::bytea WHERE letter_id IN (\
     SELECT letter_id FROM letters WHERE state = 4 AND octet_length(wrapped_key) > 0 \
     AND delivered_at < $1 LIMIT $2)";

/// Content moved per transaction when a segment is rewritten: bounds the memory it takes.
const MOVE_CHUNK_BYTES: u64 = 64 << 20;

/// One batch of [`super::Store::purge_content`].
pub(super) async fn purge<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    statement: &'static str,
    delivered_before_ms: i64,
    limit: usize,
) -> Result<u64, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::QueryResult: super::shared::RowsAffected,
{
    use super::shared::RowsAffected;
    let mut conn = pool.acquire().await?;
    let done = sqlx::query::<DB>(statement)
        .bind(delivered_before_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

pub(super) async fn postgres_bytes(pool: &PgPool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) async fn sqlite_bytes(db: &Path, blobs: &Arc<BlobLog>) -> Result<u64, StoreError> {
    let db = db.to_path_buf();
    let blobs = blobs.clone();
    let bytes = tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            total += std::fs::metadata(&name).map(|m| m.len()).unwrap_or(0);
        }
        for (_, size) in blobs.segments()? {
            total += size;
        }
        Ok(total)
    })
    .await??;
    Ok(bytes)
}

/// What the rows say about one segment.
#[derive(Default)]
struct Use {
    live: u64,
    waiting: bool,
}

/// [`super::Store::compact`] for SQLite.
pub(super) async fn segments(pool: &SqlitePool, blobs: &Arc<BlobLog>) -> Result<u64, StoreError> {
    let current = blobs.current()?;
    let files = {
        let blobs = blobs.clone();
        tokio::task::spawn_blocking(move || blobs.segments()).await??
    };
    let rows = sqlx::query(
        "SELECT blob_segment AS seg, SUM(blob_len) AS live, MAX(state IN (1, 2)) AS waiting \
         FROM letters WHERE blob_segment IS NOT NULL GROUP BY blob_segment",
    )
    .fetch_all(pool)
    .await?;
    let mut uses: HashMap<u32, Use> = HashMap::new();
    for r in rows {
        let seg: i64 = r.try_get("seg")?;
        let live: i64 = r.try_get("live")?;
        let waiting: i64 = r.try_get("waiting")?;
        uses.insert(
            u32::try_from(seg).map_err(|_| corrupt("blob segment"))?,
            Use {
                live: u64::try_from(live).unwrap_or(0),
                waiting: waiting != 0,
            },
        );
    }
    let mut freed = 0;
    // Only segments before the one appends go to: later ones belong to processes that opened
    // the store since (admin commands), and are empty.
    for (seg, size) in files.into_iter().filter(|(seg, _)| *seg < current) {
        match uses.get(&seg) {
            None => {
                remove(blobs, seg).await?;
                freed += size;
            }
            Some(u) if !u.waiting && u.live.saturating_mul(2) < size => {
                rewrite(pool, blobs, seg).await?;
                freed += size - u.live;
            }
            Some(_) => {}
        }
    }
    Ok(freed)
}

async fn remove(blobs: &Arc<BlobLog>, seg: u32) -> Result<(), StoreError> {
    let blobs = blobs.clone();
    tokio::task::spawn_blocking(move || blobs.remove(seg)).await??;
    Ok(())
}

/// Moves a segment's live content to the current segment, chunk by chunk, then removes it.
async fn rewrite(pool: &SqlitePool, blobs: &Arc<BlobLog>, seg: u32) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT letter_id, blob_offset, blob_len FROM letters WHERE blob_segment = $1 \
         ORDER BY blob_offset",
    )
    .bind(i64::from(seg))
    .fetch_all(pool)
    .await?;
    let mut live: Vec<(String, BlobRef)> = Vec::with_capacity(rows.len());
    for r in rows {
        let offset: i64 = r.try_get("blob_offset")?;
        let len: i64 = r.try_get("blob_len")?;
        live.push((
            r.try_get("letter_id")?,
            BlobRef {
                segment: seg,
                offset: u64::try_from(offset).map_err(|_| corrupt("blob offset"))?,
                len: u64::try_from(len).map_err(|_| corrupt("blob length"))?,
            },
        ));
    }
    let mut start = 0;
    while start < live.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < live.len() && (end == start || bytes + live[end].1.len <= MOVE_CHUNK_BYTES) {
            bytes += live[end].1.len;
            end += 1;
        }
        let chunk: Vec<(String, BlobRef)> = live[start..end].to_vec();
        let moved = {
            let blobs = blobs.clone();
            let refs: Vec<BlobRef> = chunk.iter().map(|(_, r)| *r).collect();
            tokio::task::spawn_blocking(move || -> Result<Vec<BlobRef>, super::BlobError> {
                // Letters of an old segment are on the disk only: read together, neighbours
                // come in one direct read instead of one each.
                let pieces = blobs.read_many(&refs)?;
                let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
                blobs.append(&pieces)
            })
            .await??
        };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        for ((id, old), new) in chunk.iter().zip(&moved) {
            sqlx::query(
                "UPDATE letters SET blob_segment = $1, blob_offset = $2 \
                 WHERE letter_id = $3 AND blob_segment = $4 AND blob_offset = $5",
            )
            .bind(i64::from(new.segment))
            .bind(i64::try_from(new.offset).map_err(|_| corrupt("blob offset"))?)
            .bind(id.as_str())
            .bind(i64::from(old.segment))
            .bind(i64::try_from(old.offset).map_err(|_| corrupt("blob offset"))?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        start = end;
    }
    remove(blobs, seg).await
}
