//! Differential: the zero-copy wire reader (`dns::wire`, issue #16's fast path) and hickory
//! (`dns::parse_message`, the decoder of record) agree on names for arbitrary bytes — the
//! first question and, where hickory reads the message whole, every answer's owner name, type,
//! TTL, address or target (`dns::wire::differential`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = poolwatch::dns::wire::differential(data) {
        panic!("fast path and hickory disagree: {e}");
    }
});
