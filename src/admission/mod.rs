//! Admission: whether and when a letter may enter the acceptance pipeline.
//!
//! Three checks, in order, before a letter is validated, sealed and stored:
//! 1. the sender's rate (token bucket: sustained letters/s and burst, from the sender registry);
//! 2. the sender's letters in flight (over all its connections);
//! 3. the gateway-wide bound on letters and bytes in the pipeline, shared between senders by
//!    weight, urgent letters first ([`gate`]).
//!
//! A stream waits at each (back-pressure: it stops reading, HTTP/2 flow control stops the
//! client), so a flooding sender is slowed instead of buffered. A unary call cannot be slowed
//! usefully, so it is refused with RESOURCE_EXHAUSTED and a retry hint when over its own limits,
//! and when the gateway is full for longer than `unary_wait` (load shedding). Streams are
//! counted too: past `max_streams` a new stream is refused. Together these bound what the
//! gateway holds in memory, however hard it is pushed: at most `max_bytes_in_flight` of letters
//! in the pipeline plus one letter waiting per stream and per unary call.

mod gate;
mod valve;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytesize::ByteSize;
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
}

impl Refused {
    pub fn retry_after(&self) -> Duration {
        match self {
            Refused::Rate { retry_after, .. }
            | Refused::InFlight { retry_after, .. }
            | Refused::Overloaded { retry_after }
            | Refused::Streams { retry_after, .. } => *retry_after,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Refused::Rate { .. } => "rate",
            Refused::InFlight { .. } => "in_flight",
            Refused::Overloaded { .. } => "overloaded",
            Refused::Streams { .. } => "streams",
        }
    }
}

/// A letter's places in the pipeline; given back when the letter has its receipt.
pub struct Admitted {
    _gate: GatePermit,
    _own: Option<OwnedSemaphorePermit>,
}

/// A stream's place among the open streams.
pub struct StreamSlot {
    admission: Arc<Admission>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.admission.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Admission {
    config: AdmissionConfig,
    gate: Arc<FairGate>,
    valves: Mutex<HashMap<Cvr, Arc<Valve>>>,
    streams: AtomicUsize,
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Arc<Self> {
        let gate = FairGate::new(
            config.max_letters_in_flight,
            config.max_bytes_in_flight.as_u64(),
        );
        Arc::new(Admission {
            config,
            gate,
            valves: Mutex::new(HashMap::new()),
            streams: AtomicUsize::new(0),
        })
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

    /// Opens a stream, or refuses it when `max_streams` are open.
    pub fn open_stream(self: &Arc<Self>) -> Result<StreamSlot, Refused> {
        let before = self.streams.fetch_add(1, Ordering::AcqRel);
        let slot = StreamSlot {
            admission: self.clone(),
        };
        if before >= self.config.max_streams {
            drop(slot);
            let refused = Refused::Streams {
                limit: self.config.max_streams,
                retry_after: Duration::from_secs(1),
            };
            telemetry::admission_refused(refused.label());
            return Err(refused);
        }
        Ok(slot)
    }

    /// For a letter of a stream: waits until the sender's rate, its letters in flight and the
    /// gateway's room let it in. Never refuses; the wait is the back-pressure.
    pub async fn wait(&self, sender: &SenderInfo, priority: Priority, bytes: usize) -> Admitted {
        let valve = self.valve(sender.cvr, &sender.limits);
        valve.rate().await;
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
        p
    }
}
