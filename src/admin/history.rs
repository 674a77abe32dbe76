//! The snapshots the sampler keeps and the dashboard's statistics are computed from: plain
//! data in its own file, so the sampler (which writes it and asks for statistics) and the
//! statistics (which read it) both depend on it rather than on each other.

use std::collections::{HashMap, VecDeque};

use crate::domain::Cvr;
use crate::queue::QueueDepth;
use crate::telemetry::live::LiveSnapshot;

/// The totals at one moment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Seconds since the sampler started (monotonic: wall-clock jumps do not bend rates).
    pub t: f64,
    pub live: LiveSnapshot,
}

/// Each sender's letters so far (all outcomes), at one moment.
#[derive(Clone, Debug)]
pub struct SenderSample {
    pub t: f64,
    pub letters: HashMap<Cvr, u64>,
}

/// What the sampler remembers: recent snapshots, oldest first.
#[derive(Default)]
pub struct History {
    pub samples: VecDeque<Sample>,
    pub senders: VecDeque<SenderSample>,
    /// The last answer from the queue: a depth, or why there is none.
    pub queue: Option<Result<QueueDepth, String>>,
}
