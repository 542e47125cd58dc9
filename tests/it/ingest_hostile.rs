//! Hostile input for every line parser: garbage, truncations, invalid UTF-8, binary files, a
//! 10 MB line, floods of unanswered queries. Nothing may panic, hang or grow without bound.

use crate::support::rng as common;

use std::io::Write;
use std::path::PathBuf;

use poolwatch::ingest::{self, IngestConfig, LogFormat};
use poolwatch::model::{Observation, Source};

use common::Rng;

fn fixtures() -> Vec<(LogFormat, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/logs");
    LogFormat::ALL
        .iter()
        .filter(|f| **f != LogFormat::Dnstap)
        .map(|f| {
            let name = match f {
                LogFormat::Bind => "bind.log",
                LogFormat::Unbound => "unbound.log",
                LogFormat::Dnsmasq => "dnsmasq.log",
                LogFormat::Knot => "knot.log",
                LogFormat::Pdns => "pdns.log",
                LogFormat::CoreDns => "coredns.log",
                LogFormat::WindowsDns => "windows-dns.log",
                LogFormat::ZeekDns => "zeek-dns.log",
                LogFormat::ZeekConn => "zeek-conn.log",
                _ => "eve.log",
            };
            (*f, std::fs::read(dir.join(name)).unwrap())
        })
        .collect()
}

#[test]
fn truncated_and_mutated_lines_never_panic() {
    let cfg = IngestConfig::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (format, data) in fixtures() {
        let mut p = ingest::parser_for(format, Source::new("test"), &cfg);
        let mut out = Vec::new();
        for line in data.split(|c| *c == b'\n') {
            for cut in 0..=line.len() {
                p.parse_line(&line[..cut], &mut out);
            }
            for _ in 0..50 {
                let mut l = line.to_vec();
                for _ in 0..(1 + rng.next() % 4) {
                    if l.is_empty() {
                        break;
                    }
                    let i = (rng.next() as usize) % l.len();
                    match rng.next() % 3 {
                        0 => l[i] = rng.byte(),
                        1 => {
                            l.remove(i);
                        }
                        _ => l.insert(i, rng.byte()),
                    }
                }
                p.parse_line(&l, &mut out);
            }
        }
        p.flush(&mut out);
        // Serialisable whatever happened.
        for o in &out {
            serde_json::to_string(o).unwrap();
        }
    }
}

#[test]
fn random_bytes_and_invalid_utf8() {
    let cfg = IngestConfig::default();
    let mut rng = Rng(42);
    for format in LogFormat::ALL {
        let mut p = ingest::parser_for(*format, Source::new("test"), &cfg);
        let mut out = Vec::new();
        for len in 0..300 {
            let l = rng.bytes(len);
            p.parse_line(&l, &mut out);
        }
        p.parse_line(
            b"Nov 26 20:27:53 dnsmasq[1]: 1 1.2.3.4/5 query[A] \xff\xfe.com from 1.2.3.4",
            &mut out,
        );
        p.parse_line(b"26-Nov-2026 20:27:18.781 queries: info: client @0x1 1.2.3.4#5 (\xc3): query: \xc3\x28 IN A + (1.2.3.4)", &mut out);
        p.flush(&mut out);
    }
}

#[test]
fn errors_are_counted_per_format_and_reason() {
    let cfg = IngestConfig::default();
    let before = poolwatch::metrics::counter_value(
        "poolwatch_log_parse_errors_total",
        &[("format", "bind"), ("reason", "bad_client")],
    )
    .unwrap_or(0);
    let out = ingest::parse_bytes(
        LogFormat::Bind,
        b"26-Nov-2026 20:27:18.781 queries: info: client @0x1 999.2.3.4#5 (a): query: a IN A + (1.2.3.4)\n",
        &cfg,
    );
    assert!(out.is_empty());
    let after = poolwatch::metrics::counter_value(
        "poolwatch_log_parse_errors_total",
        &[("format", "bind"), ("reason", "bad_client")],
    )
    .unwrap_or(0);
    assert!(after > before);
    assert!(
        poolwatch::metrics::counter_value("poolwatch_log_lines_total", &[("format", "bind")])
            .unwrap_or(0)
            >= 1
    );
}

#[test]
fn binary_file_and_huge_line_do_not_stop_reading() {
    let dir = tempfile::tempdir().unwrap();
    // A binary file: detection fails cleanly, an explicit format reads nothing.
    let bin = dir.path().join("bin.log");
    let mut rng = Rng(7);
    let junk = rng.bytes(200_000);
    std::fs::write(&bin, &junk).unwrap();
    assert!(matches!(
        ingest::open_file(&bin, None, &IngestConfig::default()),
        Err(ingest::IngestError::UnknownFormat { .. })
    ));
    for format in [
        LogFormat::Bind,
        LogFormat::Dnsmasq,
        LogFormat::Eve,
        LogFormat::ZeekDns,
    ] {
        let n = ingest::open_file(&bin, Some(format), &IngestConfig::default())
            .unwrap()
            .count();
        assert!(n < 10, "{format}: {n} observations from random bytes");
    }
    // A 10 MB line between two good lines: both good lines come out.
    let big = dir.path().join("big.log");
    let mut f = std::fs::File::create(&big).unwrap();
    let good = b"26-Nov-2026 20:27:18.781 queries: info: client @0x1 10.0.0.1#1 (a.example): query: a.example IN A + (10.0.0.53)\n";
    f.write_all(good).unwrap();
    f.write_all(&vec![b'x'; 10 * 1024 * 1024]).unwrap();
    f.write_all(b"\n").unwrap();
    f.write_all(&good[..]).unwrap();
    drop(f);
    let obs: Vec<Observation> = ingest::open_file(&big, None, &IngestConfig::default())
        .unwrap()
        .collect();
    assert_eq!(obs.len(), 2);
}

#[test]
fn unanswered_flood_is_bounded_and_nothing_is_lost() {
    let cfg = IngestConfig {
        pending_max: 1000,
        ..IngestConfig::default()
    };
    for format in [LogFormat::Unbound, LogFormat::Dnsmasq, LogFormat::Pdns] {
        let mut p = ingest::parser_for(format, Source::new("flood"), &cfg);
        let mut out = Vec::new();
        let n = 50_000;
        for i in 0..n {
            let line = match format {
                LogFormat::Unbound => format!("[1795724797] unbound[1:0] info: 10.0.{}.{} r{i}.flood.example. A IN", i / 250 % 250, i % 250),
                LogFormat::Dnsmasq => format!("Nov 26 20:27:53 dnsmasq[1]: {i} 10.0.0.1/1 query[A] r{i}.flood.example from 10.0.0.1"),
                _ => format!("Nov 26 20:29:00 msg=\"Question\" subsystem=\"syncres\" ts=\"1795724940.987\" mtid=\"{i}\" proto=\"udp\" qname=\"r{i}.flood.example\" qtype=\"A\" remote=\"10.0.0.1:53000\""),
            };
            p.parse_line(line.as_bytes(), &mut out);
            // At most `pending_max` wait at any time: the rest has already come out.
            assert!(
                i + 1 - out.len() <= 1000,
                "{format}: {} pending",
                i + 1 - out.len()
            );
        }
        p.flush(&mut out);
        assert_eq!(out.len(), n, "{format}: every query comes out exactly once");
    }
}
