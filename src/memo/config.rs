//! The `[memo]` section of the configuration.

use serde::Deserialize;

use super::version::MemoVersion;

/// How the gateway writes MeMo itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoConfig {
    /// The MeMo version of the messages made for letters sent as fields, at print and mailbox
    /// hand-off: "1.2" (the default, what Digital Post's own client libraries send) or "1.1".
    /// A letter that arrived as MeMo is handed over as it came, in its own version.
    pub produce_version: MemoVersion,
}

impl Default for MemoConfig {
    fn default() -> Self {
        MemoConfig {
            produce_version: MemoVersion::V1_2,
        }
    }
}
