//! The recipient registry and the sender directory: who can be reached, how, and who may send.
//!
//! `index` is the in-memory view the router reads on every letter; `csv` reads the operator's
//! import files; `synth` makes realistic synthetic registries for tests, benches and the demo.

pub mod csv;
mod index;
mod senders;
pub mod synth;

pub use index::{RecipientEntry, RegistryBuilder, RegistryError, RegistryIndex};
pub use senders::SenderDirectory;
