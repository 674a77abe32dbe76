//! Why a MeMo message was refused: the element, the place in the input and the problem.

use std::fmt;

/// What the caller can do about a refused message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoErrorKind {
    /// The message breaks the schema or a MeMo rule: fix it and send it again.
    Invalid,
    /// The input is larger than the configured limit (`TOO_LARGE` on a receipt).
    TooLarge,
    /// A valid MeMo message this gateway cannot turn into a letter (a NemSMS, a recipient that is
    /// neither a CPR nor a CVR number).
    Unsupported,
}

/// A refused MeMo message.
///
/// `path` names the element in the canonical prefixed form, with 1-based positions for repeated
/// elements (`/memo:Message/memo:MessageBody/memo:AdditionalDocument[2]/memo:File[1]/memo:content`);
/// `line` and `column` (1-based, column counted in characters) say where in the input it starts.
/// Both are 0 when the problem is not tied to a place in an input, e.g. from
/// [`MemoMessage::to_letter`](super::MemoMessage::to_letter) on a message built in code.
///
/// The problem may quote the offending value (a CPR number included): it goes back to the sender
/// who wrote it and must not be logged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MemoError {
    pub kind: MemoErrorKind,
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub problem: String,
}

impl fmt::Display for MemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "MeMo message"
        } else {
            &self.path
        };
        if self.line > 0 {
            write!(
                f,
                "{path} (line {}, column {}): {}",
                self.line, self.column, self.problem
            )
        } else {
            write!(f, "{path}: {}", self.problem)
        }
    }
}

impl MemoError {
    pub(crate) fn new(
        kind: MemoErrorKind,
        path: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        MemoError {
            kind,
            path: path.into(),
            line: 0,
            column: 0,
            problem: problem.into(),
        }
    }

    pub(crate) fn at(mut self, (line, column): (usize, usize)) -> Self {
        self.line = line;
        self.column = column;
        self
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
pub(crate) fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src.as_bytes()[..offset];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = 1 + src[line_start..offset].chars().count();
    (line, column)
}

/// At most `max` characters of `s`, for quoting input in a message.
pub(crate) fn quote(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let src = "ab\næøå<x/>\n";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 3), (2, 1));
        // "æøå" is 6 bytes, 3 characters: '<' is the 4th character of line 2.
        assert_eq!(line_column(src, 9), (2, 4));
        assert_eq!(line_column(src, 10_000), (3, 1));
    }

    #[test]
    fn display_names_the_place() {
        let e = MemoError::new(MemoErrorKind::Invalid, "/memo:Message", "bad").at((3, 7));
        assert_eq!(e.to_string(), "/memo:Message (line 3, column 7): bad");
        let e = MemoError::new(MemoErrorKind::Unsupported, "", "no");
        assert_eq!(e.to_string(), "MeMo message: no");
    }
}
