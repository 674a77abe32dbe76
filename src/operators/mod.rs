//! Operators: the people on call who act on the gateway through the operator services
//! (`brevdue.v1.Operations`, `brevdue.v1.RegistryAdmin`) with certificates of their own.
//!
//! - [`roster`]: the live view of operator certificates the door checks, refreshed from the
//!   store like the sender directory.
//! - [`console`]: the operator actions themselves, which the gRPC service and the dashboard
//!   call.
//! - [`audit`]: every operator action written to the store before its answer goes out.

pub mod audit;
pub mod console;
pub mod roster;

pub use console::Console;
pub use roster::Roster;
