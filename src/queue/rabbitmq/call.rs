//! What every broker call shares: the deadlines, the error a failed call becomes, and a
//! message ready to publish. Its own file so that the connection (`link.rs`) and the lane
//! record (`lanes.rs`), which use each other's work, both build on it without importing each
//! other.

use std::future::Future;
use std::time::Duration;

use lapin::BasicProperties;

use crate::queue::{QueueCause, QueueError};

/// A message ready to publish.
pub(super) struct Outgoing {
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) body: Vec<u8>,
    pub(super) properties: BasicProperties,
}

pub(super) fn unavailable(
    what: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> QueueError {
    QueueError::Unavailable(QueueCause::Broker {
        what: what.to_string(),
        source: e.into(),
    })
}

/// The broker answered, but not as it must for the letters to be safe.
pub(super) fn refused(why: String) -> QueueError {
    QueueError::Unavailable(QueueCause::Refused(why))
}

/// Runs one broker call under a deadline.
pub(super) async fn within<T, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, QueueError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(QueueError::Unavailable(QueueCause::Timeout {
            what: what.to_string(),
            limit,
        })),
    }
}

/// The broker says the queue or exchange does not exist (404; the channel is closed).
pub(super) fn not_found(e: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        e.kind(),
        lapin::ErrorKind::ProtocolError(p)
            if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}
