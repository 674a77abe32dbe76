//! How an error is written down once on the server: its whole chain of causes on one line,
//! under an error id the client is given too, so an operator can find the line a sender quotes.
//!
//! Clients never see the chain (it can name hosts, paths and other senders' letters); they get
//! the fixed text `ingest::status` chooses and the id.

use std::error::Error;
use std::fmt;

/// An error and all its causes, `outer: cause: root cause`.
pub struct Chain<'a>(&'a (dyn Error + 'static));

/// Formats `e` with its sources.
pub fn chain<'a>(e: &'a (dyn Error + 'static)) -> Chain<'a> {
    Chain(e)
}

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// A short random id for one reported error (12 hex digits: unique enough to find one log line
/// in a day of logs, short enough to read out over the phone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorId(u64);

impl ErrorId {
    pub fn new() -> Self {
        ErrorId(rand::random::<u64>() & 0xffff_ffff_ffff)
    }
}

impl Default for ErrorId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ErrorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_names_every_cause_in_order() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&e).to_string(), "outer: disk on fire");
    }

    #[test]
    fn error_ids_are_twelve_hex_digits_and_differ() {
        let a = ErrorId::new().to_string();
        let b = ErrorId::new().to_string();
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
