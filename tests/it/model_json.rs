//! The domain model's JSON is a contract (docs/observations.md, docs/detections.md): every type
//! must survive a round trip, and the field names users rely on must be there.

use std::net::IpAddr;

use poolwatch::model::*;

fn dns() -> DnsObservation {
    DnsObservation {
        ts: Timestamp::from_micros(1_795_724_797_123_456),
        client: "127.0.10.16".parse().unwrap(),
        client_port: Some(35659),
        server: Some("127.53.1.1".parse().unwrap()),
        server_port: Some(53),
        transport: Transport::Udp,
        id: Some(0x1234),
        qname: "api.cloud-sync-check.net".into(),
        qtype: RrType::A,
        rcode: Some(Rcode::NOERROR),
        answers: vec![
            DnsAnswer {
                name: "api.cloud-sync-check.net".into(),
                rtype: RrType::CNAME,
                ttl: Some(300),
                data: "gulf.moneroocean.stream".into(),
            },
            DnsAnswer {
                name: "gulf.moneroocean.stream".into(),
                rtype: RrType::A,
                ttl: Some(60),
                data: "127.20.37.200".into(),
            },
        ],
        answers_known: true,
        query_seen: true,
        rtt_us: Some(455),
        truncated: false,
        salvaged: None,
        source: Source::pcap("lab.pcap"),
    }
}

fn flow() -> FlowObservation {
    FlowObservation {
        ts: Timestamp::from_micros(1_795_724_798_000_000),
        last_ts: Timestamp::from_micros(1_795_724_808_000_000),
        src: "127.0.10.16".parse().unwrap(),
        src_port: 40000,
        dst: "127.20.37.200".parse().unwrap(),
        dst_port: 10128,
        proto: Proto::Tcp,
        direction: Direction::Originator,
        state: FlowState::Closed,
        report: FlowReport::Final,
        bytes_out: 420,
        bytes_in: 1300,
        packets_out: 6,
        packets_in: 5,
        payload_out: b"{\"id\":1,\"method\":\"login\"}".to_vec(),
        payload_in: Vec::new(),
        app: AppInfo {
            stratum_method: Some("login".into()),
            stratum_agent: Some("XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0".into()),
            ..AppInfo::default()
        },
        source: Source::pcap("lab.pcap"),
    }
}

#[test]
fn observations_round_trip() {
    for obs in [Observation::Dns(dns()), Observation::Flow(flow())] {
        let json = serde_json::to_string(&obs).unwrap();
        let back: Observation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, obs, "{json}");
    }
}

#[test]
fn dns_observation_field_names() {
    let v = serde_json::to_value(Observation::Dns(dns())).unwrap();
    for key in [
        "observation",
        "ts",
        "client",
        "client_port",
        "server",
        "server_port",
        "transport",
        "id",
        "qname",
        "qtype",
        "rcode",
        "answers",
        "source",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["observation"], "dns");
    assert_eq!(v["qtype"], "A");
    assert_eq!(v["rcode"], "NOERROR");
    assert_eq!(v["ts"], "2026-11-26T20:26:37.123456Z");
    assert_eq!(v["answers"][0]["type"], "CNAME");
    assert_eq!(v["answers"][1]["ttl"], 60);
    // An unanswered query has no rcode at all.
    let mut q = dns();
    q.rcode = None;
    let v = serde_json::to_value(Observation::Dns(q)).unwrap();
    assert!(v.get("rcode").is_none());
}

#[test]
fn flow_observation_field_names() {
    let v = serde_json::to_value(Observation::Flow(flow())).unwrap();
    for key in [
        "observation",
        "ts",
        "src",
        "src_port",
        "dst",
        "dst_port",
        "proto",
        "state",
        "bytes_out",
        "bytes_in",
        "packets_out",
        "packets_in",
        "app",
        "source",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["observation"], "flow");
    assert_eq!(v["state"], "closed");
    assert_eq!(v["app"]["stratum_method"], "login");
    assert_eq!(v["payload_out"], hex(b"{\"id\":1,\"method\":\"login\"}"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn detection() -> Detection {
    let client: IpAddr = "127.0.10.16".parse().unwrap();
    let mut ev = Evidence::new(
        Timestamp::from_micros(1_795_724_797_123_456),
        EvidenceKind::DnsLookup,
        Source::pcap("lab.pcap"),
        "A api.cloud-sync-check.net -> gulf.moneroocean.stream -> 127.20.37.200".into(),
    );
    ev.qname = Some("api.cloud-sync-check.net".into());
    ev.answers = vec!["127.20.37.200".parse().unwrap()];
    Detection {
        id: "d-0001".into(),
        client_ip: client,
        stage: Stage::Stratum,
        risk_score: 95,
        pool_domain: "moneroocean.stream".into(),
        query_names: vec!["api.cloud-sync-check.net".into()],
        pool_ips: vec!["127.20.37.200".parse().unwrap()],
        dst_ports: vec![10128],
        first_seen: Timestamp::from_micros(1_795_724_797_123_456),
        last_seen: Timestamp::from_micros(1_795_724_808_000_000),
        is_new: true,
        evidence: vec![ev],
        sources: vec![Source::pcap("lab.pcap")],
        lists: vec![ListHit {
            list: "pools".into(),
            entry: "moneroocean.stream".into(),
            category: Category::Pool,
            line: 3,
        }],
        mitre: Mitre::default(),
        kill_chain: KILL_CHAIN.into(),
        title: DETECTION_TITLE.into(),
        counts: DetectionCounts::default(),
        agents: vec![],
        suppressed: false,
        suppression_id: None,
        stage_changed: None,
        schema_version: DETECTION_SCHEMA_VERSION,
        retro: false,
        source_marks: Vec::new(),
    }
}

#[test]
fn detection_round_trip_and_contract() {
    let d = detection();
    let json = serde_json::to_string(&d).unwrap();
    let back: Detection = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in [
        "id",
        "client_ip",
        "stage",
        "risk_score",
        "pool_domain",
        "query_names",
        "pool_ips",
        "dst_ports",
        "first_seen",
        "last_seen",
        "is_new",
        "evidence",
        "sources",
        "lists",
        "mitre",
        "kill_chain",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["stage"], "stratum");
    assert_eq!(v["mitre"]["technique"], "T1496");
    assert_eq!(v["mitre"]["tactic"], "Impact");
    assert_eq!(v["kill_chain"], "actions_on_objective");
    assert_eq!(v["first_seen"], "2026-11-26T20:26:37.123456Z");
    assert_eq!(v["lists"][0]["list"], "pools");
    assert_eq!(v["evidence"][0]["source"], "pcap:lab.pcap");
}

#[test]
fn detection_from_minimal_contract_json() {
    // A consumer that stored detections before the additive fields existed can read them back.
    let v = serde_json::json!({
        "id": "x", "client_ip": "192.0.2.1", "stage": "lookup", "risk_score": 60,
        "pool_domain": "supportxmr.com", "query_names": ["pool.supportxmr.com"], "pool_ips": [],
        "dst_ports": [], "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:00:00Z",
        "is_new": true, "evidence": [], "sources": [], "lists": [],
    });
    let d: Detection = serde_json::from_value(v).unwrap();
    assert_eq!(d.kill_chain, "actions_on_objective");
    assert_eq!(d.mitre.technique, "T1496");
    assert_eq!(d.stage, Stage::Lookup);
}

#[test]
fn bad_json_is_an_error_not_a_panic() {
    for bad in [
        r#"{"observation":"dns"}"#,
        r#"{"observation":"flow","ts":"yesterday"}"#,
        r#"{"observation":"nope"}"#,
        "[]",
        "",
        r#"{"id":"x","client_ip":"not-an-ip"}"#,
    ] {
        assert!(serde_json::from_str::<Observation>(bad).is_err(), "{bad}");
    }
    assert!(serde_json::from_str::<Detection>(r#"{"stage":"mining"}"#).is_err());
}

/// `PoolFlow.attribution` is an enum now; its JSON stays the documented strings.
#[test]
fn attribution_json_is_the_documented_string() {
    use poolwatch::model::How;
    for how in [
        How::OwnLookup,
        How::TlsSni,
        How::HttpHost,
        How::OtherClientBinding,
        How::ListedAddress,
        How::StratumPayload,
    ] {
        let json = serde_json::to_string(&how).unwrap();
        assert_eq!(json, format!("\"{}\"", how.as_str()));
        let back: How = serde_json::from_str(&json).unwrap();
        assert_eq!(back, how);
    }
    assert!(serde_json::from_str::<How>("\"guess\"").is_err());
}
