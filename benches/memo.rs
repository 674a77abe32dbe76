//! Parsing and writing a ~1 MB and a ~10 MB MeMo message, in MeMo 1.1 and 1.2, beside the raw
//! ceilings on the same documents: base64 decoding alone (for parsing) and base64 encoding alone
//! (for writing). All figures are MB/s of MeMo XML; the printed ratio is what validation and XML
//! cost on top.

use std::hint::black_box;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use brevdue::domain::{Cvr, Document, Letter, Priority, SenderInfo, SenderKind};
use brevdue::memo::{self, MemoMessage, MemoVersion};
use criterion::{BenchmarkId, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use time::macros::datetime;

/// A letter whose documents total `size` bytes of incompressible content: a main document and
/// three attachments, as a MeMo message in `version`.
fn message(size: usize, version: MemoVersion) -> (MemoMessage, Vec<u8>) {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut doc = |name: &str, len: usize| {
        let mut content = vec![0u8; len];
        rng.fill_bytes(&mut content);
        Document {
            filename: name.to_string(),
            media_type: "application/pdf".to_string(),
            content,
        }
    };
    let letter = Letter {
        message_uuid: "6f1c7d1e-4b1a-4c55-9d6e-0a1b2c3d4e5f"
            .parse()
            .unwrap_or_else(|_| panic!("uuid")),
        recipient: "CPR:0101901234".parse().unwrap_or_else(|_| panic!("cpr")),
        title: "Årsopgørelse 2025".to_string(),
        main_document: doc("brev.pdf", size / 2),
        attachments: vec![
            doc("bilag1.pdf", size / 6),
            doc("bilag2.pdf", size / 6),
            doc("bilag3.pdf", size / 6),
        ],
        print_fallback: false,
        priority: Priority::Normal,
        sender_reference: "REF-1".to_string(),
    };
    let sender = SenderInfo {
        cvr: "61126228".parse::<Cvr>().unwrap_or_else(|_| panic!("cvr")),
        name: "Skattestyrelsen".to_string(),
        kind: SenderKind::Public,
        suspended: false,
        limits: Default::default(),
    };
    let m = MemoMessage::from_letter(
        &letter,
        &sender,
        datetime!(2025-05-01 12:00:00 UTC),
        version,
    );
    let xml = memo::write(&m);
    (m, xml)
}

/// The documents' bytes and their base64 texts, as the raw ceilings see them.
fn documents(m: &MemoMessage) -> (Vec<&[u8]>, Vec<String>) {
    let body = m.body.as_ref().unwrap_or_else(|| panic!("body"));
    let raw: Vec<&[u8]> = std::iter::once(&body.main_document)
        .chain(&body.additional_documents)
        .flat_map(|d| d.files.iter().map(|f| f.content.as_slice()))
        .collect();
    let encoded = raw.iter().map(|c| STANDARD.encode(c)).collect();
    (raw, encoded)
}

fn main() {
    let sizes = [1_000_000, 10_000_000];
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("memo");
    group.sample_size(10);
    for (size, version) in sizes
        .into_iter()
        .flat_map(|s| MemoVersion::ALL.map(|v| (s, v)))
    {
        let (m, xml) = message(size, version);
        let (raw, encoded) = documents(&m);
        let id = format!("{version}/{size}");
        group.throughput(Throughput::Bytes(xml.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse", &id), &xml, |b, x| {
            b.iter(|| black_box(memo::parse(x).map(|m| m.header.label.len())))
        });
        group.bench_with_input(
            BenchmarkId::new("raw_base64_decode", &id),
            &encoded,
            |b, e| {
                b.iter(|| {
                    for text in e {
                        black_box(STANDARD.decode(text).map(|v| v.len()).unwrap_or(0));
                    }
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("write", &id), &m, |b, m| {
            b.iter(|| black_box(memo::write(m).len()))
        });
        group.bench_with_input(BenchmarkId::new("raw_base64_encode", &id), &raw, |b, r| {
            b.iter(|| {
                for content in r {
                    // The encoder the writer uses.
                    black_box(base64_simd::STANDARD.encode_to_string(content).len());
                }
            })
        });
    }
    group.finish();

    println!("\n== MeMo, one core (MB/s of MeMo XML) ==");
    for (size, version) in sizes
        .into_iter()
        .flat_map(|s| MemoVersion::ALL.map(|v| (s, v)))
    {
        let (m, xml) = message(size, version);
        // Parsing must see the version it was written in.
        assert_eq!(
            memo::parse(&xml).map(|p| p.version).ok(),
            Some(version),
            "the bench message parses"
        );
        let (raw, encoded) = documents(&m);
        let mb_per_s = |f: &dyn Fn()| {
            let rounds = (400_000_000 / xml.len()).max(5);
            f();
            let t = Instant::now();
            for _ in 0..rounds {
                f();
            }
            (rounds * xml.len()) as f64 / t.elapsed().as_secs_f64() / 1e6
        };
        let parse = mb_per_s(&|| {
            black_box(
                memo::parse(black_box(&xml))
                    .map(|m| m.header.label.len())
                    .ok(),
            );
        });
        let decode = mb_per_s(&|| {
            for text in &encoded {
                black_box(STANDARD.decode(black_box(text)).map(|v| v.len()).ok());
            }
        });
        let write = mb_per_s(&|| {
            black_box(memo::write(black_box(&m)).len());
        });
        let encode = mb_per_s(&|| {
            for content in &raw {
                black_box(STANDARD.encode(black_box(content)).len());
            }
        });
        println!(
            "MeMo {version} {:>5.1} MB message: parse {parse:>6.0} MB/s | raw base64 decode {decode:>6.0} MB/s | parse at {:>3.0} % of raw",
            xml.len() as f64 / 1e6,
            100.0 * parse / decode
        );
        println!(
            "MeMo {version} {:>5.1} MB message: write {write:>6.0} MB/s | raw base64 encode {encode:>6.0} MB/s | write at {:>3.0} % of raw",
            xml.len() as f64 / 1e6,
            100.0 * write / encode
        );
    }
}
