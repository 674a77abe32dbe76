//! The command line: one function per command. `main.rs` parses arguments and dispatches.
//! These are the edges of the program, so they use `anyhow` and print for people.

pub mod admin;
pub mod batchfile;
pub mod client;
pub mod command;
pub mod demo;
pub mod follow;
pub mod health;
pub mod id_check;
pub mod loadgen;
pub mod memo_zip;
pub mod operators;
pub mod ops;
pub mod registry;
pub mod send;
pub mod status;
