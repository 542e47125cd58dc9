//! The cluster's wire format and partitioning (pure functions, no NATS): the versioned
//! encodings round-trip real observations from `tests/data/sample`, hostile bytes are refused
//! with a reason, the partition hash is stable and spreads, context copies cannot carry a
//! pool name, and the lease arithmetic holds its bound.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use poolwatch::capture::CaptureConfig;
use poolwatch::cluster::{lease, wire, DEFAULT_LEASE_TTL, DEFAULT_PARTITIONS};
use poolwatch::ingest::IngestConfig;
use poolwatch::input::{self, InputFormat};
use poolwatch::model::Observation;

fn sample_observations() -> Vec<Observation> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample/sample.pcap");
    input::open(
        &p,
        InputFormat::Auto,
        &CaptureConfig::default(),
        &IngestConfig::default(),
    )
    .unwrap()
    .collect()
}

#[test]
fn observations_round_trip_with_version_and_kind() {
    let obs = sample_observations();
    assert!(obs.len() > 10);
    for o in &obs {
        let b = wire::encode_observation(o, wire::KIND_PRIMARY).unwrap();
        assert_eq!(b[0], wire::OBS_VERSION);
        let (kind, back) = wire::decode_observation(&b).unwrap();
        assert_eq!(kind, wire::KIND_PRIMARY);
        assert_eq!(&back, o);
    }
}

#[test]
fn hostile_messages_are_refused_with_a_reason() {
    let o = &sample_observations()[0];
    let good = wire::encode_observation(o, wire::KIND_PRIMARY).unwrap();
    assert_eq!(wire::decode_observation(&[]).unwrap_err().reason(), "empty");
    let mut v2 = good.clone();
    v2[0] = 2;
    assert_eq!(
        wire::decode_observation(&v2).unwrap_err().reason(),
        "version"
    );
    let mut bad_kind = good.clone();
    bad_kind[1] = b'x';
    assert_eq!(
        wire::decode_observation(&bad_kind).unwrap_err().reason(),
        "body"
    );
    let cut = &good[..good.len() / 2];
    assert_eq!(wire::decode_observation(cut).unwrap_err().reason(), "body");
    let huge = vec![wire::OBS_VERSION; wire::MAX_MESSAGE_BYTES + 1];
    assert_eq!(
        wire::decode_observation(&huge).unwrap_err().reason(),
        "too_large"
    );
    assert!(wire::decode_detection(&good).is_err());
}

#[test]
fn the_partition_hash_is_stable_and_spreads() {
    // FNV-1a 64 of the address bytes, modulo the count: fixed values, the same on every node.
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let p = wire::partition_of(ip("192.0.2.10"), DEFAULT_PARTITIONS);
    assert_eq!(
        p,
        wire::partition_of(ip("::ffff:192.0.2.10"), DEFAULT_PARTITIONS)
    );
    assert!(p < DEFAULT_PARTITIONS);
    assert_eq!(wire::partition_of(ip("192.0.2.10"), 1), 0);
    let mut seen = std::collections::HashSet::new();
    for i in 0..=255u8 {
        seen.insert(wire::partition_of(
            IpAddr::from([10, 0, 0, i]),
            DEFAULT_PARTITIONS,
        ));
    }
    assert_eq!(
        seen.len(),
        usize::from(DEFAULT_PARTITIONS),
        "every partition used"
    );
    assert_eq!(wire::partition_of_subject(&wire::obs_subject(7)), Some(7));
    assert_eq!(wire::partition_of_subject("poolwatch.obs.x"), None);
    assert_eq!(wire::partition_of_subject("other.obs.1"), None);
    assert_eq!(
        wire::detection_subject("ab.c*>"),
        "poolwatch.detections.ab_c__"
    );
}

#[test]
fn a_context_copy_teaches_the_resolver_rule_only() {
    let obs = sample_observations();
    let mut copies = 0;
    for o in &obs {
        let Some((p, c)) = wire::context_copy(o, DEFAULT_PARTITIONS) else {
            continue;
        };
        copies += 1;
        let Observation::Dns(d) = &c else {
            panic!("a flow became a context copy")
        };
        assert_eq!(d.qname, wire::CONTEXT_QNAME);
        assert!(d.answers.is_empty());
        assert_eq!(
            Some(p),
            d.server.map(|s| wire::partition_of(s, DEFAULT_PARTITIONS))
        );
        // A forged context message carrying a pool name comes back neutralised.
        let mut forged = o.clone();
        if let Observation::Dns(f) = &mut forged {
            f.qname = "pool.supportxmr.com".into();
        }
        let b = wire::encode_observation(&forged, wire::KIND_CONTEXT).unwrap();
        let (_, back) = wire::decode_observation(&b).unwrap();
        let Observation::Dns(back) = back else {
            panic!()
        };
        assert_eq!(back.qname, wire::CONTEXT_QNAME);
    }
    assert!(copies > 0, "the sample has answered queries to a resolver");
}

#[test]
fn lease_arithmetic_keeps_the_takeover_bound() {
    // The bound: a dead correlator's partitions move within 30 s by default.
    assert!(lease::takeover_bound(DEFAULT_LEASE_TTL) <= Duration::from_secs(30));
    let poll = lease::poll_interval(DEFAULT_LEASE_TTL);
    assert!(lease::takeover_bound(DEFAULT_LEASE_TTL) >= DEFAULT_LEASE_TTL + 2 * poll);
    assert_eq!(lease::fair_share(16, 3), 6);
    assert_eq!(lease::fair_share(16, 0), 16);
    assert_eq!(lease::fair_share(16, 32), 1);
    assert_eq!(lease::lease_key(3), "p3");
    assert_eq!(lease::partition_of_key("p3"), Some(3));
    assert_eq!(lease::partition_of_key("p"), None);
    assert_eq!(lease::partition_of_key("x3"), None);
    assert_eq!(lease::partition_of_key("p99999"), None);
}
