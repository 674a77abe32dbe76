//! A registered recipient's standing in the registry.

use std::fmt;
use std::str::FromStr;

/// A status that is none of active, exempt, closed (the input, capped in length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status {0:?} is not one of active, exempt, closed")]
pub struct StatusParseError(pub String);

/// A registered recipient's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecipientStatus {
    /// Has a digital mailbox.
    Active,
    /// CPR only: exempt from Digital Post ("fritaget"); public mail goes on paper.
    Exempt,
    /// Deceased person or ceased company.
    Closed,
}

impl RecipientStatus {
    /// Two bits, for the registry index's packed slots.
    pub(crate) fn bits(self) -> u32 {
        match self {
            RecipientStatus::Active => 0,
            RecipientStatus::Exempt => 1,
            RecipientStatus::Closed => 2,
        }
    }

    pub(crate) fn from_bits(bits: u32) -> Self {
        match bits {
            0 => RecipientStatus::Active,
            1 => RecipientStatus::Exempt,
            _ => RecipientStatus::Closed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Active => "active",
            RecipientStatus::Exempt => "exempt",
            RecipientStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecipientStatus {
    type Err = StatusParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "active" => Ok(RecipientStatus::Active),
            "exempt" => Ok(RecipientStatus::Exempt),
            "closed" => Ok(RecipientStatus::Closed),
            other => Err(StatusParseError(other.chars().take(24).collect())),
        }
    }
}
