//! brevdue: a sender-side bulk delivery gateway for Danish digital mail.
//!
//! # Layout
//! A letter travels through the stages in this order; each is one module:
//!
//! - [`domain`]: recipient and sender identifiers (CPR, CVR), shared by every stage.
//! - [`registry`]: who can be reached and how (the in-memory recipient index), and who may send.
//! - [`route`]: the pure per-letter decision: MAILBOX, PRINT or a rejection.
//! - [`seal`]: content digest and envelope encryption of every letter.
//!
//! The binary in `src/main.rs` is a thin command line over these; see [`cli`].
#![forbid(unsafe_code)]

pub mod cli;
pub mod domain;
pub mod registry;
pub mod route;
pub mod seal;
