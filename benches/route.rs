//! Routing core on a registry the size of Denmark (5.9 M citizens, 0.8 M companies), queried in
//! random order on one core. Prints decisions per second and index bytes per recipient against
//! SPEC §5 (≥ 5 M decisions/s, ≤ 64 B/recipient), beside the raw ceiling of a bare hash lookup on
//! the same keys.

use std::hint::black_box;
use std::time::Instant;

use brevdue::domain::{RecipientId, SenderKind};
use brevdue::registry::LiveRegistry;
use brevdue::registry::synth::{SynthSpec, generate_index, random_child_cpr};
use brevdue::route::{Decision, RouteQuery, SenderRef, route, route_batch};
use criterion::{Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

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

    // Random order over the whole registry, with one letter in ten to an unregistered child.
    let mut rng = SmallRng::seed_from_u64(5);
    let mut keys: Vec<u64> = index.iter().map(|(k, _, _)| k).collect();
    let index = LiveRegistry::from(index);
    let today = spec.reference_date;
    keys.shuffle(&mut rng);
    let mut queries: Vec<RecipientId> = keys
        .iter()
        .take(QUERIES)
        .filter_map(|&k| RecipientId::from_index_key(k).ok())
        .collect();
    for q in queries.iter_mut().step_by(10) {
        *q = RecipientId::Cpr(random_child_cpr(&mut rng, spec.reference_date));
    }
    let senders: Vec<SenderRef> = summary
        .private_senders
        .iter()
        .take(8)
        .map(|&cvr| SenderRef {
            cvr,
            kind: SenderKind::Private,
        })
        .chain([SenderRef {
            cvr: summary.private_senders[9],
            kind: SenderKind::Public,
        }])
        .collect();
    let fallbacks: Vec<bool> = (0..QUERIES).map(|_| rng.random_bool(0.5)).collect();

    let decide_all = || {
        let mut mailbox = 0usize;
        for (i, id) in queries.iter().enumerate() {
            let s = senders[i % senders.len()];
            if let Decision::Deliver(_) = route(&index, today, s, id, fallbacks[i]) {
                mailbox += 1;
            }
        }
        mailbox
    };
    let batch: Vec<RouteQuery> = queries
        .iter()
        .enumerate()
        .map(|(i, id)| RouteQuery {
            sender: senders[i % senders.len()],
            recipient: *id,
            print_fallback: fallbacks[i],
        })
        .collect();
    let mut decisions_out = Vec::with_capacity(batch.len());
    let mut decide_batch = || {
        decisions_out.clear();
        route_batch(&index, today, &batch, &mut decisions_out);
        decisions_out
            .iter()
            .filter(|d| matches!(d, Decision::Deliver(_)))
            .count()
    };
    // The raw ceiling: the same lookups in a bare hash table of the same keys.
    let raw: hashbrown::HashMap<u64, u32> = keys.iter().map(|&k| (k, 0)).collect();
    let lookup_all = || {
        let mut found = 0usize;
        for id in &queries {
            found += usize::from(raw.get(&id.index_key()).is_some());
        }
        found
    };

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("route_batch_6.7M_registry_random_order", |b| {
        b.iter(|| black_box(decide_batch()))
    });
    group.bench_function("route_one_by_one_6.7M_registry_random_order", |b| {
        b.iter(|| black_box(decide_all()))
    });
    group.bench_function("raw_hash_lookup_same_keys", |b| {
        b.iter(|| black_box(lookup_all()))
    });
    group.finish();

    let rate = |f: &mut dyn FnMut() -> usize| {
        let rounds = 5;
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(f());
        }
        (rounds * queries.len()) as f64 / t.elapsed().as_secs_f64()
    };
    let decisions = rate(&mut decide_batch);
    let one_by_one = rate(&mut { decide_all });
    let lookups = rate(&mut { lookup_all });
    let bytes = index.memory_bytes() as f64 / index.len() as f64;
    println!("\n== routing core, one core, {} recipients ==", index.len());
    println!(
        "decisions/s: {:.2} M  (target ≥ 5 M: {})",
        decisions / 1e6,
        if decisions >= 5e6 { "met" } else { "NOT met" }
    );
    println!(
        "decisions/s one letter at a time (no batching): {:.2} M",
        one_by_one / 1e6
    );
    println!(
        "raw hash lookups/s on the same keys: {:.2} M  (routing at {:.0} % of the raw ceiling)",
        lookups / 1e6,
        100.0 * decisions / lookups
    );
    println!(
        "index memory: {:.1} B/recipient, {} MB in all  (target ≤ 64 B: {})",
        bytes,
        index.memory_bytes() / 1_000_000,
        if bytes <= 64.0 { "met" } else { "NOT met" }
    );
}
