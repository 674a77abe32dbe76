//! A sender-chosen batch name: groups letters for progress, recall and listing.

use std::fmt;
use std::str::FromStr;

/// Longest batch id accepted: long enough for a UUID with a prefix, short enough to index.
pub const MAX_BATCH_ID_LEN: usize = 64;

/// 1 to 64 characters of `A-Z a-z 0-9 . _ : -`. The alphabet is narrow on purpose: a batch id
/// is shown in reports and logs, so it must not be able to carry a name or a CPR number with
/// spaces or punctuation around it unnoticed, nor anything that needs escaping.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BatchId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchIdError {
    #[error("batch_id is empty")]
    Empty,
    #[error("batch_id is {0} characters; at most {MAX_BATCH_ID_LEN} are allowed")]
    TooLong(usize),
    #[error("batch_id may contain only A-Z, a-z, 0-9 and . _ : - (found {0:?})")]
    BadCharacter(char),
}

impl BatchId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh batch id for a sender that gave none (`brevdue send`).
    pub fn generate() -> BatchId {
        BatchId(format!("batch-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl FromStr for BatchId {
    type Err = BatchIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(BatchIdError::Empty);
        }
        let n = s.chars().count();
        if n > MAX_BATCH_ID_LEN {
            return Err(BatchIdError::TooLong(n));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(BatchIdError::BadCharacter(c));
        }
        Ok(BatchId(s.to_string()))
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_alphabet_and_refuses_the_rest() {
        assert!("month-end_2025.12:a".parse::<BatchId>().is_ok());
        assert_eq!("".parse::<BatchId>(), Err(BatchIdError::Empty));
        assert_eq!(
            "a b".parse::<BatchId>(),
            Err(BatchIdError::BadCharacter(' '))
        );
        assert_eq!(
            "x".repeat(65).parse::<BatchId>(),
            Err(BatchIdError::TooLong(65))
        );
        assert!(BatchId::generate().as_str().parse::<BatchId>().is_ok());
    }
}
