//! What a failed delivery attempt leaves behind: a retry with back-off, or the end (FAILED and
//! dead-lettered) once the letter has been due for its maximum age.
//!
//! A sender reads `detail` through `GetStatus`, and the queue keeps the last error for operators,
//! so both get a fixed text about this one letter ("print hand-off failed; retrying") with an
//! error id. The error itself, which can name paths, hosts and other letters, is logged once
//! under that id where it happened ([`report`]); never with sender-provided text.

use std::time::Duration;

use crate::clock::now_ms;
use crate::domain::Route;
use crate::error_report::{ErrorId, chain};
use crate::queue::Leased;
use crate::telemetry;

use super::{Deliverer, backoff};

/// Why one letter's attempt failed, as its sender and the operators may read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The sealed letter did not open (damaged, or its key is gone): retrying cannot help, but
    /// an operator may restore a key, so it goes the usual way to the dead letters.
    Unreadable,
    /// Staging or publishing the print batch failed.
    Print,
    /// The store did not answer or refused the change.
    Store,
    /// The gateway died while handling the letter, too many times in a row.
    Interrupted,
}

impl Failure {
    fn text(self) -> &'static str {
        match self {
            Failure::Unreadable => "the sealed letter could not be opened",
            Failure::Print => "print hand-off failed",
            Failure::Store => "the letter store was unavailable",
            Failure::Interrupted => "delivery was interrupted repeatedly",
        }
    }
}

/// Logs an error once, with its whole chain, under a new error id that the letters' texts
/// carry. `what` is a fixed phrase; nothing here may come from a sender.
pub(super) fn report(
    e: &(dyn std::error::Error + 'static),
    route: Route,
    what: &'static str,
    letters: usize,
) -> ErrorId {
    let id = ErrorId::new();
    tracing::warn!(
        error_id = %id,
        error = %chain(e),
        route = telemetry::route_label(route),
        letters,
        "{what}"
    );
    id
}

/// When a letter's maximum age starts: when it became due, not when it was accepted, so a
/// letter scheduled days ahead gets its full round of retries.
pub(super) fn due_at(accepted_at_ms: i64, not_before_ms: Option<i64>) -> i64 {
    accepted_at_ms.max(not_before_ms.unwrap_or(0))
}

impl Deliverer {
    /// Schedules a retry with back-off, or ends the letter FAILED once it has been due for the
    /// maximum age (or can no longer be tried). `due_at_ms` is `None` when the store could not
    /// say when the letter became due: then it is only retried.
    pub(super) async fn fail_one(
        &self,
        leased: &Leased,
        failure: Failure,
        error: ErrorId,
        due_at_ms: Option<i64>,
    ) {
        let d = leased.delivery;
        let now = now_ms();
        // Time the route was held does not age a letter (operators' holds, `operators::holds`).
        let age = due_at_ms.map(|due| {
            Duration::from_millis((now - due).max(0) as u64)
                .saturating_sub(self.holds.held_between(d.route, due, now))
        });
        let give_up =
            failure == Failure::Interrupted || age.is_some_and(|age| age >= self.config.max_age);
        let result = if give_up {
            telemetry::delivery_failed(d.route);
            let problem = format!("{} (error {error})", failure.text());
            let attempts = leased.attempts + 1;
            let detail = match age {
                Some(age) => {
                    let over = humantime::format_duration(Duration::from_secs(age.as_secs()));
                    format!("delivery failed after {attempts} attempts over {over}: {problem}")
                }
                None => format!("delivery failed after {attempts} attempts: {problem}"),
            };
            // The dead letters first, the store second: once the store says FAILED, an
            // operator's bulk job may select the letter and take it off the dead letters, so
            // its entry must be there already or it would stay behind as a stale one.
            match self.queue.dead_letter(d.letter_id, &problem).await {
                Ok(()) => match self.store.mark_failed(d.letter_id, &detail).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        // Back to work, so the letter is tried again rather than left among
                        // the dead while the store still has it waiting.
                        if let Err(q) = self.queue.revive(d.letter_id).await {
                            tracing::warn!(error = %chain(&q), letter = %d.letter_id, "could not put a letter back after the store refused its failure");
                        }
                        Err(e.into())
                    }
                },
                Err(e) => Err(e.into()),
            }
        } else {
            telemetry::delivery_retry(d.route);
            let delay = backoff(&self.config, leased.attempts);
            let detail = format!("{}; retrying (error {error})", failure.text());
            if let Err(e) = self.store.record_failure(d.letter_id, &detail).await {
                tracing::warn!(error = %chain(&e), letter = %d.letter_id, "could not record a failed delivery attempt");
            }
            self.queue
                .retry(d.letter_id, now + delay.as_millis() as i64, &detail)
                .await
                .map_err(super::DeliverError::from)
        };
        if let Err(e) = result {
            // The lease runs out and the letter is handed out again: nothing is lost.
            tracing::warn!(error = %chain(&e), letter = %d.letter_id, "could not record a failed delivery");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_from_when_a_letter_became_due() {
        assert_eq!(due_at(1_000, None), 1_000);
        assert_eq!(due_at(1_000, Some(0)), 1_000);
        assert_eq!(due_at(1_000, Some(360_001_000)), 360_001_000);
    }

    #[test]
    fn texts_name_no_path_or_letter() {
        for f in [
            Failure::Unreadable,
            Failure::Print,
            Failure::Store,
            Failure::Interrupted,
        ] {
            assert!(!f.text().contains('/'));
        }
    }
}
