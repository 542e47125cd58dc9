//! Live capture from an interface: the blocking libpcap loop on its own thread, decoding on that
//! thread and feeding observations into a bounded tokio channel.
//!
//! The interface is opened on the caller's thread ([`LiveCapture::open`]) so that a missing
//! capability or a bad filter is an immediate, clear error; [`LiveCapture`] is then a
//! [`Producer`] like every other input (the service runs it on a thread of its own), and
//! [`spawn`] runs one on a thread feeding a tokio channel. A read timeout lets the loop notice `stop` and run DNS/flow timeouts
//! while the link is quiet. pcap statistics (kernel and interface drops) are read every
//! [`STATS_INTERVAL`], exported as `poolwatch_capture_drops_total{where=…}` and logged when they grow.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;

use super::{CaptureConfig, CaptureError, CaptureStats, Decoder};
use crate::model::{Observation, Source, Timestamp};
use crate::ports::{ObservationSink, Producer, ProducerReport, QueueSink, StopToken};

/// How often pcap statistics are read and the shared stats refreshed.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes captured per packet: whole frames (jumbo frames included), so DNS over TCP and large
/// EDNS answers are complete.
pub const SNAPLEN: i32 = 65_535;
/// Default kernel buffer. The ring is read in blocks ([`IMMEDIATE_MODE`] off: libpcap's
/// TPACKET_V3), which pack frames by their captured length, so it holds about
/// 256 MiB / (frame + ~50 bytes of header) frames: ~1 M DNS-sized frames, seconds of a
/// saturated 1 Gbit/s link. (In immediate mode libpcap falls back to TPACKET_V2, whose
/// fixed slots are sized by the snaplen capped at the MTU: on loopback, MTU 65 536, the same
/// 256 MiB held ~3 800 frames, ~20 ms of a 100k pps replay, since `lo` also carries each
/// frame's outgoing copy.)
pub const DEFAULT_BUFFER_SIZE: usize = 256 * 1024 * 1024;
/// Observations handed to the sink at once ([`ObservationSink::send_batch`]: one queue slot
/// and one wake-up of the service's pipeline thread for all, instead of one each). What is
/// decoded is sent as soon as the ring has nothing more to hand over, so a batch waits for no
/// later packet.
pub const SEND_BATCH: usize = 16;
/// libpcap read timeout: the longest the loop waits before checking `stop` and timeouts. With
/// TPACKET_V3 it is also the kernel's block retire timeout: a block that is not full is handed
/// over at most about twice this after its first frame arrived (see [`DELIVERY_LAG_US`]).
pub const READ_TIMEOUT_MS: i32 = 200;
/// libpcap's immediate mode (each frame handed over at once). Off: frames are handed over in
/// ring blocks (TPACKET_V3), when a block fills or its retire timeout ([`READ_TIMEOUT_MS`])
/// passes. Immediate mode forces TPACKET_V2's MTU-sized slots, which made the ring hold
/// ~20 ms of a 100 k pps replay on `lo` and dropped packets at every stall of the consumer
/// (`docs/performance.md`, "#16 live capture"); blocks cost at most the retire lag in latency,
/// and timestamps are the kernel's either way.
pub const IMMEDIATE_MODE: bool = false;
/// How far behind the wall clock a frame may still be waiting in an unfinished ring block
/// (two retire timeouts, the kernel's timer granularity, plus a margin). The idle tick runs
/// timeouts up to `now - DELIVERY_LAG_US`, so a response still in the ring is paired with its
/// query as a file scan would pair it, instead of the query being reported unanswered first.
pub const DELIVERY_LAG_US: i64 = 3 * READ_TIMEOUT_MS as i64 * 1_000;

#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Interface name (`eth1`, `any`, `lo`).
    pub interface: String,
    /// Optional BPF filter (tcpdump syntax), compiled by libpcap.
    pub bpf_filter: Option<String>,
    /// Kernel capture buffer, bytes.
    pub buffer_size: usize,
    /// Promiscuous mode (on by default: a mirror port carries other hosts' traffic).
    pub promiscuous: bool,
    pub capture: CaptureConfig,
}

impl LiveConfig {
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            bpf_filter: None,
            buffer_size: DEFAULT_BUFFER_SIZE,
            promiscuous: true,
            capture: CaptureConfig::default(),
        }
    }
}

/// A running live capture.
pub struct LiveHandle {
    thread: Option<JoinHandle<CaptureStats>>,
    stats: Arc<Mutex<CaptureStats>>,
    interface: String,
}

impl LiveHandle {
    /// Counters as of the last refresh (every [`STATS_INTERVAL`]).
    pub fn stats(&self) -> CaptureStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
    pub fn interface(&self) -> &str {
        &self.interface
    }
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
    /// Waits for the capture thread (set `stop` first) and returns its final counters.
    pub fn join(mut self) -> CaptureStats {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(s)) => s,
            _ => self.stats(),
        }
    }
}

/// An opened interface, ready to capture (the [`Producer`] of live traffic).
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    linktype: i32,
    cfg: LiveConfig,
    stats: Arc<Mutex<CaptureStats>>,
}

impl LiveCapture {
    /// Opens `cfg.interface` (and compiles the BPF filter) on the calling thread.
    pub fn open(cfg: LiveConfig) -> Result<Self, CaptureError> {
        let iface = cfg.interface.clone();
        let live_err = |e: pcap::Error| {
            let message = e.to_string();
            let lower = message.to_ascii_lowercase();
            if lower.contains("permission") || lower.contains("not permitted") {
                CaptureError::Permission {
                    interface: iface.clone(),
                    message,
                }
            } else {
                CaptureError::Live {
                    interface: iface.clone(),
                    message,
                }
            }
        };
        let mut cap = pcap::Capture::from_device(cfg.interface.as_str())
            .map_err(live_err)?
            .promisc(cfg.promiscuous)
            .snaplen(SNAPLEN)
            .immediate_mode(IMMEDIATE_MODE)
            .buffer_size(i32::try_from(cfg.buffer_size).unwrap_or(i32::MAX))
            .timeout(READ_TIMEOUT_MS)
            .open()
            .map_err(live_err)?;
        if let Some(f) = &cfg.bpf_filter {
            cap.filter(f, true).map_err(|e| CaptureError::Filter {
                filter: f.clone(),
                message: e.to_string(),
            })?;
        }
        // Non-blocking reads plus our own poll(2): on Linux (TPACKET_V3) a blocking
        // pcap_next_ex may not return at the read timeout while the link is quiet, and then
        // `stop` would never be seen.
        let cap = cap.setnonblock().map_err(live_err)?;
        let linktype = cap.get_datalink().0;
        if !super::link::supported(linktype) {
            tracing::warn!(interface = %cfg.interface, linktype, "unsupported link type: packets will be counted, not decoded");
        }
        tracing::info!(interface = %cfg.interface, linktype, "live capture started");
        Ok(LiveCapture {
            cap,
            linktype,
            cfg,
            stats: Arc::new(Mutex::new(CaptureStats::default())),
        })
    }

    pub fn interface(&self) -> &str {
        &self.cfg.interface
    }

    /// Counters shared with the capture thread (refreshed every [`STATS_INTERVAL`]).
    pub fn shared_stats(&self) -> Arc<Mutex<CaptureStats>> {
        self.stats.clone()
    }

    /// Captures until `stop` or the sink refusing; returns the final counters.
    pub fn capture(self, sink: &mut dyn ObservationSink, stop: &StopToken) -> CaptureStats {
        run(self.cap, self.linktype, self.cfg, sink, stop, self.stats)
    }
}

impl Producer for LiveCapture {
    fn name(&self) -> String {
        format!("capture-{}", self.cfg.interface)
    }

    fn run(self: Box<Self>, mut sink: QueueSink, stop: StopToken) -> ProducerReport {
        let iface = self.cfg.interface.clone();
        let mut counting = Counting {
            sink: &mut sink,
            observations: 0,
        };
        let st = self.capture(&mut counting, &stop);
        tracing::info!(interface = %iface, stats = ?st, "live capture stopped");
        ProducerReport {
            observations: counting.observations,
            finished: false,
            error: None,
        }
    }
}

/// A sink counting what it takes (batches kept whole).
struct Counting<'a> {
    sink: &'a mut QueueSink,
    observations: u64,
}

impl ObservationSink for Counting<'_> {
    fn send(&mut self, obs: Observation) -> bool {
        self.observations += 1;
        self.sink.send(obs)
    }
    fn send_batch(&mut self, obs: Vec<Observation>) -> bool {
        self.observations += obs.len() as u64;
        self.sink.send_batch(obs)
    }
}

/// Opens `cfg.interface` and starts capturing on a new thread, into `tx`.
pub fn spawn(
    cfg: LiveConfig,
    tx: Sender<Observation>,
    stop: Arc<AtomicBool>,
) -> Result<LiveHandle, CaptureError> {
    let live = LiveCapture::open(cfg)?;
    let stats = live.shared_stats();
    let iface = live.interface().to_string();
    let stop = StopToken::from_flag(stop);
    let thread = std::thread::Builder::new()
        .name(format!("capture-{iface}"))
        .spawn(move || {
            let mut sink = move |o: Observation| tx.blocking_send(o).is_ok();
            live.capture(&mut sink, &stop)
        })
        .map_err(|e| CaptureError::Live {
            interface: iface.clone(),
            message: format!("cannot start capture thread: {e}"),
        })?;
    Ok(LiveHandle {
        thread: Some(thread),
        stats,
        interface: iface,
    })
}

fn run(
    mut cap: pcap::Capture<pcap::Active>,
    linktype: i32,
    cfg: LiveConfig,
    sink: &mut dyn ObservationSink,
    stop: &StopToken,
    shared: Arc<Mutex<CaptureStats>>,
) -> CaptureStats {
    let mut decoder = Decoder::new(&cfg.capture, Source::live(&cfg.interface));
    let mut queue = VecDeque::new();
    let mut last_stats = Instant::now();
    let (mut kernel_drops, mut if_drops) = (0u64, 0u64);
    let mut receiver_gone = false;
    while !stop.is_stopped() && !receiver_gone {
        match cap.next_packet() {
            Ok(p) => {
                let ts = super::timeval_us(&p.header.ts);
                decoder.packet_live(ts, linktype, p.data, &mut queue);
            }
            // Nothing handed over: wait for the descriptor (bounded), then run timeouts up to
            // the oldest time a frame still in an unfinished block can carry.
            Err(pcap::Error::TimeoutExpired) => {
                if !send_all(&mut queue, sink) {
                    receiver_gone = true;
                    break;
                }
                wait_readable(cap.as_raw_fd(), READ_TIMEOUT_MS);
                decoder.tick(
                    Timestamp::now().0.saturating_sub(DELIVERY_LAG_US),
                    &mut queue,
                );
            }
            Err(e) => {
                tracing::error!(interface = %cfg.interface, error = %e, "live capture failed");
                break;
            }
        }
        while queue.len() >= SEND_BATCH {
            if !sink.send_batch(queue.drain(..SEND_BATCH).collect()) {
                receiver_gone = true;
                break;
            }
        }
        if last_stats.elapsed() >= STATS_INTERVAL {
            last_stats = Instant::now();
            // A busy link that yields no observations for a while holds no batch back longer.
            if !send_all(&mut queue, sink) {
                receiver_gone = true;
            }
            if let Ok(st) = cap.stats() {
                let (k, i) = (u64::from(st.dropped), u64::from(st.if_dropped));
                if k > kernel_drops || i > if_drops {
                    tracing::warn!(
                        interface = %cfg.interface,
                        kernel_drops = k,
                        interface_drops = i,
                        "packets dropped before capture (raise --buffer-size or narrow the BPF filter)"
                    );
                }
                kernel_drops = kernel_drops.max(k);
                if_drops = if_drops.max(i);
                decoder.add_capture_drops(kernel_drops, if_drops);
            }
            decoder.flush_metrics();
            if let Ok(mut s) = shared.lock() {
                *s = decoder.stats();
            }
        }
    }
    decoder.finish(&mut queue);
    if !receiver_gone {
        send_all(&mut queue, sink);
    }
    let last = decoder.stats();
    if let Ok(mut s) = shared.lock() {
        *s = last.clone();
    }
    tracing::info!(interface = %cfg.interface, packets = last.packets, kernel_drops, interface_drops = if_drops, "live capture stopped");
    last
}

/// Sends everything queued, in batches of at most [`SEND_BATCH`]; `false`: the receiver is gone.
fn send_all(queue: &mut VecDeque<Observation>, sink: &mut dyn ObservationSink) -> bool {
    while !queue.is_empty() {
        let n = queue.len().min(SEND_BATCH);
        if !sink.send_batch(queue.drain(..n).collect()) {
            return false;
        }
    }
    true
}

/// poll(2) for readability, at most `timeout_ms`.
fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe {
        libc::poll(&mut pfd, 1, timeout_ms);
    }
}
