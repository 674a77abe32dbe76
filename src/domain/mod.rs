//! Domain types: recipient and sender identifiers and the vocabulary every stage shares.
//! This module depends on nothing else in the crate.

mod batch;
mod cpr;
mod cvr;
mod letter;
mod limits;
mod operator;
mod outcome;
mod recipient;
mod sender;

use std::fmt;
use std::str::FromStr;

pub use batch::{BatchId, BatchIdError};
pub use cpr::Cpr;
pub use cvr::{Cvr, complete_cvr};
pub use letter::{Document, Letter, LetterId, LetterState, MessageUuid, Priority};
pub use limits::{LimitsError, MAX_WEIGHT, SenderLimits};
pub use operator::{OperatorName, OperatorNameError};
pub use outcome::{RejectReason, Route};
pub use recipient::{RecipientStatus, StatusParseError};
pub use sender::{SenderInfo, SenderKind, SenderKindParseError};

/// Why an identifier is not valid, in words a person understands.
///
/// The message repeats the input (capped in length) because it goes back to the sender who wrote
/// it; it must never be logged, since the input may be a person's CPR number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("CPR {input}: {problem}")]
    Cpr { input: String, problem: String },
    #[error("CVR {input}: {problem}")]
    Cvr { input: String, problem: String },
    #[error(
        "{input:?} is neither a CPR number (10 digits, DDMMYYSSSS or DDMMYY-SSSS) nor a CVR number (8 digits)"
    )]
    Unrecognised { input: String },
    #[error("the recipient id type is missing: say CPR or CVR")]
    MissingType,
}

/// Longest piece of bad input echoed back in an error message.
const ECHO_LIMIT: usize = 24;

fn echo(input: &str) -> String {
    if input.chars().count() <= ECHO_LIMIT {
        input.to_string()
    } else {
        let head: String = input.chars().take(ECHO_LIMIT).collect();
        format!("{head}…")
    }
}

impl IdError {
    pub(crate) fn cpr(input: &str, problem: &str) -> Self {
        IdError::Cpr {
            input: echo(input),
            problem: problem.to_string(),
        }
    }

    pub(crate) fn cvr(input: &str, problem: &str) -> Self {
        IdError::Cvr {
            input: echo(input),
            problem: problem.to_string(),
        }
    }
}

/// Which register an identifier belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdType {
    Cpr,
    Cvr,
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdType::Cpr => "CPR",
            IdType::Cvr => "CVR",
        })
    }
}

impl FromStr for IdType {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CPR" => Ok(IdType::Cpr),
            "CVR" => Ok(IdType::Cvr),
            _ => Err(IdError::Unrecognised { input: echo(s) }),
        }
    }
}

/// A letter's addressee: a citizen by CPR or a company by CVR.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum RecipientId {
    Cpr(Cpr),
    Cvr(Cvr),
}

impl RecipientId {
    /// Parses `id` as the given register's number.
    pub fn parse_as(id_type: IdType, id: &str) -> Result<Self, IdError> {
        match id_type {
            IdType::Cpr => id.parse().map(RecipientId::Cpr),
            IdType::Cvr => id.parse().map(RecipientId::Cvr),
        }
    }

    /// Parses an id whose register is told by its shape: 10 digits (or `DDMMYY-SSSS`) is a CPR,
    /// 8 digits a CVR.
    pub fn detect(id: &str) -> Result<Self, IdError> {
        let s = id.trim();
        let digits = s.bytes().filter(u8::is_ascii_digit).count();
        if s.contains('-') || digits >= 9 || s.len() >= 10 {
            s.parse().map(RecipientId::Cpr)
        } else if s.len() == 8 {
            s.parse().map(RecipientId::Cvr)
        } else {
            Err(IdError::Unrecognised { input: echo(s) })
        }
    }

    pub fn id_type(&self) -> IdType {
        match self {
            RecipientId::Cpr(_) => IdType::Cpr,
            RecipientId::Cvr(_) => IdType::Cvr,
        }
    }

    /// A compact 64-bit key, unique per recipient: CPR values are below 2^34, CVR values are
    /// tagged with bit 40. Used by the in-memory registry index.
    pub fn index_key(&self) -> u64 {
        match self {
            RecipientId::Cpr(c) => c.value(),
            RecipientId::Cvr(c) => (1 << 40) | u64::from(c.value()),
        }
    }

    /// The inverse of [`RecipientId::index_key`].
    pub fn from_index_key(key: u64) -> Result<Self, IdError> {
        if key & (1 << 40) != 0 {
            let v = u32::try_from(key & 0xFFFF_FFFF)
                .map_err(|_| IdError::cvr(&key.to_string(), "out of range"))?;
            Cvr::from_value(v).map(RecipientId::Cvr)
        } else {
            Cpr::from_value(key).map(RecipientId::Cpr)
        }
    }

    /// The normalised id without its type, as printed on a receipt report.
    pub fn number(&self) -> String {
        match self {
            RecipientId::Cpr(c) => c.to_string(),
            RecipientId::Cvr(c) => c.to_string(),
        }
    }
}

/// `CPR:0101901234` or `CVR:61126228`.
impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientId::Cpr(c) => write!(f, "CPR:{c}"),
            RecipientId::Cvr(c) => write!(f, "CVR:{c}"),
        }
    }
}

/// Accepts `CPR:…`/`CVR:…` or a bare number whose register is told by its shape.
impl FromStr for RecipientId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().split_once(':') {
            Some((t, id)) => RecipientId::parse_as(t.parse()?, id),
            None => RecipientId::detect(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_register_from_the_shape() {
        assert!(matches!(
            RecipientId::detect("61126228"),
            Ok(RecipientId::Cvr(_))
        ));
        assert!(matches!(
            RecipientId::detect("0101901234"),
            Ok(RecipientId::Cpr(_))
        ));
        assert!(matches!(
            RecipientId::detect("010190-1234"),
            Ok(RecipientId::Cpr(_))
        ));
        assert_eq!(
            RecipientId::detect("3102901234").unwrap_err().to_string(),
            "CPR 3102901234: 31 February is not a date"
        );
        assert!(matches!(
            RecipientId::detect("12345"),
            Err(IdError::Unrecognised { .. })
        ));
    }

    #[test]
    fn typed_form_round_trips() {
        for s in ["CPR:0101901234", "CVR:61126228"] {
            let id: RecipientId = s.parse().unwrap();
            assert_eq!(id.to_string(), s);
            assert_eq!(RecipientId::from_index_key(id.index_key()).unwrap(), id);
        }
        assert!("cvr:61126228".parse::<RecipientId>().is_ok());
        assert!("CVR:0101901234".parse::<RecipientId>().is_err());
    }

    #[test]
    fn long_input_is_capped_in_messages() {
        let long = "9".repeat(10_000);
        let msg = RecipientId::detect(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }
}
