//! Stage `capture`: packets (pcap/pcapng files, live interfaces) → [`Observation`]s.
//!
//! ```text
//!  reader.rs ── savefile.rs   pcap / pcapng files and streams (pure Rust, no seeking)
//!  live.rs                    interfaces through libpcap (the only place `pcap` types live)
//!        │ frames
//!  decode.rs  link.rs (Ethernet/VLAN/QinQ, SLL, SLL2, raw, NULL/LOOP)
//!        │    ip.rs (IPv4, IPv6 + extension headers) ── frag.rs (reassembly)
//!        │    tunnels: IP-in-IP, GRE (incl. PPTP), GRE-in-UDP, VXLAN, Geneve
//!        ├─ UDP/TCP on a DNS port ── tcp.rs (DNS-over-TCP reassembly) ── txn.rs (query/response
//!        │                                                               pairing, dns::parse_message)
//!        └─ other TCP/UDP ── flows.rs (flow table) ── payload.rs (Stratum, TLS SNI, HTTP Host)
//! ```
//!
//! Every table is capped (named constants here and in the submodules, or [`CaptureConfig`]
//! fields) and every decode failure is counted by reason (`poolwatch_packet_errors_total`,
//! `poolwatch_dns_parse_errors_total`), never fatal. Details: `docs/arch/capture.md`.

// TODO(#12): audited by wt-perf's fast path (the packet parsers here are being rewritten;
// every other module denies indexing_slicing, Cargo.toml [lints]).
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::metrics::{self, Counter, Gauge};

pub mod decode;
pub mod flows;
pub mod frag;
pub mod ip;
pub mod link;
pub mod live;
pub mod parallel;
pub mod parallel_fast;
pub mod payload;
mod pool;
mod reader;
pub mod savefile;
mod tails;
pub mod tcp;
pub mod txn;

pub use decode::Decoder;
pub use flows::PAYLOAD_PREFIX_MAX;
pub use parallel_fast::ListedNames;
pub use reader::PcapReader;
pub use savefile::{SavefileError, SavefileErrorKind, MAX_CAPLEN};
pub use txn::{DnsInterest, QueriesOnly};

/// Errors opening or running a capture. Per-packet problems are never errors: they are counted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("cannot open capture {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "cannot capture on {interface}: {message}. Live capture needs CAP_NET_RAW (and \
         CAP_NET_ADMIN for promiscuous mode): run as root, or grant the binary the capabilities \
         with `setcap cap_net_raw,cap_net_admin=eip $(command -v poolwatch)`"
    )]
    Permission { interface: String, message: String },
    #[error("cannot capture on {interface}: {message}")]
    Live { interface: String, message: String },
    #[error("invalid BPF filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    #[error("unsupported link type {linktype} in {path}")]
    Linktype { path: PathBuf, linktype: i32 },
}

/// Packet-input settings. `Default` suits a sensor on a busy mirror port.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// UDP/TCP ports whose traffic is DNS. mDNS (5353) and LLMNR are deliberately not DNS here.
    pub dns_ports: Vec<u16>,
    /// Queries awaiting a response, at most; beyond, the oldest is reported unanswered.
    pub max_pending_dns: usize,
    /// A query unanswered this long (capture time) is reported unanswered.
    pub dns_timeout: Duration,
    /// Flows tracked at once; beyond, the least recently active is evicted (final report).
    pub max_flows: usize,
    /// Idle time after which a TCP flow is evicted (final report, state as last seen).
    pub tcp_idle_timeout: Duration,
    /// Idle time after which a UDP flow is evicted.
    pub udp_idle_timeout: Duration,
    /// Track and report non-DNS flows (off = DNS only, faster).
    pub track_flows: bool,
    /// Threads for a capture file (`scan --threads`; 1 = decode on the consumer's thread, as
    /// always). Above 1, [`parallel`] shards the packets over `threads - 1` decoder workers (at
    /// most [`parallel::MAX_THREADS`]), each with its share of the caps above; the consumer's
    /// thread (correlation, in `scan`) is the other one.
    pub threads: usize,
}

/// Default cap on pending DNS queries: a resolver answering 50k qps within the 10 s timeout
/// leaves far fewer in flight; a random-subdomain flood hits the cap and is reported as
/// unanswered queries instead of growing memory (~200 bytes each: ~13 MiB).
pub const DEFAULT_MAX_PENDING_DNS: usize = 65_536;
/// Default cap on tracked flows (~1 KiB each with both payload prefixes: ~128 MiB at worst).
pub const DEFAULT_MAX_FLOWS: usize = 131_072;
/// Long enough for a slow recursive resolution (several upstream round trips + retries).
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(10);
/// Stratum sessions can be quiet for minutes between jobs; don't evict them too early.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            dns_ports: vec![53],
            max_pending_dns: DEFAULT_MAX_PENDING_DNS,
            dns_timeout: DEFAULT_DNS_TIMEOUT,
            max_flows: DEFAULT_MAX_FLOWS,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            udp_idle_timeout: DEFAULT_UDP_IDLE_TIMEOUT,
            track_flows: true,
            threads: 1,
        }
    }
}

/// Counters of one capture (file or interface), plus current table sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureStats {
    pub packets: u64,
    pub bytes: u64,
    /// Decode failures by reason (`link_truncated`, `ip_truncated`, `frag_oversize`, …).
    pub decode_errors: Vec<(&'static str, u64)>,
    /// Non-IP frames (ARP, LLDP, …): not errors.
    pub not_ip: u64,
    /// IP packets of other protocols (ICMP, ESP, …).
    pub other_proto: u64,
    pub udp: u64,
    pub tcp: u64,
    pub tunnelled: u64,
    pub fragments: u64,
    pub reassembled: u64,
    pub frag_evicted: u64,
    pub dns_messages: u64,
    pub dns_queries: u64,
    pub dns_responses: u64,
    pub dns_paired: u64,
    pub dns_unanswered: u64,
    pub dns_unsolicited: u64,
    pub dns_duplicate_queries: u64,
    pub dns_salvaged: u64,
    pub dns_pending_evicted: u64,
    /// DNS messages that failed (or were only partly) decoded, by reason.
    pub dns_parse_errors: Vec<(&'static str, u64)>,
    pub tcp_dns_gaps: u64,
    pub tcp_dns_evicted: u64,
    pub flows_created: u64,
    pub flows_evicted: u64,
    pub flows_evicted_cap: u64,
    pub flow_reports: u64,
    /// Out-of-order TCP segments not held for a payload prefix (`flows::MAX_OOO_SEGMENTS`).
    pub flow_ooo_dropped: u64,
    /// TCP segments whose sequence number is implausibly far ahead (`flows::MAX_SEQ_JUMP`).
    pub flow_seq_implausible: u64,
    /// Live capture: packets dropped by the kernel (buffer full) and by the interface.
    pub kernel_drops: u64,
    pub interface_drops: u64,
    // Current table sizes.
    pub pending_dns: usize,
    pub flows_active: usize,
    pub tcp_dns_streams: usize,
    pub frag_datagrams: usize,
}

impl CaptureStats {
    #[inline]
    pub(crate) fn error(&mut self, reason: &'static str) {
        match self.decode_errors.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.decode_errors.push((reason, 1)),
        }
    }

    /// Adds another decoder's counters and table sizes (the workers of one `parallel` reader).
    pub(crate) fn merge(&mut self, o: &CaptureStats) {
        fn add_reasons(to: &mut Vec<(&'static str, u64)>, from: &[(&'static str, u64)]) {
            for (reason, n) in from {
                match to.iter_mut().find(|(r, _)| r == reason) {
                    Some((_, m)) => *m += n,
                    None => to.push((reason, *n)),
                }
            }
        }
        self.packets += o.packets;
        self.bytes += o.bytes;
        add_reasons(&mut self.decode_errors, &o.decode_errors);
        self.not_ip += o.not_ip;
        self.other_proto += o.other_proto;
        self.udp += o.udp;
        self.tcp += o.tcp;
        self.tunnelled += o.tunnelled;
        self.fragments += o.fragments;
        self.reassembled += o.reassembled;
        self.frag_evicted += o.frag_evicted;
        self.dns_messages += o.dns_messages;
        self.dns_queries += o.dns_queries;
        self.dns_responses += o.dns_responses;
        self.dns_paired += o.dns_paired;
        self.dns_unanswered += o.dns_unanswered;
        self.dns_unsolicited += o.dns_unsolicited;
        self.dns_duplicate_queries += o.dns_duplicate_queries;
        self.dns_salvaged += o.dns_salvaged;
        self.dns_pending_evicted += o.dns_pending_evicted;
        add_reasons(&mut self.dns_parse_errors, &o.dns_parse_errors);
        self.tcp_dns_gaps += o.tcp_dns_gaps;
        self.tcp_dns_evicted += o.tcp_dns_evicted;
        self.flows_created += o.flows_created;
        self.flows_evicted += o.flows_evicted;
        self.flows_evicted_cap += o.flows_evicted_cap;
        self.flow_reports += o.flow_reports;
        self.flow_ooo_dropped += o.flow_ooo_dropped;
        self.flow_seq_implausible += o.flow_seq_implausible;
        self.kernel_drops += o.kernel_drops;
        self.interface_drops += o.interface_drops;
        self.pending_dns += o.pending_dns;
        self.flows_active += o.flows_active;
        self.tcp_dns_streams += o.tcp_dns_streams;
        self.frag_datagrams += o.frag_datagrams;
    }

    /// Sum of decode errors.
    pub fn decode_error_total(&self) -> u64 {
        self.decode_errors.iter().map(|(_, n)| n).sum()
    }
    /// Sum of DNS parse failures (including salvaged messages).
    pub fn dns_parse_error_total(&self) -> u64 {
        self.dns_parse_errors.iter().map(|(_, n)| n).sum()
    }
    /// The counters a capture gives whatever the number of decoder threads (`--threads`):
    /// packets, bytes, protocols, DNS messages and pairing, flow reports, the error totals.
    /// Table sizes and the per-worker caps' evictions may differ between thread counts.
    pub fn thread_invariant(&self) -> [u64; 13] {
        [
            self.packets,
            self.bytes,
            self.udp,
            self.tcp,
            self.dns_messages,
            self.dns_queries,
            self.dns_responses,
            self.dns_paired,
            self.dns_unanswered,
            self.dns_unsolicited,
            self.flow_reports,
            self.decode_error_total(),
            self.dns_parse_error_total(),
        ]
    }
}

/// Process-wide metric handles of this stage.
pub(crate) struct Metrics {
    packets: Counter,
    bytes: Counter,
    dns_messages: Counter,
    dns_observations_paired: Counter,
    dns_unanswered: Counter,
    dns_unsolicited: Counter,
    flows_evicted: Counter,
    flow_reports: Counter,
    flow_ooo_dropped: Counter,
    flow_seq_implausible: Counter,
    fragments_reassembled: Counter,
    drops_kernel: Counter,
    drops_interface: Counter,
    pending_dns: Gauge,
    flows_active: Gauge,
    tcp_dns_streams: Gauge,
    frag_datagrams: Gauge,
}

pub(crate) fn metrics_handles() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        packets: metrics::counter(
            "poolwatch_packets_total",
            "Packets read from captures.",
            &[],
        ),
        bytes: metrics::counter(
            "poolwatch_packet_bytes_total",
            "Bytes of captured frames.",
            &[],
        ),
        dns_messages: metrics::counter(
            "poolwatch_dns_messages_total",
            "DNS messages seen on the wire (UDP and TCP).",
            &[],
        ),
        dns_observations_paired: metrics::counter(
            "poolwatch_dns_transactions_total",
            "DNS transactions reported, by outcome.",
            &[("outcome", "answered")],
        ),
        dns_unanswered: metrics::counter(
            "poolwatch_dns_transactions_total",
            "DNS transactions reported, by outcome.",
            &[("outcome", "unanswered")],
        ),
        dns_unsolicited: metrics::counter(
            "poolwatch_dns_transactions_total",
            "DNS transactions reported, by outcome.",
            &[("outcome", "unsolicited")],
        ),
        flows_evicted: metrics::counter(
            "poolwatch_flows_evicted_total",
            "Flows evicted from the flow table (idle timeout or table cap).",
            &[],
        ),
        flow_reports: metrics::counter(
            "poolwatch_flow_reports_total",
            "Flow observations emitted (interim and final).",
            &[],
        ),
        flow_ooo_dropped: metrics::counter(
            "poolwatch_flow_segments_dropped_total",
            "TCP segments the flow table did not use for a payload prefix, by reason.",
            &[("reason", "ooo_cap")],
        ),
        flow_seq_implausible: metrics::counter(
            "poolwatch_flow_segments_dropped_total",
            "TCP segments the flow table did not use for a payload prefix, by reason.",
            &[("reason", "seq_implausible")],
        ),
        fragments_reassembled: metrics::counter(
            "poolwatch_fragments_reassembled_total",
            "IP datagrams reassembled from fragments.",
            &[],
        ),
        drops_kernel: metrics::counter(
            "poolwatch_capture_drops_total",
            "Packets dropped before poolwatch saw them (pcap stats).",
            &[("where", "kernel")],
        ),
        drops_interface: metrics::counter(
            "poolwatch_capture_drops_total",
            "Packets dropped before poolwatch saw them (pcap stats).",
            &[("where", "interface")],
        ),
        pending_dns: metrics::gauge(
            "poolwatch_capture_table_entries",
            "Entries in the capture stage's state tables.",
            &[("table", "pending_dns")],
        ),
        flows_active: metrics::gauge(
            "poolwatch_capture_table_entries",
            "Entries in the capture stage's state tables.",
            &[("table", "flows")],
        ),
        tcp_dns_streams: metrics::gauge(
            "poolwatch_capture_table_entries",
            "Entries in the capture stage's state tables.",
            &[("table", "tcp_dns_streams")],
        ),
        frag_datagrams: metrics::gauge(
            "poolwatch_capture_table_entries",
            "Entries in the capture stage's state tables.",
            &[("table", "fragments")],
        ),
    })
}

impl Metrics {
    /// Adds `now - before` to the counters; sets the gauges to `now`'s table sizes.
    fn add_delta(&self, before: &CaptureStats, now: &CaptureStats) {
        let d = |a: u64, b: u64| b.saturating_sub(a);
        self.packets.add(d(before.packets, now.packets));
        self.bytes.add(d(before.bytes, now.bytes));
        self.dns_messages
            .add(d(before.dns_messages, now.dns_messages));
        self.dns_observations_paired
            .add(d(before.dns_paired, now.dns_paired));
        self.dns_unanswered
            .add(d(before.dns_unanswered, now.dns_unanswered));
        self.dns_unsolicited
            .add(d(before.dns_unsolicited, now.dns_unsolicited));
        self.flows_evicted
            .add(d(before.flows_evicted, now.flows_evicted));
        self.flow_reports
            .add(d(before.flow_reports, now.flow_reports));
        self.flow_ooo_dropped
            .add(d(before.flow_ooo_dropped, now.flow_ooo_dropped));
        self.flow_seq_implausible
            .add(d(before.flow_seq_implausible, now.flow_seq_implausible));
        self.fragments_reassembled
            .add(d(before.reassembled, now.reassembled));
        self.drops_kernel
            .add(d(before.kernel_drops, now.kernel_drops));
        self.drops_interface
            .add(d(before.interface_drops, now.interface_drops));
        for (reason, n) in &now.decode_errors {
            let old = lookup(&before.decode_errors, reason);
            if *n > old {
                metrics::counter(
                    "poolwatch_packet_errors_total",
                    "Packets (or parts) that could not be decoded, by reason.",
                    &[("reason", reason)],
                )
                .add(n - old);
            }
        }
        for (reason, n) in &now.dns_parse_errors {
            let old = lookup(&before.dns_parse_errors, reason);
            if *n > old {
                metrics::counter(
                    "poolwatch_dns_parse_errors_total",
                    "DNS messages that failed to decode (or were only salvaged), by reason.",
                    &[("reason", reason)],
                )
                .add(n - old);
            }
        }
        self.pending_dns.set(now.pending_dns as i64);
        self.flows_active.set(now.flows_active as i64);
        self.tcp_dns_streams.set(now.tcp_dns_streams as i64);
        self.frag_datagrams.set(now.frag_datagrams as i64);
    }
}

fn lookup(v: &[(&'static str, u64)], reason: &str) -> u64 {
    v.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n)
}

/// A libpcap timestamp in µs since the epoch (`time_t` is not i64 everywhere).
#[allow(clippy::useless_conversion)]
pub(crate) fn timeval_us(tv: &libc::timeval) -> i64 {
    i64::from(tv.tv_sec)
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(tv.tv_usec))
}

/// Opens a pcap or pcapng file (`-`: standard input; FIFOs and pipes are read as streams) and
/// decodes it lazily as it is iterated. Check [`PcapReader::error`] at the end.
pub fn open_file(path: &Path, cfg: &CaptureConfig) -> Result<PcapReader, CaptureError> {
    PcapReader::open(path, cfg)
}

/// Decodes a capture from an already opened stream (`name` labels it in messages and sources).
pub fn open_reader(
    src: Box<dyn std::io::Read + Send>,
    name: &Path,
    cfg: &CaptureConfig,
) -> Result<PcapReader, CaptureError> {
    PcapReader::from_reader(src, name, cfg)
}

/// pcap (either byte order, µs or ns) or pcapng magic.
pub fn looks_like_capture(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some([0xd4, 0xc3, 0xb2, 0xa1])
            | Some([0xa1, 0xb2, 0xc3, 0xd4])
            | Some([0x4d, 0x3c, 0xb2, 0xa1])
            | Some([0xa1, 0xb2, 0x3c, 0x4d])
            | Some([0x0a, 0x0d, 0x0d, 0x0a])
    )
}
