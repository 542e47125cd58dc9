//! Differential: the zero-copy wire reader (`dns::wire`, issue #16's fast path) and hickory
//! (`dns::parse_message`, the decoder of record) agree on names for arbitrary bytes — the
//! first question and, where hickory reads the message whole, every answer's owner name, type,
//! TTL, address or target; and the fast path never takes a message hickory would only salvage
//! or not read (`WireMessage::decodes_whole` ⇒ hickory reads it whole) —
//! `dns::differential::differential`; and a decode given the fast path's question name
//! (`dns::parse_message_named`, the packet path's) equals the plain decode.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = poolwatch::dns::differential::differential(data) {
        panic!("fast path and hickory disagree: {e}");
    }
});
