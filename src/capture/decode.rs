//! The packet pipeline shared by file and live input: link → IP (+ fragments, tunnels) →
//! UDP/TCP → DNS transactions and flows.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::flows::{FlowTable, Segment};
use super::frag::{FragOutcome, FragTable};
use super::ip::{self, IpPacket, PROTO_GRE, PROTO_IPIP, PROTO_IPV6, PROTO_TCP, PROTO_UDP};
use super::link::{self, be16, be32, L3};
use super::tcp::{StreamKey, TcpDns};
use super::txn::{self, DnsInterest, DnsTxns, Fast};
use super::{metrics_handles, CaptureConfig, CaptureStats};
use crate::model::{Observation, Proto, Source, Transport};

/// Encapsulation levels unwrapped (IP-in-IP, GRE, GRE-in-UDP, VXLAN, Geneve). Two is common (GRE in a
/// VPN); more is an attack on the decoder.
pub const MAX_TUNNEL_DEPTH: u8 = 4;
/// VXLAN and Geneve UDP ports (IANA).
const VXLAN_PORT: u16 = 4789;
const GENEVE_PORT: u16 = 6081;
/// GRE-in-UDP destination port (RFC 8086; both tunnel ends send to it, the source port is
/// flow entropy). 4755, GRE-in-UDP over DTLS, is encrypted and stays a flow.
const GRE_IN_UDP_PORT: u16 = 4754;
/// Packets between pushes of the local counters to the process-wide metrics: the hot path only
/// touches plain integers.
const METRICS_FLUSH_EVERY: u32 = 4096;
/// How often (capture time) pending DNS queries are checked for timeout.
const EXPIRE_INTERVAL_US: i64 = 100_000;

/// Turns packets into observations. One per input; not shared between threads.
pub struct Decoder {
    dns_ports: Box<[u64; 1024]>,
    track_flows: bool,
    frags: FragTable,
    tcp: TcpDns,
    txns: DnsTxns,
    flows: FlowTable,
    stats: CaptureStats,
    flushed: CaptureStats,
    since_flush: u32,
    last_expire: i64,
    now: i64,
    /// Timeouts are run by the caller's [`Decoder::tick`] calls only (a `parallel` worker:
    /// the dispatcher decides when, from every packet's time, as one decoder would).
    external_ticks: bool,
}

impl Decoder {
    pub fn new(cfg: &CaptureConfig, source: Source) -> Self {
        let mut dns_ports = Box::new([0u64; 1024]);
        for &p in &cfg.dns_ports {
            if let Some(w) = dns_ports.get_mut(usize::from(p) / 64) {
                *w |= 1 << (p % 64);
            }
        }
        Decoder {
            dns_ports,
            track_flows: cfg.track_flows,
            frags: FragTable::default(),
            tcp: TcpDns::default(),
            txns: DnsTxns::new(
                cfg.max_pending_dns,
                duration_us(cfg.dns_timeout),
                source.clone(),
            ),
            flows: FlowTable::new(
                cfg.max_flows,
                duration_us(cfg.tcp_idle_timeout),
                duration_us(cfg.udp_idle_timeout),
                source,
            ),
            stats: CaptureStats::default(),
            flushed: CaptureStats::default(),
            since_flush: 0,
            last_expire: i64::MIN,
            now: i64::MIN,
            external_ticks: false,
        }
    }

    #[inline]
    fn is_dns_port(&self, p: u16) -> bool {
        self.dns_ports
            .get(usize::from(p) / 64)
            .is_some_and(|w| w & (1 << (p % 64)) != 0)
    }

    /// Decodes one captured frame (`ts_us`: capture time, µs since the epoch).
    pub fn packet(
        &mut self,
        ts_us: i64,
        linktype: i32,
        frame: &[u8],
        out: &mut VecDeque<Observation>,
    ) {
        self.packet_with(ts_us, linktype, frame, out, None);
    }

    /// [`Decoder::packet`] with the DNS fast path (`txn::DnsInterest`, issue #16): DNS
    /// messages that cannot matter to `interest` are counted and handed to it as skipped
    /// instead of decoded. The caller must have consumed every observation in `out` first.
    pub fn packet_fast(
        &mut self,
        ts_us: i64,
        linktype: i32,
        frame: &[u8],
        out: &mut VecDeque<Observation>,
        interest: &mut dyn DnsInterest,
    ) {
        self.packet_with(ts_us, linktype, frame, out, Some(interest));
    }

    /// [`Decoder::packet`] for live capture: the fast path's query half only
    /// ([`txn::QueriesOnly`]), whose observations and counters are exactly
    /// [`Decoder::packet`]'s; no consumer is asked anything.
    pub fn packet_live(
        &mut self,
        ts_us: i64,
        linktype: i32,
        frame: &[u8],
        out: &mut VecDeque<Observation>,
    ) {
        let mut queries_only = txn::QueriesOnly;
        self.packet_with(ts_us, linktype, frame, out, Some(&mut queries_only));
    }

    fn packet_with(
        &mut self,
        ts_us: i64,
        linktype: i32,
        frame: &[u8],
        out: &mut VecDeque<Observation>,
        mut fast: Fast<'_, '_>,
    ) {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        self.now = self.now.max(ts_us);
        if !self.external_ticks && tick_due(self.last_expire, ts_us) {
            self.tick_with(ts_us, out, fast.as_deref_mut());
        }
        match link::decode(linktype, frame) {
            Ok((l3, rest)) => self.ip(ts_us, l3, rest, 0, out, fast),
            Err(link::LinkSkip::NotIp) => self.stats.not_ip += 1,
            Err(e) => self.stats.error(e.reason()),
        }
        self.since_flush += 1;
        if self.since_flush >= METRICS_FLUSH_EVERY {
            self.flush_metrics();
        }
    }

    /// Leaves the timeouts to the caller's [`Decoder::tick`] calls (see [`tick_due`]).
    pub(crate) fn set_external_ticks(&mut self) {
        self.external_ticks = true;
    }

    /// Runs timeouts up to capture time `now` (also called by live capture when idle).
    pub fn tick(&mut self, now: i64, out: &mut VecDeque<Observation>) {
        self.tick_with(now, out, None);
    }

    fn tick_with(&mut self, now: i64, out: &mut VecDeque<Observation>, fast: Fast<'_, '_>) {
        self.last_expire = now;
        self.txns.expire(now, out, fast);
        self.frags.expire(now);
        self.tcp.expire(now);
        if self.track_flows {
            self.flows.maybe_sweep(now, out);
        }
    }

    /// End of input: reports every pending query and open flow.
    pub fn finish(&mut self, out: &mut VecDeque<Observation>) {
        self.finish_with(out, None);
    }

    /// [`Decoder::finish`] with the DNS fast path (see [`Decoder::packet_fast`]).
    pub fn finish_fast(&mut self, out: &mut VecDeque<Observation>, interest: &mut dyn DnsInterest) {
        self.finish_with(out, Some(interest));
    }

    fn finish_with(&mut self, out: &mut VecDeque<Observation>, mut fast: Fast<'_, '_>) {
        while !self.finish_some(out, fast.as_deref_mut(), usize::MAX) {}
    }

    /// [`Decoder::finish`] in bounded steps: at most `max` pending queries or open flows
    /// reported into `out` per call, `true` once all are (the metrics are flushed then).
    /// `scan`'s reader steps by [`FINISH_BATCH`](super::flows::FINISH_BATCH), so its queue
    /// never holds the whole tables (issue #11).
    pub(crate) fn finish_some(
        &mut self,
        out: &mut VecDeque<Observation>,
        fast: Fast<'_, '_>,
        max: usize,
    ) -> bool {
        let before = out.len();
        if !self.txns.finish_some(out, fast, max) {
            return false;
        }
        // The queries' last batch and the first flows share the step's budget.
        let left = max.saturating_sub(out.len().saturating_sub(before));
        if left == 0 || !self.flows.finish_some(out, left) {
            return false;
        }
        self.flush_metrics();
        true
    }

    /// A snapshot of the counters and current table sizes.
    pub fn stats(&self) -> CaptureStats {
        let mut s = self.stats.clone();
        let t = &self.txns.stats;
        s.dns_messages = t.messages;
        s.dns_queries = t.queries;
        s.dns_responses = t.responses;
        s.dns_paired = t.paired;
        s.dns_unanswered = t.unanswered;
        s.dns_unsolicited = t.unsolicited;
        s.dns_duplicate_queries = t.duplicate_queries;
        s.dns_salvaged = t.salvaged;
        s.dns_pending_evicted = t.evicted;
        s.dns_parse_errors = t.parse_errors.clone();
        s.tcp_dns_gaps = self.tcp.stats.gaps;
        s.tcp_dns_evicted = self.tcp.stats.evicted;
        s.frag_evicted = self.frags.evicted;
        s.flows_created = self.flows.stats.created;
        s.flows_evicted = self.flows.stats.evicted_cap + self.flows.stats.evicted_idle;
        s.flows_evicted_cap = self.flows.stats.evicted_cap;
        s.flow_reports = self.flows.stats.reports;
        s.flow_ooo_dropped = self.flows.stats.ooo_dropped;
        s.flow_seq_implausible = self.flows.stats.seq_implausible;
        s.pending_dns = self.txns.len();
        s.flows_active = self.flows.len();
        s.tcp_dns_streams = self.tcp.len();
        s.frag_datagrams = self.frags.len();
        s
    }

    /// Adds what was counted since the last flush to the process-wide metrics.
    pub fn flush_metrics(&mut self) {
        self.since_flush = 0;
        let now = self.stats();
        metrics_handles().add_delta(&self.flushed, &now);
        self.flushed = now;
    }

    pub(crate) fn stats_error(&mut self, reason: &'static str) {
        self.stats.error(reason);
    }

    pub(crate) fn add_capture_drops(&mut self, kernel: u64, interface: u64) {
        self.stats.kernel_drops = kernel;
        self.stats.interface_drops = interface;
    }

    fn ip(
        &mut self,
        ts: i64,
        l3: L3,
        data: &[u8],
        depth: u8,
        out: &mut VecDeque<Observation>,
        fast: Fast<'_, '_>,
    ) {
        let parsed = match l3 {
            L3::Ipv4 => ip::ipv4(data),
            L3::Ipv6 => ip::ipv6(data),
        };
        let p = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.stats.error(e.reason());
                return;
            }
        };
        let IpPacket {
            src,
            dst,
            proto,
            payload,
            frag,
        } = p;
        match frag {
            None => self.transport(ts, src, dst, proto, payload, depth, out, fast),
            Some(f) => {
                self.stats.fragments += 1;
                match self.frags.add(ts, src, dst, proto, f, payload) {
                    FragOutcome::Pending => {}
                    FragOutcome::Complete(buf) => {
                        self.stats.reassembled += 1;
                        self.transport(ts, src, dst, proto, &buf, depth, out, fast);
                    }
                    FragOutcome::Dropped(r) => self.stats.error(r),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn transport(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        data: &[u8],
        depth: u8,
        out: &mut VecDeque<Observation>,
        fast: Fast<'_, '_>,
    ) {
        match proto {
            PROTO_UDP => self.udp(ts, src, dst, data, depth, out, fast),
            PROTO_TCP => self.tcp(ts, src, dst, data, out, fast),
            PROTO_IPIP | PROTO_IPV6 | PROTO_GRE if depth >= MAX_TUNNEL_DEPTH => {
                self.stats.error("tunnel_too_deep")
            }
            PROTO_IPIP => self.ip(ts, L3::Ipv4, data, depth + 1, out, fast),
            PROTO_IPV6 => self.ip(ts, L3::Ipv6, data, depth + 1, out, fast),
            PROTO_GRE => self.gre(ts, data, depth, out, fast),
            _ => self.stats.other_proto += 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn udp(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        data: &[u8],
        depth: u8,
        out: &mut VecDeque<Observation>,
        fast: Fast<'_, '_>,
    ) {
        let (Some(sport), Some(dport), Some(ulen)) = (be16(data, 0), be16(data, 2), be16(data, 4))
        else {
            self.stats.error("udp_truncated");
            return;
        };
        // Trust the UDP length when it fits (strips padding); a larger one means snaplen cut.
        let ulen = usize::from(ulen);
        let end = if ulen >= 8 && ulen <= data.len() {
            ulen
        } else {
            data.len()
        };
        let payload = data.get(8..end).unwrap_or_default();
        self.stats.udp += 1;
        if self.is_dns_port(sport) || self.is_dns_port(dport) {
            self.txns.message(
                ts,
                src,
                sport,
                dst,
                dport,
                Transport::Udp,
                payload,
                out,
                fast,
            );
            return;
        }
        if dport == GRE_IN_UDP_PORT && gre_in_udp_header(payload) {
            if depth >= MAX_TUNNEL_DEPTH {
                self.stats.error("tunnel_too_deep");
                return;
            }
            self.stats.tunnelled += 1;
            return self.gre(ts, payload, depth, out, fast);
        }
        if depth < MAX_TUNNEL_DEPTH && (dport == VXLAN_PORT || dport == GENEVE_PORT) {
            if let Some(inner) = self.udp_tunnel(dport, payload) {
                match link::ethernet(inner) {
                    Ok((l3, rest)) => {
                        self.stats.tunnelled += 1;
                        return self.ip(ts, l3, rest, depth + 1, out, fast);
                    }
                    Err(_) => self.stats.error("tunnel_bad_inner"),
                }
            }
        }
        if self.track_flows {
            let seg = Segment {
                ts,
                src,
                sport,
                dst,
                dport,
                proto: Proto::Udp,
                flags: 0,
                seq: 0,
                payload,
            };
            self.flows.packet(&seg, out);
        }
    }

    /// The Ethernet frame inside VXLAN (8-byte header, I flag) or Geneve (Ethernet protocol).
    fn udp_tunnel<'a>(&self, port: u16, p: &'a [u8]) -> Option<&'a [u8]> {
        if port == VXLAN_PORT {
            if p.first()? & 0x08 == 0 {
                return None;
            }
            return p.get(8..);
        }
        let opt_len = usize::from(p.first()? & 0x3f) * 4;
        if be16(p, 2)? != 0x6558 {
            return None;
        }
        p.get(8 + opt_len..)
    }

    fn gre(
        &mut self,
        ts: i64,
        p: &[u8],
        depth: u8,
        out: &mut VecDeque<Observation>,
        fast: Fast<'_, '_>,
    ) {
        let Some(flags) = be16(p, 0) else {
            self.stats.error("gre_truncated");
            return;
        };
        let Some(ptype) = be16(p, 2) else {
            self.stats.error("gre_truncated");
            return;
        };
        let version = flags & 0x7;
        let mut off = 4usize;
        if flags & 0x8000 != 0 {
            off += 4; // checksum + reserved
        }
        if flags & 0x2000 != 0 {
            off += 4; // key (PPTP: payload length + call id)
        }
        if flags & 0x1000 != 0 {
            off += 4; // sequence
        }
        if version == 1 && flags & 0x0080 != 0 {
            off += 4; // PPTP acknowledgment
        }
        let Some(inner) = p.get(off..) else {
            self.stats.error("gre_truncated");
            return;
        };
        match ptype {
            0x0800 => self.ip(ts, L3::Ipv4, inner, depth + 1, out, fast),
            0x86dd => self.ip(ts, L3::Ipv6, inner, depth + 1, out, fast),
            0x6558 => match link::ethernet(inner) {
                Ok((l3, rest)) => self.ip(ts, l3, rest, depth + 1, out, fast),
                Err(_) => self.stats.error("tunnel_bad_inner"),
            },
            // PPP (PPTP): optional address/control 0xff03, then the PPP protocol.
            0x880b => {
                let ppp = if inner.starts_with(&[0xff, 0x03]) {
                    inner.get(2..).unwrap_or_default()
                } else {
                    inner
                };
                let (proto, rest) = match ppp.first() {
                    // Protocol-field compression: one odd byte.
                    Some(b) if b & 1 == 1 => (u16::from(*b), ppp.get(1..).unwrap_or_default()),
                    _ => (be16(ppp, 0).unwrap_or(0), ppp.get(2..).unwrap_or_default()),
                };
                match proto {
                    0x21 => self.ip(ts, L3::Ipv4, rest, depth + 1, out, fast),
                    0x57 => self.ip(ts, L3::Ipv6, rest, depth + 1, out, fast),
                    _ => self.stats.other_proto += 1,
                }
            }
            _ => self.stats.other_proto += 1,
        }
    }

    fn tcp(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        data: &[u8],
        out: &mut VecDeque<Observation>,
        mut fast: Fast<'_, '_>,
    ) {
        let (Some(sport), Some(dport), Some(seq), Some(off_flags)) =
            (be16(data, 0), be16(data, 2), be32(data, 4), be16(data, 12))
        else {
            self.stats.error("tcp_truncated");
            return;
        };
        let hlen = usize::from(off_flags >> 12) * 4;
        if hlen < 20 {
            self.stats.error("tcp_bad_header_length");
            return;
        }
        let Some(payload) = data.get(hlen..) else {
            self.stats.error("tcp_truncated");
            return;
        };
        let flags = (off_flags & 0xff) as u8;
        self.stats.tcp += 1;
        if self.is_dns_port(sport) || self.is_dns_port(dport) {
            let key = StreamKey {
                src,
                sport,
                dst,
                dport,
            };
            let Decoder { tcp, txns, .. } = self;
            tcp.segment(ts, key, flags, seq, payload, |msg| {
                txns.message(
                    ts,
                    src,
                    sport,
                    dst,
                    dport,
                    Transport::Tcp,
                    msg,
                    out,
                    fast.as_deref_mut(),
                )
            });
            return;
        }
        if self.track_flows {
            let seg = Segment {
                ts,
                src,
                sport,
                dst,
                dport,
                proto: Proto::Tcp,
                flags,
                seq,
                payload,
            };
            self.flows.packet(&seg, out);
        }
    }
}

/// Whether a UDP payload on the GRE-in-UDP port starts with a GRE header RFC 8086 allows:
/// version 0, reserved bits clear, carrying IPv4, IPv6 or Ethernet (TEB). Anything else on
/// that port is an ordinary flow.
fn gre_in_udp_header(p: &[u8]) -> bool {
    let (Some(flags), Some(ptype)) = (be16(p, 0), be16(p, 2)) else {
        return false;
    };
    // C, K, S may be set; the routing bit, the reserved bits and the version must be 0.
    flags & 0x4fff == 0 && matches!(ptype, 0x0800 | 0x86dd | 0x6558)
}

/// Whether a packet at `ts_us` runs the timeouts, the last run having been at `last_expire`.
#[inline]
pub(crate) fn tick_due(last_expire: i64, ts_us: i64) -> bool {
    ts_us.saturating_sub(last_expire) >= EXPIRE_INTERVAL_US
}

fn duration_us(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
