//! The flow table: TCP connections and UDP 5-tuples, oriented originator → responder, with byte
//! and packet counts, state, and the first payload bytes of each direction (TCP: rebuilt in
//! sequence order from the stream's first byte; bytes count sequence space, not segments).
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
//!
//! Compact (issue #11): an entry holds the flow's counters and state, its endpoints come from
//! the key, and what only flows with payload need (prefixes, held segments, app facts) lives in
//! a [`FlowExtra`] box allocated at the first payload byte. The report ([`FlowObservation`]) is
//! built when one is due. A SYN-only flow costs ≈ 160 bytes of table instead of ≈ 420
//! (196 k flows: 111 MB → 42 MB of hash table).

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
/// Out-of-order TCP segments held per direction while its payload prefix is incomplete. The
/// first bytes of a connection arrive in a handful of segments; reordering there is a few
/// segments deep. Each held segment is clipped to the prefix window, so a flow holds at most
/// this many × [`PAYLOAD_PREFIX_MAX`] bytes; beyond, segments are dropped and counted
/// (`FlowStats::ooo_dropped`, `poolwatch_flow_segments_dropped_total`).
pub const MAX_OOO_SEGMENTS: usize = 8;
/// A segment starting further than this beyond the highest sequence number seen is not
/// believed (2^30 is the largest window TCP window scaling allows): it adds no bytes and no
/// prefix, and is counted (`FlowStats::seq_implausible`).
pub const MAX_SEQ_JUMP: u32 = 1 << 30;
/// End-of-input reports per step of `scan`'s reader ([`FlowTable::finish_some`],
/// `Decoder::finish_some`): the most its queue holds at the end of a capture.
pub const FINISH_BATCH: usize = 1024;
const ACK: u8 = 0x10;
/// Bytes a flow-table entry (key and flow) may take at most (`tests::flow_entries_are_compact`;
/// the hash table adds one control byte and its load-factor slack per entry).
#[cfg(test)]
const MAX_ENTRY_BYTES: usize = 168;

/// Sequence-space bookkeeping of one TCP direction.
#[derive(Default)]
struct SeqState {
    /// Sequence number of the first payload byte: the SYN's + 1, else the first data segment's.
    base: Option<u32>,
    /// Bytes of sequence space covered from `base` (one past the highest payload byte seen).
    /// `bytes_out`/`bytes_in` grow with it, so retransmitted bytes are not counted twice.
    high: u64,
}

/// What only a flow with payload needs: boxed, allocated at its first payload byte.
#[derive(Default)]
struct FlowExtra {
    payload_out: Vec<u8>,
    payload_in: Vec<u8>,
    app: AppInfo,
    /// Segments past a gap, per direction, for the payload prefix: (offset from the
    /// direction's first byte, bytes), sorted.
    held_out: Vec<(u32, Vec<u8>)>,
    held_in: Vec<(u32, Vec<u8>)>,
}

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

/// One flow's entry; its endpoints are the key's (`orig_is_a` says which side originated).
struct Flow {
    /// First and last packet (µs).
    ts: i64,
    last_ts: i64,
    bytes_out: u64,
    bytes_in: u64,
    packets_out: u64,
    packets_in: u64,
    serial: u64,
    seq_out: SeqState,
    seq_in: SeqState,
    /// Payload prefixes, held segments and app facts; `None` until the first payload byte
    /// (and again once a closed flow's report has taken them).
    extra: Option<Box<FlowExtra>>,
    direction: Direction,
    state: FlowState,
    /// The originator is the key's `a` endpoint (else `b`).
    orig_is_a: bool,
    syn_ack: bool,
    fin_out: bool,
    fin_in: bool,
    interims: u8,
    tombstone: bool,
    /// Touched since the CLOCK hand last passed it.
    referenced: bool,
}

impl Flow {
    /// The flow's report so far: endpoints from `key`, payload and app facts cloned (an
    /// interim report; the entry keeps them).
    fn observation(&self, key: &Key, report: FlowReport, source: &Source) -> FlowObservation {
        let mut obs = self.bare_observation(key, report, source);
        if let Some(x) = &self.extra {
            obs.payload_out = x.payload_out.clone();
            obs.payload_in = x.payload_in.clone();
            obs.app = x.app.clone();
        }
        obs
    }

    /// The report without payload and app facts (the caller moves them in).
    fn bare_observation(&self, key: &Key, report: FlowReport, source: &Source) -> FlowObservation {
        let ((src, src_port), (dst, dst_port)) = if self.orig_is_a {
            ((key.a, key.ap), (key.b, key.bp))
        } else {
            ((key.b, key.bp), (key.a, key.ap))
        };
        FlowObservation {
            ts: Timestamp(self.ts),
            last_ts: Timestamp(self.last_ts),
            src,
            src_port,
            dst,
            dst_port,
            proto: key.proto,
            direction: self.direction,
            state: self.state,
            report,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            packets_out: self.packets_out,
            packets_in: self.packets_in,
            payload_out: Vec::new(),
            payload_in: Vec::new(),
            app: AppInfo::default(),
            source: source.clone(),
        }
    }

    /// The final report, taking the payload and app facts out of the entry.
    fn take_observation(
        &mut self,
        key: &Key,
        report: FlowReport,
        source: &Source,
    ) -> FlowObservation {
        let mut obs = self.bare_observation(key, report, source);
        if let Some(x) = self.extra.take() {
            let x = *x;
            (obs.payload_out, obs.payload_in, obs.app) = (x.payload_out, x.payload_in, x.app);
        }
        obs
    }
}

/// Counters of the flow table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    pub evicted_cap: u64,
    pub evicted_idle: u64,
    pub reports: u64,
    /// Out-of-order segments not held for a payload prefix ([`MAX_OOO_SEGMENTS`] reached).
    pub ooo_dropped: u64,
    /// Segments with a sequence number beyond [`MAX_SEQ_JUMP`] of the flow's (ignored).
    pub seq_implausible: u64,
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
    /// The end-of-input order still to report ([`FlowTable::finish_some`]).
    finishing: Option<Finishing>,
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
            finishing: None,
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
                update(f, &key, s, &self.source, &mut self.stats, out);
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
            update(f, &key, s, &self.source, &mut self.stats, out);
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
        let (src, sport) = if orig_is_src {
            (s.src, s.sport)
        } else {
            (s.dst, s.dport)
        };
        self.serial += 1;
        self.stats.created += 1;
        self.order.push_back((key, self.serial));
        let mid_stream = direction == Direction::Inferred && s.flags & SYN == 0;
        self.map.insert(
            key,
            Flow {
                ts: s.ts,
                last_ts: s.ts,
                bytes_out: 0,
                bytes_in: 0,
                packets_out: 0,
                packets_in: 0,
                serial: self.serial,
                seq_out: SeqState::default(),
                seq_in: SeqState::default(),
                extra: None,
                direction,
                // Data mid-stream means the handshake happened before we looked.
                state: if mid_stream {
                    FlowState::Established
                } else {
                    FlowState::Attempted
                },
                orig_is_a: (src, sport) == (key.a, key.ap),
                syn_ack: s.flags & (SYN | ACK) == SYN | ACK,
                fin_out: false,
                fin_in: false,
                interims: 0,
                tombstone: false,
                referenced: false,
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
                self.report_final(&k, f, out);
            }
            return;
        }
    }

    fn report_final(&mut self, key: &Key, mut f: Flow, out: &mut VecDeque<Observation>) {
        if f.tombstone {
            return; // Already reported at close.
        }
        let mut obs = f.take_observation(key, FlowReport::Final, &self.source);
        if obs.proto == Proto::Tcp && obs.state == FlowState::Established && (f.fin_out || f.fin_in)
        {
            obs.state = FlowState::Closed;
        }
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
            if now.saturating_sub(f.last_ts) > limit {
                if let Some(f) = self.map.remove(&k) {
                    if !f.tombstone {
                        self.stats.evicted_idle += 1;
                    }
                    self.report_final(&k, f, out);
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
        while !self.finish_some(out, usize::MAX) {}
    }

    /// [`FlowTable::finish`] in steps of at most `max` reports (`scan` takes
    /// [`FINISH_BATCH`]): `true` once every open flow is reported. The first call fixes the
    /// order; the flows stay in the table until their turn, so the caller's queue holds one
    /// batch, not the whole table (issue #11: a 65 536-client flood's end of input queued
    /// ≈ 131 k final reports at once, the run's peak heap).
    pub fn finish_some(&mut self, out: &mut VecDeque<Observation>, max: usize) -> bool {
        let mut order = match self.finishing.take() {
            Some(o) => o,
            None => self.finishing_order(),
        };
        for _ in 0..max.max(1) {
            let Some(k) = order.next() else {
                // Every flow reported: the table's memory goes too.
                self.map = FxHashMap::default();
                return true;
            };
            if let Some(f) = self.map.remove(&k) {
                self.report_final(&k, f, out);
            }
        }
        self.finishing = Some(order);
        false
    }

    /// The open flows' keys by (start, serial) — serials are unique: one order. Small
    /// (start, serial, index) triples are sorted, not the flow records or the keys (issue #11:
    /// moving the records through the sort was ≈ 13 M instructions of a 8 192-client flood's
    /// end of input, the 56-byte (start, serial, key) ≈ 2 M more than the triples).
    fn finishing_order(&mut self) -> Finishing {
        let keys: Vec<Key> = self.map.keys().copied().collect();
        let mut order: Vec<(i64, u64, u32)> = self
            .map
            .values()
            .zip(0u32..)
            .map(|(f, i)| (f.ts, f.serial, i))
            .collect();
        order.sort_unstable();
        self.order = VecDeque::new();
        Finishing {
            keys,
            order: order.into_iter(),
        }
    }
}

/// The end-of-input order still to report: the keys, and their indices by (start, serial).
struct Finishing {
    keys: Vec<Key>,
    order: std::vec::IntoIter<(i64, u64, u32)>,
}

impl Iterator for Finishing {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        let (_, _, i) = self.order.next()?;
        self.keys.get(i as usize).copied()
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

/// Counts one packet of a flow, advances its state and emits the reports it earns.
fn update(
    f: &mut Flow,
    key: &Key,
    s: &Segment<'_>,
    source: &Source,
    stats: &mut FlowStats,
    out: &mut VecDeque<Observation>,
) {
    if f.tombstone {
        return;
    }
    let (src, src_port) = if f.orig_is_a {
        (key.a, key.ap)
    } else {
        (key.b, key.bp)
    };
    let outbound = s.src == src && s.sport == src_port;
    f.last_ts = s.ts.max(f.last_ts);
    // TCP: new sequence space only (a retransmission adds nothing); the payload's offset from
    // the direction's first byte places it in the prefix. UDP: every datagram counts.
    let is_tcp = key.proto == Proto::Tcp;
    let (new_bytes, offset) = if is_tcp {
        let seq = if outbound {
            &mut f.seq_out
        } else {
            &mut f.seq_in
        };
        seq_advance(seq, s, stats)
    } else {
        (s.payload.len() as u64, Some(0))
    };
    if outbound {
        f.packets_out += 1;
        f.bytes_out += new_bytes;
    } else {
        f.packets_in += 1;
        f.bytes_in += new_bytes;
    }
    let mut report = false;
    let mut end = false;
    if is_tcp {
        match tcp_state(f, s, outbound) {
            TcpEvent::Nothing => {}
            TcpEvent::Established => report = true,
            TcpEvent::End => end = true,
        }
    } else if !outbound && f.state == FlowState::Attempted {
        f.state = FlowState::Established;
    }
    if let (false, Some(off)) = (s.payload.is_empty(), offset) {
        let x = f.extra.get_or_insert_with(Box::default);
        report |= payload_prefix(x, s, outbound, is_tcp, off, stats);
    }
    if end {
        f.tombstone = true;
        // A tombstone keeps only `last_ts` (its timeout) and absorbs late packets: the payload
        // prefixes and app facts move into the report.
        let obs = f.take_observation(key, FlowReport::Final, source);
        stats.reports += 1;
        out.push_back(Observation::Flow(obs));
    } else if report && f.interims < MAX_INTERIM_REPORTS {
        f.interims += 1;
        let obs = f.observation(key, FlowReport::Interim, source);
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
        f.state = match f.state {
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
    if f.state == FlowState::Attempted
        && ((f.syn_ack && outbound && flags & ACK != 0 && flags & SYN == 0)
            || (f.packets_in > 0 && f.packets_out > 0 && !s.payload.is_empty()))
    {
        f.state = FlowState::Established;
        ev = TcpEvent::Established;
    }
    if f.fin_out && f.fin_in {
        if f.state == FlowState::Established {
            f.state = FlowState::Closed;
        }
        return TcpEvent::End;
    }
    ev
}

/// Advances a TCP direction's sequence state by segment `s`: returns the payload bytes that
/// are new sequence space (retransmitted bytes add nothing; a gap counts once the data past it
/// arrives, like Zeek's byte counts) and the payload's offset from the direction's first byte
/// (`None` for a segment not believed).
fn seq_advance(st: &mut SeqState, s: &Segment<'_>, stats: &mut FlowStats) -> (u64, Option<i64>) {
    let start = s.seq.wrapping_add(u32::from(s.flags & SYN != 0));
    if s.flags & SYN != 0 && st.base.is_none() {
        st.base = Some(start);
    }
    if s.payload.is_empty() {
        return (0, None);
    }
    let base = *st.base.get_or_insert(start);
    // Signed distance from the highest byte seen, in sequence space (which wraps at 2^32), so
    // flows of any length keep their place.
    let top = base.wrapping_add(st.high as u32);
    let high = st.high as i64;
    let off = high + i64::from(start.wrapping_sub(top) as i32);
    let end = off + s.payload.len() as i64;
    if end <= high {
        return (0, Some(off)); // all of it seen before
    }
    if off - high > i64::from(MAX_SEQ_JUMP) {
        stats.seq_implausible += 1;
        return (0, None);
    }
    st.high = end as u64;
    ((end - high) as u64, Some(off))
}

/// Places a TCP segment (at `off` from the direction's first byte) or a UDP datagram into the
/// direction's payload prefix, in sequence order: bytes before the prefix end are appended,
/// segments past a gap are held (at most [`MAX_OOO_SEGMENTS`]) until the gap fills,
/// retransmitted bytes are ignored. Runs recognition when in-order bytes were added.
fn payload_prefix(
    f: &mut FlowExtra,
    s: &Segment<'_>,
    outbound: bool,
    is_tcp: bool,
    off: i64,
    stats: &mut FlowStats,
) -> bool {
    let (buf, held) = if outbound {
        (&mut f.payload_out, &mut f.held_out)
    } else {
        (&mut f.payload_in, &mut f.held_in)
    };
    if buf.len() >= PAYLOAD_PREFIX_MAX {
        if !held.is_empty() {
            *held = Vec::new();
        }
        return false;
    }
    let first = buf.is_empty();
    // The part of the segment inside the prefix window [0, PAYLOAD_PREFIX_MAX).
    let data: &[u8] = if is_tcp {
        let skip = usize::try_from(-off).unwrap_or(0);
        s.payload.get(skip..).unwrap_or_default()
    } else {
        s.payload
    };
    let at = if is_tcp {
        off.max(0) as usize
    } else {
        buf.len()
    };
    let have = buf.len();
    if data.is_empty() || at >= PAYLOAD_PREFIX_MAX {
        return false;
    }
    if at > have {
        // Past a gap: hold the part inside the window until the bytes before it arrive.
        let keep = data
            .get(..(PAYLOAD_PREFIX_MAX - at).min(data.len()))
            .unwrap_or_default();
        if held
            .iter()
            .any(|(o, d)| *o as usize == at && d.len() >= keep.len())
        {
            return false; // a retransmission of a held segment
        }
        if held.len() >= MAX_OOO_SEGMENTS {
            stats.ooo_dropped += 1;
            return false;
        }
        let pos = held.partition_point(|(o, _)| (*o as usize) < at);
        held.insert(pos, (at as u32, keep.to_vec()));
        return false;
    }
    append_from(buf, at, data);
    if buf.len() == have {
        return false; // a retransmission of bytes already in the prefix
    }
    // Held segments the new bytes reach.
    while let Some((o, _)) = held.first() {
        if *o as usize > buf.len() {
            break;
        }
        let (o, d) = held.remove(0);
        append_from(buf, o as usize, &d);
    }
    if buf.len() >= PAYLOAD_PREFIX_MAX {
        *held = Vec::new();
    }
    let app = &mut f.app;
    if outbound {
        // A first segment longer than the prefix is classified whole (a ClientHello is often
        // larger than the prefix and its SNI may sit past it); otherwise the in-order prefix.
        if first && at == 0 && data.len() > PAYLOAD_PREFIX_MAX {
            payload::classify_client(data, app)
        } else {
            payload::classify_client(&f.payload_out, app)
        }
    } else {
        payload::classify_server(&f.payload_in, app)
    }
}

/// Appends the bytes of `data` (which starts at prefix offset `at` ≤ `buf.len()`) that lie past
/// the end of `buf`, up to the prefix cap.
fn append_from(buf: &mut Vec<u8>, at: usize, data: &[u8]) {
    let skip = buf.len().saturating_sub(at);
    let room = PAYLOAD_PREFIX_MAX.saturating_sub(buf.len());
    if let Some(rest) = data.get(skip..) {
        buf.extend_from_slice(rest.get(..room.min(rest.len())).unwrap_or_default());
    }
}

#[cfg(test)]
#[path = "flows_tests.rs"]
mod tests;
