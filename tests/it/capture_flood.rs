//! Floods keep every capture table at its cap: SYN floods (flow table), random-subdomain
//! queries nobody answers (pending-query table), half-finished DNS-over-TCP streams (reassembly
//! buffers) and first-fragments-only (fragment table). Eviction reports what it drops.

use crate::support::capture as capture_support;

use std::collections::VecDeque;
use std::net::IpAddr;

use capture_support::*;
use poolwatch::capture::{frag, tcp, CaptureConfig, Decoder};
use poolwatch::model::{FlowReport, Observation, Source};

const LINK: i32 = 1;

fn ip_n(n: u32) -> IpAddr {
    IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8])
}

#[test]
fn tables_stay_at_their_caps_under_floods() {
    let cfg = CaptureConfig::default();
    let mut d = Decoder::new(&cfg, Source::new("test:flood"));
    let mut out = VecDeque::new();
    let server = v4("203.0.113.80");
    let resolver = v4(RESOLVER);
    let mut t = 0i64;
    let (mut evicted_flows, mut unanswered) = (0u64, 0u64);
    let mut drain = |out: &mut VecDeque<Observation>| {
        for o in out.drain(..) {
            match o {
                Observation::Flow(f) if f.report == FlowReport::Final => evicted_flows += 1,
                Observation::Flow(_) => {}
                Observation::Dns(d) => {
                    assert!(d.rcode.is_none());
                    unanswered += 1
                }
            }
        }
    };
    // A real mining session that must survive the SYN flood (it keeps sending).
    let miner = v4("192.0.2.10");
    d.packet(
        t,
        LINK,
        &tcp_frame(miner, 40000, server, 3333, 1, 0, SYN, &[]),
        &mut out,
    );
    d.packet(
        t,
        LINK,
        &tcp_frame(server, 3333, miner, 40000, 9, 2, SYN | ACK, &[]),
        &mut out,
    );
    d.packet(
        t,
        LINK,
        &tcp_frame(miner, 40000, server, 3333, 2, 10, ACK, &[]),
        &mut out,
    );
    let mut miner_seq = 2u32;
    for i in 0..200_000u32 {
        // All within one second of capture time: idle timeouts cannot help, only the caps.
        t += 2;
        let src = ip_n(i);
        d.packet(
            t,
            LINK,
            &tcp_frame(src, 1024 + (i % 60000) as u16, server, 443, i, 0, SYN, &[]),
            &mut out,
        );
        let q = query(i as u16, &format!("r{i}x.victim.example"), 1);
        d.packet(
            t,
            LINK,
            &udp_frame(src, 2000 + (i % 60000) as u16, resolver, 53, &q),
            &mut out,
        );
        if i % 4 == 0 {
            // DNS-over-TCP stream that announces a 60 KB message and never finishes it.
            let mut seg = vec![0xea, 0x60];
            seg.extend_from_slice(&[0u8; 1000]);
            d.packet(
                t,
                LINK,
                &tcp_frame(
                    src,
                    3000 + (i % 60000) as u16,
                    resolver,
                    53,
                    1,
                    1,
                    ACK,
                    &seg,
                ),
                &mut out,
            );
            // First fragment of a datagram whose rest never comes.
            let frag = ipv4(src, resolver, 17, i as u16, 0x2000, &[0u8; 64]);
            d.packet(t, LINK, &ether(&frag, false, &[]), &mut out);
        }
        if i % 1000 == 0 {
            d.packet(
                t,
                LINK,
                &tcp_frame(
                    miner,
                    40000,
                    server,
                    3333,
                    miner_seq,
                    10,
                    PSH | ACK,
                    b"{\"method\":\"keepalived\"}\n",
                ),
                &mut out,
            );
            miner_seq += 24;
        }
        drain(&mut out);
        if i % 10_000 == 0 {
            let st = d.stats();
            assert!(st.flows_active <= cfg.max_flows, "{st:?}");
            assert!(st.pending_dns <= cfg.max_pending_dns, "{st:?}");
            assert!(st.tcp_dns_streams <= tcp::MAX_TCP_DNS_STREAMS, "{st:?}");
            assert!(st.frag_datagrams <= frag::MAX_FRAG_DATAGRAMS, "{st:?}");
        }
    }
    let st = d.stats();
    println!("{st:?}");
    assert_eq!(st.flows_active, cfg.max_flows, "flow table full, not over");
    assert_eq!(st.pending_dns, cfg.max_pending_dns);
    assert_eq!(st.tcp_dns_streams, tcp::MAX_TCP_DNS_STREAMS);
    assert_eq!(st.frag_datagrams, frag::MAX_FRAG_DATAGRAMS);
    // Evictions were reported, not silently dropped.
    assert_eq!(st.flows_evicted_cap, evicted_flows);
    assert_eq!(unanswered, 200_000 - cfg.max_pending_dns as u64);
    // The active mining session survived the SYN flood (CLOCK eviction spares recent flows).
    d.finish(&mut out);
    let survived = out.iter().any(|o| matches!(o, Observation::Flow(f) if f.dst_port == 3333 && f.app.stratum_method.is_some() && f.packets_out > 100));
    let mine: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Observation::Flow(f) if f.dst_port == 3333))
        .collect();
    assert!(survived, "mining flow was evicted by the flood: {mine:?}");
}
