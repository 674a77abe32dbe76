//! The command line: argument types and one function per command. `main.rs` only dispatches.

pub mod id_check;
