//! Senders: who they are, and their kinds: public authorities (Digital Post is mandatory for their recipients) and private
//! organisations (the recipient must have subscribed to them).

use std::fmt;
use std::str::FromStr;

use super::{Cvr, SenderLimits};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SenderKind {
    Public,
    Private,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("sender kind {0:?} is neither \"public\" nor \"private\"")]
pub struct SenderKindParseError(pub String);

impl FromStr for SenderKind {
    type Err = SenderKindParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "public" => Ok(SenderKind::Public),
            "private" => Ok(SenderKind::Private),
            _ => Err(SenderKindParseError(s.to_string())),
        }
    }
}

impl fmt::Display for SenderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SenderKind::Public => "public",
            SenderKind::Private => "private",
        })
    }
}

/// A registered sender as every stage sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    pub cvr: Cvr,
    pub name: String,
    pub kind: SenderKind,
    /// A suspended sender is refused at the door (PERMISSION_DENIED), certificate or not.
    pub suspended: bool,
    /// Share and limits; changed with `brevdue senders limits`, picked up without a restart.
    pub limits: SenderLimits,
}
