//! One sender's own limits: a token bucket for its sustained rate and burst, a second bucket of
//! the same rate for its questions (GetStatus, CheckRecipient), and a semaphore for its letters
//! in flight. Questions have their own bucket so that a sender at its letter rate can still ask
//! what became of a refused letter, and a sender asking many questions does not slow its own
//! letters; both are bounded by the rate the operator set. Built from the sender registry and rebuilt when an operator changes
//! the limits (letters in flight under the old limits finish under them).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::SenderLimits;

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// Every place among the sender's letters in flight is taken.
#[derive(Debug, PartialEq, Eq)]
pub struct AllInFlight;

pub struct Valve {
    pub limits: SenderLimits,
    bucket: Option<Bucket>,
    questions: Option<Bucket>,
    clock: DefaultClock,
    in_flight: Option<Arc<Semaphore>>,
}

impl Valve {
    pub fn new(limits: SenderLimits) -> Self {
        let bucket = || {
            limits.rate_per_s.and_then(NonZeroU32::new).map(|rate| {
                let burst = limits
                    .effective_burst()
                    .and_then(NonZeroU32::new)
                    .unwrap_or(rate);
                RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
            })
        };
        let in_flight = limits
            .max_in_flight
            .map(|n| Arc::new(Semaphore::new(n as usize)));
        Valve {
            limits,
            bucket: bucket(),
            questions: bucket(),
            clock: DefaultClock::default(),
            in_flight,
        }
    }

    /// Takes one letter's token now, or says how long until one is there.
    pub fn try_rate(&self) -> Result<(), Duration> {
        match &self.bucket {
            None => Ok(()),
            Some(b) => b
                .check()
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Takes one question's token now, or says how long until one is there.
    pub fn try_question(&self) -> Result<(), Duration> {
        match &self.questions {
            None => Ok(()),
            Some(b) => b
                .check()
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Waits for one letter's token: how a stream over its rate is slowed.
    pub async fn rate(&self) {
        if let Some(b) = &self.bucket {
            b.until_ready().await;
        }
    }

    /// A place among the sender's letters in flight, if there is one now. `Ok(None)`: no limit.
    pub fn try_in_flight(&self) -> Result<Option<OwnedSemaphorePermit>, AllInFlight> {
        match &self.in_flight {
            None => Ok(None),
            Some(s) => s
                .clone()
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| AllInFlight),
        }
    }

    /// Waits for a place among the sender's letters in flight.
    pub async fn in_flight(&self) -> Option<OwnedSemaphorePermit> {
        match &self.in_flight {
            None => None,
            // The semaphore is never closed, so acquiring only ever waits.
            Some(s) => s.clone().acquire_owned().await.ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let v = Valve::new(SenderLimits {
            rate_per_s: Some(2),
            burst: Some(3),
            ..Default::default()
        });
        for _ in 0..3 {
            assert_eq!(v.try_rate(), Ok(()));
        }
        let wait = v.try_rate().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
    }

    #[test]
    fn in_flight_is_bounded_and_given_back() {
        let v = Valve::new(SenderLimits {
            max_in_flight: Some(2),
            ..Default::default()
        });
        let a = v.try_in_flight().unwrap();
        let _b = v.try_in_flight().unwrap();
        assert!(v.try_in_flight().is_err());
        drop(a);
        assert!(v.try_in_flight().is_ok());
    }

    #[test]
    fn no_limits_never_refuse() {
        let v = Valve::new(SenderLimits::default());
        for _ in 0..10_000 {
            assert_eq!(v.try_rate(), Ok(()));
        }
        assert!(matches!(v.try_in_flight(), Ok(None)));
    }
}
