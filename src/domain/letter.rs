//! Letters, their ids, priorities and receipts, as every stage after ingest sees them.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::RecipientId;

/// The gateway's id for an accepted letter: a UUID v7, so ids sort by acceptance time and land
/// at the end of the store's indexes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LetterId(Uuid);

impl LetterId {
    pub fn new() -> Self {
        LetterId(Uuid::now_v7())
    }
}

impl Default for LetterId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for LetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for LetterId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(LetterId)
    }
}

/// The sender's idempotency key for a letter. Normalised to lowercase hyphenated form, so the
/// same UUID in another letter case or spelling is the same key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MessageUuid(Uuid);

impl fmt::Display for MessageUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for MessageUuid {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(MessageUuid)
    }
}

impl MessageUuid {
    pub fn random() -> Self {
        MessageUuid(Uuid::new_v4())
    }
}

/// Delivery priority. Ordered: `Urgent > Normal > Bulk`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub enum Priority {
    Bulk,
    #[default]
    Normal,
    Urgent,
}

impl Priority {
    pub fn code(self) -> i64 {
        match self {
            Priority::Bulk => 1,
            Priority::Normal => 2,
            Priority::Urgent => 3,
        }
    }

    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Priority::Bulk,
            3 => Priority::Urgent,
            _ => Priority::Normal,
        }
    }
}

/// One document of a letter.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Document {
    pub filename: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A validated letter, ready to route and seal.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Letter {
    pub message_uuid: MessageUuid,
    pub recipient: RecipientId,
    pub title: String,
    pub main_document: Document,
    pub attachments: Vec<Document>,
    pub print_fallback: bool,
    pub priority: Priority,
    pub sender_reference: String,
}

impl Letter {
    /// Total bytes of document content.
    pub fn content_len(&self) -> usize {
        self.documents().map(|d| d.content.len()).sum()
    }

    pub fn documents(&self) -> impl Iterator<Item = &Document> {
        std::iter::once(&self.main_document).chain(&self.attachments)
    }
}

/// Where an accepted letter is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum LetterState {
    Accepted,
    Scheduled,
    Delivered,
    PrintSpooled,
    Failed,
    /// Recalled by the sender before hand-over: never delivered, content destroyed.
    Cancelled,
}

impl LetterState {
    pub fn code(self) -> i64 {
        match self {
            LetterState::Accepted => 1,
            LetterState::Scheduled => 2,
            LetterState::Delivered => 3,
            LetterState::PrintSpooled => 4,
            LetterState::Failed => 5,
            LetterState::Cancelled => 6,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            1 => LetterState::Accepted,
            2 => LetterState::Scheduled,
            3 => LetterState::Delivered,
            4 => LetterState::PrintSpooled,
            5 => LetterState::Failed,
            6 => LetterState::Cancelled,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LetterState::Accepted => "ACCEPTED",
            LetterState::Scheduled => "SCHEDULED",
            LetterState::Delivered => "DELIVERED",
            LetterState::PrintSpooled => "PRINT_SPOOLED",
            LetterState::Failed => "FAILED",
            LetterState::Cancelled => "CANCELLED",
        }
    }

    /// Every state, in code order.
    pub const ALL: [LetterState; 6] = [
        LetterState::Accepted,
        LetterState::Scheduled,
        LetterState::Delivered,
        LetterState::PrintSpooled,
        LetterState::Failed,
        LetterState::Cancelled,
    ];

    /// A state the letter never leaves on its own (an operator may reopen a FAILED one).
    pub fn is_terminal(self) -> bool {
        !matches!(self, LetterState::Accepted | LetterState::Scheduled)
    }

    /// The name as `as_str` writes it, case-insensitively.
    pub fn parse_name(name: &str) -> Option<Self> {
        LetterState::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}
