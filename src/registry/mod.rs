//! The recipient registry and the sender directory: who can be reached, how, and who may send.
//!
//! `index` is the packed in-memory index and `live` the view the router reads on every letter
//! (the index and the changes since it was built); `csv` reads the operator's
//! import files; `synth` makes realistic synthetic registries for tests, benches and the demo.

pub mod change;
pub mod csv;
mod index;
mod live;
mod senders;
pub mod synth;

pub use index::{IndexLoader, RecipientEntry, RegistryBuilder, RegistryError, RegistryIndex};
pub use live::{Delta, LiveRegistry};
pub use senders::SenderDirectory;
