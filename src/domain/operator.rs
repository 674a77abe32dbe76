//! Operator names: how a person on call is known in certificates, the audit trail and listings.

use std::fmt;
use std::str::FromStr;

/// The longest operator name: room for a full name or an e-mail-like handle.
const MAX_LEN: usize = 64;

/// A validated operator name: 1 to 64 characters of letters, digits, spaces and `.-_@`, no
/// leading or trailing space. Narrow on purpose: it goes into a certificate subject, log lines
/// and the audit trail, where anything looking like markup or a separator would mislead.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct OperatorName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operator name {input:?}: {problem}")]
pub struct OperatorNameError {
    input: String,
    problem: &'static str,
}

impl OperatorName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OperatorName {
    type Err = OperatorNameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |problem| OperatorNameError {
            input: input.chars().take(MAX_LEN + 8).collect(),
            problem,
        };
        if input.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        if input.trim() != input {
            return Err(bad("it has leading or trailing spaces"));
        }
        if input.chars().count() > MAX_LEN {
            return Err(bad("it is longer than 64 characters"));
        }
        let allowed = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '.' | '-' | '_' | '@');
        if !input.chars().all(allowed) {
            return Err(bad(
                "use only letters, digits, spaces and the characters . - _ @",
            ));
        }
        Ok(OperatorName(input.to_string()))
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_people_use_are_accepted() {
        for ok in [
            "alice",
            "Søren Kirkegaard",
            "ops-1",
            "jens.hansen@kommune.dk",
        ] {
            assert_eq!(ok.parse::<OperatorName>().unwrap().as_str(), ok);
        }
    }

    #[test]
    fn misleading_names_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty"),
            (" alice", "leading"),
            ("a\nb", "only letters"),
            ("<script>", "only letters"),
            ("CN=x, O=y", "only letters"),
        ] {
            let e = bad.parse::<OperatorName>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!("x".repeat(65).parse::<OperatorName>().is_err());
    }
}
