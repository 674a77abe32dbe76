//! Row decoding both SQL backends share. The two schemas keep the same columns, codes and byte
//! lengths (integers are 64-bit on both, see the migrations), so one decoder, generic over
//! `sqlx::Row`, reads a SQLite row and a PostgreSQL row alike, and the backends cannot drift
//! apart in what they accept. A value that does not fit its domain type is
//! `StoreError::Corrupt`: never truncated, never guessed.

use std::str::FromStr;

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::db::route_from_code;
use crate::domain::{
    Cvr, LetterId, LetterState, Priority, RecipientStatus, SenderInfo, SenderKind, SenderLimits,
};
use crate::seal::{ContentDigest, KekId, RecipientTag, Sealed};

use super::{LetterRecord, PendingDelivery, StoreError, StoredLetter};

/// The columns of a [`LetterRecord`], in every statement that reads one (a macro, so that
/// `concat!` can build whole statements from it at compile time).
macro_rules! record_columns {
    () => {
        "letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, priority, \
         state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, \
         sender_reference"
    };
}
pub(crate) use record_columns;

/// The states of a letter still waiting for delivery: the only ones delivery or failure may
/// move it out of.
pub(crate) const WAITING: [LetterState; 2] = [LetterState::Accepted, LetterState::Scheduled];

/// A row of either backend, read as the column types both schemas keep.
pub(crate) trait StoreRow {
    fn int(&self, column: &'static str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &'static str) -> Result<Option<i64>, StoreError>;
    fn text(&self, column: &'static str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &'static str) -> Result<Option<String>, StoreError>;
    fn bytes(&self, column: &'static str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>, StoreError>;
    fn flag(&self, column: &'static str) -> Result<bool, StoreError>;
}

impl<R: Row> StoreRow for R
where
    &'static str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, column: &'static str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_int(&self, column: &'static str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn text(&self, column: &'static str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn bytes(&self, column: &'static str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn opt_bytes(&self, column: &'static str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn flag(&self, column: &'static str) -> Result<bool, StoreError> {
        Ok(self.try_get(column)?)
    }
}

pub(crate) fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt { what, source: None }
}

/// A CVR as both schemas keep it (BIGINT / INTEGER).
pub(crate) fn cvr_code(cvr: Cvr) -> i64 {
    i64::from(cvr.value())
}

/// A stored CVR: one that does not fit in 32 bits or is no valid CVR is damage, not a number
/// to cut down to size.
pub(crate) fn cvr_from(value: i64, what: &'static str) -> Result<Cvr, StoreError> {
    u32::try_from(value)
        .ok()
        .and_then(|v| Cvr::from_value(v).ok())
        .ok_or_else(|| corrupt(what))
}

pub(crate) fn letter_id_from(row: &impl StoreRow) -> Result<LetterId, StoreError> {
    row.text("letter_id")?
        .parse()
        .map_err(|_| corrupt("letter id"))
}

pub(crate) fn tag_from(bytes: Vec<u8>) -> Result<RecipientTag, StoreError> {
    bytes
        .try_into()
        .map_err(|_| corrupt("recipient tag length"))
}

pub(crate) fn digest_from(bytes: Vec<u8>) -> Result<ContentDigest, StoreError> {
    Ok(ContentDigest(
        bytes.try_into().map_err(|_| corrupt("digest length"))?,
    ))
}

pub(crate) fn state_from(code: i64) -> Result<LetterState, StoreError> {
    LetterState::from_code(code).ok_or_else(|| corrupt("state"))
}

/// A count from `COUNT(*)`, which is never negative.
pub(crate) fn count_from(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| corrupt("count"))
}

/// Reads the columns of [`record_columns!`].
pub(crate) fn record_from(row: &impl StoreRow) -> Result<LetterRecord, StoreError> {
    Ok(LetterRecord {
        letter_id: letter_id_from(row)?,
        sender: cvr_from(row.int("sender_cvr")?, "sender cvr")?,
        message_uuid: row
            .text("message_uuid")?
            .parse()
            .map_err(|_| corrupt("message uuid"))?,
        fingerprint: digest_from(row.bytes("fingerprint")?)?,
        content_sha256: ContentDigest::from_hex(&row.text("content_sha256")?)
            .ok_or_else(|| corrupt("content digest"))?,
        route: route_from_code(row.int("route")?),
        priority: Priority::from_code(row.int("priority")?),
        state: state_from(row.int("state")?)?,
        accepted_at_ms: row.int("accepted_at")?,
        not_before_ms: row.opt_int("not_before")?,
        delivered_at_ms: row.opt_int("delivered_at")?,
        // A counter past four billion attempts says "many" as well as the exact number would.
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
        detail: row.text("detail")?,
        batch_id: batch_from(row.opt_text("batch_id")?)?,
        sender_reference: row.text("sender_reference")?,
    })
}

/// A letter for delivery: the record columns plus `recipient_tag`, `kek_id`, `wrapped_key` and
/// `nonce`. The ciphertext is the caller's: each backend keeps it in its own place.
pub(crate) fn stored_from(
    row: &impl StoreRow,
    ciphertext: Vec<u8>,
) -> Result<StoredLetter, StoreError> {
    Ok(StoredLetter {
        record: record_from(row)?,
        recipient_tag: tag_from(row.bytes("recipient_tag")?)?,
        sealed: Sealed {
            kek_id: KekId(u32::try_from(row.int("kek_id")?).map_err(|_| corrupt("kek id"))?),
            wrapped_key: row.bytes("wrapped_key")?,
            nonce: row
                .bytes("nonce")?
                .try_into()
                .map_err(|_| corrupt("nonce length"))?,
            ciphertext,
        },
    })
}

pub(crate) fn pending_from(row: &impl StoreRow) -> Result<PendingDelivery, StoreError> {
    Ok(PendingDelivery {
        letter_id: letter_id_from(row)?,
        sender: cvr_from(row.int("sender_cvr")?, "sender cvr")?,
        route: route_from_code(row.int("route")?),
        priority: Priority::from_code(row.int("priority")?),
        not_before_ms: row.opt_int("not_before")?.unwrap_or(0),
        accepted_at_ms: row.int("accepted_at")?,
    })
}

pub(crate) fn sender_from(row: &impl StoreRow) -> Result<SenderInfo, StoreError> {
    Ok(SenderInfo {
        cvr: cvr_from(row.int("cvr")?, "sender cvr")?,
        name: row.text("name")?,
        kind: SenderKind::from_str(&row.text("kind")?).map_err(|_| corrupt("sender kind"))?,
        suspended: row.flag("suspended")?,
        limits: LimitColumns::read(row)?,
    })
}

pub(crate) fn cert_from(row: &impl StoreRow) -> Result<([u8; 32], Cvr), StoreError> {
    Ok((
        row.bytes("fingerprint")?
            .try_into()
            .map_err(|_| corrupt("fingerprint"))?,
        cvr_from(row.int("cvr")?, "sender cvr")?,
    ))
}

pub(crate) fn cert_record_from(row: &impl StoreRow) -> Result<super::CertRecord, StoreError> {
    let (fingerprint, cvr) = cert_from(row)?;
    Ok(super::CertRecord {
        fingerprint,
        cvr,
        issued_at_ms: row.int("issued_at")?,
        expires_at_ms: row.opt_int("expires_at")?,
        revoked_at_ms: row.opt_int("revoked_at")?,
    })
}

pub(crate) fn status_code(s: RecipientStatus) -> i64 {
    match s {
        RecipientStatus::Active => 0,
        RecipientStatus::Exempt => 1,
        RecipientStatus::Closed => 2,
    }
}

pub(crate) fn status_from(code: i64) -> Result<RecipientStatus, StoreError> {
    match code {
        0 => Ok(RecipientStatus::Active),
        1 => Ok(RecipientStatus::Exempt),
        2 => Ok(RecipientStatus::Closed),
        _ => Err(corrupt("recipient status")),
    }
}

/// A sender's limits as both SQL backends keep them: a weight and four nullable positive counts.
pub(crate) struct LimitColumns {
    pub weight: i64,
    pub rate_per_s: Option<i64>,
    pub burst: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub max_letter_bytes: Option<i64>,
}

impl LimitColumns {
    pub fn from_limits(l: &SenderLimits) -> Self {
        LimitColumns {
            weight: i64::from(l.weight),
            rate_per_s: l.rate_per_s.map(i64::from),
            burst: l.burst.map(i64::from),
            max_in_flight: l.max_in_flight.map(i64::from),
            max_letter_bytes: l.max_letter_bytes.and_then(|b| i64::try_from(b).ok()),
        }
    }

    pub fn into_limits(self) -> Result<SenderLimits, StoreError> {
        let count = |v: Option<i64>| -> Result<Option<u32>, StoreError> {
            v.map(|n| u32::try_from(n).map_err(|_| corrupt("sender limit")))
                .transpose()
        };
        Ok(SenderLimits {
            weight: u32::try_from(self.weight).map_err(|_| corrupt("sender weight"))?,
            rate_per_s: count(self.rate_per_s)?,
            burst: count(self.burst)?,
            max_in_flight: count(self.max_in_flight)?,
            max_letter_bytes: self
                .max_letter_bytes
                .map(|n| u64::try_from(n).map_err(|_| corrupt("sender limit")))
                .transpose()?,
        })
    }

    pub fn read(row: &impl StoreRow) -> Result<SenderLimits, StoreError> {
        LimitColumns {
            weight: row.int("weight")?,
            rate_per_s: row.opt_int("rate_per_s")?,
            burst: row.opt_int("burst")?,
            max_in_flight: row.opt_int("max_in_flight")?,
            max_letter_bytes: row.opt_int("max_letter_bytes")?,
        }
        .into_limits()
    }
}

/// A stored batch id, checked as it is read.
pub(crate) fn batch_from(v: Option<String>) -> Result<Option<crate::domain::BatchId>, StoreError> {
    v.map(|b| b.parse().map_err(|_| corrupt("batch id")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cvr_that_does_not_fit_is_damage_not_a_smaller_number() {
        // 2^32 + 12345678 truncated to 32 bits would be a valid-looking CVR.
        let too_big = (1_i64 << 32) + 12_345_678;
        assert!(matches!(
            cvr_from(too_big, "sender cvr"),
            Err(StoreError::Corrupt {
                what: "sender cvr",
                ..
            })
        ));
        assert!(matches!(
            cvr_from(-1, "sender cvr"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
