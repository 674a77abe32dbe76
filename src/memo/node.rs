//! What the streaming parser hands to assembly: validated elements and the root's attributes.
//! Its own file so that `parse` (which produces them) and `assemble` (which consumes them)
//! each depend on it and not on each other.

use super::schema::{Child, MemoVersion};

/// A validated element, before assembly into the typed model.
pub(super) struct Node {
    pub decl: &'static Child,
    /// Byte offsets of the start tag and of the end tag (the same for `<x/>`).
    pub start: usize,
    pub end: usize,
    pub value: NodeValue,
}

pub(super) enum NodeValue {
    Text(String),
    Bytes(Vec<u8>),
    Children(Vec<Node>),
}

/// The attributes of `memo:Message`, checked while its start tag was read.
pub(super) struct RootAttrs {
    pub version: MemoVersion,
    /// `memoSchVersion`: present exactly when `version` is 1.1 (the parser enforces it).
    pub schema_version: Option<String>,
}
