//! Sealing a 10 KB and a 100 KB letter (content digest plus envelope encryption), beside the raw
//! ceilings on the same data: SHA-256 alone and AES-256-GCM alone. The printed ratio is the
//! overhead of the envelope (fresh data key, key wrapping, binding).

use std::hint::black_box;
use std::time::Instant;

use brevdue::seal::{Binding, KekId, KeyRing, seal, sha256};
use criterion::{BenchmarkId, Criterion, Throughput};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

fn main() {
    let ring = match KeyRing::from_keys(KekId(1), [(KekId(1), [7u8; 32])]) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let raw_key = match UnboundKey::new(&AES_256_GCM, &[9u8; 32]) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => panic!("aes key"),
    };
    let tag = [3u8; 32];
    let binding = Binding {
        letter_id: "0193c2f4-1111-7000-8000-000000000001",
        sender: "61126228".parse().unwrap_or_else(|_| panic!("cvr")),
        recipient: &tag,
    };

    let seal_letter = |data: &[u8]| {
        let digest = sha256(data);
        let sealed = seal(&ring, &binding, data.to_vec());
        (digest, sealed.map(|s| s.ciphertext.len()).unwrap_or(0))
    };
    let raw_sha = |data: &[u8]| sha256(data);
    let raw_aes = |data: &[u8]| {
        let mut buf = data.to_vec();
        let _ = raw_key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut buf,
        );
        buf.len()
    };

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("seal");
    for size in [10 * 1024, 100 * 1024] {
        let data = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal_letter", size), &data, |b, d| {
            b.iter(|| black_box(seal_letter(d)))
        });
        group.bench_with_input(BenchmarkId::new("raw_sha256", size), &data, |b, d| {
            b.iter(|| black_box(raw_sha(d)))
        });
        group.bench_with_input(BenchmarkId::new("raw_aes256gcm", size), &data, |b, d| {
            b.iter(|| black_box(raw_aes(d)))
        });
    }
    group.finish();

    println!("\n== sealing, one core ==");
    for size in [10 * 1024, 100 * 1024] {
        let data = vec![0x5au8; size];
        let per_sec = |f: &dyn Fn(&[u8])| {
            let rounds = (200 * 1024 * 1024 / size).max(100);
            let t = Instant::now();
            for _ in 0..rounds {
                f(black_box(&data));
            }
            rounds as f64 / t.elapsed().as_secs_f64()
        };
        let sealed = per_sec(&|d| {
            black_box(seal_letter(d));
        });
        let sha = per_sec(&|d| {
            black_box(raw_sha(d));
        });
        let aes = per_sec(&|d| {
            black_box(raw_aes(d));
        });
        // Digest and encryption run one after the other, so their combined raw ceiling is the
        // harmonic sum of the two.
        let raw_both = 1.0 / (1.0 / sha + 1.0 / aes);
        let mb = |r: f64| r * size as f64 / 1e6;
        println!(
            "{:>4} KB letter: seal {:>8.0} letters/s ({:>6.0} MB/s) | raw SHA-256 {:>6.0} MB/s | raw AES-256-GCM {:>6.0} MB/s | seal at {:.0} % of raw SHA+AES",
            size / 1024,
            sealed,
            mb(sealed),
            mb(sha),
            mb(aes),
            100.0 * sealed / raw_both
        );
    }
}
