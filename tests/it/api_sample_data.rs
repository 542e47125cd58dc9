//! The demo's bundled sample data (`tests/data/sample/`): well-formed pcap with valid
//! checksums, a log of the same traffic, expected verdicts that name every host, and files that
//! are exactly what `scripts/make-sample-data.py` generates.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample")
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Walks every record: Ethernet/IPv4, header checksum, UDP/TCP checksum over the pseudo-header.
/// Returns (packets, client addresses that sent DNS queries, TCP flows by (src, dst, dport)).
fn walk_pcap(bytes: &[u8]) -> (usize, HashSet<String>, HashSet<(String, String, u16)>) {
    assert_eq!(&bytes[..4], &0xa1b2c3d4u32.to_le_bytes(), "pcap magic");
    assert_eq!(
        u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut off = 24;
    let mut n = 0;
    let mut last_ts = 0u64;
    let mut dns_clients = HashSet::new();
    let mut flows = HashSet::new();
    while off < bytes.len() {
        let h = &bytes[off..off + 16];
        let ts = u64::from(u32::from_le_bytes(h[0..4].try_into().unwrap())) * 1_000_000
            + u64::from(u32::from_le_bytes(h[4..8].try_into().unwrap()));
        assert!(ts >= last_ts, "records in time order");
        last_ts = ts;
        let len = u32::from_le_bytes(h[8..12].try_into().unwrap()) as usize;
        let frame = &bytes[off + 16..off + 16 + len];
        off += 16 + len;
        n += 1;
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 ethertype");
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        assert_eq!(fold(sum16(&ip[..ihl])), 0xffff, "IPv4 header checksum");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let proto = ip[9];
        let (src, dst) = (&ip[12..16], &ip[16..20]);
        let l4 = &ip[ihl..total];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(src);
        pseudo.extend_from_slice(dst);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let s = sum16(&pseudo) + sum16(l4);
        assert_eq!(fold(s), 0xffff, "L4 checksum of packet {n}");
        let srcs = format!("{}.{}.{}.{}", src[0], src[1], src[2], src[3]);
        let dsts = format!("{}.{}.{}.{}", dst[0], dst[1], dst[2], dst[3]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        if proto == 17 && dport == 53 {
            dns_clients.insert(srcs);
        } else if proto == 6 && l4[13] & 0x12 == 0x02 {
            flows.insert((srcs, dsts, dport));
        }
    }
    assert_eq!(off, bytes.len(), "no trailing bytes");
    (n, dns_clients, flows)
}

#[test]
fn sample_pcap_is_well_formed_and_matches_expected_hosts() {
    let dir = sample_dir();
    let pcap = std::fs::read(dir.join("sample.pcap")).unwrap();
    let (packets, dns_clients, flows) = walk_pcap(&pcap);
    assert!(packets > 100);

    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let hosts = expected["hosts"].as_array().unwrap();
    let roles: HashSet<&str> = hosts.iter().map(|h| h["role"].as_str().unwrap()).collect();
    for r in [
        "miner",
        "lookup_only",
        "direct_ip",
        "blocked_lookup",
        "benign",
    ] {
        assert!(roles.contains(r), "no {r} host");
    }
    for h in hosts {
        let ip = h["ip"].as_str().unwrap();
        let stage = &h["stage"];
        // Hosts with contact stages really open TCP to the listed addresses and ports.
        if let (Some(ips), Some(ports)) = (h["pool_ips"].as_array(), h["dst_ports"].as_array()) {
            for (dst, port) in ips.iter().zip(ports) {
                let key = (
                    ip.to_string(),
                    dst.as_str().unwrap().to_string(),
                    port.as_u64().unwrap() as u16,
                );
                assert!(flows.contains(&key), "{ip}: no SYN to {key:?}");
            }
        }
        if h["role"] == "direct_ip" || h["role"] == "direct_ip_stratum" {
            assert!(!dns_clients.contains(ip), "{ip} must not look anything up");
        }
        if stage.is_string() && !h["role"].as_str().unwrap().starts_with("direct") {
            assert!(dns_clients.contains(ip), "{ip} should query DNS");
        }
    }
}

#[test]
fn sample_log_covers_the_same_queries() {
    let log = std::fs::read_to_string(sample_dir().join("sample-dnsmasq.log")).unwrap();
    for needle in [
        "query[A] pool.supportxmr.com from 192.0.2.10",
        "reply pool.supportxmr.com is 203.0.113.10",
        "query[A] xmr-eu1.nanopool.org from 192.0.2.11",
        "reply pool.minexmr.com is NXDOMAIN",
        "reply gulf.moneroocean.stream is 0.0.0.0",
        "reply www.example.com is <CNAME>",
        "query[A] notsupportxmr.com from 192.0.2.21",
    ] {
        assert!(log.contains(needle), "missing: {needle}");
    }
    assert!(
        !log.contains("192.0.2.12/"),
        "direct-IP host has no lookups"
    );
}

#[test]
fn committed_sample_is_what_the_script_generates() {
    let python = ["python3", "python"].into_iter().find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok()
    });
    let Some(python) = python else {
        eprintln!("skipping: python3 not installed");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-sample-data.py");
    let st = std::process::Command::new(python)
        .arg(script)
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for f in ["sample.pcap", "sample-dnsmasq.log", "expected.json"] {
        let a = std::fs::read(out.path().join(f)).unwrap();
        let b = std::fs::read(sample_dir().join(f)).unwrap();
        assert!(
            a == b,
            "{f} differs from the script's output: regenerate it"
        );
    }
}
