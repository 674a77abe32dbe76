//! What every broker call shares: the deadlines, the error a failed call becomes, and a
//! message ready to publish. Its own file so that the connection (`link.rs`) and the lane
//! record (`lanes.rs`), which use each other's work, both build on it without importing each
//! other.

use std::future::Future;
use std::time::Duration;

use lapin::BasicProperties;

use super::QueueError;

/// Connecting and declaring the topology.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Any other broker call, including waiting for the confirms of one enqueue.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A message ready to publish.
pub(super) struct Outgoing {
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) body: Vec<u8>,
    pub(super) properties: BasicProperties,
}

pub(super) fn unavailable(what: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(format!("RabbitMQ {what}: {e}"))
}

/// Runs one broker call under a deadline.
pub(super) async fn within<T, E: std::fmt::Display>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(unavailable(what, format!("no answer within {limit:?}"))),
    }
}
