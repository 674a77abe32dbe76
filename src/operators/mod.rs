//! Operators: the people on call who act on the gateway through the operator services
//! (`brevdue.v1.Operations`, `brevdue.v1.RegistryAdmin`) with certificates of their own.
//!
//! - [`roster`]: the live view of operator certificates the door checks, refreshed from the
//!   store like the sender directory.
//! - [`console`]: the operator actions themselves, which the gRPC service and the dashboard
//!   call.
//! - [`holds`]: the routes operators hold, which the delivery loop asks before it takes
//!   letters, and which a letter's maximum age leaves out.
//! - [`jobs`]: bulk retry, cancel and purge, run in the background, resumable.
//! - [`gauges`]: the oldest waiting letter per route and held routes, for the metrics.
//! - [`audit`]: every operator action written to the store before its answer goes out.

pub mod audit;
pub mod console;
pub mod gauges;
pub mod holds;
pub mod jobs;
pub mod roster;

pub use console::{Console, ConsoleError, SenderReport};
pub use holds::Holds;
pub use jobs::{JobRunner, OperationsConfig};
pub use roster::Roster;
