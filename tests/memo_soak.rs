//! A bounded, reproducible stand-in for the fuzzer on stable Rust: thousands of mutations of the
//! sample messages (seeded RNG) go through the parser; none may panic, and every message it
//! accepts must write out and parse back to itself. The libFuzzer target is
//! `fuzz/fuzz_targets/memo_parse.rs`.

use brevdue::memo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const TOKENS: &[&str] = &[
    "<memo:label>",
    "</memo:label>",
    "<memo:File>",
    "</memo:MainDocument>",
    "<memo:MessageBody>",
    "&amp;",
    "&#13;",
    "&#0;",
    "&lol;",
    "<!DOCTYPE x [<!ENTITY lol \"lol\">]>",
    "<![CDATA[QUJD]]>",
    "]]>",
    "\u{FFFE}",
    "\u{1}",
    "=",
    "xmlns:memo=\"urn:x\"",
    " memoVersion=\"1.2\"",
    " memoVersion=\"1.1\" memoSchVersion=\"1.1.0\"",
    "<memo:Representative><memo:label>R</memo:label></memo:Representative>",
    "<memo:originalRepresentative>R</memo:originalRepresentative>",
    "<memo:mandatory>true</memo:mandatory>",
    "\u{00A0}",
    "http://x.dk",
    "<?xml version=\"1.1\"?>",
    "<!-- c -->",
    "NEMSMS",
    "0101901234",
];

fn mutate(rng: &mut SmallRng, seed: &[u8]) -> Vec<u8> {
    let mut doc = seed.to_vec();
    for _ in 0..rng.random_range(1..4) {
        let at = rng.random_range(0..=doc.len());
        match rng.random_range(0..6) {
            0 if !doc.is_empty() => {
                let i = rng.random_range(0..doc.len());
                doc[i] = rng.random();
            }
            1 => {
                let end = (at + rng.random_range(0..64)).min(doc.len());
                doc.drain(at..end);
            }
            2 => {
                let end = (at + rng.random_range(0..256)).min(doc.len());
                let copy = doc[at..end].to_vec();
                let to = rng.random_range(0..=doc.len());
                doc.splice(to..to, copy);
            }
            3 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                doc.splice(at..at, t.bytes());
            }
            4 => doc.truncate(at),
            _ => {
                // Swap two lines: reorders elements.
                let text = String::from_utf8_lossy(&doc).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.len() > 2 {
                    let (a, b) = (
                        rng.random_range(0..lines.len()),
                        rng.random_range(0..lines.len()),
                    );
                    lines.swap(a, b);
                }
                doc = lines.join("\n").into_bytes();
            }
        }
    }
    doc
}

#[test]
fn mutated_messages_never_panic_and_accepted_ones_round_trip() {
    let dir = format!("{}/tests/data/memo", env!("CARGO_MANIFEST_DIR"));
    // Both MeMo versions: their seeds, and tokens that move a message between them.
    let seeds: Vec<Vec<u8>> = [
        "minimal.xml",
        "full.xml",
        "nemsms.xml",
        "minimal-1.2.xml",
        "full-1.2.xml",
    ]
    .iter()
    .map(|f| std::fs::read(format!("{dir}/{f}")).unwrap())
    .collect();
    let mut rng = SmallRng::seed_from_u64(0x6d656d6f);
    let (mut accepted, mut refused) = (0, 0);
    let mut versions = std::collections::HashSet::new();
    for round in 0..8_000 {
        let doc = mutate(&mut rng, &seeds[round % seeds.len()]);
        match memo::parse(&doc) {
            Ok(m) => {
                accepted += 1;
                versions.insert(m.version);
                let again = memo::parse(&memo::write(&m))
                    .unwrap_or_else(|e| panic!("round {round}: written message refused: {e}"));
                assert_eq!(again, m, "round {round}");
                let _ = m.into_letter();
            }
            Err(e) => {
                refused += 1;
                assert!(!e.problem.is_empty());
                assert!(!e.path.is_empty(), "round {round}: {e}");
                assert!(e.line > 0, "round {round}: {e}");
            }
        }
    }
    assert_eq!(versions.len(), 2, "messages of both versions were accepted");
    // The mutations are mostly fatal, but not all: both paths were exercised.
    assert!(
        accepted > 50 && refused > 1000,
        "{accepted} accepted, {refused} refused"
    );
}
