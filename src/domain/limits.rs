//! Per-sender limits and share, kept in the sender registry and changed without a restart.
//!
//! `weight` is the sender's share of ingest and delivery capacity when several senders compete
//! (weighted fair queuing: a sender of weight 2 gets twice the letters of a sender of weight 1
//! while both have work). The other limits are off (`None`) until an operator sets them: most
//! senders are fine with the gateway-wide bounds, and a limit is a decision about one sender.

use std::fmt;

/// Largest weight an operator may give: keeps one sender from being handed the whole gateway by
/// a typo.
pub const MAX_WEIGHT: u32 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderLimits {
    /// Share of capacity against other active senders, 1..=MAX_WEIGHT.
    pub weight: u32,
    /// Sustained letters per second.
    pub rate_per_s: Option<u32>,
    /// Letters that may arrive at once above the sustained rate; defaults to one second's worth.
    pub burst: Option<u32>,
    /// Letters of this sender in the pipeline at once, over all its connections.
    pub max_in_flight: Option<u32>,
    /// Largest letter (content bytes) this sender may submit; the gateway-wide limit still applies.
    pub max_letter_bytes: Option<u64>,
}

impl Default for SenderLimits {
    fn default() -> Self {
        SenderLimits {
            weight: 1,
            rate_per_s: None,
            burst: None,
            max_in_flight: None,
            max_letter_bytes: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("weight {0} is out of range: give 1 to {MAX_WEIGHT}")]
    Weight(u32),
    #[error("{0} must be at least 1 (leave it out for no limit)")]
    Zero(&'static str),
    #[error("burst is set but rate is not: a burst only means something above a sustained rate")]
    BurstWithoutRate,
}

impl SenderLimits {
    pub fn check(&self) -> Result<(), LimitsError> {
        if self.weight == 0 || self.weight > MAX_WEIGHT {
            return Err(LimitsError::Weight(self.weight));
        }
        if self.rate_per_s == Some(0) {
            return Err(LimitsError::Zero("rate"));
        }
        if self.burst == Some(0) {
            return Err(LimitsError::Zero("burst"));
        }
        if self.max_in_flight == Some(0) {
            return Err(LimitsError::Zero("in-flight"));
        }
        if self.max_letter_bytes == Some(0) {
            return Err(LimitsError::Zero("max-size"));
        }
        if self.burst.is_some() && self.rate_per_s.is_none() {
            return Err(LimitsError::BurstWithoutRate);
        }
        Ok(())
    }

    /// The burst in effect: as set, else one second of the rate.
    pub fn effective_burst(&self) -> Option<u32> {
        self.rate_per_s.map(|r| self.burst.unwrap_or(r))
    }
}

impl fmt::Display for SenderLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "weight {}", self.weight)?;
        match self.rate_per_s {
            Some(r) => write!(
                f,
                ", rate {r}/s (burst {})",
                self.effective_burst().unwrap_or(r)
            )?,
            None => f.write_str(", rate unlimited")?,
        }
        match self.max_in_flight {
            Some(n) => write!(f, ", in flight {n}")?,
            None => f.write_str(", in flight unlimited")?,
        }
        match self.max_letter_bytes {
            Some(b) => write!(f, ", max size {}", bytesize::ByteSize(b))?,
            None => f.write_str(", max size gateway default")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_unlimited() {
        let l = SenderLimits::default();
        assert_eq!(l.check(), Ok(()));
        assert_eq!(l.effective_burst(), None);
        assert_eq!(
            l.to_string(),
            "weight 1, rate unlimited, in flight unlimited, max size gateway default"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let w = SenderLimits {
            weight: 0,
            ..Default::default()
        };
        assert_eq!(w.check(), Err(LimitsError::Weight(0)));
        let z = SenderLimits {
            rate_per_s: Some(0),
            ..Default::default()
        };
        assert!(z.check().unwrap_err().to_string().contains("rate"));
        let b = SenderLimits {
            burst: Some(5),
            ..Default::default()
        };
        assert_eq!(b.check(), Err(LimitsError::BurstWithoutRate));
    }

    #[test]
    fn burst_defaults_to_one_second_of_rate() {
        let l = SenderLimits {
            rate_per_s: Some(200),
            ..Default::default()
        };
        assert_eq!(l.effective_burst(), Some(200));
    }
}
