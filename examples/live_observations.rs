//! Captures live for a while and prints counters (for drop tests under tcpreplay):
//! `cargo run --release --example live_observations -- IFACE SECONDS [BPF]`

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolwatch::capture::live::{self, LiveConfig};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = LiveConfig::new(args.first().cloned().unwrap_or_else(|| "lo".into()));
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    cfg.bpf_filter = args.get(2).cloned().filter(|s| !s.is_empty());
    if let Some(mb) = args.get(3).and_then(|s| s.parse::<usize>().ok()) {
        cfg.buffer_size = mb << 20;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let h = match live::spawn(cfg, tx, stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut dns, mut flows) = (0u64, 0u64);
    while Instant::now() < end {
        match rx.try_recv() {
            Ok(poolwatch::model::Observation::Dns(_)) => dns += 1,
            Ok(poolwatch::model::Observation::Flow(_)) => flows += 1,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(o) = rx.blocking_recv() {
        match o {
            poolwatch::model::Observation::Dns(_) => dns += 1,
            poolwatch::model::Observation::Flow(_) => flows += 1,
        }
    }
    let st = h.join();
    println!(
        "packets {} kernel_drops {} interface_drops {} dns_observations {dns} flow_observations {flows} dns_paired {}",
        st.packets, st.kernel_drops, st.interface_drops, st.dns_paired
    );
    std::process::ExitCode::SUCCESS
}
