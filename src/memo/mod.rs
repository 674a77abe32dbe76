//! MeMo, the XML message format of Danish Digital Post (namespace
//! `https://DigitalPost.dk/MeMo-1`): parsing with full schema validation, the message model,
//! writing, and the mapping to and from the gateway's [`Letter`](crate::domain::Letter).
//!
//! The schema is `schemas/MeMo_core.xsd` (MeMo 1.1, the last version with a published XSD; its
//! header lists where brevdue departs). [`schema`] holds the same content models as tables, and
//! a unit test reads the XSD files and compares the two.
//!
//! ```text
//! parse(&xml)?            -> MemoMessage     streaming, validating; documents decoded in place
//! message.into_letter()?  -> Letter          what the pipeline routes and seals
//! MemoMessage::from_letter(&letter, &sender, created) -> MemoMessage
//! write(&message)         -> Vec<u8>         prefixed memo: form; parse(&write(&m)) == m
//! ```
//!
//! Rules beyond the XSD that the parser enforces: memoVersion 1.1 or 1.2 (memoSchVersion
//! required for 1.1 only), MessageBody required for DIGITALPOST and forbidden for NEMSMS, CPR and
//! CVR identifiers of Sender and Recipient checked like every other recipient id in the gateway,
//! MIME-shaped `encodingFormat`, no DOCTYPE, bounded size and depth.
//!
//! # Layout
//! - [`parse`](mod@parse): the streaming validator over quick-xml events.
//! - `assemble`: validated elements to the typed model; rules spanning elements.
//! - `content`: streaming base64 of `memo:content`.
//! - `values`: the simple types (text lengths, UUID, dates, booleans, MIME types, ...).
//! - [`schema`]: the content models; `sequence`: matching children against them.
//! - [`model`]: [`MemoMessage`] and its parts.
//! - [`write`](mod@write): the writer.
//! - `letter`: to and from [`Letter`](crate::domain::Letter).
//! - [`error`]: [`MemoError`], naming element path, line and column.

mod assemble;
mod config;
mod content;
pub mod error;
mod letter;
pub mod model;
mod node;
pub mod parse;
pub mod rules;
pub mod schema;
mod sequence;
mod tables;
mod values;
mod version;
pub mod write;
#[cfg(test)]
mod xmllint_check;
#[cfg(test)]
mod xsd_check;

pub use config::MemoConfig;
pub use error::{MemoError, MemoErrorKind};
pub use letter::DEFAULT_LANGUAGE;
pub use model::{
    Element, ElementContent, MemoDocument, MemoFile, MemoMessage, MemoVersion, MessageBody,
    MessageHeader, MessageType, Recipient, Sender, TechnicalDocument,
};
pub use parse::{ParseLimits, parse, parse_with_limits};
pub use schema::Ns;
pub use version::UnknownVersion;
pub use write::write;

/// The MeMo namespace.
pub const NAMESPACE: &str = "https://DigitalPost.dk/MeMo-1";
