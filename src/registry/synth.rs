//! Realistic synthetic registries from a seed, for tests, benches and the demo.
//!
//! Proportions follow the Danish picture: most adults active in Digital Post, a few percent
//! exempt, some closed (deceased); children under 15 are not registered at all; citizens subscribe
//! to a handful of private senders with a few big banks and pension funds far more popular than the
//! rest. The same seed always gives the same registry.

use std::collections::HashSet;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use time::{Date, Duration};

use crate::domain::{Cpr, Cvr, RecipientId, complete_cvr};

use super::{RegistryBuilder, RegistryError, RegistryIndex};
use crate::domain::RecipientStatus;

#[derive(Clone, Debug)]
pub struct SynthSpec {
    pub seed: u64,
    pub citizens: usize,
    pub companies: usize,
    pub private_senders: usize,
    /// Ages are drawn so that every registered citizen is at least 15 on this day.
    pub reference_date: Date,
}

impl SynthSpec {
    /// The whole of Denmark: 5.9 million citizens and 0.8 million companies.
    pub fn denmark(seed: u64) -> Self {
        SynthSpec {
            seed,
            citizens: 5_900_000,
            companies: 800_000,
            private_senders: 400,
            reference_date: time::macros::date!(2026 - 01 - 01),
        }
    }

    pub fn small(seed: u64, citizens: usize, companies: usize) -> Self {
        SynthSpec {
            citizens,
            companies,
            private_senders: 20,
            ..SynthSpec::denmark(seed)
        }
    }
}

/// The generated private senders (most popular first) and counts of what was made.
#[derive(Clone, Debug, Default)]
pub struct SynthSummary {
    pub private_senders: Vec<Cvr>,
    pub recipients: usize,
    pub subscriptions: usize,
}

/// Generates the registry, handing each recipient with its subscriptions to `sink`.
pub fn generate(
    spec: &SynthSpec,
    mut sink: impl FnMut(RecipientId, RecipientStatus, &[Cvr]),
) -> SynthSummary {
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    let private_senders = distinct_cvrs(&mut rng, spec.private_senders, &HashSet::new());
    let mut seen: HashSet<u64> = HashSet::with_capacity(spec.citizens + spec.companies);
    let mut subs: Vec<Cvr> = Vec::with_capacity(8);
    let mut summary = SynthSummary {
        private_senders: private_senders.clone(),
        ..SynthSummary::default()
    };

    let mut made = 0;
    while made < spec.citizens {
        let cpr = random_adult_cpr(&mut rng, spec.reference_date);
        if !seen.insert(cpr.value()) {
            continue;
        }
        made += 1;
        let status = match rng.random_range(0..1000) {
            0..=929 => RecipientStatus::Active,
            930..=979 => RecipientStatus::Exempt,
            _ => RecipientStatus::Closed,
        };
        subs.clear();
        if !private_senders.is_empty() {
            // Binomial(8, 0.45): mean 3.6 subscriptions, 0 to 8.
            let n = (0..8).filter(|_| rng.random_bool(0.45)).count();
            pick_popular(&mut rng, &private_senders, n, &mut subs);
        }
        summary.subscriptions += subs.len();
        sink(RecipientId::Cpr(cpr), status, &subs);
    }

    let sender_keys: HashSet<u32> = private_senders.iter().map(|c| c.value()).collect();
    let mut made = 0;
    while made < spec.companies {
        let Some(cvr) = complete_cvr(rng.random_range(1_000_000..10_000_000)) else {
            continue;
        };
        let key = RecipientId::Cvr(cvr).index_key();
        if sender_keys.contains(&cvr.value()) || !seen.insert(key) {
            continue;
        }
        made += 1;
        let status = if rng.random_range(0..100) < 96 {
            RecipientStatus::Active
        } else {
            RecipientStatus::Closed
        };
        subs.clear();
        if !private_senders.is_empty() && rng.random_bool(0.3) {
            let n = rng.random_range(1..=2);
            pick_popular(&mut rng, &private_senders, n, &mut subs);
        }
        summary.subscriptions += subs.len();
        sink(RecipientId::Cvr(cvr), status, &subs);
    }
    summary.recipients = spec.citizens + spec.companies;
    summary
}

/// Generates straight into an index.
pub fn generate_index(spec: &SynthSpec) -> Result<(RegistryIndex, SynthSummary), RegistryError> {
    let mut builder = RegistryBuilder::with_capacity(
        spec.citizens + spec.companies,
        spec.citizens * 4 + spec.companies / 2,
    );
    let mut failure = None;
    let summary = generate(spec, |id, status, subs| {
        if failure.is_some() {
            return;
        }
        let added = builder
            .insert(id, status)
            .and_then(|()| subs.iter().try_for_each(|&s| builder.subscribe(id, s)));
        if let Err(e) = added {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok((builder.build()?, summary))
}

/// A random CPR of a person aged 15 to 99 on `today`, with a serial whose first digit matches
/// the birth century.
pub fn random_adult_cpr(rng: &mut impl Rng, today: Date) -> Cpr {
    random_cpr_aged(rng, today, 15 * 366, 99 * 365)
}

/// A random CPR of a child under 15 on `today` (never registered: see the routing rules).
pub fn random_child_cpr(rng: &mut impl Rng, today: Date) -> Cpr {
    random_cpr_aged(rng, today, 1, 14 * 365)
}

fn random_cpr_aged(rng: &mut impl Rng, today: Date, min_days: i64, max_days: i64) -> Cpr {
    loop {
        let born = today - Duration::days(rng.random_range(min_days..=max_days));
        let year = born.year();
        let yy = (year % 100) as u64;
        // Serial first digits that give this century for this yy.
        let first: u64 = match year {
            1858..=1899 => rng.random_range(5..=8),
            1900..=1936 => rng.random_range(0..=3),
            1937..=1999 => [0, 1, 2, 3, 4, 9][rng.random_range(0..6)],
            2000..=2036 => [4, 9, 5, 6, 7, 8][rng.random_range(0..6)],
            2037..=2057 => rng.random_range(5..=8),
            _ => continue,
        };
        let serial = first * 1000 + rng.random_range(0..1000);
        let value = u64::from(born.day()) * 100_000_000
            + u64::from(born.month() as u8) * 1_000_000
            + yy * 10_000
            + serial;
        if let Ok(cpr) = Cpr::from_value(value) {
            return cpr;
        }
    }
}

fn distinct_cvrs(rng: &mut impl Rng, n: usize, avoid: &HashSet<u32>) -> Vec<Cvr> {
    let mut out = Vec::with_capacity(n);
    let mut seen = HashSet::new();
    while out.len() < n {
        if let Some(cvr) = complete_cvr(rng.random_range(1_000_000..10_000_000))
            && !avoid.contains(&cvr.value())
            && seen.insert(cvr.value())
        {
            out.push(cvr);
        }
    }
    out
}

/// Picks `n` distinct senders, skewed towards the front of the list (the big ones).
fn pick_popular(rng: &mut impl Rng, senders: &[Cvr], n: usize, out: &mut Vec<Cvr>) {
    let n = n.min(senders.len());
    while out.len() < n {
        let u: f64 = rng.random();
        let i = ((u * u * u) * senders.len() as f64) as usize;
        let s = senders[i.min(senders.len() - 1)];
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_registry() {
        let spec = SynthSpec::small(7, 2_000, 300);
        let collect = |spec: &SynthSpec| {
            let mut rows = Vec::new();
            generate(spec, |id, st, subs| rows.push((id, st, subs.to_vec())));
            rows
        };
        assert_eq!(collect(&spec), collect(&spec));
        assert_ne!(collect(&spec), collect(&SynthSpec::small(8, 2_000, 300)));
    }

    #[test]
    fn proportions_are_realistic() {
        let spec = SynthSpec::small(1, 20_000, 2_000);
        let (index, summary) = generate_index(&spec).unwrap();
        assert_eq!(index.len(), 22_000);
        let mut active = 0;
        let mut exempt = 0;
        for (key, status, subs) in index.iter() {
            let id = RecipientId::from_index_key(key).unwrap();
            if let RecipientId::Cpr(c) = id {
                assert!(c.age_on(spec.reference_date) >= 15);
            } else {
                assert_ne!(status, RecipientStatus::Exempt);
            }
            active += usize::from(status == RecipientStatus::Active);
            exempt += usize::from(status == RecipientStatus::Exempt);
            assert!(subs.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(active > 19_000 && active < 21_500, "{active}");
        assert!(exempt > 500 && exempt < 1_600, "{exempt}");
        let per_citizen = summary.subscriptions as f64 / 22_000.0;
        assert!(per_citizen > 2.5 && per_citizen < 4.5, "{per_citizen}");
    }

    #[test]
    fn children_are_under_fifteen() {
        let mut rng = SmallRng::seed_from_u64(3);
        let today = time::macros::date!(2026 - 11 - 25);
        for _ in 0..1000 {
            let c = random_child_cpr(&mut rng, today);
            assert!(c.age_on(today) < 15);
            let a = random_adult_cpr(&mut rng, today);
            assert!(a.age_on(today) >= 15);
        }
    }
}
