//! MeMo, the XML message format of Danish Digital Post (namespace
//! `https://DigitalPost.dk/MeMo-1`): parsing with full schema validation, the message model,
//! writing, and the mapping to and from the gateway's [`Letter`](crate::domain::Letter).
//!
//! Versions 1.1 and 1.2 are read and written, each by its own rules, chosen by the message's
//! `memoVersion`. The schemas are `schemas/MeMo_core.xsd` (1.1) and `schemas/v1.2/MeMo_core.xsd`
//! (1.2); their headers say which published set each follows and where brevdue departs.
//! `tables` holds the same content models as tables, one set per version; a unit test
//! (`xsd_check`) reads both XSD sets and compares, and another (`xmllint_check`) has xmllint
//! judge mutated messages of both versions alike with the parser.
//!
//! ```text
//! parse(&xml)?            -> MemoMessage     streaming, validating; documents decoded in place
//! message.into_letter()?  -> Letter          what the pipeline routes and seals
//! MemoMessage::from_letter(&letter, &sender, created, version) -> MemoMessage
//! write(&message)         -> Vec<u8>         prefixed memo: form; parse(&write(&m)) == m
//! ```
//!
//! Rules beyond the XSD that the parser enforces: memoVersion 1.1 or 1.2 (memoSchVersion
//! required for 1.1, refused for 1.2), MessageBody required for DIGITALPOST and forbidden for
//! NEMSMS, CPR and CVR identifiers of Sender and Recipient checked like every other recipient id
//! in the gateway, MIME-shaped `encodingFormat`, Digital Post's production rules of September
//! 2025 ([`rules`]: filename characters, https action URLs), no DOCTYPE, bounded size and depth.
//!
//! # Layout
//! - [`parse`](mod@parse): the streaming validator over quick-xml events; `parse/root`: the
//!   root's attributes, which choose the version.
//! - `node`: what the parser hands to assembly.
//! - `assemble`: validated elements to the typed model; rules spanning elements.
//! - `content`: streaming base64 of `memo:content`.
//! - `values`: the simple types (text lengths, UUID, dates, booleans, MIME types, ...).
//! - [`rules`]: Digital Post's production rules and accepted media types.
//! - [`schema`]: the vocabulary of the content models; `tables`: the models of each version;
//!   `sequence`: matching children against them; `version`: [`MemoVersion`].
//! - [`model`]: [`MemoMessage`] and its parts.
//! - [`write`](mod@write): the writer.
//! - `letter`: to and from [`Letter`](crate::domain::Letter).
//! - `config`: [`MemoConfig`], the `[memo]` configuration.
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
