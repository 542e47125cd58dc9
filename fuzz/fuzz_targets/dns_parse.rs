//! Arbitrary bytes as one DNS message (`dns::parse_message`, including the salvage path).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = poolwatch::dns::parse_message(data) {
        assert!(m.answers.len() <= poolwatch::dns::MAX_ANSWERS);
    }
});
