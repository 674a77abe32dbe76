//! brevdue: a sender-side bulk delivery gateway for Danish digital mail.
//!
//! # Layout
//! A letter travels through the stages in this order; each is one module:
//!
//! - [`ingest`]: gRPC with mutual TLS; the client certificate says who the sender is.
//! - [`validate`]: what was submitted becomes a [`domain::Letter`] or a precise rejection.
//! - [`route`]: the pure per-letter decision: MAILBOX, PRINT or a rejection.
//! - [`seal`]: content digest and envelope encryption of every letter.
//! - [`store`]: sealed letters, their life, mailboxes, senders and registry; group commit.
//! - [`queue`]: which letters still have to be delivered.
//! - [`deliver`]: workers that put letters in mailboxes or the print spool.
//!
//! Beside them, [`follow`]: what senders read back (the per-sender event stream, batch
//! counts, recall and listing), kept by the store in the transactions of the state changes.
//!
//! Around them: [`domain`] (identifiers and letters), [`registry`] (the recipient index and
//! sender directory), [`directory`] (their live, refreshed view), [`memo`] (MeMo, the Digital
//! Post message format), [`pipeline`] (the stages in order for one letter), [`pki`] (the
//! gateway CA), [`drr`] (the weighted fair scheduler the admission gate and the RabbitMQ
//! consumers share), [`config`], [`datadir`], [`telemetry`], [`admin`] (operator HTTP),
//! [`server`] (wiring and shutdown) and [`cli`] (the commands).
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod cli;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod deliver;
pub mod directory;
pub mod domain;
pub mod drr;
pub mod error_report;
pub mod follow;
pub mod ingest;
pub mod memo;
pub mod pipeline;
pub mod pki;
pub mod queue;
pub mod registry;
pub mod route;
pub mod seal;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod validate;
