//! Garbage, truncations and bit flips through the whole packet path (the fuzz targets'
//! inputs, run deterministically in CI): nothing panics, everything is counted.

use crate::support::capture as capture_support;
use crate::support::rng as common;

use std::collections::VecDeque;

use poolwatch::capture::{link, CaptureConfig, Decoder};
use poolwatch::model::Source;

use common::Rng;

/// Frames of the fixtures (Ethernet unless SLL2), as seeds.
fn seeds() -> Vec<(i32, Vec<u8>)> {
    let mut v = Vec::new();
    for (name, bytes) in capture_support::fixtures() {
        let lt = i32::from_le_bytes(bytes[20..24].try_into().unwrap());
        let mut off = 24;
        while off + 16 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
            v.push((lt, bytes[off + 16..off + 16 + len].to_vec()));
            off += 16 + len;
        }
        let _ = name;
    }
    v
}

#[test]
fn garbage_truncations_and_bitflips_never_panic() {
    let cfg = CaptureConfig::default();
    let mut d = Decoder::new(&cfg, Source::new("test:garbage"));
    let mut out = VecDeque::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ts = 0;
    let seeds = seeds();
    assert!(seeds.len() > 30);
    for (lt, frame) in &seeds {
        for cut in 0..frame.len() {
            ts += 10;
            d.packet(ts, *lt, &frame[..cut], &mut out);
        }
        for _ in 0..200 {
            let mut f = frame.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % f.len();
                f[i] ^= 1 << (rng.next() % 8);
            }
            ts += 10;
            d.packet(ts, *lt, &f, &mut out);
        }
    }
    let lts = [
        link::LINKTYPE_ETHERNET,
        link::LINKTYPE_LINUX_SLL,
        link::LINKTYPE_LINUX_SLL2,
        link::LINKTYPE_RAW,
        link::LINKTYPE_NULL,
        link::LINKTYPE_LOOP,
        link::LINKTYPE_FDDI,
        147, // a link type we do not decode
    ];
    for i in 0..20_000u64 {
        let len = (rng.next() % 200) as usize;
        let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Give some of them a plausible Ethernet/IPv4/UDP-53 prefix so deeper layers are hit.
        if i % 2 == 0 && f.len() > 40 {
            f[12] = 0x08;
            f[13] = 0x00;
            f[14] = 0x45;
            f[23] = 17;
            f[36] = 0;
            f[37] = 53;
        }
        ts += 10;
        d.packet(ts, lts[(i % lts.len() as u64) as usize], &f, &mut out);
    }
    d.finish(&mut out);
    let st = d.stats();
    assert!(st.decode_error_total() > 1000, "{st:?}");
    assert!(st.dns_parse_error_total() > 100, "{st:?}");
    assert!(st
        .decode_errors
        .iter()
        .any(|(r, _)| *r == "unsupported_linktype"));
}
