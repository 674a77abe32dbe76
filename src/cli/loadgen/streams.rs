//! Letters streamed to one or more gateways over concurrent SubmitBatch streams, as a sender
//! sends them: receipts counted as they come in, each letter's receipt latency kept.
//!
//! A letter's latency runs from when it is made, just before the stream sends it (the stream
//! keeps a window of `client::WINDOW` unanswered, so a letter is made only when there is room for
//! it), to its receipt.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::sample_letter;
use crate::cli::client;
use crate::domain::RecipientId;
use crate::ingest::pb;

/// What streaming a run's letters gave.
#[derive(Default)]
pub(super) struct Streamed {
    pub accepted: u64,
    pub rejected: u64,
    /// The first rejection's detail, to say why letters were refused.
    pub first_rejection: Option<String>,
    pub elapsed: Duration,
    /// Receipt latency of every letter, in microseconds.
    pub latency_us: Vec<u32>,
}

impl Streamed {
    pub fn accepted_per_s(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The `q` quantile (0 to 1) of receipt latency; `latency_us` must be sorted.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        let n = self.latency_us.len();
        if n == 0 {
            return None;
        }
        let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
        Some(Duration::from_micros(u64::from(self.latency_us[i])))
    }
}

/// Streams `letters` letters of `size` bytes over `streams` streams spread round-robin over
/// `servers`, to the recipients `ids`, counting receipts into `progress`.
pub(super) async fn stream_letters(
    servers: &[String],
    cert_dir: &Path,
    ids: &[RecipientId],
    letters: usize,
    streams: usize,
    size: usize,
    progress: Arc<AtomicU64>,
) -> Result<Streamed> {
    let streams = streams.max(1);
    let ids = Arc::new(ids.to_vec());
    let mut clients = Vec::new();
    for s in 0..streams {
        clients.push(client::connect(&servers[s % servers.len()], cert_dir).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, mut c) in clients.into_iter().enumerate() {
        // The first streams take one letter more when `letters` does not divide evenly.
        let n = letters / streams + usize::from(s < letters % streams);
        let ids = ids.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let made = (0..n).map(move |i| {
                let id = ids[(s + i * streams) % ids.len()];
                (
                    Instant::now(),
                    crate::ingest::letter_to_pb(&sample_letter(id, size)),
                )
            });
            let mut out = Streamed {
                latency_us: Vec::with_capacity(n),
                ..Streamed::default()
            };
            client::stream_batch(&mut c, made, |sent, r| {
                progress.fetch_add(1, Ordering::Relaxed);
                let us = sent.elapsed().as_micros();
                out.latency_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                if r.outcome == pb::Outcome::Rejected as i32 {
                    out.rejected += 1;
                    out.first_rejection.get_or_insert(r.detail);
                } else {
                    out.accepted += 1;
                }
            })
            .await
            .map(|()| out)
        }));
    }
    let mut total = Streamed::default();
    for t in tasks {
        let one = t.await??;
        total.accepted += one.accepted;
        total.rejected += one.rejected;
        if total.first_rejection.is_none() {
            total.first_rejection = one.first_rejection;
        }
        total.latency_us.extend(one.latency_us);
    }
    total.elapsed = started.elapsed();
    total.latency_us.sort_unstable();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_come_from_the_sorted_samples() {
        let s = Streamed {
            latency_us: (1..=100).collect(),
            ..Streamed::default()
        };
        assert_eq!(s.latency(0.5), Some(Duration::from_micros(50)));
        assert_eq!(s.latency(0.99), Some(Duration::from_micros(99)));
        assert_eq!(s.latency(1.0), Some(Duration::from_micros(100)));
        assert_eq!(s.latency(0.0), Some(Duration::from_micros(1)));
        assert_eq!(Streamed::default().latency(0.5), None);
    }
}
