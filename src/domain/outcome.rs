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
}
