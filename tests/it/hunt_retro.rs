//! Issue #18 "Done when": a scan with a list that lacks one pool domain, the domain added
//! through the API, and exactly the detections (clients, stages) of a full-list scan, marked
//! `retro`. Once on the project's own fixtures, once on the lab dev capture (skipped when
//! `../shared/data` is absent).

use crate::support::hunt as hunt_support;

use std::path::{Path, PathBuf};

use hunt_support::retro_matches_full_scan;

const POOLS: &[&str] = hunt_support::FIXTURE_POOLS;

fn fixture_pcaps() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    v
}

#[test]
fn retro_hunt_on_fixtures_equals_full_scan() {
    // moneroocean.stream in the fixtures: a CNAME chain, a TLS SNI and a connection.
    let dets = retro_matches_full_scan(&fixture_pcaps(), POOLS, "moneroocean.stream");
    assert!(dets.iter().any(|d| d["stage"] == "connection"), "{dets:#?}");
}

#[test]
fn retro_hunt_on_lab_capture_equals_full_scan() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lab");
    let pcap = shared.join("pcaps/mixed.pcap");
    if !pcap.is_file() {
        println!("skipping: ../shared/data/lab/pcaps/mixed.pcap not present");
        return;
    }
    let text = std::fs::read_to_string(shared.join("pool-domains.txt")).unwrap();
    let pools: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for missing in ["moneroocean.stream", "supportxmr.com"] {
        retro_matches_full_scan(std::slice::from_ref(&pcap), &pools, missing);
    }
}
