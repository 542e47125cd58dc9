//! The pool-lookup flood of issue #11 and its clean twin, as pcaps (deterministic).
//!
//! Flood: `clients` distinct clients, round-robin for `rounds` rounds, each round a random
//! subdomain of a listed pool name (`<16 hex>.pool.supportxmr.com`), answered with one of 16
//! pool addresses, then a SYN from the client to the answered address on 3333. Clean: the same
//! packets byte for byte in size and order, under a name of the same length that no list holds
//! (`unlistedxx.com`), so a scan of both costs the same in capture and DNS parsing and differs
//! only in what the correlation stage does with matches.
//!
//! Used by `tests/flood_scan.rs` and by `examples/flood_pcap.rs` (which `benches/flood_job.sh`
//! runs); uses `support::capture`.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use crate::support::capture::{
    a, query, response, tcp_frame, udp_frame, Pcap, LINKTYPE_ETHERNET, SYN,
};

/// The listed zone of the flood (in the shipped `pools-monero.txt`).
pub const LISTED_ZONE: &str = "pool.supportxmr.com";
/// The clean twin's zone: same length, on no list.
pub const CLEAN_ZONE: &str = "pool.unlistedxx.com";
/// Packets per second of capture time (the 3.6k packets/s).
pub const PACKETS_PER_SEC: u64 = 3_600;

#[derive(Clone, Copy, Debug)]
pub struct FloodSpec {
    pub clients: u32,
    pub rounds: u32,
    pub listed: bool,
    pub seed: u64,
}

/// SplitMix64: a deterministic stream, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Client `i`: 10.64.0.0/10 (up to 4M distinct addresses).
pub fn client(i: u32) -> IpAddr {
    let i = i & 0x003f_ffff;
    IpAddr::V4(Ipv4Addr::new(
        10,
        64 | (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ))
}

pub const RESOLVER: &str = "10.0.0.53";

/// Pool address `k` of 16 (TEST-NET-3).
pub fn pool_ip(k: u64) -> String {
    format!("203.0.113.{}", 1 + (k % 16))
}

/// The whole capture: `clients × rounds × 3` packets, time-ordered at [`PACKETS_PER_SEC`].
pub fn build(spec: FloodSpec) -> Pcap {
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let mut rng = Rng(spec.seed);
    let zone = if spec.listed { LISTED_ZONE } else { CLEAN_ZONE };
    let resolver: IpAddr = RESOLVER.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let step = 1_000_000 / PACKETS_PER_SEC;
    let mut t = 0u64;
    for _round in 0..spec.rounds {
        for i in 0..spec.clients {
            let c = client(i);
            let r = rng.next();
            let qname = format!("{:016x}.{zone}", rng.next());
            let id = r as u16;
            let sport = 1024 + ((r >> 16) as u16 % 60_000);
            let ip = pool_ip(r >> 32);
            p.push(t, &udp_frame(c, sport, resolver, 53, &query(id, &qname, 1)));
            t += step;
            let ans = response(id, &qname, 1, 0, &[a(&qname, 300, &ip)], &[]);
            p.push(t, &udp_frame(resolver, 53, c, sport, &ans));
            t += step;
            let dst: IpAddr = ip.parse().unwrap_or(resolver);
            let cport = 1024 + ((r >> 40) as u16 % 60_000);
            p.push(t, &tcp_frame(c, cport, dst, 3333, r as u32, 0, SYN, &[]));
            t += step;
        }
    }
    p
}
