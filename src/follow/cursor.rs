//! Cursors and page tokens: opaque to clients, simple inside.
//!
//! A cursor is the number of the sender's last event received, behind a version prefix so the
//! form can change later without old cursors being misread. A page token is where the last
//! page ended: (accepted_at, letter_id) of its last letter.

use crate::domain::LetterId;

const CURSOR_PREFIX: &str = "e1.";
const TOKEN_PREFIX: &str = "p1.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("after_cursor {0:?} is not a cursor this gateway gave out")]
    BadCursor(String),
    #[error("page_token {0:?} is not a page token this gateway gave out")]
    BadPageToken(String),
}

pub fn encode_cursor(seq: u64) -> String {
    format!("{CURSOR_PREFIX}{seq}")
}

/// The event number after which to read; empty means from the oldest event kept.
pub fn decode_cursor(s: &str) -> Result<u64, TokenError> {
    if s.is_empty() {
        return Ok(0);
    }
    s.strip_prefix(CURSOR_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| TokenError::BadCursor(s.chars().take(64).collect()))
}

pub fn encode_page_token(accepted_at_ms: i64, letter_id: LetterId) -> String {
    format!("{TOKEN_PREFIX}{accepted_at_ms}.{letter_id}")
}

pub fn decode_page_token(s: &str) -> Result<Option<(i64, LetterId)>, TokenError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || TokenError::BadPageToken(s.chars().take(80).collect());
    let rest = s.strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    let (at, id) = rest.split_once('.').ok_or_else(bad)?;
    Ok(Some((
        at.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_tokens_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Ok(42));
        assert_eq!(decode_cursor(""), Ok(0));
        assert!(decode_cursor("42").is_err());
        assert!(decode_cursor("e1.-3").is_err());
        let id = LetterId::new();
        assert_eq!(
            decode_page_token(&encode_page_token(1_700_000_000_000, id)),
            Ok(Some((1_700_000_000_000, id)))
        );
        assert_eq!(decode_page_token(""), Ok(None));
        assert!(decode_page_token("p1.x.y").is_err());
    }
}
