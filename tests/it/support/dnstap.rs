//! Builds the project's own dnstap fixture (`tests/data/dnstap/sample.fstrm`): DNS wire messages
//! by hand, wrapped in dnstap protobuf by `dnstap::encode_dnstap`, framed by
//! `dnstap::encode_fstrm_file`. Regenerate with `POOLWATCH_REGEN_FIXTURES=1 cargo test --test
//! dnstap_files`.
#![allow(dead_code)]

use poolwatch::ingest::dnstap::{encode_dnstap, DnstapMessage};

pub const T0: u64 = 1_795_724_796;

fn name(out: &mut Vec<u8>, n: &str) {
    for label in n.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, an, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

pub fn query(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
    let mut m = header(id, 0x0100, 1, 0);
    name(&mut m, qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

pub enum Rd<'a> {
    A([u8; 4]),
    Cname(&'a str),
}

pub fn response(
    id: u16,
    qname: &str,
    qtype: u16,
    rcode: u16,
    answers: &[(&str, u32, Rd)],
) -> Vec<u8> {
    let mut m = header(id, 0x8180 | rcode, 1, answers.len() as u16);
    name(&mut m, qname);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    for (owner, ttl, rd) in answers {
        name(&mut m, owner);
        let (t, data) = match rd {
            Rd::A(a) => (1u16, a.to_vec()),
            Rd::Cname(c) => {
                let mut d = Vec::new();
                name(&mut d, c);
                (5u16, d)
            }
        };
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(&data);
    }
    m
}

#[allow(clippy::too_many_arguments)]
pub fn msg<'a>(
    mtype: u64,
    proto: u64,
    client: &'a [u8],
    cport: u64,
    server: &'a [u8],
    t_us: u64,
    q: Option<&'a [u8]>,
    r: Option<&'a [u8]>,
) -> Vec<u8> {
    let is_resp = r.is_some();
    encode_dnstap(&DnstapMessage {
        identity: Some(b"fixture"),
        version: Some(b"poolwatch-test"),
        dnstap_type: Some(1),
        message_type: Some(mtype),
        socket_family: Some(if client.len() == 4 { 1 } else { 2 }),
        socket_protocol: Some(proto),
        query_address: Some(client),
        response_address: Some(server),
        query_port: Some(cport),
        response_port: Some(53),
        query_time_sec: (!is_resp).then_some(T0 + t_us / 1_000_000),
        query_time_nsec: (!is_resp).then_some((t_us % 1_000_000) * 1000),
        query_message: q,
        response_time_sec: is_resp.then_some(T0 + t_us / 1_000_000),
        response_time_nsec: is_resp.then_some((t_us % 1_000_000) * 1000),
        response_message: r,
    })
}

/// The data frames of the fixture, in order.
pub fn frames() -> Vec<Vec<u8>> {
    let c4 = [192, 0, 2, 10];
    let c4b = [192, 0, 2, 11];
    let c4c = [192, 0, 2, 12];
    let s4 = [192, 0, 2, 53];
    let c6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let s6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
    ];
    let auth = [198, 51, 100, 1];
    let q1 = query(0x1111, "pool.supportxmr.com", 1);
    let r1 = response(
        0x1111,
        "pool.supportxmr.com",
        1,
        0,
        &[("pool.supportxmr.com", 60, Rd::A([203, 0, 113, 17]))],
    );
    let q2 = query(0x2222, "XMR.Pool.Example", 1);
    let r2 = response(
        0x2222,
        "XMR.Pool.Example",
        1,
        0,
        &[
            ("xmr.pool.example", 300, Rd::Cname("xmr-eu1.nanopool.org")),
            ("xmr-eu1.nanopool.org", 30, Rd::A([203, 0, 113, 99])),
        ],
    );
    let r3 = response(0x3333, "Mine.MoneroOcean.Stream", 1, 3, &[]);
    let q4 = query(0x4444, "www.example.com", 28);
    vec![
        msg(5, 1, &c4, 41000, &s4, 100_000, Some(&q1), None),
        // The resolver's own upstream query: skipped.
        msg(3, 1, &s4, 33000, &auth, 100_500, Some(&q1), None),
        msg(6, 1, &c4, 41000, &s4, 101_200, Some(&q1), Some(&r1)),
        msg(5, 2, &c6, 42000, &s6, 200_000, Some(&q2), None),
        msg(6, 2, &c6, 42000, &s6, 203_000, None, Some(&r2)),
        // Corrupt frame: counted, skipped.
        vec![0x0a, 0xff, 0x01],
        // A response whose query is not in the stream.
        msg(6, 1, &c4b, 43000, &s4, 300_000, None, Some(&r3)),
        // A query never answered.
        msg(5, 1, &c4c, 44000, &s4, 400_000, Some(&q4), None),
    ]
}
