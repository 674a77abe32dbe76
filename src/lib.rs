//! brevdue: a sender-side bulk delivery gateway for Danish digital mail.
//!
//! # Layout
//! A letter travels through the stages in this order; each is one module:
//!
//! - [`ingest`]: gRPC with mutual TLS; the client certificate says who the sender is. Protobuf
//!   types stop here, and `ingest::status` is the one place an error becomes a gRPC status.
//! - [`admission`]: per-sender rate and in-flight limits, and the fair gate in front of the
//!   pipeline (urgent first, then senders by weight).
//! - [`validate`]: what was submitted (fields or a MeMo message) becomes a [`domain::Letter`] or
//!   a precise rejection.
//! - [`route`]: the pure per-letter decision: MAILBOX, PRINT or a rejection.
//! - [`seal`]: content digest and envelope encryption of every letter.
//! - [`pipeline`]: the stages in order for one letter, and the group committer that stores and
//!   queues many letters in one durable step before any receipt goes out.
//! - [`store`]: sealed letters, their life, mailboxes, senders and registry (SQLite or
//!   PostgreSQL, one shared implementation over `store::rows`).
//! - [`queue`]: which letters still have to be delivered (embedded or RabbitMQ).
//! - [`retention`]: delivered letters' content purged after `retention.delivered`, disk given
//!   back, the store's size measured.
//! - [`outbox`]: keeps store and queue in step: publish markers and the sweep that re-queues
//!   waiting letters the queue may not hold, at start-up and while running.
//! - [`deliver`]: workers that put letters in mailboxes or the print spool.
//!
//! Beside them, [`follow`]: what senders read back (the per-sender event stream, batch
//! counts, recall and listing), kept by the store in the transactions of the state changes.
//!
//! Around them: [`domain`] (identifiers and the vocabulary every stage shares; depends on
//! nothing), [`registry`] (the recipient index and sender directory), [`directory`] (their live,
//! refreshed view), [`memo`] (MeMo, the Digital Post message format), [`drr`] (the weighted fair
//! scheduler the admission gate and the RabbitMQ consumers share), [`backend`] (store and queue
//! URLs, parsed once), [`db`] (SQLite helpers the store and the embedded queue share), [`pki`]
//! (the gateway CA), [`error_report`] (an error's chain and id for the log), [`config`],
//! [`datadir`], [`clock`], [`telemetry`], [`operators`] (operator identities and what they
//! do), [`admin`] (operator HTTP), [`server`] (wiring and
//! the one shutdown path) and [`cli`] (the commands; `main.rs` is a thin binary over it).
//!
//! No module imports another in a loop; `tests/module_cycles.rs` fails on a new cycle.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod datadir;
// SQL helpers the store and the embedded queue share (not part of the public API).
pub mod db;
pub mod deliver;
pub mod directory;
pub mod domain;
pub mod drr;
pub mod error_report;
pub mod follow;
pub mod ingest;
pub mod memo;
pub mod operators;
pub mod outbox;
pub mod page_cache;
pub mod pipeline;
pub mod pki;
pub mod queue;
pub mod registry;
pub mod retention;
pub mod route;
pub mod seal;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod validate;
