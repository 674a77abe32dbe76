//! Any bytes: the MeMo parser returns a message or an error, never panics, and whatever it
//! accepts writes out and parses back to the same message. Every input is also tried in the
//! other MeMo version (memoVersion swapped, memoSchVersion added or removed), so each mutation
//! exercises the 1.1 and the 1.2 tables alike.
#![no_main]

use brevdue::memo;
use libfuzzer_sys::fuzz_target;

const V11: &[u8] = b"memoVersion=\"1.1\" memoSchVersion=\"1.1.0\"";
const V12: &[u8] = b"memoVersion=\"1.2\"";

/// `data` with the first `from` replaced by `to`, if it has one.
fn swap(data: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let at = data.windows(from.len()).position(|w| w == from)?;
    Some([&data[..at], to, &data[at + from.len()..]].concat())
}

fn check(data: &[u8]) {
    let Ok(message) = memo::parse(data) else {
        return;
    };
    let written = memo::write(&message);
    match memo::parse(&written) {
        Ok(again) => assert_eq!(again, message, "parse(write(m)) != m"),
        Err(e) => panic!(
            "a parsed message wrote out invalid: {e}\n{}",
            String::from_utf8_lossy(&written)
        ),
    }
    let _ = message.into_letter();
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(other) = swap(data, V11, V12).or_else(|| swap(data, V12, V11)) {
        check(&other);
    }
});
