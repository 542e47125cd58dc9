//! Prints the observations of capture files as JSON lines (what `poolwatch inspect --output
//! json` prints for pcaps), then the capture stats on stderr.
//!
//! `cargo run --release --example pcap_observations -- FILE… [--stats] [--quiet]`

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::Write;
use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let mut quiet = false;
    let mut stats = false;
    let mut files = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--quiet" => quiet = true,
            "--stats" => stats = true,
            _ => files.push(PathBuf::from(a)),
        }
    }
    let cfg = poolwatch::capture::CaptureConfig::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0u64;
    for f in &files {
        let mut r = match poolwatch::capture::open_file(f, &cfg) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        for o in r.by_ref() {
            n += 1;
            if !quiet {
                match serde_json::to_string(&o) {
                    Ok(s) => {
                        let _ = writeln!(out, "{s}");
                    }
                    Err(e) => eprintln!("{e}"),
                }
            }
        }
        if stats {
            eprintln!("{}: {:?}", f.display(), r.stats());
        }
    }
    let _ = out.flush();
    if quiet {
        eprintln!("{n} observations");
    }
    std::process::ExitCode::SUCCESS
}
