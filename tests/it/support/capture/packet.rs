//! Link, IP, UDP and TCP frame builders (valid checksums).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[allow(unused_imports)]
use super::*;

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

pub fn checksum(data: &[u8]) -> u16 {
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

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

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
