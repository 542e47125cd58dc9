//! dnstap Frame Streams files: the project's own fixture, decoding, pairing, skipping, and
//! garbage/truncation robustness.

use crate::support::dnstap as dnstap_support;

use std::path::PathBuf;

use poolwatch::ingest::dnstap::{self, FrameDecoder, Pairer};
use poolwatch::ingest::IngestConfig;
use poolwatch::model::{DnsObservation, Observation, Source, Transport};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dnstap/sample.fstrm")
}

fn dns(obs: impl Iterator<Item = Observation>) -> Vec<DnsObservation> {
    obs.filter_map(|o| match o {
        Observation::Dns(d) => Some(d),
        Observation::Flow(_) => None,
    })
    .collect()
}

#[test]
fn fixture_is_what_the_generator_makes() {
    let bytes = dnstap::encode_fstrm_file(&dnstap_support::frames());
    if std::env::var_os("POOLWATCH_REGEN_FIXTURES").is_some() {
        std::fs::write(fixture(), &bytes).unwrap();
    }
    assert_eq!(
        std::fs::read(fixture()).unwrap(),
        bytes,
        "regenerate the fixture"
    );
    assert!(dnstap::looks_like_fstrm(&bytes));
}

pub fn check_sample(got: &[DnsObservation]) {
    assert_eq!(got.len(), 4, "{got:#?}");
    let a = &got[0];
    assert_eq!(a.client.to_string(), "192.0.2.10");
    assert_eq!(a.client_port, Some(41000));
    assert_eq!(
        a.server.map(|s| s.to_string()).as_deref(),
        Some("192.0.2.53")
    );
    assert_eq!(a.qname, "pool.supportxmr.com");
    assert_eq!(a.qtype.to_string(), "A");
    assert_eq!(a.rcode.map(|r| r.to_string()).as_deref(), Some("NOERROR"));
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].data, "203.0.113.17");
    assert_eq!(a.answers[0].ttl, Some(60));
    assert!(a.query_seen);
    assert_eq!(a.rtt_us, Some(1_200));
    assert_eq!(a.transport, Transport::Udp);
    assert_eq!(
        a.ts.as_micros(),
        (dnstap_support::T0 * 1_000_000 + 100_000) as i64
    );

    let b = &got[1];
    assert_eq!(b.client.to_string(), "2001:db8::10");
    assert_eq!(b.qname, "xmr.pool.example");
    assert_eq!(b.transport, Transport::Tcp);
    assert_eq!(
        b.cname_targets().collect::<Vec<_>>(),
        vec!["xmr-eu1.nanopool.org"]
    );
    assert_eq!(
        b.answer_ips().map(|i| i.to_string()).collect::<Vec<_>>(),
        vec!["203.0.113.99"]
    );
    assert!(b.query_seen);
    assert_eq!(b.rtt_us, Some(3_000));

    let c = &got[2];
    assert_eq!(c.client.to_string(), "192.0.2.11");
    assert_eq!(c.qname, "mine.moneroocean.stream");
    assert_eq!(c.rcode.map(|r| r.to_string()).as_deref(), Some("NXDOMAIN"));
    assert!(!c.query_seen);

    let d = &got[3];
    assert_eq!(d.client.to_string(), "192.0.2.12");
    assert_eq!(d.qtype.to_string(), "AAAA");
    assert_eq!(d.rcode, None);
    assert!(d.answers.is_empty());
    // Never a resolver's upstream traffic.
    assert!(got.iter().all(|o| o.client.to_string() != "192.0.2.53"));
}

#[test]
fn fixture_file_decodes_to_client_observations() {
    let got = dns(dnstap::open_file(&fixture(), &IngestConfig::default()).unwrap());
    check_sample(&got);
    assert!(got
        .iter()
        .all(|o| o.source.as_str().starts_with("dnstap:file:")));
    let skipped = poolwatch::metrics::counter_value(
        "poolwatch_dnstap_messages_total",
        &[("type", "skipped_resolver")],
    );
    assert!(skipped.unwrap_or(0) >= 1);
    let bad = poolwatch::metrics::counter_value(
        "poolwatch_dnstap_errors_total",
        &[("reason", "protobuf")],
    );
    assert!(bad.unwrap_or(0) >= 1);
}

#[test]
fn not_fstrm_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, b"26-Nov-2026 queries: info: client\n").unwrap();
    assert!(dnstap::open_file(&p, &IngestConfig::default()).is_err());
    assert!(!dnstap::looks_like_fstrm(b""));
    assert!(!dnstap::looks_like_fstrm(&[
        0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2
    ]));
}

#[test]
fn frames_split_at_every_byte_decode_the_same() {
    let bytes = std::fs::read(fixture()).unwrap();
    for split in [1usize, 2, 3, 7, 64] {
        let mut dec = FrameDecoder::new();
        let mut pairer = Pairer::new(Source::new("dnstap:test"));
        let mut out = Vec::new();
        for chunk in bytes.chunks(split) {
            dec.feed(chunk);
            while let Ok(Some(f)) = dec.next_frame() {
                if let dnstap::Frame::Data(d) = f {
                    pairer.push_frame(d, &mut out);
                }
            }
        }
        pairer.finish(&mut out);
        check_sample(&dns(out.into_iter()));
    }
}

#[test]
fn truncated_and_garbled_files_do_not_panic() {
    let bytes = std::fs::read(fixture()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.fstrm");
    // Every truncation: never more observations than the whole file, never a panic.
    for cut in 0..bytes.len() {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        if let Ok(it) = dnstap::open_file(&p, &IngestConfig::default()) {
            assert!(it.count() <= 4);
        }
    }
    // Byte flips everywhere, and random frames, straight into the decoders.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..(rnd() % 8 + 1) {
            let i = (rnd() as usize) % b.len();
            b[i] = rnd() as u8;
        }
        let mut dec = FrameDecoder::new();
        let mut pairer = Pairer::new(Source::new("dnstap:fuzz"));
        let mut out = Vec::new();
        dec.feed(&b);
        while let Ok(Some(f)) = dec.next_frame() {
            if let dnstap::Frame::Data(d) = f {
                pairer.push_frame(d, &mut out);
            }
        }
        pairer.finish(&mut out);
        let garbage: Vec<u8> = (0..(rnd() % 300)).map(|_| rnd() as u8).collect();
        let _ = dnstap::decode_dnstap(&garbage);
    }
    // A hostile frame length is refused before anything is buffered.
    let mut dec = FrameDecoder::new();
    dec.feed(&[0x7f, 0xff, 0xff, 0xff]);
    assert!(dec.next_frame().is_err());
}

#[test]
fn pending_queries_are_bounded() {
    let mut pairer = Pairer::new(Source::new("dnstap:flood"));
    let mut out = Vec::new();
    let client = [10u8, 0, 0, 1];
    let server = [10u8, 0, 0, 53];
    let n = dnstap::MAX_PENDING_QUERIES + 1000;
    for i in 0..n {
        let q = dnstap_support::query(i as u16, &format!("n{i}.example"), 1);
        // All at the same instant: only the cap can evict.
        let f = dnstap_support::msg(
            5,
            1,
            &client,
            1000 + (i % 60000) as u64,
            &server,
            0,
            Some(&q),
            None,
        );
        pairer.push_frame(&f, &mut out);
        assert!(pairer.pending() <= dnstap::MAX_PENDING_QUERIES);
    }
    assert_eq!(out.len(), 1000);
    pairer.finish(&mut out);
    assert_eq!(out.len(), n);
}
