//! The correlation engine: pure logic over bounded in-memory state, no I/O.
//!
//! DNS observations whose query name (or a CNAME target) matches a pool list create *bindings*
//! (client, answer IP) → pool entry. Flows are graded against the client's own bindings, other
//! clients' bindings, listed pool IPs, the TLS SNI and Stratum payload. Each (client, pool entry)
//! incident is one [`Detection`], updated as stronger evidence arrives.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHasher;
use serde::Serialize;

use super::attribution::{flow_name, AnswerNames, Attribution, How, SharedHit, MAX_ANSWER_NAMES};
use super::bounded::BoundedMap;
use super::incidents::{Incident, IncidentKey, IncidentTable};
use super::infra::{Infra, MAX_FORWARDED};
use super::names::{SharedNames, MAX_SHARED_NAMES};
use super::risk;
use crate::matcher::SharedBlocklists;
use crate::model::{
    Category, Detection, DnsObservation, Evidence, EvidenceKind, FlowObservation, FlowReport,
    FlowState, ListHit, Observation, PoolFlow, Proto, Rcode, Source, SourcePos, Stage, Timestamp,
};
use crate::ports::History;
use crate::query::{Binding, ChangeKind, DetectionEvent, Suppression};

use super::evidence::*;
use reports::{raise, touch_time};

// The engine's methods, by seam (children see the engine's private state).
mod bindings;
mod dns;
mod flows;
mod grading;
mod reports;
// The packet fast path's questions and its skipped messages (issue #16); lives beside this file.
#[path = "skip.rs"]
mod skip;

pub use reports::detection_id;

// ---------------------------------------------------------------------------------------------
// Limits (named, with why)
// ---------------------------------------------------------------------------------------------

/// Live (client, answer IP) bindings: the persistence port's cap (`ports::MAX_BINDINGS`), which
/// the stores size their binding tables by.
pub use crate::ports::MAX_BINDINGS;
/// Latest binding per answer IP (any client), for `direct_ip` attribution.
pub const MAX_IP_INDEX: usize = 100_000;
/// Open incidents kept in memory (older ones live on in the store and are reloaded on demand
/// through [`History`]).
pub const MAX_INCIDENTS: usize = 20_000;
/// Recent pool queries, for de-duplicating the same query seen by two sources.
pub const MAX_DEDUPE: usize = 65_536;
/// Flows attributed to an incident, to supersede interim reports instead of double counting.
pub const MAX_FLOWS: usize = 65_536;
/// DNS servers seen answering queries (learned resolvers and candidates still counting their
/// distinct clients, see `infra::RESOLVER_MIN_CLIENTS`).
pub const MAX_INFRA: usize = 4_096;
/// Unattributed flows kept for the reorder window, in case their DNS arrives late.
pub const MAX_RECENT_FLOWS: usize = 4_096;
/// Per-host last detection time, for `is_new`.
pub const MAX_HOSTS: usize = 100_000;

/// Evidence items per detection: the first [`EVIDENCE_KEEP_FIRST`] are always kept, the rest
/// of the slots go to the strongest; `counts` has the totals.
pub const MAX_EVIDENCE: usize = 12;
pub const EVIDENCE_KEEP_FIRST: usize = 4;
/// Distinct values kept per list field of a detection (names, IPs, ports, sources, lists, agents).
pub const MAX_QUERY_NAMES: usize = 16;
pub const MAX_POOL_IPS: usize = 32;
pub const MAX_PORTS: usize = 16;
pub const MAX_SOURCES: usize = 8;
pub const MAX_LISTS: usize = 8;
pub const MAX_AGENTS: usize = 4;
/// Longest agent string kept (XMRig agents are ~60 bytes; anything longer is truncated).
pub const MAX_AGENT_LEN: usize = 128;

/// A/AAAA answers of one non-pool response remembered for the shared-address rule (a CDN
/// answer has a handful; a response with hundreds is not a site a flow names).
pub const MAX_NAMED_ANSWERS: usize = 16;
/// TTL assumed when a source carries none (query-only logs never bind, so this is rare).
pub const DEFAULT_TTL: u32 = 300;
/// TTLs above this are clamped (a week): answers claiming years must not pin memory forever.
pub const MAX_TTL: u32 = 7 * 24 * 3600;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Tunables of the engine. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Added to the answer TTL: how long after the TTL a flow still counts as following the
    /// lookup. Default 6 h: miners resolve once, then keep one connection (and reconnect to the
    /// cached address) for hours, long past the pool's 60–300 s TTL.
    pub binding_grace_secs: i64,
    /// Inputs are only roughly time-ordered (a resolver log vs a pcap can be skewed by a second
    /// or so): a binding is accepted for flows that start up to this long *before* it, and new
    /// lookup-only incidents are held this long before they are reported (so a resolver's own
    /// upstream query is dropped once the resolver is seen answering). Default 5 s.
    pub reorder_window_secs: i64,
    /// Two observations of the same (client, name, type) within this window are one lookup.
    /// Default 2 s.
    pub dedupe_window_secs: i64,
    /// Quiet time after which further activity of the same (client, pool entry) opens a new
    /// incident. Default 24 h.
    pub incident_gap_secs: i64,
    /// `is_new` look-back. Default 30 days.
    pub lookback_secs: i64,
    /// Configured resolvers / DNS infrastructure: never reported for their own lookups (their
    /// flows are graded like any host's).
    pub resolvers: Vec<IpAddr>,
    /// Sinkhole addresses: an answer pointing there means the lookup was blocked.
    pub sinkholes: Vec<IpAddr>,
    /// Learn resolvers from the traffic (addresses answering queries of several distinct
    /// clients). Default on.
    pub learn_infrastructure: bool,
    /// Table caps (defaults: the `MAX_*` constants).
    pub limits: EngineLimits,
}

/// Entry caps of the engine's tables; each evicts its least recently used entry when full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineLimits {
    pub bindings: usize,
    pub ip_index: usize,
    pub incidents: usize,
    pub dedupe: usize,
    pub flows: usize,
    pub infra: usize,
    pub recent_flows: usize,
    pub hosts: usize,
    /// (client, address) pairs of non-pool answers (shared-address rule).
    pub answer_names: usize,
    /// (server, pool entry) questions (the resolver forwarding exemption).
    pub forwarded: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            bindings: MAX_BINDINGS,
            ip_index: MAX_IP_INDEX,
            incidents: MAX_INCIDENTS,
            dedupe: MAX_DEDUPE,
            flows: MAX_FLOWS,
            infra: MAX_INFRA,
            recent_flows: MAX_RECENT_FLOWS,
            hosts: MAX_HOSTS,
            answer_names: MAX_ANSWER_NAMES,
            forwarded: MAX_FORWARDED,
        }
    }
}

impl EngineLimits {
    /// The caps for a pipeline over a store held in process memory that keeps up to
    /// `detections` detections (`scan` without `--db`, `store::MemoryStore`).
    ///
    /// There a detection lives in one place, the incident table or the store (the store hands
    /// it over, `History::hands_over`), both in the same memory: evicting an incident into the
    /// store frees nothing and only costs CPU (a flood of more clients than [`MAX_INCIDENTS`]
    /// evicted and reloaded every incident each round: ≈ 45% of its time, issue #11). So the
    /// incident table is as large as the store's cap, which bounds the detections either way;
    /// past it, eviction and parking work as with a disk store.
    pub fn in_memory(detections: usize) -> Self {
        let d = EngineLimits::default();
        EngineLimits {
            incidents: d.incidents.max(detections),
            ..d
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            binding_grace_secs: 6 * 3600,
            reorder_window_secs: 5,
            dedupe_window_secs: 2,
            incident_gap_secs: 24 * 3600,
            lookback_secs: 30 * 24 * 3600,
            resolvers: Vec::new(),
            sinkholes: Vec::new(),
            learn_infrastructure: true,
            limits: EngineLimits::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Everything one observation changed.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub detections: Vec<DetectionEvent>,
    pub bindings: Vec<Binding>,
    pub flows: Vec<PoolFlow>,
    /// With deferred announcements ([`Engine::set_deferred_announcements`]): `New`/`Upgraded`
    /// reports kept in the incident, by kind and stage (for counters); the state itself is
    /// written at the next flush like a deferred update.
    pub deferred: Vec<(ChangeKind, Stage)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.detections.is_empty()
            && self.bindings.is_empty()
            && self.flows.is_empty()
            && self.deferred.is_empty()
    }
    fn append(&mut self, mut other: Changes) {
        self.deferred.append(&mut other.deferred);
        self.detections.append(&mut other.detections);
        self.bindings.append(&mut other.bindings);
        self.flows.append(&mut other.flows);
    }
}

/// Sizes of the engine's tables (for metrics gauges and the flood bench).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableSizes {
    pub bindings: usize,
    pub ip_index: usize,
    pub incidents: usize,
    pub dedupe: usize,
    pub flows: usize,
    pub infra: usize,
    pub recent_flows: usize,
    pub hosts: usize,
    pub held: usize,
    /// Evicted incidents kept until the next flush (`correlate::incidents`).
    pub parked: usize,
    pub answer_names: usize,
    pub forwarded: usize,
    /// Established flows waiting for their first payload (shared-address rule).
    pub unnamed: usize,
}

/// Counters of what the engine did (monotonic).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub dns: u64,
    pub flows: u64,
    pub name_matches: u64,
    pub cname_matches: u64,
    pub sni_matches: u64,
    pub ip_matches: u64,
    pub stratum_flows: u64,
    pub duplicates: u64,
    /// Pool lookups by a host that was a resolver when seen (bound, never reported alone).
    pub infra_ignored: u64,
    /// Lookup-only incidents dropped as a resolver's (resolver rule).
    pub infra_dropped_incidents: u64,
    pub evicted: u64,
    /// Pool answer addresses owned by an unlisted (CDN) name: bound per client only.
    pub shared_answer_ips: u64,
    /// Pool bindings shadowed by the same client's later non-pool answer for the address.
    pub shadowed_bindings: u64,
    /// Evicted incidents kept until their flush (see `correlate::incidents`) that had to be
    /// dropped because the parked table was full (only without a pipeline flushing).
    pub parked_dropped: u64,
    /// Evicted incidents taken back from the parked table before their flush.
    pub unparked: u64,
    /// `Updated` reports kept in the incident (deferred mode) instead of copied into `Changes`;
    /// written at the next flush.
    pub deferred_updates: u64,
    /// Resolvers learned (answers to `RESOLVER_MIN_CLIENTS` distinct clients).
    pub resolvers_learned: u64,
    /// Flows to the DNS port between DNS servers, not graded by bindings (resolver rule).
    pub dns_service_flows: u64,
    /// Flows not convicted by another client's binding or a listed address because their own
    /// SNI/Host or own DNS answer named a non-pool site (shared-address rule).
    pub own_name_overrides: u64,
    /// Listed HTTP Host matches.
    pub http_host_matches: u64,
    /// Interim reports of flows to a shared address that had not sent their first payload
    /// (and so no name) yet: graded on their next report.
    pub flows_waiting_for_name: u64,
    /// Flows evicted from the waiting table (full): they are not graded.
    pub unnamed_evicted: u64,
    /// Entries evicted from the infrastructure, forwarding and answer-name tables (full).
    pub infra_evicted: u64,
    pub forwarded_evicted: u64,
    pub answer_names_evicted: u64,
    /// Observations a detection had counted already (a followed line read again after a
    /// restart, `correlate::replay`): not counted twice.
    pub replayed: u64,
    /// Source marks dropped because a detection had `MAX_SOURCE_MARKS` sources.
    pub source_marks_dropped: u64,
}

// ---------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct BindingState {
    entry: Arc<str>,
    qname: Arc<str>,
    list: Arc<str>,
    category: Category,
    line: u32,
    first_seen: Timestamp,
    last_seen: Timestamp,
    ttl: u32,
    expires: Timestamp,
    /// Set when this client's later *non-pool* answer named the same address (a CDN or
    /// shared host serving both): from then on a flow there is explained by that newer
    /// lookup, and only Stratum on the wire still ties it to the pool. Cleared by a new pool
    /// answer.
    shadowed: Option<Timestamp>,
    /// The answer address's owner was an unlisted name (a CDN through a CNAME): the address
    /// serves other sites too, so a flow naming a non-pool site (SNI/Host) is not the pool's.
    shared: bool,
}

/// Buffers `on_dns` reuses (a flood allocated two address lists per lookup, issue #11).
#[derive(Debug, Default)]
struct Scratch {
    /// (answer index, address) of each A/AAAA answer.
    parsed: Vec<(usize, IpAddr)>,
    /// The addresses the lookup binds.
    ips: Vec<IpAddr>,
}

/// Answers a kept `on_dns` buffer holds room for at most; a larger one (a message with many
/// answers) is freed rather than kept.
const MAX_SCRATCH_ANSWERS: usize = 64;

impl Scratch {
    fn kept(parsed: Vec<(usize, IpAddr)>, ips: Vec<IpAddr>) -> Scratch {
        let small = |cap: usize| cap <= MAX_SCRATCH_ANSWERS;
        Scratch {
            parsed: if small(parsed.capacity()) {
                parsed
            } else {
                Vec::new()
            },
            ips: if small(ips.capacity()) {
                ips
            } else {
                Vec::new()
            },
        }
    }
}

#[derive(Clone, Debug)]
struct IpBinding {
    client: IpAddr,
    hit: ListHit,
    first_seen: Timestamp,
    expires: Timestamp,
}

#[derive(Debug)]
struct DedupeState {
    ts: Timestamp,
    /// The sources that saw the query: the first inline (a lookup seen by one source, nearly
    /// all of them, allocates no list: issue #11), the others (up to `MAX_SOURCES` in all)
    /// after it.
    first: Source,
    more: Vec<Source>,
}

impl DedupeState {
    fn saw(&self, s: &Source) -> bool {
        self.first == *s || self.more.contains(s)
    }
}

type FlowKey = (IpAddr, u16, IpAddr, u16, Proto, Timestamp);

#[derive(Debug, Clone, Copy)]
struct FlowSeen {
    bytes_out: u64,
    bytes_in: u64,
    established: bool,
    stratum: bool,
}

/// The outcome of attributing a flow.
enum Grade {
    Pool(Attribution),
    /// Not attributed now: the flow has not sent its first payload (its name) yet.
    Wait,
    None,
}

/// Established flows waiting for their first payload (see `Engine::release_unnamed`): a few
/// seconds' worth of new connections to pool-bound or listed addresses.
pub const MAX_UNNAMED_FLOWS: usize = 4_096;

// ---------------------------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------------------------

pub struct Engine {
    cfg: EngineConfig,
    lists: SharedBlocklists,
    sinkholes: HashSet<IpAddr>,
    bindings: BoundedMap<(IpAddr, IpAddr), BindingState>,
    /// Clients holding (or recently holding) a binding; capped like `bindings`, whose clients
    /// it over-approximates (a stale entry only costs a few probes).
    bound_clients: BoundedMap<IpAddr, ()>,
    ip_index: BoundedMap<IpAddr, IpBinding>,
    incidents: IncidentTable,
    held: VecDeque<(Timestamp, IncidentKey)>,
    dedupe: BoundedMap<(IpAddr, u64, u16), DedupeState>,
    flows: BoundedMap<FlowKey, FlowSeen>,
    infra: Infra,
    answer_names: AnswerNames,
    unnamed: BoundedMap<FlowKey, (Timestamp, FlowObservation)>,
    unnamed_order: VecDeque<(Timestamp, FlowKey)>,
    recent_flows: VecDeque<FlowObservation>,
    hosts: BoundedMap<IpAddr, Timestamp>,
    /// Pool entry and list names shared by the keys and bindings (`correlate::names`).
    names: SharedNames,
    suppressions: Vec<Suppression>,
    suppression_now: Timestamp,
    history: Option<Box<dyn History>>,
    /// See [`Engine::set_deferred_updates`].
    defer_updates: bool,
    /// See [`Engine::set_deferred_announcements`].
    defer_announcements: bool,
    /// See [`Engine::set_record_rows`].
    record_rows: bool,
    watermark: Timestamp,
    /// Where the observation being handled was read (see [`Engine::observe_at`]).
    obs_pos: Option<SourcePos>,
    /// The fast path's last listed name and its hit (`skip.rs`).
    listed_memo: skip::ListedMemo,
    /// `on_dns`'s buffers, kept from lookup to lookup.
    scratch: Scratch,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: EngineConfig, lists: SharedBlocklists) -> Self {
        let l = cfg.limits;
        Engine {
            infra: Infra::new(
                &cfg.resolvers,
                cfg.learn_infrastructure,
                l.infra,
                l.forwarded,
                cfg.reorder_window_secs,
            ),
            answer_names: AnswerNames::new(l.answer_names),
            unnamed: BoundedMap::new(l.recent_flows.min(MAX_UNNAMED_FLOWS)),
            unnamed_order: VecDeque::new(),
            sinkholes: cfg.sinkholes.iter().copied().collect(),
            cfg,
            lists,
            bindings: BoundedMap::new(l.bindings),
            bound_clients: BoundedMap::new(l.bindings),
            ip_index: BoundedMap::new(l.ip_index),
            incidents: IncidentTable::new(l.incidents),
            held: VecDeque::new(),
            dedupe: BoundedMap::new(l.dedupe),
            flows: BoundedMap::new(l.flows),
            recent_flows: VecDeque::new(),
            hosts: BoundedMap::new(l.hosts),
            names: SharedNames::new(MAX_SHARED_NAMES),
            suppressions: Vec::new(),
            suppression_now: Timestamp::now(),
            history: None,
            defer_updates: false,
            defer_announcements: false,
            record_rows: true,
            watermark: Timestamp::MIN,
            obs_pos: None,
            listed_memo: skip::ListedMemo::default(),
            scratch: Scratch::default(),
            stats: EngineStats::default(),
        }
    }

    /// Consult `h` (the store) for `is_new` and incident continuity beyond memory.
    pub fn set_history(&mut self, h: Box<dyn History>) {
        self.history = Some(h);
    }

    /// Replaces the suppression rules; `now` (wall clock) decides which have expired.
    pub fn set_suppressions(&mut self, rules: Vec<Suppression>, now: Timestamp) {
        self.suppressions = rules;
        self.suppression_now = now;
    }

    /// Updates the wall clock used for suppression expiry.
    pub fn set_clock(&mut self, now: Timestamp) {
        self.suppression_now = now;
    }

    /// The engine's clock: the latest observation time (or tick) seen. Held incidents of an
    /// observation at `ts` are released once this passes `ts` + the reorder window.
    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            bindings: self.bindings.len(),
            ip_index: self.ip_index.len(),
            incidents: self.incidents.len(),
            dedupe: self.dedupe.len(),
            flows: self.flows.len(),
            infra: self.infra.servers_len(),
            recent_flows: self.recent_flows.len(),
            hosts: self.hosts.len(),
            held: self.held.len(),
            parked: self.incidents.parked_len(),
            answer_names: self.answer_names.len(),
            forwarded: self.infra.forwarded_len(),
            unnamed: self.unnamed.len(),
        }
    }

    /// Called by the pipeline after a durable flush: every update reported so far is in the
    /// store, so incidents evicted since the previous flush need not be kept in memory.
    pub fn persisted(&mut self) {
        self.incidents.persisted();
    }

    /// Deferred mode (the pipeline's): `Updated` reports are not copied into [`Changes`]; the
    /// incident is marked dirty and its latest state is taken once per flush
    /// ([`Engine::take_dirty`]), so a detection updated by many events costs one copy per flush,
    /// not one per event. `New` and `Upgraded` are still reported in `Changes` (announcements).
    pub fn set_deferred_updates(&mut self, on: bool) {
        self.defer_updates = on;
    }

    /// Also defer `New`/`Upgraded` (only their kind and stage go into [`Changes::deferred`]):
    /// for a pipeline nobody listens to (`scan`), where no copy of a detection is needed before
    /// it is written. Implies deferred updates.
    pub fn set_deferred_announcements(&mut self, on: bool) {
        self.defer_announcements = on;
        if on {
            self.defer_updates = true;
        }
    }

    /// Whether [`Changes`] carry the per-event rows: a [`Binding`] per pool answer and a
    /// [`PoolFlow`] per attributed flow report (default on). A pipeline whose store keeps no
    /// such rows (`scan` without `--db`, `DetectionStore::keeps_rows`) turns it off: the
    /// engine's own tables and the detections are unchanged, only the row copies (three strings
    /// per binding, one per flow) are not built.
    pub fn set_record_rows(&mut self, on: bool) {
        self.record_rows = on;
    }

    /// Hands unwritten detection state to `sink`: incidents evicted since the last flush
    /// (moved out of memory) and, with `live`, dirty incidents still in memory (copied). Call
    /// right before a flush, then [`Engine::persisted`] after it.
    pub fn take_dirty(&mut self, live: bool, sink: &mut dyn FnMut(Detection)) {
        self.incidents.take_dirty(live, sink);
    }

    /// Whether incidents hold state not yet handed out by [`Engine::take_dirty`].
    pub fn has_unwritten(&self) -> bool {
        self.incidents.has_unwritten()
    }

    /// End of input: moves every incident holding unwritten state to `sink`; the incident table
    /// is empty afterwards.
    pub fn take_all_dirty(&mut self, sink: &mut dyn FnMut(Detection)) {
        self.incidents.take_all_dirty(&mut |d| sink(*d));
    }

    /// Like [`Engine::take_all_dirty`], handing the detections over in their boxes (a store
    /// that keeps them as they are, `DetectionStore::write_boxed`).
    pub fn take_all_dirty_boxed(&mut self, sink: &mut dyn FnMut(Box<Detection>)) {
        self.incidents.take_all_dirty(sink);
    }

    /// True when the incidents evicted since the last flush fill half their table: flush soon
    /// (the pipeline does), or the oldest would have to be dropped.
    pub fn needs_flush(&self) -> bool {
        self.incidents.parked_pressure()
    }

    /// Whether `ip` is a resolver: configured (`--resolver`) or learned (answered queries of
    /// `infra::RESOLVER_MIN_CLIENTS` distinct clients). Its lookups are never reported; its
    /// flows are graded like any host's.
    pub fn is_infrastructure(&self, ip: IpAddr) -> bool {
        self.infra.is_resolver(ip)
    }

    /// Whether `ip` was configured or seen answering at least one query (not necessarily a
    /// resolver).
    pub fn is_dns_server(&self, ip: IpAddr) -> bool {
        self.infra.is_dns_server(ip)
    }

    /// Whether a lookup of `entry` by `client` at `ts` is a resolver's (exempt from reports).
    fn lookup_exempt(&self, client: IpAddr, entry: &str, ts: Timestamp) -> bool {
        self.infra.lookup_exempt(client, entry, ts)
    }

    fn sync_table_counters(&mut self) {
        let c = self.infra.counts();
        self.stats.resolvers_learned = c.learned;
        self.stats.infra_evicted = c.servers_evicted;
        self.stats.forwarded_evicted = c.forwarded_evicted;
        self.stats.answer_names_evicted = self.answer_names.evicted();
    }

    /// Like [`Engine::observe`], for an observation read at `pos` of a source that can be read
    /// again (a followed log): one a detection has counted already (at or before its mark for
    /// that source) changes no counts or evidence (`correlate::replay`).
    pub fn observe_at(&mut self, obs: &Observation, pos: Option<SourcePos>) -> Changes {
        self.set_next_position(pos);
        self.observe(obs)
    }

    /// Where the next observation handed to [`Engine::observe`] was read (it applies to that
    /// one only).
    pub fn set_next_position(&mut self, pos: Option<SourcePos>) {
        self.obs_pos = pos;
    }

    /// Feeds one observation; returns what changed (detections new/upgraded/updated, bindings,
    /// pool flows).
    pub fn observe(&mut self, obs: &Observation) -> Changes {
        match obs {
            Observation::Dns(d) => self.observe_dns(Cow::Borrowed(d)),
            Observation::Flow(f) => self.observe_flow(f),
        }
    }

    /// [`Engine::observe`] of an observation the caller gives up: the engine may keep its
    /// strings instead of copying them (issue #11: a pool lookup's name went into its evidence
    /// as a copy, and the observation's own was freed just after). The same changes as
    /// `observe(&obs)`.
    pub fn observe_owned(&mut self, obs: Observation) -> Changes {
        match obs {
            Observation::Dns(d) => self.observe_dns(Cow::Owned(d)),
            Observation::Flow(f) => self.observe_flow(&f),
        }
    }

    #[inline]
    fn observe_dns(&mut self, d: Cow<'_, DnsObservation>) -> Changes {
        let mut out = Changes::default();
        self.stats.dns += 1;
        let ts = d.ts;
        self.on_dns(d, &mut out);
        self.observed(ts, &mut out);
        out
    }

    #[inline]
    fn observe_flow(&mut self, f: &FlowObservation) -> Changes {
        let mut out = Changes::default();
        self.stats.flows += 1;
        self.on_flow(f, &mut out);
        self.observed(f.last_ts, &mut out);
        out
    }

    /// After each observation (and each message the packet fast path skipped, `skip.rs`): the
    /// clock moves to `ts` and releases what it passed.
    fn observed(&mut self, ts: Timestamp, out: &mut Changes) {
        // A position belongs to this observation only (the handlers take it).
        self.obs_pos = None;
        if ts > self.watermark {
            self.watermark = ts;
        }
        self.release_unnamed(self.watermark, out);
        self.release_held(self.watermark, out);
        self.sync_table_counters();
    }

    /// Advances time without an observation (live mode: call periodically with the wall clock)
    /// so that held incidents are reported even when traffic stops.
    pub fn tick(&mut self, now: Timestamp) -> Changes {
        let mut out = Changes::default();
        if now > self.watermark {
            self.watermark = now;
        }
        self.release_unnamed(self.watermark, &mut out);
        self.release_held(self.watermark, &mut out);
        self.expire_recent_flows();
        out
    }

    /// Reports every held incident now (end of input).
    pub fn drain(&mut self) -> Changes {
        let mut out = Changes::default();
        self.release_unnamed(Timestamp::MAX, &mut out);
        self.release_held(Timestamp::MAX, &mut out);
        out
    }
}
