//! Any bytes: the MeMo parser returns a message or an error, never panics, and whatever it
//! accepts writes out and parses back to the same message.
#![no_main]

use brevdue::memo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
