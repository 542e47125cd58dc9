//! The project's own capture fixtures (`tests/data/pcap/`, written by
//! `tests/it/support/capture/`) decode to the expected observations. These cover the core
//! behaviour without `../shared`.

use crate::support::capture as capture_support;

use std::path::{Path, PathBuf};

use poolwatch::capture::{self, CaptureConfig, CaptureStats};
use poolwatch::model::{
    Direction, DnsObservation, FlowObservation, FlowReport, FlowState, Observation, Rcode, RrType,
    Transport,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap")
}

/// Writes the fixtures when missing (or asked to), then checks the files on disk are exactly
/// what the generator makes, so the generator stays the source of truth.
fn ensure_fixtures() {
    let d = dir();
    std::fs::create_dir_all(&d).unwrap();
    let force = std::env::var_os("POOLWATCH_WRITE_FIXTURES").is_some();
    for (name, bytes) in capture_support::fixtures() {
        let p = d.join(name);
        if force || !p.exists() {
            std::fs::write(&p, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&p).unwrap(),
            bytes,
            "{name} differs from its generator"
        );
    }
}

fn read(name: &str) -> (Vec<DnsObservation>, Vec<FlowObservation>, CaptureStats) {
    ensure_fixtures();
    let mut r = capture::open_file(&dir().join(name), &CaptureConfig::default()).unwrap();
    let (mut dns, mut flows) = (Vec::new(), Vec::new());
    for o in r.by_ref() {
        // Every observation serialises with its tag (the `inspect --output json` shape).
        let j = serde_json::to_value(&o).unwrap();
        assert!(j["observation"] == "dns" || j["observation"] == "flow");
        match o {
            Observation::Dns(d) => dns.push(d),
            Observation::Flow(f) => flows.push(f),
        }
    }
    (dns, flows, r.stats())
}

#[test]
fn udp_query_response_unanswered_unsolicited_and_mdns() {
    let (dns, flows, st) = read("udp_query_response.pcap");
    assert_eq!(dns.len(), 3, "{dns:#?}");
    let d = dns.iter().find(|d| d.id == Some(0x1111)).unwrap();
    assert_eq!(d.qname, "www.example.com");
    assert_eq!(d.qtype, RrType::A);
    assert_eq!(d.client.to_string(), "192.0.2.10");
    assert_eq!(d.client_port, Some(40001));
    assert_eq!(d.server.unwrap().to_string(), "192.0.2.53");
    assert_eq!(d.server_port, Some(53));
    assert_eq!(d.transport, Transport::Udp);
    assert_eq!(d.rcode, Some(Rcode::NOERROR));
    assert_eq!(d.rtt_us, Some(1_500));
    assert_eq!(d.answers[0].data, "93.184.216.34");
    assert_eq!(d.answers[0].ttl, Some(300));
    assert!(d.query_seen);
    let lost = dns.iter().find(|d| d.id == Some(0x2222)).unwrap();
    assert_eq!(
        (lost.rcode, lost.qtype, lost.query_seen),
        (None, RrType::AAAA, true)
    );
    let stray = dns.iter().find(|d| d.id == Some(0x3333)).unwrap();
    assert!(!stray.query_seen);
    assert_eq!(
        stray.client.to_string(),
        "192.0.2.11",
        "client = the response's destination"
    );
    // mDNS is not DNS here: reported (if at all) only as a UDP flow.
    assert!(dns.iter().all(|d| d.qname != "printer.local"));
    assert!(flows.iter().all(|f| f.dst_port == 5353));
    assert_eq!(st.dns_paired, 1);
    assert_eq!(st.dns_unanswered, 1);
    assert_eq!(st.dns_unsolicited, 1);
}

#[test]
fn cname_chain() {
    let (dns, _, _) = read("cname_chain.pcap");
    let d = &dns[0];
    let chain: Vec<&str> = d.cname_targets().collect();
    assert_eq!(
        chain,
        ["relay.cloud-sync-check.net", "gulf.moneroocean.stream"]
    );
    let ips: Vec<String> = d.answer_ips().map(|i| i.to_string()).collect();
    assert_eq!(ips, ["203.0.113.200", "203.0.113.201"]);
}

#[test]
fn nxdomain() {
    let (dns, _, _) = read("nxdomain.pcap");
    assert_eq!(dns[0].rcode, Some(Rcode::NXDOMAIN));
    assert!(dns[0].answers.is_empty(), "authority SOA is not an answer");
}

#[test]
fn dns_over_tcp_joined_and_split_messages() {
    let (dns, flows, st) = read("dns_tcp.pcap");
    assert_eq!(dns.len(), 2, "{dns:#?}");
    let a = dns.iter().find(|d| d.qtype == RrType::A).unwrap();
    let aaaa = dns.iter().find(|d| d.qtype == RrType::AAAA).unwrap();
    assert_eq!(a.transport, Transport::Tcp);
    assert_eq!(a.answers.len(), 2);
    assert_eq!(aaaa.answers[0].data, "2001:db8::14");
    assert!(a.rtt_us.is_some() && aaaa.rtt_us.is_some());
    assert!(
        flows.is_empty(),
        "DNS connections are not reported as flows"
    );
    assert_eq!(st.tcp_dns_streams, 0, "closed streams are released");
}

#[test]
fn ipv6_in_vlan() {
    let (dns, _, _) = read("ipv6_vlan.pcap");
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0].client.to_string(), "2001:db8::10");
    assert_eq!(dns[0].answers[0].data, "2001:db8:20::17");
}

#[test]
fn linux_cooked_v2() {
    let (dns, _, _) = read("sll2.pcap");
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0].answers[0].data, "198.51.100.77");
}

#[test]
fn fragmented_udp_response_is_reassembled() {
    let (dns, _, st) = read("fragmented_response.pcap");
    assert_eq!(st.reassembled, 1, "{st:?}");
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0].rcode, Some(Rcode::NOERROR));
    assert_eq!(dns[0].answers[0].rtype, RrType::TXT);
    assert!(dns[0].answers[0].data.len() > 2000);
}

#[test]
fn malformed_message_is_salvaged_and_counted() {
    let (dns, _, st) = read("malformed.pcap");
    assert_eq!(dns.len(), 1);
    let d = &dns[0];
    assert_eq!(d.qname, "xmr.pool.minergate.com");
    assert!(d.salvaged.is_some());
    assert_eq!(d.answers.len(), 1, "the intact first answer is kept");
    assert_eq!(st.dns_salvaged, 1);
    assert!(st.dns_parse_error_total() >= 2, "{st:?}");
    // Pushed to the process-wide metrics at the end of the file.
    let text = poolwatch::metrics::render();
    assert!(
        text.contains("poolwatch_dns_parse_errors_total{reason="),
        "{text}"
    );
    assert!(poolwatch::metrics::counter_value("poolwatch_packets_total", &[]).unwrap_or(0) >= 3);
}

#[test]
fn xmrig_login_flow() {
    let (_, flows, _) = read("xmrig_flow.pcap");
    let interim: Vec<_> = flows
        .iter()
        .filter(|f| f.report == FlowReport::Interim)
        .collect();
    let fin = flows
        .iter()
        .find(|f| f.report == FlowReport::Final)
        .unwrap();
    assert!(!interim.is_empty());
    // Recognised long before the session ends (the close is 5 s later).
    let early = interim
        .iter()
        .find(|f| f.app.stratum_method.is_some())
        .unwrap();
    assert!(early.last_ts.0 - early.ts.0 < 10_000);
    assert_eq!(fin.state, FlowState::Closed);
    assert_eq!(fin.direction, Direction::Originator);
    assert_eq!(fin.src.to_string(), "192.0.2.10");
    assert_eq!(fin.dst_port, 3333);
    assert_eq!(fin.app.stratum_method.as_deref(), Some("login"));
    assert!(fin
        .app
        .stratum_agent
        .as_deref()
        .unwrap()
        .starts_with("XMRig/6.21.0"));
    assert!(fin
        .app
        .stratum_login
        .as_deref()
        .unwrap()
        .starts_with("48E5Y"));
    assert!(fin.bytes_out > 200 && fin.bytes_in > 50);
    // SYN, ACK, data, FIN out; SYN-ACK, data, FIN in. The report is made at the second FIN,
    // so the last ACK is not in it.
    assert_eq!((fin.packets_out, fin.packets_in), (4, 3));
    assert!(!fin.payload_out.is_empty() && fin.payload_out.len() <= capture::PAYLOAD_PREFIX_MAX);
}

#[test]
fn syn_only_and_rejected() {
    let (_, flows, _) = read("syn_only.pcap");
    assert_eq!(flows.len(), 2, "{flows:#?}");
    let attempted = flows.iter().find(|f| f.dst_port == 14444).unwrap();
    assert_eq!(attempted.state, FlowState::Attempted);
    assert_eq!(attempted.packets_out, 2);
    assert_eq!(attempted.report, FlowReport::Final);
    let rejected = flows.iter().find(|f| f.dst_port == 3334).unwrap();
    assert_eq!(rejected.state, FlowState::Rejected);
}

#[test]
fn tls_client_hello_sni() {
    let (_, flows, _) = read("tls_sni.pcap");
    let last = flows.last().unwrap();
    assert!(last.app.tls);
    assert_eq!(last.app.sni.as_deref(), Some("gulf.moneroocean.stream"));
    assert_eq!(
        last.state,
        FlowState::Established,
        "never closed: open at end of input"
    );
    assert!(flows
        .iter()
        .any(|f| f.report == FlowReport::Interim && f.app.sni.is_some()));
}

#[test]
fn looks_like_capture_and_bad_files() {
    ensure_fixtures();
    let head = std::fs::read(dir().join("sll2.pcap")).unwrap();
    assert!(capture::looks_like_capture(&head));
    assert!(!capture::looks_like_capture(
        b"Nov 26 20:27:53 dnsmasq[6972]: 81"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture at all").unwrap();
    assert!(capture::open_file(&junk, &CaptureConfig::default()).is_err());
    // A capture cut mid-packet: what was read is kept, the rest is counted.
    let cut = tmp.path().join("cut.pcap");
    std::fs::write(&cut, &head[..head.len() - 10]).unwrap();
    let mut r = capture::open_file(&cut, &CaptureConfig::default()).unwrap();
    let n = r.by_ref().count();
    assert_eq!(n, 1, "the query is reported unanswered");
    assert!(r.stats().decode_error_total() >= 1);
}
