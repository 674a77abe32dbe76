//! Where an accepted letter goes and why a letter is refused: the words receipts, the store,
//! the queue and telemetry share, whichever stage decided.

/// Where an accepted letter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Mailbox,
    Print,
}

/// Why a letter is refused. The first two come from routing, the rest from other stages; they
/// share one vocabulary so receipts have one list of reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    InvalidRecipientId,
    InvalidLetter,
    TooLarge,
    NotReachable,
    RecipientClosed,
    DuplicateConflict,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidRecipientId => "INVALID_RECIPIENT_ID",
            RejectReason::InvalidLetter => "INVALID_LETTER",
            RejectReason::TooLarge => "TOO_LARGE",
            RejectReason::NotReachable => "NOT_REACHABLE",
            RejectReason::RecipientClosed => "RECIPIENT_CLOSED",
            RejectReason::DuplicateConflict => "DUPLICATE_CONFLICT",
        }
    }

    /// The stored code: the proto's enum value.
    pub fn code(self) -> i64 {
        match self {
            RejectReason::InvalidRecipientId => 1,
            RejectReason::InvalidLetter => 2,
            RejectReason::TooLarge => 3,
            RejectReason::NotReachable => 4,
            RejectReason::RecipientClosed => 5,
            RejectReason::DuplicateConflict => 6,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => RejectReason::InvalidRecipientId,
            2 => RejectReason::InvalidLetter,
            3 => RejectReason::TooLarge,
            4 => RejectReason::NotReachable,
            5 => RejectReason::RecipientClosed,
            6 => RejectReason::DuplicateConflict,
            _ => return None,
        })
    }
}
