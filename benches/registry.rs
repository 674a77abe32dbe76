//! Registry changes into a registry the size of Denmark (5.9 M citizens, 0.8 M companies,
//! about 13 M subscriptions): how fast changes are applied to the live index as deltas, what a
//! background merge of the changes costs, and what routing costs while changes are applied
//! from another thread (the index a gateway keeps while its change-log follower runs).
//!
//! Beside each figure the raw ceiling of the same run: routing on the same index with no
//! changes at all.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use brevdue::domain::{RecipientId, RecipientStatus, SenderKind};
use brevdue::registry::synth::{SynthSpec, generate_index};
use brevdue::registry::{Delta, LiveRegistry};
use brevdue::route::{RouteQuery, SenderRef, route_batch};
use criterion::{BatchSize, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Changes per applied batch: what one poll of the change log brings at a busy moment.
const BATCH: usize = 1_000;
const QUERIES: usize = 1 << 20;

fn main() {
    let t = Instant::now();
    let spec = SynthSpec::denmark(2026);
    let (index, summary) = match generate_index(&spec) {
        Ok(v) => v,
        Err(e) => panic!("generating the registry: {e}"),
    };
    eprintln!(
        "registry: {} recipients, {} subscriptions, generated in {:.1} s",
        index.len(),
        summary.subscriptions,
        t.elapsed().as_secs_f64()
    );
    let mut rng = SmallRng::seed_from_u64(9);
    let mut keys: Vec<u64> = index.iter().map(|(k, _, _)| k).collect();
    keys.shuffle(&mut rng);
    let bank = summary.private_senders[0].value();
    let base = LiveRegistry::from(index);
    let today = spec.reference_date;

    // Subscriptions to and from the bank, and some status changes, on random recipients.
    let change = |rng: &mut SmallRng| -> (u64, Option<Delta>) {
        let key = keys[rng.random_range(0..keys.len())];
        let status = if key & (1 << 40) == 0 && rng.random_bool(0.1) {
            RecipientStatus::Exempt
        } else {
            RecipientStatus::Active
        };
        let senders: Arc<[u32]> = if rng.random_bool(0.5) {
            vec![bank].into()
        } else {
            Vec::new().into()
        };
        (key, Some(Delta { status, senders }))
    };
    let batches: Vec<Vec<(u64, Option<Delta>)>> = (0..64)
        .map(|_| (0..BATCH).map(|_| change(&mut rng)).collect())
        .collect();
    // An overlay of 50,000 changed recipients: as large as it grows before a merge.
    let mut changed = base.clone();
    for b in batches.iter().take(50) {
        changed = changed.with_changes(b.clone()).expect("changes apply");
    }

    let queries: Vec<RouteQuery> = keys
        .iter()
        .take(QUERIES)
        .enumerate()
        .filter_map(|(i, &k)| {
            Some(RouteQuery {
                sender: SenderRef {
                    cvr: summary.private_senders[i % 8],
                    kind: SenderKind::Private,
                },
                recipient: RecipientId::from_index_key(k).ok()?,
                print_fallback: i % 2 == 0,
            })
        })
        .collect();

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut group = c.benchmark_group("registry");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("apply_1000_changes_on_50k_overlay_6.7M", |b| {
        let mut i = 0;
        b.iter_batched(
            || {
                i += 1;
                batches[50 + i % 14].clone()
            },
            |batch| black_box(changed.with_changes(batch).expect("changes apply")),
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Elements(queries.len() as u64));
    let mut out = Vec::with_capacity(queries.len());
    group.bench_function("route_batch_no_changes_6.7M", |b| {
        b.iter(|| {
            out.clear();
            route_batch(&base, today, &queries, &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("route_batch_50k_changes_6.7M", |b| {
        b.iter(|| {
            out.clear();
            route_batch(&changed, today, &queries, &mut out);
            black_box(out.len())
        })
    });
    group.finish();

    // Routing while another thread applies changes, as the follower does in a gateway.
    let live = Arc::new(RwLock::new(Arc::new(changed.clone())));
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicU64::new(0));
    let applier = {
        let (live, stop, applied) = (live.clone(), stop.clone(), applied.clone());
        let batches = batches.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let current = live.read().map(|g| g.clone()).expect("lock");
                // Keep the overlay about its size: start again from the 50k one now and then.
                let next = current
                    .with_changes(batches[50 + i % 14].clone())
                    .expect("changes apply");
                i += 1;
                if let Ok(mut g) = live.write() {
                    *g = Arc::new(next);
                }
                applied.fetch_add(BATCH as u64, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    let rounds = 10;
    let t = Instant::now();
    for _ in 0..rounds {
        let current = live.read().map(|g| g.clone()).expect("lock");
        out.clear();
        route_batch(&current, today, &queries, &mut out);
        black_box(out.len());
    }
    let while_changing = (rounds * queries.len()) as f64 / t.elapsed().as_secs_f64();
    let changes_during = applied.load(Ordering::Relaxed);
    let took = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = applier.join();

    let rate = |registry: &LiveRegistry, out: &mut Vec<_>| {
        let t = Instant::now();
        for _ in 0..5 {
            out.clear();
            route_batch(registry, today, &queries, out);
        }
        (5 * queries.len()) as f64 / t.elapsed().as_secs_f64()
    };
    let ceiling = rate(&base, &mut out);
    let with_overlay = rate(&changed, &mut out);
    let t = Instant::now();
    let mut applied_n = 0;
    let mut r = changed.clone();
    for b in batches.iter().skip(50) {
        r = r.with_changes(b.clone()).expect("changes apply");
        applied_n += b.len();
    }
    let apply_rate = applied_n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let merged = changed.merged().expect("merge");
    let merge_s = t.elapsed().as_secs_f64();

    println!("\n== registry changes, {} recipients ==", base.len());
    println!(
        "changes applied as deltas: {:.0} k/s in batches of {BATCH} (overlay of {} recipients)",
        apply_rate / 1e3,
        changed.overlay_len()
    );
    println!(
        "background merge of the overlay into a new packed index: {:.1} s ({} recipients)",
        merge_s,
        merged.len()
    );
    println!(
        "routing, no changes (ceiling): {:.2} M decisions/s",
        ceiling / 1e6
    );
    println!(
        "routing with 50k changes in the overlay: {:.2} M decisions/s ({:.0} % of the ceiling)",
        with_overlay / 1e6,
        100.0 * with_overlay / ceiling
    );
    println!(
        "routing while {:.0} changes/s are applied from another thread: {:.2} M decisions/s ({:.0} % of the ceiling)",
        changes_during as f64 / took,
        while_changing / 1e6,
        100.0 * while_changing / ceiling
    );
}
