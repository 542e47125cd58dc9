//! Key encodings. Every multi-part key is fixed-width big-endian so that sled's byte order is the
//! logical order: time keys sort chronologically, IP keys group per host. See `docs/store.md`.

use std::net::IpAddr;

use crate::model::{Proto, Timestamp};

/// Bytes of an encoded address: a family byte (4 or 6) and 16 address bytes (IPv4 in the low 4,
/// zero-padded), so v4 and v6 never collide and each family sorts numerically.
pub const IP_LEN: usize = 17;
/// Bytes of an encoded timestamp.
pub const TS_LEN: usize = 8;
/// Bytes of a sequence number.
pub const SEQ_LEN: usize = 8;
/// Header in front of each stored detection: creation sequence and the `first_seen` under which
/// the index entries were written (so they can be found again even if `first_seen` moved).
pub const DET_HEADER_LEN: usize = SEQ_LEN + TS_LEN;

pub fn ip(ip: IpAddr) -> [u8; IP_LEN] {
    let mut k = [0u8; IP_LEN];
    match ip {
        IpAddr::V4(v4) => {
            k[0] = 4;
            k[13..17].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            k[0] = 6;
            k[1..17].copy_from_slice(&v6.octets());
        }
    }
    k
}

pub fn ip_from(k: &[u8]) -> Option<IpAddr> {
    let fam = *k.first()?;
    let body: [u8; 16] = k.get(1..IP_LEN)?.try_into().ok()?;
    match fam {
        4 => {
            let v4: [u8; 4] = body.get(12..16)?.try_into().ok()?;
            Some(IpAddr::from(v4))
        }
        6 => Some(IpAddr::from(body)),
        _ => None,
    }
}

/// Timestamp with the sign bit flipped, big-endian: negative times sort before positive ones.
pub fn ts(t: Timestamp) -> [u8; TS_LEN] {
    ((t.0 as u64) ^ (1u64 << 63)).to_be_bytes()
}

pub fn ts_from(k: &[u8]) -> Option<Timestamp> {
    let b: [u8; TS_LEN] = k.get(..TS_LEN)?.try_into().ok()?;
    Some(Timestamp((u64::from_be_bytes(b) ^ (1u64 << 63)) as i64))
}

pub fn seq_from(k: &[u8]) -> Option<u64> {
    let b: [u8; SEQ_LEN] = k.get(..SEQ_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// `det_by_time`: first_seen ‖ seq.
pub fn by_time(first_seen: Timestamp, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(TS_LEN + SEQ_LEN);
    k.extend_from_slice(&ts(first_seen));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `det_by_client`: client ‖ first_seen ‖ seq.
pub fn by_client(client: IpAddr, first_seen: Timestamp, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(IP_LEN + TS_LEN + SEQ_LEN);
    k.extend_from_slice(&ip(client));
    k.extend_from_slice(&ts(first_seen));
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `bindings`: client ‖ answer ip.
pub fn binding(client: IpAddr, addr: IpAddr) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 * IP_LEN);
    k.extend_from_slice(&ip(client));
    k.extend_from_slice(&ip(addr));
    k
}

/// `pool_flows`: detection id ‖ 0x00 ‖ start ‖ src_port ‖ dst ‖ dst_port ‖ proto. Interim and
/// final reports of one flow share the key, so the final one overwrites.
pub fn pool_flow(
    detection_id: &str,
    start: Timestamp,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    proto: Proto,
) -> Vec<u8> {
    let mut k = flow_prefix(detection_id);
    k.extend_from_slice(&ts(start));
    k.extend_from_slice(&src_port.to_be_bytes());
    k.extend_from_slice(&ip(dst));
    k.extend_from_slice(&dst_port.to_be_bytes());
    k.push(match proto {
        Proto::Tcp => 6,
        Proto::Udp => 17,
    });
    k
}

pub fn flow_prefix(detection_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(detection_id.len() + 1 + 40);
    k.extend_from_slice(detection_id.as_bytes());
    k.push(0);
    k
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_chronologically() {
        let times = [i64::MIN, -5, -1, 0, 1, 1_795_724_797_000_000, i64::MAX];
        let keys: Vec<_> = times.iter().map(|t| ts(Timestamp(*t))).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for t in times {
            assert_eq!(ts_from(&ts(Timestamp(t))), Some(Timestamp(t)));
        }
    }

    #[test]
    fn ip_round_trip_and_grouping() {
        for a in ["127.0.10.11", "::1", "2001:db8::17", "0.0.0.0"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(ip_from(&super::ip(ip)), Some(ip));
        }
        assert_eq!(ip_from(&[9; 17]), None);
        assert_eq!(ip_from(&[4, 1]), None);
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("zz"), None);
    }
}
