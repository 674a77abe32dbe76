//! The one place where an error becomes a gRPC status: every refusal the gateway gives a caller
//! is chosen here, in one exhaustive match, so what a sender is told (and whether it may
//! retry) cannot drift between methods.
//!
//! Clients get a fixed, specific sentence and, for retryable errors, the `retry-after-ms`
//! hint. Errors that are ours, not the caller's, are logged once here with their whole chain
//! under an error id, and the client gets that id (message and `error-id` metadata) but never
//! the chain: it can name hosts, paths and other senders' letters.

use std::time::Duration;

use tonic::{Code, Status};

use crate::admission::Refused;
use crate::domain::Cvr;
use crate::error_report::{ErrorId, chain};
use crate::follow::FollowError;
use crate::operators::ConsoleError;
use crate::pipeline::{RETRY_AFTER, SubmitError};

/// Why a caller is not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no client certificate was presented")]
    NoCertificate,
    #[error("the client certificate is not registered to any sender")]
    UnknownCertificate,
    #[error("sender {0} is suspended")]
    Suspended(Cvr),
    #[error("a sender certificate was presented to an operator service")]
    SenderOnOperatorService,
    #[error("an operator certificate was presented to a sender service")]
    OperatorOnSenderService,
    #[error("the client certificate is not registered to any operator")]
    UnknownOperator,
}

/// A request that is malformed as a whole (per-letter problems are receipts, not errors).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("letter_id {0:?} is not a letter id (a UUID)")]
    BadLetterId(String),
    #[error("message_uuid {0:?} is not a UUID")]
    BadMessageUuid(String),
    #[error("give a letter_id or a message_uuid")]
    MissingKey,
    /// The letter stream broke mid-way (a frame the server could not decode).
    #[error("the letter stream is malformed: {0}")]
    MalformedStream(String),
    #[error("no such letter from this sender")]
    NotFound,
    /// A field of an operator's request that is wrong; the text names it and says how.
    #[error("{0}")]
    BadField(String),
    /// A request message over its method's limit, seen in its header before it was read.
    #[error("a {method} request of {size} bytes is over that method's limit of {limit} bytes")]
    MessageTooLarge {
        method: &'static str,
        size: u64,
        limit: u64,
    },
}

/// Everything a gateway method can refuse a call with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Admission(#[from] Refused),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Follow(#[from] FollowError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
}

/// Set on every status that may be retried: how long to wait first.
const RETRY_AFTER_KEY: &str = "retry-after-ms";
/// Set on every status of ours: the id under which the server logged the cause.
const ERROR_ID_KEY: &str = "error-id";

fn with_retry(mut status: Status, after: Duration) -> Status {
    if let Ok(v) = after.as_millis().to_string().parse() {
        status.metadata_mut().insert(RETRY_AFTER_KEY, v);
    }
    status
}

/// Logs an error of ours once, with its chain, and gives the id the client is told.
fn report(e: &(dyn std::error::Error + 'static), retryable: bool) -> ErrorId {
    let id = ErrorId::new();
    if retryable {
        tracing::warn!(error_id = %id, error = %chain(e), "letter not accepted; the sender may resend");
    } else {
        tracing::error!(error_id = %id, error = %chain(e), "letter not accepted");
    }
    id
}

fn ours(code: Code, message: String, id: ErrorId) -> Status {
    let mut status = Status::new(code, format!("{message} (error id {id})"));
    if let Ok(v) = id.to_string().parse() {
        status.metadata_mut().insert(ERROR_ID_KEY, v);
    }
    status
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Auth(AuthError::NoCertificate) => Status::unauthenticated(
                "no client certificate: connect with the certificate and key that `brevdue senders add` wrote",
            ),
            ApiError::Auth(AuthError::UnknownCertificate) => Status::unauthenticated(
                "this client certificate is not registered to any sender (was it re-issued?)",
            ),
            ApiError::Auth(AuthError::Suspended(cvr)) => Status::permission_denied(format!(
                "sender {cvr} is suspended; contact the gateway operator"
            )),
            ApiError::Auth(AuthError::SenderOnOperatorService) => Status::permission_denied(
                "this is a sender's certificate: operator services take only an operator's \
                 certificate (from `brevdue operators add`)",
            ),
            ApiError::Auth(AuthError::OperatorOnSenderService) => Status::permission_denied(
                "this is an operator's certificate: the letter services take only a sender's \
                 certificate (from `brevdue senders add`)",
            ),
            ApiError::Auth(AuthError::UnknownOperator) => Status::unauthenticated(
                "this client certificate is not registered to any operator (was it revoked?)",
            ),
            ApiError::Request(r @ RequestError::NotFound) => Status::not_found(r.to_string()),
            ApiError::Request(r @ RequestError::MalformedStream(_)) => Status::invalid_argument(
                format!("{r}; receipts already sent stand, resend the rest"),
            ),
            ApiError::Request(
                r @ (RequestError::BadLetterId(_)
                | RequestError::BadMessageUuid(_)
                | RequestError::MissingKey
                | RequestError::BadField(_)
                | RequestError::MessageTooLarge { .. }),
            ) => Status::invalid_argument(r.to_string()),
            ApiError::Admission(r) => with_retry(
                Status::resource_exhausted(format!(
                    "{r}; retry after {} ms (safe: idempotent)",
                    r.retry_after().as_millis()
                )),
                r.retry_after(),
            ),
            ApiError::Submit(SubmitError::ShuttingDown) => with_retry(
                Status::unavailable(
                    "the gateway is shutting down: letters without a receipt were not taken; \
                     resend them (to another instance, or after the restart)",
                ),
                RETRY_AFTER,
            ),
            ApiError::Submit(
                ref s @ SubmitError::Unavailable {
                    backend,
                    retry_after,
                    ..
                },
            ) => {
                let id = report(s, true);
                with_retry(
                    ours(
                        Code::Unavailable,
                        format!(
                            "{backend} is unavailable; nothing was accepted for this letter, \
                             resend it after {} ms (safe: idempotent)",
                            retry_after.as_millis()
                        ),
                        id,
                    ),
                    retry_after,
                )
            }
            ApiError::Submit(
                ref s @ (SubmitError::Seal(_)
                | SubmitError::SealTask(_)
                | SubmitError::StoreRefused(_)),
            ) => {
                let id = report(s, false);
                ours(
                    Code::Internal,
                    "the gateway failed to store this letter and nothing was accepted; \
                     resending will not help until the operator has fixed it: quote the error id"
                        .to_string(),
                    id,
                )
            }
            ApiError::Follow(e) => follow_status(e),
            ApiError::Console(e) => console_status(e),
        }
    }
}

/// Following letters: bad cursors and tokens are the caller's to fix; an expired cursor says
/// from when events are kept and how to go on; too many streams is retryable.
fn follow_status(e: FollowError) -> Status {
    match e {
        FollowError::Token(t) => Status::invalid_argument(t.to_string()),
        FollowError::BadBatchId(b) => Status::invalid_argument(b.to_string()),
        FollowError::Expired {
            kept_from_ms,
            retention,
        } => {
            let kept_from = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(kept_from_ms) * 1_000_000,
            )
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("{kept_from_ms} ms after the epoch"));
            Status::out_of_range(format!(
                "events after this cursor are no longer kept: events are kept for {} (from \
                 {kept_from}); start again with an empty cursor and use GetStatus or \
                 ListLetters for what happened before",
                humantime::format_duration(retention)
            ))
        }
        FollowError::TooManyStreams { limit } => with_retry(
            Status::resource_exhausted(format!(
                "this sender already has {limit} open event streams (the limit); close one, \
                 or retry after {} ms",
                RETRY_AFTER.as_millis()
            )),
            RETRY_AFTER,
        ),
        e @ (FollowError::UnknownBatch(_) | FollowError::UnknownLetter) => {
            Status::not_found(e.to_string())
        }
        FollowError::Store(s) => {
            let retryable = s.is_transient();
            let id = report(&s, retryable);
            let status = ours(
                if retryable {
                    Code::Unavailable
                } else {
                    Code::Internal
                },
                "the gateway could not read or change its store; repeating the call is safe \
                 (a recall that took effect is not made twice)"
                    .to_string(),
                id,
            );
            if retryable {
                with_retry(status, RETRY_AFTER)
            } else {
                status
            }
        }
    }
}

/// Operator actions: a wrong request or an unknown sender or job is the operator's to fix; a
/// store that failed is ours, logged under an error id, and repeating is safe (jobs are
/// idempotent by request id, holds and suspensions by nature).
fn console_status(e: ConsoleError) -> Status {
    match e {
        ConsoleError::Invalid(p) => Status::invalid_argument(p),
        e @ (ConsoleError::UnknownSender(_) | ConsoleError::UnknownJob(_)) => {
            Status::not_found(e.to_string())
        }
        ConsoleError::Store(s) => {
            let retryable = s.is_transient();
            let id = ErrorId::new();
            tracing::warn!(error_id = %id, error = %chain(&s), "an operator action failed in the store");
            let status = ours(
                if retryable {
                    Code::Unavailable
                } else {
                    Code::Internal
                },
                "the gateway could not read or change its store; repeating the call is safe"
                    .to_string(),
                id,
            );
            if retryable {
                with_retry(status, RETRY_AFTER)
            } else {
                status
            }
        }
    }
}

impl From<ConsoleError> for Status {
    fn from(e: ConsoleError) -> Status {
        ApiError::from(e).into()
    }
}

impl From<FollowError> for Status {
    fn from(e: FollowError) -> Status {
        ApiError::from(e).into()
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        ApiError::from(e).into()
    }
}

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Status {
        ApiError::from(e).into()
    }
}

impl From<Refused> for Status {
    fn from(e: Refused) -> Status {
        ApiError::from(e).into()
    }
}

impl From<SubmitError> for Status {
    fn from(e: SubmitError) -> Status {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_hint(s: &Status) -> Option<String> {
        s.metadata()
            .get(RETRY_AFTER_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    #[test]
    fn auth_errors_are_unauthenticated_or_denied_without_a_retry_hint() {
        let s = Status::from(AuthError::NoCertificate);
        assert_eq!(s.code(), Code::Unauthenticated);
        assert!(retry_hint(&s).is_none());
        let s = Status::from(AuthError::Suspended("29403473".parse::<Cvr>().unwrap()));
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(s.message().contains("29403473"));
        for wrong_role in [
            AuthError::SenderOnOperatorService,
            AuthError::OperatorOnSenderService,
        ] {
            let s = Status::from(wrong_role);
            assert_eq!(s.code(), Code::PermissionDenied);
            assert!(retry_hint(&s).is_none());
        }
        assert_eq!(
            Status::from(AuthError::UnknownOperator).code(),
            Code::Unauthenticated
        );
    }

    #[test]
    fn shutting_down_is_retryable_with_a_hint() {
        let s = Status::from(SubmitError::ShuttingDown);
        assert_eq!(s.code(), Code::Unavailable);
        assert!(retry_hint(&s).is_some());
    }

    #[test]
    fn a_store_outage_is_unavailable_with_an_error_id_and_no_cause_text() {
        let cause = crate::store::StoreError::Unavailable(crate::store::Cause::Connect {
            server: "db.internal.example:5432".into(),
            source: sqlx::Error::PoolTimedOut,
        });
        let s = Status::from(SubmitError::from(cause));
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(retry_hint(&s).as_deref(), Some("1000"));
        assert!(!s.message().contains("db.internal"), "{}", s.message());
        let id = s.metadata().get(ERROR_ID_KEY).and_then(|v| v.to_str().ok());
        assert!(id.is_some_and(|id| s.message().contains(id)));
    }

    #[test]
    fn a_refused_store_write_is_internal_and_not_retryable() {
        let cause = crate::store::StoreError::Constraint {
            rule: crate::store::Rule::Unique,
            source: sqlx::Error::Protocol("UNIQUE constraint failed".into()),
        };
        let e = SubmitError::from(cause);
        assert!(!e.is_retryable());
        let s = Status::from(e);
        assert_eq!(s.code(), Code::Internal);
        assert!(retry_hint(&s).is_none());
        assert!(!s.message().contains("UNIQUE"));
    }
}
