//! Gateways starting together on a shared data directory (a shared volume) create the key
//! files at the same moment. They must agree on one key each, and no file may ever be read
//! half-written: unique temporary names and a publishing link only one writer can win.

use std::path::Path;
use std::sync::{Arc, Barrier};

use brevdue::seal::keyring::{KeyRing, load_or_create_secret};

const STARTERS: usize = 8;

fn start_together(dir: &Path) -> Vec<([u8; 32], String)> {
    let barrier = Arc::new(Barrier::new(STARTERS));
    let handles: Vec<_> = (0..STARTERS)
        .map(|_| {
            let dir = dir.to_path_buf();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let secret = load_or_create_secret(&dir, "pseudonym.key").expect("the secret");
                let ring = KeyRing::load_or_create(&dir).expect("the key ring");
                (secret, format!("{ring:?}"))
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a starter"))
        .collect()
}

#[test]
fn gateways_starting_together_agree_on_every_key() {
    for round in 0..25 {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("keys");
        let seen = start_together(&dir);
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "round {round}: every starter reads the same keys"
        );
        // What they agreed on is what is on disk, and nothing temporary is left.
        let again = load_or_create_secret(&dir, "pseudonym.key").expect("reload");
        assert_eq!(again, seen[0].0);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("keys")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn rotations_at_once_each_get_a_key_of_their_own() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("keys");
    KeyRing::load_or_create(&dir).expect("ring");
    let ids: Vec<u32> = (0..4)
        .map(|_| {
            let dir = dir.clone();
            std::thread::spawn(move || KeyRing::rotate(&dir).expect("rotate").0)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("rotation"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "no two rotations share a key id: {ids:?}");
    let ring = KeyRing::load(&dir).expect("ring");
    assert_eq!(ring.ids().count(), 5);
}
