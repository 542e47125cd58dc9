//! Arbitrary bytes through link → IP (fragments, tunnels) → UDP/TCP → DNS and the flow table.
//! The first byte selects the link type; the rest is split into frames at 0xFF 0x00 markers so
//! one input exercises state across packets (pairing, reassembly, flows).
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use poolwatch::capture::{link, CaptureConfig, Decoder};
use poolwatch::model::Source;

const LINKTYPES: [i32; 9] = [
    link::LINKTYPE_ETHERNET,
    link::LINKTYPE_LINUX_SLL,
    link::LINKTYPE_LINUX_SLL2,
    link::LINKTYPE_RAW,
    link::LINKTYPE_NULL,
    link::LINKTYPE_LOOP,
    link::LINKTYPE_IPV4,
    link::LINKTYPE_IPV6,
    link::LINKTYPE_FDDI,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let lt = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    let cfg = CaptureConfig {
        dns_ports: vec![53, 5353],
        ..CaptureConfig::default()
    };
    let mut d = Decoder::new(&cfg, Source::new("fuzz"));
    let mut out = VecDeque::new();
    let mut ts = 0i64;
    for frame in rest.split(|&b| b == 0xff) {
        ts += 1_000;
        d.packet(ts, lt, frame, &mut out);
        out.clear();
    }
    d.finish(&mut out);
    for o in &out {
        let _ = format!("{o:?}");
    }
});
