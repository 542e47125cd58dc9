//! DNS message builders: names, records, queries, responses, DNS over TCP.

use std::net::{Ipv4Addr, Ipv6Addr};

#[allow(unused_imports)]
use super::*;

pub fn name(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in n.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// One answer record: owner, type, ttl, rdata.
pub struct Rr {
    pub owner: String,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

pub fn a(owner: &str, ttl: u32, addr: &str) -> Rr {
    Rr {
        owner: owner.into(),
        rtype: 1,
        ttl,
        rdata: addr.parse::<Ipv4Addr>().unwrap().octets().to_vec(),
    }
}
pub fn aaaa(owner: &str, ttl: u32, addr: &str) -> Rr {
    Rr {
        owner: owner.into(),
        rtype: 28,
        ttl,
        rdata: addr.parse::<Ipv6Addr>().unwrap().octets().to_vec(),
    }
}
pub fn cname(owner: &str, ttl: u32, target: &str) -> Rr {
    Rr {
        owner: owner.into(),
        rtype: 5,
        ttl,
        rdata: name(target),
    }
}
pub fn txt(owner: &str, ttl: u32, text: &str) -> Rr {
    let mut d = Vec::new();
    for chunk in text.as_bytes().chunks(255) {
        d.push(chunk.len() as u8);
        d.extend_from_slice(chunk);
    }
    Rr {
        owner: owner.into(),
        rtype: 16,
        ttl,
        rdata: d,
    }
}
pub fn soa(owner: &str) -> Rr {
    let mut d = name("ns1.example.net");
    d.extend_from_slice(&name("hostmaster.example.net"));
    for v in [2026112601u32, 7200, 3600, 1209600, 300] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    Rr {
        owner: owner.into(),
        rtype: 6,
        ttl: 300,
        rdata: d,
    }
}

/// A query message.
pub fn query(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&name(qname));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// A response message with answers and authority records (uncompressed names).
pub fn response(
    id: u16,
    qname: &str,
    qtype: u16,
    rcode: u8,
    answers: &[Rr],
    authority: &[Rr],
) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&(authority.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&name(qname));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    for rr in answers.iter().chain(authority) {
        m.extend_from_slice(&name(&rr.owner));
        m.extend_from_slice(&rr.rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&rr.ttl.to_be_bytes());
        m.extend_from_slice(&(rr.rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rr.rdata);
    }
    m
}

/// The TCP framing of a DNS message (2-byte length prefix).
pub fn tcp_dns(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}
