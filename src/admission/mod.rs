//! Admission: whether and when a letter may enter the acceptance pipeline.
//!
//! Four checks, in order, before a letter is validated, sealed and stored:
//! 1. the sender's rate (token bucket: sustained letters/s and burst, from the sender registry);
//! 2. for an URGENT letter, the sender's urgent share (a token bucket per sender from
//!    configuration): urgent goes first, so without a share any sender could mark every letter
//!    URGENT and push everyone else's letters back;
//! 3. the sender's letters in flight (over all its connections);
//! 4. the gateway-wide bound on letters and bytes in the pipeline, shared between senders by
//!    weight, urgent letters first and fairly among senders ([`gate`]).
//!
//! `GetStatus` and `CheckRecipient` are held to the sender's rate too ([`Admission::query`], a
//! bucket of their own): a lookup is cheap for the gateway, but unbounded lookups would let a
//! sender probe the registry.
//!
//! A stream waits at each (back-pressure: it stops reading, HTTP/2 flow control stops the
//! client), so a flooding sender is slowed instead of buffered. A unary call cannot be slowed
//! usefully, so it is refused with RESOURCE_EXHAUSTED and a retry hint when over its own limits,
//! and when the gateway is full for longer than `unary_wait` (load shedding). Streams are
//! counted too: past `max_streams` (or `max_streams_per_sender` for one sender) a new stream is
//! refused. Together these bound what the
//! gateway holds in memory, however hard it is pushed: at most `max_bytes_in_flight` of letters
//! in the pipeline plus one letter waiting per stream and per unary call.

mod gate;
mod valve;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::num::NonZeroU32;

use bytesize::ByteSize;
use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use crate::domain::{Cvr, Priority, SenderInfo, SenderLimits};
use crate::telemetry;

pub use gate::{FairGate, GateLoad, GatePermit};
pub use valve::Valve;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Letters in the acceptance pipeline at once, over all senders. Enough to keep the store's
    /// group commits full; letters beyond wait their turn at the gate, fairly.
    pub max_letters_in_flight: usize,
    /// Bytes of letters in the pipeline at once, over all senders.
    pub max_bytes_in_flight: ByteSize,
    /// Open SubmitBatch streams, over all senders.
    pub max_streams: usize,
    /// Open SubmitBatch streams of one sender: one sender cannot take every stream.
    pub max_streams_per_sender: usize,
    /// URGENT letters per second one sender may send (its urgent share); a stream above it is
    /// paced, a unary letter refused with a retry hint. Urgent letters overtake everyone's.
    /// 0 switches the share off (any sender may send every letter URGENT).
    pub urgent_rate_per_sender: u32,
    /// URGENT letters one sender may send at once above its urgent rate.
    pub urgent_burst_per_sender: u32,
    /// How long a unary SubmitLetter waits for room before it is refused (RESOURCE_EXHAUSTED).
    #[serde(with = "humantime_serde")]
    pub unary_wait: Duration,
    /// The smallest cost a letter is counted with against `max_bytes_in_flight`.
    pub min_letter_cost: ByteSize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_letters_in_flight: 1024,
            max_bytes_in_flight: ByteSize::mib(256),
            max_streams: 1024,
            max_streams_per_sender: 64,
            urgent_rate_per_sender: 20,
            urgent_burst_per_sender: 40,
            unary_wait: Duration::from_secs(2),
            min_letter_cost: ByteSize::kib(4),
        }
    }
}

/// Why a letter or a stream was not let in. Every one is retryable; `retry_after` says when.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "sender {sender} is over its rate of {rate} letters/s (burst {burst}); slow down or stream the letters (a stream is paced instead of refused)"
    )]
    Rate {
        sender: Cvr,
        rate: u32,
        burst: u32,
        retry_after: Duration,
    },
    #[error(
        "sender {sender} already has {limit} letters in flight, its limit; wait for their receipts"
    )]
    InFlight {
        sender: Cvr,
        limit: u32,
        retry_after: Duration,
    },
    #[error("the gateway is at capacity and shedding load; nothing was accepted for this letter")]
    Overloaded { retry_after: Duration },
    #[error("the gateway has {limit} letter streams open, its limit; retry the stream later")]
    Streams { limit: usize, retry_after: Duration },
    #[error(
        "sender {sender} has {limit} letter streams open, its limit; send more letters per stream or retry the stream later"
    )]
    SenderStreams {
        sender: Cvr,
        limit: usize,
        retry_after: Duration,
    },
    #[error(
        "sender {sender} is over its urgent share of {rate} URGENT letters/s (burst {burst}); send the letter as NORMAL, or resend it as URGENT later"
    )]
    Urgent {
        sender: Cvr,
        rate: u32,
        burst: u32,
        retry_after: Duration,
    },
}

impl Refused {
    pub fn retry_after(&self) -> Duration {
        match self {
            Refused::Rate { retry_after, .. }
            | Refused::InFlight { retry_after, .. }
            | Refused::Overloaded { retry_after }
            | Refused::Streams { retry_after, .. }
            | Refused::SenderStreams { retry_after, .. }
            | Refused::Urgent { retry_after, .. } => *retry_after,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Refused::Rate { .. } => "rate",
            Refused::InFlight { .. } => "in_flight",
            Refused::Overloaded { .. } => "overloaded",
            Refused::Streams { .. } => "streams",
            Refused::SenderStreams { .. } => "sender_streams",
            Refused::Urgent { .. } => "urgent",
        }
    }
}

/// A letter's places in the pipeline; given back when the letter has its receipt.
pub struct Admitted {
    _gate: GatePermit,
    _own: Option<OwnedSemaphorePermit>,
}

/// A stream's place among the open streams (the gateway's and its sender's).
pub struct StreamSlot {
    admission: Arc<Admission>,
    sender: Option<Cvr>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.admission.streams.fetch_sub(1, Ordering::AcqRel);
        if let Some(sender) = self.sender {
            let mut open = self.admission.lock_sender_streams();
            if let Some(n) = open.get_mut(&sender) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&sender);
                }
            }
        }
    }
}

type UrgentBuckets =
    governor::RateLimiter<Cvr, governor::state::keyed::HashMapStateStore<Cvr>, DefaultClock>;

pub struct Admission {
    config: AdmissionConfig,
    gate: Arc<FairGate>,
    valves: Mutex<HashMap<Cvr, Arc<Valve>>>,
    streams: AtomicUsize,
    /// Open streams per sender (only senders with some).
    sender_streams: Mutex<HashMap<Cvr, usize>>,
    /// Each sender's urgent share; `None` when the share is switched off (rate 0).
    urgent: Option<UrgentBuckets>,
    clock: DefaultClock,
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Arc<Self> {
        let gate = FairGate::new(
            config.max_letters_in_flight,
            config.max_bytes_in_flight.as_u64(),
        );
        let urgent = NonZeroU32::new(config.urgent_rate_per_sender).map(|rate| {
            let burst = NonZeroU32::new(config.urgent_burst_per_sender).unwrap_or(rate);
            governor::RateLimiter::hashmap(Quota::per_second(rate).allow_burst(burst))
        });
        Arc::new(Admission {
            config,
            gate,
            valves: Mutex::new(HashMap::new()),
            streams: AtomicUsize::new(0),
            sender_streams: Mutex::new(HashMap::new()),
            urgent,
            clock: DefaultClock::default(),
        })
    }

    fn lock_sender_streams(&self) -> std::sync::MutexGuard<'_, HashMap<Cvr, usize>> {
        self.sender_streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one URGENT letter's token from the sender's share now, or says when to retry.
    fn try_urgent(&self, sender: Cvr) -> Result<(), Refused> {
        let Some(buckets) = &self.urgent else {
            return Ok(());
        };
        buckets
            .check_key(&sender)
            .map_err(|not_until| Refused::Urgent {
                sender,
                rate: self.config.urgent_rate_per_sender,
                burst: self.config.urgent_burst_per_sender,
                retry_after: not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_millis(1)),
            })
    }

    /// Waits for one URGENT letter's token from the sender's share: how a stream of urgent
    /// letters above the share is paced.
    async fn urgent(&self, sender: Cvr) {
        if let Some(buckets) = &self.urgent {
            buckets.until_key_ready(&sender).await;
        }
    }

    /// For `GetStatus` and `CheckRecipient`: one token of the sender's rate for questions
    /// (a bucket of its own, at the sender's rate), or why not and when to retry.
    pub fn query(&self, sender: &SenderInfo) -> Result<(), Refused> {
        let valve = self.valve(sender.cvr, &sender.limits);
        let result = valve.try_question().map_err(|wait| Refused::Rate {
            sender: sender.cvr,
            rate: sender.limits.rate_per_s.unwrap_or(0),
            burst: sender.limits.effective_burst().unwrap_or(0),
            retry_after: wait.max(Duration::from_millis(1)),
        });
        if let Err(r) = &result {
            telemetry::admission_refused(r.label());
        }
        result
    }

    pub fn load(&self) -> GateLoad {
        self.gate.load()
    }

    /// The sender's valve for its current limits (rebuilt when they changed).
    fn valve(&self, sender: Cvr, limits: &SenderLimits) -> Arc<Valve> {
        let mut valves = self.valves.lock().unwrap_or_else(|p| p.into_inner());
        match valves.get(&sender) {
            Some(v) if v.limits == *limits => v.clone(),
            _ => {
                let v = Arc::new(Valve::new(*limits));
                valves.insert(sender, v.clone());
                v
            }
        }
    }

    fn cost(&self, bytes: usize) -> u64 {
        (bytes as u64).max(self.config.min_letter_cost.as_u64())
    }

    /// Opens a stream for `sender`, or refuses it when `max_streams` are open, or
    /// `max_streams_per_sender` of this sender's.
    pub fn open_stream(self: &Arc<Self>, sender: Cvr) -> Result<StreamSlot, Refused> {
        let before = self.streams.fetch_add(1, Ordering::AcqRel);
        let mut slot = StreamSlot {
            admission: self.clone(),
            sender: None,
        };
        let refused = if before >= self.config.max_streams {
            Some(Refused::Streams {
                limit: self.config.max_streams,
                retry_after: Duration::from_secs(1),
            })
        } else {
            let mut open = self.lock_sender_streams();
            let n = open.entry(sender).or_insert(0);
            if *n >= self.config.max_streams_per_sender {
                Some(Refused::SenderStreams {
                    sender,
                    limit: self.config.max_streams_per_sender,
                    retry_after: Duration::from_secs(1),
                })
            } else {
                *n += 1;
                slot.sender = Some(sender);
                None
            }
        };
        match refused {
            Some(refused) => {
                drop(slot);
                telemetry::admission_refused(refused.label());
                Err(refused)
            }
            None => Ok(slot),
        }
    }

    /// For a letter of a stream: waits until the sender's rate, its letters in flight and the
    /// gateway's room let it in. Never refuses; the wait is the back-pressure.
    pub async fn wait(&self, sender: &SenderInfo, priority: Priority, bytes: usize) -> Admitted {
        let valve = self.valve(sender.cvr, &sender.limits);
        valve.rate().await;
        if priority == Priority::Urgent {
            self.urgent(sender.cvr).await;
        }
        let own = valve.in_flight().await;
        let gate = self
            .gate
            .pass(
                sender.cvr,
                sender.limits.weight,
                priority == Priority::Urgent,
                self.cost(bytes),
            )
            .await;
        Admitted {
            _gate: gate,
            _own: own,
        }
    }

    /// For a unary letter: lets it in now (or within `unary_wait` when the gateway is full), or
    /// says why not and when to retry.
    pub async fn admit(
        &self,
        sender: &SenderInfo,
        priority: Priority,
        bytes: usize,
    ) -> Result<Admitted, Refused> {
        let result = self.admit_unary(sender, priority, bytes).await;
        if let Err(r) = &result {
            telemetry::admission_refused(r.label());
        }
        result
    }

    async fn admit_unary(
        &self,
        sender: &SenderInfo,
        priority: Priority,
        bytes: usize,
    ) -> Result<Admitted, Refused> {
        let valve = self.valve(sender.cvr, &sender.limits);
        if let Err(wait) = valve.try_rate() {
            return Err(Refused::Rate {
                sender: sender.cvr,
                rate: sender.limits.rate_per_s.unwrap_or(0),
                burst: sender.limits.effective_burst().unwrap_or(0),
                retry_after: wait.max(Duration::from_millis(1)),
            });
        }
        if priority == Priority::Urgent {
            self.try_urgent(sender.cvr)?;
        }
        let own = valve.try_in_flight().map_err(|_| Refused::InFlight {
            sender: sender.cvr,
            limit: sender.limits.max_in_flight.unwrap_or(0),
            retry_after: Duration::from_millis(200),
        })?;
        // `pass` goes straight in when there is room and nobody waits; otherwise the letter waits
        // its fair turn for at most `unary_wait`.
        let gate = tokio::time::timeout(
            self.config.unary_wait,
            self.gate.pass(
                sender.cvr,
                sender.limits.weight,
                priority == Priority::Urgent,
                self.cost(bytes),
            ),
        )
        .await
        .map_err(|_| {
            let load = self.gate.load();
            tracing::warn!(
                waiting = load.waiting,
                letters_inside = load.letters_inside,
                bytes_inside = load.bytes_inside,
                "pipeline full: a letter was refused (load shed)"
            );
            Refused::Overloaded {
                retry_after: Duration::from_secs(1),
            }
        })?;
        Ok(Admitted {
            _gate: gate,
            _own: own,
        })
    }
}

impl AdmissionConfig {
    /// Problems for `Config::validate`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.max_letters_in_flight == 0 {
            p.push("admission.max_letters_in_flight must be at least 1".into());
        }
        if self.max_bytes_in_flight.as_u64() == 0 {
            p.push("admission.max_bytes_in_flight must be above 0".into());
        }
        if self.max_streams == 0 {
            p.push("admission.max_streams must be at least 1".into());
        }
        if self.max_streams_per_sender == 0 {
            p.push("admission.max_streams_per_sender must be at least 1".into());
        }
        p
    }
}
