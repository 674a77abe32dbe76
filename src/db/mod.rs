//! What the store and the embedded queue share about their SQL databases: how the gateway opens
//! a SQLite file, and the integer codes a [`Route`] is kept as.
//!
//! Both keep SQLite files in the data directory with the same durability settings and both
//! store routes as numbers, but neither owns the other: kept here, the queue does not depend on
//! the store for them, and no module cycle runs through the two.

pub(crate) mod sqlite;

use crate::domain::Route;

/// A route as both SQL stores and the embedded queue keep it.
pub(crate) fn route_code(route: Route) -> i64 {
    match route {
        Route::Mailbox => 1,
        Route::Print => 2,
    }
}

/// The route a stored code names; anything but the print code is a mailbox letter, as it has
/// been since the first schema.
pub(crate) fn route_from_code(code: i64) -> Route {
    if code == route_code(Route::Print) {
        Route::Print
    } else {
        Route::Mailbox
    }
}
