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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_and_a_wrong_one_refused() {
        let c: MemoConfig = toml::from_str("produce_version = \"1.1\"").expect("1.1");
        assert_eq!(c.produce_version, MemoVersion::V1_1);
        let c: MemoConfig = toml::from_str("").expect("default");
        assert_eq!(c.produce_version, MemoVersion::V1_2);
        let e = toml::from_str::<MemoConfig>("produce_version = \"2.0\"").unwrap_err();
        assert!(
            e.to_string().contains("1.1") && e.to_string().contains("1.2"),
            "{e}"
        );
    }
}
