//! The flow table: TCP connections and UDP 5-tuples, oriented originator → responder, with byte
//! and packet counts, state, and the first payload bytes of each direction.
//!
//! Reports ([`FlowObservation`]): an `Interim` one when a TCP flow becomes established and again
//! when its payload is first recognised (Stratum, TLS SNI, HTTP Host), so a long-lived mining
//! session is visible within seconds; a `Final` one at FIN/RST close, at eviction and at end of
//! input. After a close the entry stays as a tombstone for [`TOMBSTONE_US`] so trailing ACKs do
//! not create ghost flows.
//!
//! Bounded: `CaptureConfig::max_flows` entries. When full, a CLOCK ("second chance") sweep from
//! the oldest entry evicts the oldest flow that has seen no packet since it was last passed
//! over, so a SYN flood evicts its own half-open entries before an active session.

use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::payload;
use super::tcp::{FIN, RST, SYN};
use crate::model::{
    AppInfo, Direction, FlowObservation, FlowReport, FlowState, Observation, Proto, Source,
    Timestamp,
};

/// First payload bytes kept per direction: enough for a Stratum login or an HTTP request line
/// and headers, small enough that 64k flows cost at most 64 MiB.
pub const PAYLOAD_PREFIX_MAX: usize = 512;
/// How long a closed flow's entry absorbs late packets.
pub const TOMBSTONE_US: i64 = 10_000_000;
/// Interim reports per flow at most (established + recognition + a late server-side recognition).
pub const MAX_INTERIM_REPORTS: u8 = 3;
/// How often (capture time) the idle sweep runs.
pub const SWEEP_INTERVAL_US: i64 = 1_000_000;
/// Each sweep examines 1/`SWEEP_FRACTION` of the table (see [`FlowTable::sweep`]).
pub const SWEEP_FRACTION: usize = 64;
const ACK: u8 = 0x10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    a: IpAddr,
    ap: u16,
    b: IpAddr,
    bp: u16,
    proto: Proto,
}

impl Key {
    fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: Proto) -> Self {
        if (src, sport) <= (dst, dport) {
            Key {
                a: src,
                ap: sport,
                b: dst,
                bp: dport,
                proto,
            }
        } else {
            Key {
                a: dst,
                ap: dport,
                b: src,
                bp: sport,
                proto,
            }
        }
    }
}

struct Flow {
    obs: FlowObservation,
    syn_ack: bool,
    fin_out: bool,
    fin_in: bool,
    next_seq_out: Option<u32>,
    next_seq_in: Option<u32>,
    interims: u8,
    tombstone: bool,
    /// Touched since the CLOCK hand last passed it.
    referenced: bool,
    serial: u64,
}

/// Counters of the flow table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    pub evicted_cap: u64,
    pub evicted_idle: u64,
    pub reports: u64,
}

pub struct FlowTable {
    map: FxHashMap<Key, Flow>,
    order: VecDeque<(Key, u64)>,
    serial: u64,
    cap: usize,
    tcp_idle_us: i64,
    udp_idle_us: i64,
    last_sweep: i64,
    source: Source,
    pub stats: FlowStats,
}

/// One transport segment, as the flow table needs it.
pub struct Segment<'a> {
    pub ts: i64,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: Proto,
    pub flags: u8,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl FlowTable {
    pub fn new(cap: usize, tcp_idle_us: i64, udp_idle_us: i64, source: Source) -> Self {
        FlowTable {
            map: FxHashMap::default(),
            order: VecDeque::new(),
            serial: 0,
            cap: cap.max(1),
            tcp_idle_us,
            udp_idle_us,
            last_sweep: i64::MIN,
            source,
            stats: FlowStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Runs [`FlowTable::sweep`] when [`SWEEP_INTERVAL_US`] has passed since the last one.
    pub fn maybe_sweep(&mut self, now: i64, out: &mut VecDeque<Observation>) {
        if now.saturating_sub(self.last_sweep) >= SWEEP_INTERVAL_US {
            self.sweep(now, out);
            self.last_sweep = now;
        }
    }

    pub fn packet(&mut self, s: &Segment<'_>, out: &mut VecDeque<Observation>) {
        self.maybe_sweep(s.ts, out);
        let key = Key::new(s.src, s.sport, s.dst, s.dport, s.proto);
        let is_tcp = s.proto == Proto::Tcp;
        // Port reuse: a fresh SYN on a closed tuple starts a new flow.
        let reuse = |f: &Flow| f.tombstone && is_tcp && s.flags & (SYN | ACK) == SYN;
        // Fast path, one hash lookup: a packet of a known flow.
        if let Some(f) = self.map.get_mut(&key) {
            if !reuse(f) {
                // Only traffic after the first packet earns a second chance: a flood's
                // one-packet flows stay unreferenced and are evicted before sessions that keep
                // talking.
                f.referenced = true;
                update(f, s, is_tcp, &mut self.stats, out);
                return;
            }
            self.map.remove(&key);
        }
        if is_tcp && s.flags & RST != 0 {
            return; // A stray RST describes nothing worth a flow.
        }
        if is_tcp && s.flags & SYN == 0 && s.payload.is_empty() {
            return; // Bare ACK/FIN of a flow we never saw: no ghost flows.
        }
        self.create(s, key, out);
        if let Some(f) = self.map.get_mut(&key) {
            update(f, s, is_tcp, &mut self.stats, out);
        }
    }

    fn create(&mut self, s: &Segment<'_>, key: Key, out: &mut VecDeque<Observation>) {
        if self.map.len() >= self.cap {
            self.evict_one(out);
        }
        // Orientation: the SYN sender, the SYN-ACK receiver, or for a mid-stream pickup the
        // side on the higher port (servers listen on the lower one, usually).
        let (orig_is_src, direction) = if s.proto == Proto::Udp || s.flags & (SYN | ACK) == SYN {
            (true, Direction::Originator)
        } else if s.flags & (SYN | ACK) == SYN | ACK {
            (false, Direction::Inferred)
        } else {
            (s.sport >= s.dport, Direction::Inferred)
        };
        let (src, sport, dst, dport) = if orig_is_src {
            (s.src, s.sport, s.dst, s.dport)
        } else {
            (s.dst, s.dport, s.src, s.sport)
        };
        self.serial += 1;
        self.stats.created += 1;
        self.order.push_back((key, self.serial));
        let mid_stream = direction == Direction::Inferred && s.flags & SYN == 0;
        self.map.insert(
            key,
            Flow {
                obs: FlowObservation {
                    ts: Timestamp(s.ts),
                    last_ts: Timestamp(s.ts),
                    src,
                    src_port: sport,
                    dst,
                    dst_port: dport,
                    proto: s.proto,
                    direction,
                    // Data mid-stream means the handshake happened before we looked.
                    state: if mid_stream {
                        FlowState::Established
                    } else {
                        FlowState::Attempted
                    },
                    report: FlowReport::Interim,
                    bytes_out: 0,
                    bytes_in: 0,
                    packets_out: 0,
                    packets_in: 0,
                    payload_out: Vec::new(),
                    payload_in: Vec::new(),
                    app: AppInfo::default(),
                    source: self.source.clone(),
                },
                syn_ack: s.flags & (SYN | ACK) == SYN | ACK,
                fin_out: false,
                fin_in: false,
                next_seq_out: None,
                next_seq_in: None,
                interims: 0,
                tombstone: false,
                referenced: false,
                serial: self.serial,
            },
        );
    }

    /// CLOCK eviction: pass over recently used entries once, evict the first unused one.
    fn evict_one(&mut self, out: &mut VecDeque<Observation>) {
        let mut budget = self.order.len().saturating_mul(2);
        while let Some((k, s)) = self.order.pop_front() {
            budget = budget.saturating_sub(1);
            let Some(f) = self.map.get_mut(&k) else {
                continue;
            };
            if f.serial != s {
                continue;
            }
            if f.referenced && budget > 0 {
                f.referenced = false;
                self.serial += 1;
                f.serial = self.serial;
                self.order.push_back((k, self.serial));
                continue;
            }
            if let Some(f) = self.map.remove(&k) {
                self.stats.evicted_cap += 1;
                self.report_final(f, out);
            }
            return;
        }
    }

    fn report_final(&mut self, f: Flow, out: &mut VecDeque<Observation>) {
        if f.tombstone {
            return; // Already reported at close.
        }
        let mut obs = f.obs;
        if obs.proto == Proto::Tcp && obs.state == FlowState::Established && (f.fin_out || f.fin_in)
        {
            obs.state = FlowState::Closed;
        }
        obs.report = FlowReport::Final;
        self.stats.reports += 1;
        out.push_back(Observation::Flow(obs));
    }

    /// Evicts idle flows (and expired tombstones), incrementally: each call examines the
    /// [`SWEEP_FRACTION`]th of the table at the front of the age queue, evicting idle entries
    /// and rotating live ones to the back. A full pass takes `SWEEP_FRACTION` sweeps (about a
    /// minute of capture time), so the per-packet cost stays flat however large the table is;
    /// an idle flow is reported at most that much later than its timeout.
    pub fn sweep(&mut self, now: i64, out: &mut VecDeque<Observation>) {
        let (tcp_idle, udp_idle) = (self.tcp_idle_us, self.udp_idle_us);
        let mut budget = self.map.len() / SWEEP_FRACTION + 16;
        while budget > 0 {
            budget -= 1;
            let Some((k, s)) = self.order.pop_front() else {
                break;
            };
            let Some(f) = self.map.get_mut(&k) else {
                continue;
            };
            if f.serial != s {
                continue; // stale queue entry
            }
            let limit = if f.tombstone {
                TOMBSTONE_US
            } else if k.proto == Proto::Tcp {
                tcp_idle
            } else {
                udp_idle
            };
            if now.saturating_sub(f.obs.last_ts.0) > limit {
                if let Some(f) = self.map.remove(&k) {
                    if !f.tombstone {
                        self.stats.evicted_idle += 1;
                    }
                    self.report_final(f, out);
                }
            } else {
                self.serial += 1;
                f.serial = self.serial;
                self.order.push_back((k, self.serial));
            }
        }
        if self.order.len() > self.map.len().saturating_mul(2).max(1024) {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|f| f.serial == *s));
        }
    }

    /// End of input: every open flow gets its final report, oldest first.
    pub fn finish(&mut self, out: &mut VecDeque<Observation>) {
        let mut all: Vec<Flow> = self.map.drain().map(|(_, f)| f).collect();
        all.sort_by_key(|f| (f.obs.ts, f.serial));
        for f in all {
            self.report_final(f, out);
        }
        self.order.clear();
    }
}

/// What a TCP segment did to its flow.
#[derive(PartialEq, Eq)]
enum TcpEvent {
    Nothing,
    Established,
    /// RST, or FIN from both sides: the flow is over.
    End,
}

/// Advances the TCP state machine.
/// Counts one packet of a flow, advances its state and emits the reports it earns.
fn update(
    f: &mut Flow,
    s: &Segment<'_>,
    is_tcp: bool,
    stats: &mut FlowStats,
    out: &mut VecDeque<Observation>,
) {
    if f.tombstone {
        return;
    }
    let outbound = s.src == f.obs.src && s.sport == f.obs.src_port;
    f.obs.last_ts = Timestamp(s.ts.max(f.obs.last_ts.0));
    let len = s.payload.len() as u64;
    if outbound {
        f.obs.packets_out += 1;
        f.obs.bytes_out += len;
    } else {
        f.obs.packets_in += 1;
        f.obs.bytes_in += len;
    }
    let mut report = false;
    let mut end = false;
    if is_tcp {
        match tcp_state(f, s, outbound) {
            TcpEvent::Nothing => {}
            TcpEvent::Established => report = true,
            TcpEvent::End => end = true,
        }
    } else if !outbound && f.obs.state == FlowState::Attempted {
        f.obs.state = FlowState::Established;
    }
    if !s.payload.is_empty() {
        report |= payload_prefix(f, s, outbound, is_tcp);
    }
    if end {
        f.tombstone = true;
        // A tombstone keeps only `last_ts` (its timeout) and absorbs late packets: the payload
        // prefixes and app facts move into the report instead of being cloned.
        let payload_out = std::mem::take(&mut f.obs.payload_out);
        let payload_in = std::mem::take(&mut f.obs.payload_in);
        let app = std::mem::take(&mut f.obs.app);
        let mut obs = f.obs.clone();
        (obs.payload_out, obs.payload_in, obs.app) = (payload_out, payload_in, app);
        obs.report = FlowReport::Final;
        stats.reports += 1;
        out.push_back(Observation::Flow(obs));
    } else if report && f.interims < MAX_INTERIM_REPORTS {
        f.interims += 1;
        let mut obs = f.obs.clone();
        obs.report = FlowReport::Interim;
        stats.reports += 1;
        out.push_back(Observation::Flow(obs));
    }
}

fn tcp_state(f: &mut Flow, s: &Segment<'_>, outbound: bool) -> TcpEvent {
    let flags = s.flags;
    if flags & SYN != 0 && flags & ACK != 0 && !outbound {
        f.syn_ack = true;
    }
    if flags & RST != 0 {
        f.obs.state = match f.obs.state {
            FlowState::Attempted if !outbound => FlowState::Rejected,
            FlowState::Attempted => FlowState::Attempted,
            FlowState::Rejected => FlowState::Rejected,
            _ => FlowState::Closed,
        };
        return TcpEvent::End;
    }
    if flags & FIN != 0 {
        if outbound {
            f.fin_out = true;
        } else {
            f.fin_in = true;
        }
    }
    let mut ev = TcpEvent::Nothing;
    if f.obs.state == FlowState::Attempted
        && ((f.syn_ack && outbound && flags & ACK != 0 && flags & SYN == 0)
            || (f.obs.packets_in > 0 && f.obs.packets_out > 0 && !s.payload.is_empty()))
    {
        f.obs.state = FlowState::Established;
        ev = TcpEvent::Established;
    }
    if f.fin_out && f.fin_in {
        if f.obs.state == FlowState::Established {
            f.obs.state = FlowState::Closed;
        }
        return TcpEvent::End;
    }
    ev
}

/// Appends in-order payload to the direction's prefix and runs recognition on first data.
fn payload_prefix(f: &mut Flow, s: &Segment<'_>, outbound: bool, is_tcp: bool) -> bool {
    let (buf, next) = if outbound {
        (&mut f.obs.payload_out, &mut f.next_seq_out)
    } else {
        (&mut f.obs.payload_in, &mut f.next_seq_in)
    };
    if buf.len() >= PAYLOAD_PREFIX_MAX {
        return false;
    }
    let first = buf.is_empty();
    if is_tcp {
        let seq = s.seq.wrapping_add(u32::from(s.flags & SYN != 0));
        match *next {
            Some(n) if n != seq => return false, // retransmission or gap: keep the prefix clean
            _ => *next = Some(seq.wrapping_add(s.payload.len() as u32)),
        }
    }
    let room = PAYLOAD_PREFIX_MAX - buf.len();
    buf.extend_from_slice(
        s.payload
            .get(..room.min(s.payload.len()))
            .unwrap_or_default(),
    );
    let app = &mut f.obs.app;
    if outbound {
        // The first segment is classified whole (a ClientHello is often larger than the prefix
        // and its SNI may sit past it); later ones through the accumulated prefix.
        if first {
            payload::classify_client(s.payload, app)
        } else {
            payload::classify_client(&f.obs.payload_out, app)
        }
    } else {
        payload::classify_server(&f.obs.payload_in, app)
    }
}
