//! Why the pipeline could not take a letter, typed so the one place that answers the sender
//! (`ingest::status`) can say what to do: resend later, resend elsewhere, or nothing (our fault).
//!
//! A per-letter problem is never an error here: it is a REJECTED receipt. These are the cases
//! where nothing was accepted and the letter may be sent again as it is.

use std::sync::Arc;
use std::time::Duration;

use crate::queue::QueueError;
use crate::seal::SealError;
use crate::store::StoreError;

use super::CommitError;

/// How long a sender should wait before resending after a backend was unavailable: long enough
/// for a pooled connection or a broker link to come back, short enough not to idle a batch.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Which backend failed. Never its address: that stays in the server's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Store,
    Queue,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Store => "the letter store",
            Backend::Queue => "the delivery queue",
        })
    }
}

/// Nothing was accepted for the letter.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A backend could not take the letter now; the same letter later will be taken.
    #[error("{backend} is unavailable")]
    Unavailable {
        backend: Backend,
        retry_after: Duration,
        #[source]
        cause: BackendError,
    },
    /// The gateway stopped taking letters; another instance (or this one after its restart)
    /// will take them.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// Sealing failed: a key-ring or random-number problem on this gateway, not the letter's.
    #[error("sealing the letter failed")]
    Seal(#[source] SealError),
    /// The blocking task that sealed a large letter did not finish (it panicked or the runtime
    /// is stopping).
    #[error("the sealing task was interrupted")]
    SealTask(#[source] tokio::task::JoinError),
    /// The store refused or could not read what it should hold: resending as is will not help
    /// until an operator looks.
    #[error("the letter store refused the letter")]
    StoreRefused(#[source] Arc<StoreError>),
}

/// The backend error behind [`SubmitError::Unavailable`].
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error(transparent)]
    Queue(Arc<QueueError>),
}

impl SubmitError {
    /// Whether resending the same letter later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SubmitError::Unavailable { .. } | SubmitError::ShuttingDown
        )
    }

    fn store(e: Arc<StoreError>) -> Self {
        if e.is_transient() {
            SubmitError::Unavailable {
                backend: Backend::Store,
                retry_after: RETRY_AFTER,
                cause: BackendError::Store(e),
            }
        } else {
            SubmitError::StoreRefused(e)
        }
    }
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        SubmitError::store(Arc::new(e))
    }
}

impl From<CommitError> for SubmitError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(e) => SubmitError::store(e),
            CommitError::Queue(e) => SubmitError::Unavailable {
                backend: Backend::Queue,
                retry_after: RETRY_AFTER,
                cause: BackendError::Queue(e),
            },
            CommitError::ShuttingDown => SubmitError::ShuttingDown,
        }
    }
}
