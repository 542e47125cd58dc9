//! Correctness gates of `../shared/bench/README.md` that concern packet input (G1: every pool
//! and decoy transaction in `truth-queries.csv` is observed exactly, the count matching the
//! manifest's `expected_pool_queries`; G3: malformed packets cause no panic, mDNS is ignored).
//!
//! Needs a generated workload: `python3 ../shared/bench/gen/dnsgen.py --preset small --out DIR`
//! and `POOLWATCH_BENCH_DIR=DIR cargo test --test capture_bench_gates`; skips otherwise.

use std::path::PathBuf;

use poolwatch::capture::{self, CaptureConfig};
use poolwatch::model::{DnsObservation, Observation};

#[test]
fn bench_workload_gates() {
    let Some(dir) = std::env::var_os("POOLWATCH_BENCH_DIR").map(PathBuf::from) else {
        println!("skipping: POOLWATCH_BENCH_DIR not set");
        return;
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut r = capture::open_file(&dir.join("traffic.pcap"), &CaptureConfig::default()).unwrap();
    let dns: Vec<DnsObservation> = r
        .by_ref()
        .filter_map(|o| match o {
            Observation::Dns(d) => Some(d),
            _ => None,
        })
        .collect();
    let st = r.stats();
    // G3: mDNS never becomes DNS; malformed packets were counted, not fatal.
    assert!(dns
        .iter()
        .all(|d| d.server_port == Some(53) || d.client_port == Some(53)));
    assert!(st.dns_parse_error_total() > 0, "{st:?}");
    assert_eq!(
        st.dns_paired,
        manifest["counts"]["dns_transactions"].as_u64().unwrap(),
        "every generated transaction paired"
    );
    // G1: each truth row observed with its time, client, transport, name, type and rcode.
    let truth = std::fs::read_to_string(dir.join("truth-queries.csv")).unwrap();
    let mut lines = truth.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (mut pool_like, mut missing) = (0u64, Vec::new());
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let kind = f[col("kind")];
        if kind == "pool" || kind == "decoy_listed" {
            pool_like += 1;
        }
        let ts: i64 = f[col("ts_us")].parse().unwrap();
        let qname = f[col("qname")].to_ascii_lowercase();
        // The generator stamps a TCP transaction with its SYN; ours is the query message itself,
        // one round trip later (deliberate: `ts` is when the query was sent).
        let slack = if f[col("transport")] == "tcp" {
            5_000
        } else {
            0
        };
        let found = dns.iter().any(|d| {
            (d.ts.0 - ts).abs() <= slack
                && d.client.to_string() == f[col("client")]
                && d.qname == qname
                && d.qtype.to_string() == f[col("qtype")]
                && d.rcode.map(|r| r.to_string()).as_deref() == Some(f[col("rcode")])
                && serde_json::to_value(d.transport).unwrap() == f[col("transport")]
        });
        if !found {
            missing.push(line.to_string());
        }
    }
    assert!(missing.is_empty(), "not observed:\n{}", missing.join("\n"));
    assert_eq!(
        pool_like,
        manifest["counts"]["expected_pool_queries"]
            .as_u64()
            .unwrap()
    );
}
