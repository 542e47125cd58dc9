//! `scan`'s threaded savefile path (issue #16: `--threads`, `capture::parallel_fast`, the
//! savefile reader's buffers shared with the decoder threads) against the one-thread fast path,
//! on a pcap built from the input: the first byte picks the link type and whether the frames
//! are repeated past the reader's 1 MiB buffer (so buffers are refilled while workers hold
//! frames); the rest, split at `0xFF`, gives the frames — raw, or (second byte's low bit) as the
//! DNS payloads of UDP datagrams between a few clients and a resolver, so most frames reach the
//! DNS decoder and the sharding by client. Asserts what `tests/it/scan_threads.rs` asserts on
//! real captures: unless a skip was refused (then `scan` reads the file again on one thread),
//! two workers give the one-thread run's detections, capture counters and pipeline counters.
#![no_main]

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use poolwatch::capture::{CaptureConfig, ListedNames};
use poolwatch::correlate::{Engine, EngineConfig, EngineLimits, Pipeline};
use poolwatch::input::{self, InputFormat};
use poolwatch::matcher::{self, Blocklists, SharedBlocklists};
use poolwatch::ports::DetectionStore;
use poolwatch::store::{MemoryStore, MAX_MEMORY_DETECTIONS};

/// Past the savefile reader's 1 MiB read buffer (one refill while workers hold frames).
const REPEAT_TO_BYTES: usize = 3 << 19;
/// Repeated frames are padded to this length (trailing bytes past the IP length, or raw), so
/// that a repeated capture reaches [`REPEAT_TO_BYTES`] in a few thousand frames.
const REPEAT_MIN_FRAME: usize = 512;
const LINKTYPES: [u32; 4] = [1, 101, 113, 276];

/// The built-in lists, compiled once per process (read only: every run shares them).
fn lists() -> SharedBlocklists {
    static L: OnceLock<SharedBlocklists> = OnceLock::new();
    L.get_or_init(|| matcher::shared(Blocklists::load(&[]).expect("built-in lists")))
        .clone()
}

struct Lists(Arc<Blocklists>);

impl ListedNames for Lists {
    fn name_listed(&self, name: &str) -> bool {
        Engine::dns_name_listed_in(&self.0, name)
    }
    fn ip_listed(&self, ip: IpAddr) -> bool {
        Engine::dns_ip_listed_in(&self.0, ip)
    }
}

/// An Ethernet + IPv4 + UDP frame around `dns`, between client 10.0.0.`c` and 192.0.2.53.
fn udp_frame(c: u8, response: bool, dns: &[u8]) -> Vec<u8> {
    let (client, server) = ([10, 0, 0, c], [192, 0, 2, 53]);
    let (src, dst, sport, dport) = if response {
        (server, client, 53u16, 40_000u16 + u16::from(c))
    } else {
        (client, server, 40_000 + u16::from(c), 53)
    };
    let udp_len = 8 + dns.len() as u16;
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f[16..18].copy_from_slice(&(20 + udp_len).to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(dns);
    f
}

fn pcap(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    let (&kind, rest) = rest.split_first()?;
    let udp = kind & 1 == 1;
    let linktype = if udp {
        1
    } else {
        LINKTYPES[usize::from(mode & 3)]
    };
    let repeat = mode & 0x80 != 0;
    let frames: Vec<Vec<u8>> = rest
        .split(|&b| b == 0xFF)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = match chunk.split_first() {
                Some((&c, dns)) if udp => udp_frame(c % 8, i % 2 == 1, dns),
                _ => chunk.to_vec(),
            };
            if repeat {
                f.resize(f.len().max(REPEAT_MIN_FRAME), 0);
            }
            f
        })
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    let one: usize = frames.iter().map(|f| 16 + f.len()).sum();
    let rounds = if repeat && one > 0 {
        REPEAT_TO_BYTES / one + 1
    } else {
        1
    };
    let mut t = 1_795_000_000u32;
    let mut usec = 0u32;
    for _ in 0..rounds {
        for f in &frames {
            usec += 1_000;
            if usec >= 1_000_000 {
                (t, usec) = (t + 1, 0);
            }
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&usec.to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
    }
    Some(out)
}

struct Run {
    detections: Vec<String>,
    summary: serde_json::Value,
    capture: [u64; 13],
    mispredicted: bool,
}

fn run(path: &std::path::Path, workers: usize) -> Option<Run> {
    let cfg = EngineConfig {
        limits: EngineLimits::in_memory(MAX_MEMORY_DETECTIONS),
        ..EngineConfig::default()
    };
    let store = MemoryStore::detections_only();
    let boxed: Box<dyn DetectionStore> = Box::new(store.clone());
    let engine = Engine::new(cfg, lists());
    let mut p = Pipeline::with_store(engine, Some(boxed)).ok()?;
    let failures = input::ReadFailures::new();
    let bytes = input::ByteCount::new();
    let ccfg = CaptureConfig::default();
    let mut cap =
        input::open_capture_counting(path, InputFormat::Auto, &ccfg, &failures, &bytes).ok()??;
    if workers > 0 {
        let names = Arc::new(Lists(p.engine().lists_snapshot()));
        if !cap.start_threads(&ccfg, workers, names).ok()? {
            return None;
        }
    }
    poolwatch::cli::scan::scan_capture_fast(&mut cap, &mut p, &mut || {}).ok()?;
    let mut summary = serde_json::to_value(p.finish().ok()?).ok()?;
    if let Some(o) = summary.as_object_mut() {
        // Several workers merge their end-of-input reports by time: table sizes may differ.
        o.remove("tables");
    }
    let mut dets = store.take_detections().ok()?;
    dets.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
    Some(Run {
        detections: dets
            .iter()
            .filter_map(|d| serde_json::to_string(d).ok())
            .collect(),
        summary,
        capture: cap.stats().thread_invariant(),
        mispredicted: cap.mispredicted(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = pcap(data) else { return };
    let dir = std::env::temp_dir().join(format!("pw-fuzz-threads-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("in.pcap");
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(&bytes).is_err() {
        return;
    }
    drop(f);
    let Some(one) = run(&path, 0) else { return };
    let many = run(&path, 2).expect("the one-thread run read this capture");
    if many.mispredicted {
        return;
    }
    assert_eq!(one.capture, many.capture, "capture counters");
    assert_eq!(one.summary, many.summary, "pipeline counters");
    assert!(one.detections == many.detections, "detections differ");
});
