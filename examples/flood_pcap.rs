//! Writes the pool-lookup flood of issue #11 and its clean twin (same size and shape, names on
//! no list) as two pcaps, deterministically. `benches/flood_job.sh` runs it.
//!
//! `cargo run --release --example flood_pcap -- OUT_DIR [CLIENTS=65536] [ROUNDS=3] [SEED=11]`
//! writes `OUT_DIR/flood.pcap` and `OUT_DIR/clean.pcap`.

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/it/support/capture.rs"]
mod capture_support;
#[path = "../tests/it/support/flood.rs"]
mod flood_support;
/// The integration tests' module path for these builders (`crate::support::capture`).
mod support {
    pub(crate) use super::capture_support as capture;
}

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first().map(PathBuf::from) else {
        eprintln!("usage: flood_pcap OUT_DIR [CLIENTS] [ROUNDS] [SEED]");
        return ExitCode::from(2);
    };
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let clients = num(1, 65_536) as u32;
    let rounds = num(2, 3) as u32;
    let seed = num(3, 11);
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("{}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    for (file, listed) in [("flood.pcap", true), ("clean.pcap", false)] {
        let spec = flood_support::FloodSpec {
            clients,
            rounds,
            listed,
            seed,
        };
        let p = flood_support::build(spec);
        let path = out.join(file);
        if let Err(e) = std::fs::write(&path, &p.bytes) {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!(
            "{} {} packets",
            path.display(),
            u64::from(clients) * u64::from(rounds) * 3
        );
    }
    ExitCode::SUCCESS
}
