//! The MeMo versions brevdue reads and writes, chosen per message by `memoVersion`.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A MeMo version. Each has its own content models (`tables`) and XSD set (`schemas/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum MemoVersion {
    /// The last version with `memoSchVersion` (required, "1.1.0").
    #[serde(rename = "1.1")]
    V1_1,
    /// Since 2024: `memoSchVersion` gone, `Sender/Representative` and
    /// `ForwardData/originalRepresentative` new, `mandatory` and `legalNotification` optional.
    #[serde(rename = "1.2")]
    V1_2,
}

impl MemoVersion {
    pub const ALL: [MemoVersion; 2] = [MemoVersion::V1_1, MemoVersion::V1_2];

    pub fn as_str(self) -> &'static str {
        match self {
            MemoVersion::V1_1 => "1.1",
            MemoVersion::V1_2 => "1.2",
        }
    }

    /// The other version, for hints when an element belongs to it.
    pub fn other(self) -> MemoVersion {
        match self {
            MemoVersion::V1_1 => MemoVersion::V1_2,
            MemoVersion::V1_2 => MemoVersion::V1_1,
        }
    }
}

impl fmt::Display for MemoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `"1.1"` or `"1.2"`.
#[derive(Debug, thiserror::Error)]
#[error("MeMo version {0:?} is not supported: use 1.1 or 1.2")]
pub struct UnknownVersion(String);

impl FromStr for MemoVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1.1" => Ok(MemoVersion::V1_1),
            "1.2" => Ok(MemoVersion::V1_2),
            other => Err(UnknownVersion(other.chars().take(20).collect())),
        }
    }
}
