//! The fixture files themselves: `fixtures()` is the script that made `tests/data/pcap`.

#[allow(unused_imports)]
use super::*;

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
