//! Builds the project's own capture fixtures (`tests/data/pcap/*.pcap`): a tiny pcap writer and
//! packet/DNS-message builders. `tests/capture_fixtures.rs` (re)writes the files from here when
//! they are missing or `POOLWATCH_WRITE_FIXTURES=1` is set, so this file is the script that made
//! them.
#![allow(dead_code, clippy::too_many_arguments)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// A classic pcap file in memory (little endian, µs).
pub struct Pcap {
    pub bytes: Vec<u8>,
}

impl Pcap {
    pub fn new(linktype: u32) -> Self {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&linktype.to_le_bytes());
        Pcap { bytes: b }
    }
    /// Appends one frame at `t_us` µs after 2026-11-26T12:00:00Z.
    pub fn push(&mut self, t_us: u64, frame: &[u8]) {
        let t = EPOCH_US + t_us;
        self.bytes
            .extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(frame);
    }
}

impl Pcap {
    /// The records written so far: (µs after the builders' epoch, frame).
    pub fn records(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = 24;
        while off + 16 <= self.bytes.len() {
            let u = |o: usize| u32::from_le_bytes(self.bytes[o..o + 4].try_into().unwrap());
            let t = u64::from(u(off)) * 1_000_000 + u64::from(u(off + 4)) - EPOCH_US;
            let len = u(off + 8) as usize;
            out.push((t, self.bytes[off + 16..off + 16 + len].to_vec()));
            off += 16 + len;
        }
        out
    }
}

/// 2026-11-26T12:00:00Z in µs: time 0 of every builder.
pub const EPOCH_US: u64 = 1_795_694_400_000_000;

pub const LINKTYPE_RAW: u16 = 101;
pub const LINKTYPE_LINUX_SLL: u16 = 113;

/// A pcapng file in memory, as dumpcap writes one: sections (either byte order), one Interface
/// Description Block per interface with its own link type and `if_tsresol`, Enhanced Packet
/// Blocks, and any other block on request.
pub struct Pcapng {
    pub bytes: Vec<u8>,
    be: bool,
    /// Units per second of each interface of the current section.
    units: Vec<u64>,
}

impl Pcapng {
    pub fn new(big_endian: bool) -> Self {
        let mut p = Pcapng {
            bytes: Vec::new(),
            be: big_endian,
            units: Vec::new(),
        };
        p.section(big_endian);
        p
    }
    fn u16b(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32b(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    /// Appends a block of `btype` with `body` (padded to 4 bytes).
    pub fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        let (t, l) = (self.u32b(btype), self.u32b(len));
        self.bytes.extend_from_slice(&t);
        self.bytes.extend_from_slice(&l);
        self.bytes.extend_from_slice(&body);
        self.bytes.extend_from_slice(&l);
    }
    /// Starts a new section (its interfaces start again at 0).
    pub fn section(&mut self, big_endian: bool) {
        self.be = big_endian;
        self.units.clear();
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32b(0x1A2B_3C4D));
        body.extend_from_slice(&self.u16b(1));
        body.extend_from_slice(&self.u16b(0));
        body.extend_from_slice(&[0xff; 8]); // section length unknown
        body.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        self.block(0x0A0D_0D0A, &body);
    }
    /// Describes an interface; `tsresol` is the `if_tsresol` byte (None: µs). Returns its id.
    pub fn interface(&mut self, linktype: u16, tsresol: Option<u8>) -> u32 {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u16b(linktype));
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32b(262_144));
        // if_name, then if_tsresol, then the end of options.
        let name = format!("if{}", self.units.len());
        body.extend_from_slice(&self.u16b(2));
        body.extend_from_slice(&self.u16b(name.len() as u16));
        body.extend_from_slice(name.as_bytes());
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let mut units = 1_000_000u64;
        if let Some(r) = tsresol {
            body.extend_from_slice(&self.u16b(9));
            body.extend_from_slice(&self.u16b(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
            units = if r & 0x80 != 0 {
                1 << (r & 0x7f)
            } else {
                10u64.pow(u32::from(r))
            };
        }
        body.extend_from_slice(&[0, 0, 0, 0]);
        self.block(1, &body);
        self.units.push(units);
        (self.units.len() - 1) as u32
    }
    /// An Enhanced Packet Block on interface `iface` at `t_us` after the builders' epoch.
    pub fn packet(&mut self, iface: u32, t_us: u64, frame: &[u8]) {
        let units = self.units.get(iface as usize).copied().unwrap_or(1_000_000);
        let t = ((EPOCH_US + t_us) as u128 * units as u128 / 1_000_000) as u64;
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32b(iface));
        body.extend_from_slice(&self.u32b((t >> 32) as u32));
        body.extend_from_slice(&self.u32b(t as u32));
        body.extend_from_slice(&self.u32b(frame.len() as u32));
        body.extend_from_slice(&self.u32b(frame.len() as u32));
        body.extend_from_slice(frame);
        self.block(6, &body);
    }
    /// A Simple Packet Block (interface 0, no timestamp).
    pub fn simple_packet(&mut self, frame: &[u8]) {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32b(frame.len() as u32));
        body.extend_from_slice(frame);
        self.block(3, &body);
    }
}

/// The IP packet inside an Ethernet frame of these builders (no VLAN tags) and whether it is v6.
pub fn ether_payload(frame: &[u8]) -> (&[u8], bool) {
    (&frame[14..], frame[12..14] == [0x86, 0xdd])
}

/// Linux cooked v1 header (SLL, `tcpdump -i any` before libpcap 1.10).
pub fn sll(ip_packet: &[u8], v6: bool) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0u16.to_be_bytes()); // PACKET_HOST
    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f.extend_from_slice(&6u16.to_be_bytes());
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip_packet);
    f
}

/// GRE-in-UDP (RFC 8086, UDP port 4754): `inner` (an IP packet, or an Ethernet frame for
/// protocol type 0x6558) behind a 4-byte GRE header, in an outer IPv4/UDP Ethernet frame.
pub fn gre_in_udp_frame(outer_src: IpAddr, outer_dst: IpAddr, ptype: u16, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![0, 0];
    g.extend_from_slice(&ptype.to_be_bytes());
    g.extend_from_slice(inner);
    udp_frame(outer_src, 49_152, outer_dst, 4754, &g)
}

pub fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}
pub fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 header (+ payload) with the given id and fragment field.
pub fn ipv4(src: IpAddr, dst: IpAddr, proto: u8, id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        panic!("v4")
    };
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(&d.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

pub fn ipv6(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
        panic!("v6")
    };
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[proto, 64]);
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(&d.octets());
    h.extend_from_slice(payload);
    h
}

pub fn ip(src: IpAddr, dst: IpAddr, proto: u8, payload: &[u8]) -> Vec<u8> {
    match src {
        IpAddr::V4(_) => ipv4(src, dst, proto, 0x1234, 0x4000, payload),
        IpAddr::V6(_) => ipv6(src, dst, proto, payload),
    }
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

pub fn ether(ip_packet: &[u8], v6: bool, vlans: &[u16]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    for v in vlans {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip_packet);
    f
}

/// Linux cooked v2 header (as `tcpdump -i any` writes).
pub fn sll2(ip_packet: &[u8], v6: bool) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(&[0, 0]); // reserved
    f.extend_from_slice(&2u32.to_be_bytes()); // ifindex
    f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
    f.push(0); // PACKET_HOST
    f.push(6);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(ip_packet);
    f
}

/// Ethernet frame of a UDP datagram.
pub fn udp_frame(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    ether(
        &ip(src, dst, 17, &udp(sport, dport, payload)),
        src.is_ipv6(),
        &[],
    )
}

/// Ethernet frame of a TCP segment.
pub fn tcp_frame(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    ether(
        &ip(src, dst, 6, &tcp(sport, dport, seq, ack, flags, payload)),
        src.is_ipv6(),
        &[],
    )
}

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

/// A minimal TLS 1.2 ClientHello record carrying `sni`.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]); // cipher suites
    body.extend_from_slice(&[1, 0]); // compression
    let mut exts = Vec::new();
    // supported_groups first, so SNI is not the first extension
    exts.extend_from_slice(&[0x00, 0x0a, 0, 4, 0, 2, 0, 0x1d]);
    let host = sni.as_bytes();
    let mut sn = Vec::new();
    sn.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    sn.push(0);
    sn.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sn.extend_from_slice(host);
    exts.extend_from_slice(&[0, 0]);
    exts.extend_from_slice(&(sn.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sn);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// A TCP connection's frames, tracking sequence numbers.
pub struct Conn {
    pub c: IpAddr,
    pub cp: u16,
    pub s: IpAddr,
    pub sp: u16,
    pub cseq: u32,
    pub sseq: u32,
}

impl Conn {
    pub fn new(c: IpAddr, cp: u16, s: IpAddr, sp: u16) -> Self {
        Conn {
            c,
            cp,
            s,
            sp,
            cseq: 1000,
            sseq: 5000,
        }
    }
    pub fn handshake(&mut self, p: &mut Pcap, t: u64) {
        p.push(
            t,
            &tcp_frame(self.c, self.cp, self.s, self.sp, self.cseq, 0, SYN, &[]),
        );
        p.push(
            t + 100,
            &tcp_frame(
                self.s,
                self.sp,
                self.c,
                self.cp,
                self.sseq,
                self.cseq + 1,
                SYN | ACK,
                &[],
            ),
        );
        self.cseq += 1;
        self.sseq += 1;
        p.push(
            t + 200,
            &tcp_frame(
                self.c,
                self.cp,
                self.s,
                self.sp,
                self.cseq,
                self.sseq,
                ACK,
                &[],
            ),
        );
    }
    pub fn client(&mut self, p: &mut Pcap, t: u64, data: &[u8]) {
        p.push(
            t,
            &tcp_frame(
                self.c,
                self.cp,
                self.s,
                self.sp,
                self.cseq,
                self.sseq,
                PSH | ACK,
                data,
            ),
        );
        self.cseq += data.len() as u32;
    }
    pub fn server(&mut self, p: &mut Pcap, t: u64, data: &[u8]) {
        p.push(
            t,
            &tcp_frame(
                self.s,
                self.sp,
                self.c,
                self.cp,
                self.sseq,
                self.cseq,
                PSH | ACK,
                data,
            ),
        );
        self.sseq += data.len() as u32;
    }
    /// Server bytes at an explicit sequence offset (for out-of-order delivery).
    pub fn server_at(&self, p: &mut Pcap, t: u64, offset: u32, data: &[u8]) {
        p.push(
            t,
            &tcp_frame(
                self.s,
                self.sp,
                self.c,
                self.cp,
                self.sseq + offset,
                self.cseq,
                PSH | ACK,
                data,
            ),
        );
    }
    pub fn close(&mut self, p: &mut Pcap, t: u64) {
        p.push(
            t,
            &tcp_frame(
                self.c,
                self.cp,
                self.s,
                self.sp,
                self.cseq,
                self.sseq,
                FIN | ACK,
                &[],
            ),
        );
        self.cseq += 1;
        p.push(
            t + 100,
            &tcp_frame(
                self.s,
                self.sp,
                self.c,
                self.cp,
                self.sseq,
                self.cseq,
                FIN | ACK,
                &[],
            ),
        );
        self.sseq += 1;
        p.push(
            t + 200,
            &tcp_frame(
                self.c,
                self.cp,
                self.s,
                self.sp,
                self.cseq,
                self.sseq,
                ACK,
                &[],
            ),
        );
    }
}

pub const CLIENT: &str = "192.0.2.10";
pub const RESOLVER: &str = "192.0.2.53";

/// Every fixture: (file name, pcap bytes).
pub fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let c = v4(CLIENT);
    let r = v4(RESOLVER);
    let mut out = Vec::new();

    // UDP query + response, an unanswered query, an unsolicited response, an mDNS packet.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    p.push(
        0,
        &udp_frame(c, 40001, r, 53, &query(0x1111, "WWW.Example.COM", 1)),
    );
    p.push(
        1_500,
        &udp_frame(
            r,
            53,
            c,
            40001,
            &response(
                0x1111,
                "WWW.Example.COM",
                1,
                0,
                &[a("www.example.com", 300, "93.184.216.34")],
                &[],
            ),
        ),
    );
    p.push(
        2_000,
        &udp_frame(c, 40002, r, 53, &query(0x2222, "lost.example.org", 28)),
    );
    p.push(
        3_000,
        &udp_frame(
            r,
            53,
            v4("192.0.2.11"),
            40003,
            &response(
                0x3333,
                "stray.example.net",
                1,
                0,
                &[a("stray.example.net", 60, "198.51.100.7")],
                &[],
            ),
        ),
    );
    p.push(
        4_000,
        &udp_frame(
            c,
            5353,
            v4("224.0.0.251"),
            5353,
            &response(
                0,
                "printer.local",
                1,
                0,
                &[a("printer.local", 120, "192.0.2.99")],
                &[],
            ),
        ),
    );
    out.push(("udp_query_response.pcap", p.bytes));

    // CNAME chain into a pool (the lab's h16 pattern).
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    p.push(
        0,
        &udp_frame(
            c,
            40010,
            r,
            53,
            &query(0x4444, "api.cloud-sync-check.net", 1),
        ),
    );
    p.push(
        900,
        &udp_frame(
            r,
            53,
            c,
            40010,
            &response(
                0x4444,
                "api.cloud-sync-check.net",
                1,
                0,
                &[
                    cname(
                        "api.cloud-sync-check.net",
                        300,
                        "relay.cloud-sync-check.net",
                    ),
                    cname("relay.cloud-sync-check.net", 300, "Gulf.MoneroOcean.Stream"),
                    a("gulf.moneroocean.stream", 60, "203.0.113.200"),
                    a("gulf.moneroocean.stream", 60, "203.0.113.201"),
                ],
                &[],
            ),
        ),
    );
    out.push(("cname_chain.pcap", p.bytes));

    // NXDOMAIN with an SOA in the authority section.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    p.push(
        0,
        &udp_frame(c, 40020, r, 53, &query(0x5555, "pool.minexmr.com", 1)),
    );
    p.push(
        700,
        &udp_frame(
            r,
            53,
            c,
            40020,
            &response(0x5555, "pool.minexmr.com", 1, 3, &[], &[soa("minexmr.com")]),
        ),
    );
    out.push(("nxdomain.pcap", p.bytes));

    // DNS over TCP: two queries in one segment; the first response split over three segments
    // (the middle one arriving last), the second response in one segment.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let mut k = Conn::new(c, 40030, r, 53);
    k.handshake(&mut p, 0);
    let mut two = tcp_dns(&query(0x0a01, "xmr-eu1.nanopool.org", 1));
    two.extend_from_slice(&tcp_dns(&query(0x0a02, "xmr-eu1.nanopool.org", 28)));
    k.client(&mut p, 1_000, &two);
    let r1 = tcp_dns(&response(
        0x0a01,
        "xmr-eu1.nanopool.org",
        1,
        0,
        &[
            a("xmr-eu1.nanopool.org", 300, "198.51.100.14"),
            a("xmr-eu1.nanopool.org", 300, "198.51.100.15"),
        ],
        &[],
    ));
    let r2 = tcp_dns(&response(
        0x0a02,
        "xmr-eu1.nanopool.org",
        28,
        0,
        &[aaaa("xmr-eu1.nanopool.org", 300, "2001:db8::14")],
        &[],
    ));
    let (x, rest) = r1.split_at(1);
    let (y, z) = rest.split_at(20);
    k.server_at(&mut p, 2_000, 0, x);
    k.server_at(&mut p, 2_100, (1 + y.len()) as u32, z);
    k.server_at(&mut p, 2_200, 1, y);
    k.sseq += r1.len() as u32;
    k.server(&mut p, 2_300, &r2);
    k.close(&mut p, 3_000);
    out.push(("dns_tcp.pcap", p.bytes));

    // IPv6 inside an 802.1Q tag.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let (c6, r6) = (v6("2001:db8::10"), v6("2001:db8::53"));
    p.push(
        0,
        &ether(
            &ipv6(
                c6,
                r6,
                17,
                &udp(40040, 53, &query(0x6666, "pool.supportxmr.com", 28)),
            ),
            true,
            &[100],
        ),
    );
    p.push(
        800,
        &ether(
            &ipv6(
                r6,
                c6,
                17,
                &udp(
                    53,
                    40040,
                    &response(
                        0x6666,
                        "pool.supportxmr.com",
                        28,
                        0,
                        &[aaaa("pool.supportxmr.com", 60, "2001:db8:20::17")],
                        &[],
                    ),
                ),
            ),
            true,
            &[100],
        ),
    );
    out.push(("ipv6_vlan.pcap", p.bytes));

    // Linux cooked v2 (`tcpdump -i any`).
    let mut p = Pcap::new(LINKTYPE_LINUX_SLL2);
    p.push(
        0,
        &sll2(
            &ip(
                c,
                r,
                17,
                &udp(40050, 53, &query(0x7777, "stratum.braiins.com", 1)),
            ),
            false,
        ),
    );
    p.push(
        600,
        &sll2(
            &ip(
                r,
                c,
                17,
                &udp(
                    53,
                    40050,
                    &response(
                        0x7777,
                        "stratum.braiins.com",
                        1,
                        0,
                        &[a("stratum.braiins.com", 60, "198.51.100.77")],
                        &[],
                    ),
                ),
            ),
            false,
        ),
    );
    out.push(("sll2.pcap", p.bytes));

    // A large response fragmented in three, delivered last-first.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    p.push(
        0,
        &udp_frame(c, 40060, r, 53, &query(0x8888, "big.example.com", 16)),
    );
    let big = response(
        0x8888,
        "big.example.com",
        16,
        0,
        &[txt("big.example.com", 300, &"v=fragment-test ".repeat(150))],
        &[],
    );
    let dgram = udp(53, 40060, &big);
    let parts: Vec<&[u8]> = dgram.chunks(1232).collect();
    let mut off = 0u16;
    let mut frames = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let more = if i + 1 < parts.len() { 0x2000 } else { 0 };
        frames.push(ether(
            &ipv4(r, c, 17, 0xabcd, more | (off / 8), part),
            false,
            &[],
        ));
        off += part.len() as u16;
    }
    for (i, f) in frames.iter().rev().enumerate() {
        p.push(1_000 + i as u64 * 10, f);
    }
    out.push(("fragmented_response.pcap", p.bytes));

    // A response whose answer section is cut short: the question is salvaged.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    p.push(
        0,
        &udp_frame(c, 40070, r, 53, &query(0x9999, "xmr.pool.minergate.com", 1)),
    );
    let mut bad = response(
        0x9999,
        "xmr.pool.minergate.com",
        1,
        0,
        &[
            a("xmr.pool.minergate.com", 60, "198.51.100.99"),
            a("xmr.pool.minergate.com", 60, "198.51.100.98"),
        ],
        &[],
    );
    bad.truncate(bad.len() - 6);
    p.push(500, &udp_frame(r, 53, c, 40070, &bad));
    // Pure garbage on port 53: counted, skipped.
    p.push(600, &udp_frame(c, 40071, r, 53, &[0xde, 0xad, 0xbe, 0xef]));
    out.push(("malformed.pcap", p.bytes));

    // XMRig login over TCP, with the pool's job reply, closed by FIN both ways.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let pool = v4("203.0.113.17");
    let mut k = Conn::new(c, 40080, pool, 3333);
    k.handshake(&mut p, 0);
    k.client(&mut p, 1_000, br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"48E5YHyXfz2mcJWtGPSp8GR4cNQ3gKdwYrfMiwzXUkeumq5w9it6s3qSTCTPJmhXWZcJjRHHp479ENGNqe66oPoW781JJf5","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["rx/0"]}}
"#);
    k.server(&mut p, 2_000, br#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"abc","job":{"blob":"0606","job_id":"1","target":"b88d0600"},"status":"OK"}}
"#);
    k.close(&mut p, 5_000_000);
    out.push(("xmrig_flow.pcap", p.bytes));

    // A SYN that is never answered (and its retransmission), plus one refused by RST.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    p.push(0, &tcp_frame(c, 40090, pool, 14444, 7000, 0, SYN, &[]));
    p.push(
        1_000_000,
        &tcp_frame(c, 40090, pool, 14444, 7000, 0, SYN, &[]),
    );
    p.push(
        1_100_000,
        &tcp_frame(c, 40091, pool, 3334, 8000, 0, SYN, &[]),
    );
    p.push(
        1_100_100,
        &tcp_frame(pool, 3334, c, 40091, 0, 8001, RST | ACK, &[]),
    );
    out.push(("syn_only.pcap", p.bytes));

    // TLS ClientHello with SNI (the lab's h13 pattern: XMRig inside TLS).
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let mut k = Conn::new(c, 40100, v4("203.0.113.201"), 20128);
    k.handshake(&mut p, 0);
    k.client(&mut p, 1_000, &client_hello("Gulf.MoneroOcean.Stream"));
    k.server(&mut p, 2_000, &[22, 3, 3, 0, 4, 2, 0, 0, 0]);
    out.push(("tls_sni.pcap", p.bytes));

    out
}
