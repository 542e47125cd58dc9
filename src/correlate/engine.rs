//! The correlation engine: pure logic over bounded in-memory state, no I/O.
//!
//! DNS observations whose query name (or a CNAME target) matches a pool list create *bindings*
//! (client, answer IP) → pool entry. Flows are graded against the client's own bindings, other
//! clients' bindings, listed pool IPs, the TLS SNI and Stratum payload. Each (client, pool entry)
//! incident is one [`Detection`], updated as stronger evidence arrives.

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};

use super::attribution::{flow_name, AnswerNames, Attribution, How, MAX_ANSWER_NAMES};
use super::bounded::BoundedMap;
use super::incidents::{Incident, IncidentKey, IncidentTable};
use super::infra::{Infra, MAX_FORWARDED};
use super::risk;
use crate::matcher::SharedBlocklists;
use crate::model::{
    Category, Detection, DetectionCounts, DnsObservation, Evidence, EvidenceKind, FlowObservation,
    FlowReport, FlowState, ListHit, Mitre, Observation, Proto, Rcode, Source, Stage, Timestamp,
    DETECTION_SCHEMA_VERSION, DETECTION_TITLE, KILL_CHAIN,
};
use crate::query::{Binding, Suppression};

// ---------------------------------------------------------------------------------------------
// Limits (named, with why)
// ---------------------------------------------------------------------------------------------

/// Live (client, answer IP) bindings. One mining client binds a handful; 200k covers a /16 of
/// busy clients while staying ~40 MB worst case.
pub const MAX_BINDINGS: usize = 200_000;
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

/// Durable knowledge the engine consults when its bounded memory does not have the answer
/// (implemented by `store::Store`, so `is_new` and incident continuity survive restarts).
pub trait History: Send {
    /// Latest `last_seen` of any detection of `client`, if one is recorded.
    fn last_detection(&self, client: IpAddr) -> Option<Timestamp>;
    /// The newest recorded detection of (`client`, `pool_domain`), to continue an incident.
    fn open_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection>;
    /// Like `open_incident`, for the engine to continue it. A store that [`History::hands_over`]
    /// gives up its copy (moves it out), and gets it back written by the pipeline.
    fn take_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection> {
        self.open_incident(client, pool_domain)
    }
    /// True when `take_incident` moves the detection out of the store (the in-memory store:
    /// one copy of an incident, never two).
    fn hands_over(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// What happened to a detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    /// A new incident (first report).
    New,
    /// The stage rose.
    Upgraded,
    /// Counts, evidence or last_seen changed.
    Updated,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DetectionUpdate {
    pub kind: UpdateKind,
    pub detection: Detection,
}

/// A flow that touched a bound or listed pool address: the evidence an analyst drills into.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolFlow {
    pub detection_id: String,
    pub client: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub proto: Proto,
    pub start: Timestamp,
    pub last: Timestamp,
    pub state: FlowState,
    pub report: FlowReport,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    pub duration_ms: u64,
    /// What the flow was graded as.
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub source: Source,
    /// Why the flow belongs to the pool: "own lookup", "tls sni", "http host", "address bound
    /// by another client's lookup", "listed pool address" or "stratum payload". Lets an analyst (and the
    /// bench gates) tell a flow that followed this client's own answer from a direct-IP one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
}

/// Everything one observation changed.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub detections: Vec<DetectionUpdate>,
    pub bindings: Vec<Binding>,
    pub flows: Vec<PoolFlow>,
    /// With deferred announcements ([`Engine::set_deferred_announcements`]): `New`/`Upgraded`
    /// reports kept in the incident, by kind and stage (for counters); the state itself is
    /// written at the next flush like a deferred update.
    pub deferred: Vec<(UpdateKind, Stage)>,
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
    sources: Vec<Source>,
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
    suppressions: Vec<Suppression>,
    suppression_now: Timestamp,
    history: Option<Box<dyn History>>,
    /// See [`Engine::set_deferred_updates`].
    defer_updates: bool,
    /// See [`Engine::set_deferred_announcements`].
    defer_announcements: bool,
    watermark: Timestamp,
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
            suppressions: Vec::new(),
            suppression_now: Timestamp::now(),
            history: None,
            defer_updates: false,
            defer_announcements: false,
            watermark: Timestamp::MIN,
            stats: EngineStats::default(),
        }
    }

    /// Consult `h` (the store) for `is_new` and incident continuity beyond memory.
    pub fn set_history(&mut self, h: Box<dyn History>) {
        self.history = Some(h);
    }

    /// Restores a binding recorded by an earlier run (the pipeline preloads the store's bindings
    /// on start, so a restart does not forget which addresses a client resolved).
    pub fn preload_binding(&mut self, b: &Binding) {
        let entry: Arc<str> = Arc::from(b.pool_domain.as_str());
        let qname: Arc<str> = Arc::from(b.qname.as_str());
        let list: Arc<str> = Arc::from(b.list.as_str());
        self.upsert_binding(
            b.client,
            b.ip,
            &entry,
            &qname,
            &list,
            (Category::Pool, 0),
            b.first_seen,
            b.ttl,
            b.expires,
            b.shared,
        );
        // A shared (CDN) address stays bound for its client only, as when it was first seen.
        if !b.shared
            && self
                .ip_index
                .get(&b.ip)
                .is_none_or(|o| o.expires < b.expires)
        {
            self.ip_index.insert(
                b.ip,
                IpBinding {
                    client: b.client,
                    hit: ListHit {
                        list: b.list.clone(),
                        entry: b.pool_domain.clone(),
                        category: Category::Pool,
                        line: 0,
                    },
                    first_seen: b.first_seen,
                    expires: b.expires,
                },
            );
        }
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

    /// Feeds one observation; returns what changed (detections new/upgraded/updated, bindings,
    /// pool flows).
    pub fn observe(&mut self, obs: &Observation) -> Changes {
        let mut out = Changes::default();
        match obs {
            Observation::Dns(d) => {
                self.stats.dns += 1;
                self.on_dns(d, &mut out);
            }
            Observation::Flow(f) => {
                self.stats.flows += 1;
                self.on_flow(f, &mut out);
            }
        }
        if obs.ts() > self.watermark {
            self.watermark = obs.ts();
        }
        self.release_unnamed(self.watermark, &mut out);
        self.release_held(self.watermark, &mut out);
        self.sync_table_counters();
        out
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

    // -----------------------------------------------------------------------------------------
    // DNS
    // -----------------------------------------------------------------------------------------

    fn on_dns(&mut self, d: &DnsObservation, out: &mut Changes) {
        // A server answering queries of several distinct clients is a resolver (its pool
        // lookups carry its clients' names); one answer proves nothing.
        self.infra.observe_answer(d);
        let lists = self.lists.load();
        let mut via_cname = false;
        let mut hit = lists.match_name(&d.qname).cloned();
        if hit.is_none() {
            hit = d
                .cname_targets()
                .take(32)
                .find_map(|t| lists.match_name(t).cloned());
            via_cname = hit.is_some();
        }
        drop(lists);
        let Some(hit) = hit else {
            self.shadow_bindings(d);
            self.remember_answer_names(d);
            return;
        };
        // The server was asked for this pool entry on the client's behalf: its own upstream
        // lookup of the entry is exempt (the forwarding exemption, `infra`).
        self.infra.note_question(d, &hit.entry);
        if self.is_infrastructure(d.client) {
            self.stats.infra_ignored += 1;
        }
        if via_cname {
            self.stats.cname_matches += 1;
        } else {
            self.stats.name_matches += 1;
        }

        let blocked = self.is_blocked(d);
        let duplicate = self.dedupe(d);
        let entry: Arc<str> = Arc::from(hit.entry.as_str());
        let stage = if blocked {
            Stage::BlockedLookup
        } else {
            Stage::Lookup
        };

        // Bindings first, so the incident's pool_ips include the answers.
        let mut answer_ips = Vec::new();
        if !blocked {
            let ttl_ts = d.response_ts().unwrap_or(d.ts);
            let qname: Arc<str> = Arc::from(d.qname.as_str());
            let list: Arc<str> = Arc::from(hit.list.as_str());
            for a in &d.answers {
                let Some(ip) = a.ip() else { continue };
                answer_ips.push(ip);
                let ttl = a.ttl.unwrap_or(DEFAULT_TTL).min(MAX_TTL);
                let expires = ttl_ts
                    .plus_secs(i64::from(ttl))
                    .plus_secs(self.cfg.binding_grace_secs);
                // Only the pool's own addresses may convict *other* clients (direct_ip). An
                // address whose A/AAAA owner is an unlisted name (a pool fronted by a CDN
                // through a CNAME) is shared with unrelated sites: it stays bound for this
                // client only, or every visitor of the CDN would be reported.
                let own_address = (a.name == d.qname && !via_cname) || {
                    let lists = self.lists.load();
                    lists.match_name(&a.name).is_some()
                };
                let b = self.upsert_binding(
                    d.client,
                    ip,
                    &entry,
                    &qname,
                    &list,
                    (hit.category, hit.line),
                    d.ts,
                    ttl,
                    expires,
                    !own_address,
                );
                out.bindings.push(b);
                if !own_address {
                    self.stats.shared_answer_ips = self.stats.shared_answer_ips.saturating_add(1);
                    continue;
                }
                if !self.ip_index.contains_key(&ip)
                    || self.ip_index.get(&ip).is_some_and(|o| o.expires < expires)
                {
                    self.ip_index.insert(
                        ip,
                        IpBinding {
                            client: d.client,
                            hit: hit.clone(),
                            first_seen: d.ts,
                            expires,
                        },
                    );
                }
            }
        }

        let key: IncidentKey = (d.client, entry);
        let ts = d.ts;
        let hold = ts.plus_secs(self.cfg.reorder_window_secs);
        let mut changed = self.ensure_incident(&key, ts, hold, out);
        let Some(inc) = self.incidents.get_mut_touch(&key) else {
            return;
        };
        let det = &mut inc.det;
        push_unique(&mut det.query_names, d.qname.clone(), MAX_QUERY_NAMES);
        push_unique(&mut det.sources, d.source.clone(), MAX_SOURCES);
        push_hit(&mut det.lists, &hit);
        for ip in &answer_ips {
            push_unique(&mut det.pool_ips, *ip, MAX_POOL_IPS);
        }
        if !duplicate {
            if blocked {
                det.counts.blocked_lookups = det.counts.blocked_lookups.saturating_add(1);
            } else {
                det.counts.lookups = det.counts.lookups.saturating_add(1);
            }
            let kind = if blocked {
                EvidenceKind::DnsBlocked
            } else {
                EvidenceKind::DnsLookup
            };
            let mut ev = Evidence::new(ts, kind, d.source.clone(), dns_summary(d, &hit, via_cname));
            ev.qname = Some(d.qname.clone());
            ev.rcode = d.rcode;
            ev.answers = answer_ips.iter().copied().take(MAX_POOL_IPS).collect();
            add_evidence(&mut det.evidence, ev);
            changed = true;
        } else if !answer_ips.is_empty() {
            // The duplicate may carry the answers the first source lacked (query-only log).
            if let Some(ev) = det
                .evidence
                .iter_mut()
                .find(|e| e.qname.as_deref() == Some(d.qname.as_str()) && e.answers.is_empty())
            {
                ev.answers = answer_ips.iter().copied().take(MAX_POOL_IPS).collect();
            }
            changed = true;
        }
        changed |= raise(inc, stage, ts);
        touch_time(&mut inc.det, ts);
        if changed {
            self.report(&key, out);
        }
        // A flow that arrived before its (skewed) DNS gets a second chance.
        if !answer_ips.is_empty() {
            self.recheck_recent(d.client, &answer_ips, d.ts, out);
        }
    }

    fn is_blocked(&self, d: &DnsObservation) -> bool {
        if d.rcode == Some(Rcode::NXDOMAIN) {
            return true;
        }
        if !d.answers_known {
            return false;
        }
        d.answer_ips()
            .any(|ip| ip.is_unspecified() || self.sinkholes.contains(&ip))
    }

    /// True when the same query (client, name, type) was already counted within the window;
    /// adds this observation's source to it either way.
    fn dedupe(&mut self, d: &DnsObservation) -> bool {
        let mut h = FxHasher::default();
        d.qname.hash(&mut h);
        let key = (d.client, h.finish(), d.qtype.0);
        let window = self.cfg.dedupe_window_secs.saturating_mul(1_000_000);
        if let Some(st) = self.dedupe.get_mut_touch(&key) {
            let near = d.ts.0.saturating_sub(st.ts.0).abs() <= window;
            let other_source = !st.sources.contains(&d.source);
            if near && other_source {
                if st.sources.len() < MAX_SOURCES {
                    st.sources.push(d.source.clone());
                }
                self.stats.duplicates += 1;
                return true;
            }
            st.ts = d.ts;
            st.sources.clear();
            st.sources.push(d.source.clone());
            return false;
        }
        self.dedupe.insert(
            key,
            DedupeState {
                ts: d.ts,
                sources: vec![d.source.clone()],
            },
        );
        false
    }

    /// A non-pool answer to a client that holds pool bindings for some of its addresses marks
    /// those bindings shadowed (see `BindingState::shadowed`). Costs one hash probe per answer
    /// address, and nothing while no binding exists.
    fn shadow_bindings(&mut self, d: &DnsObservation) {
        // Most clients never looked up a pool: one probe instead of parsing every answer.
        if d.answers.is_empty() || !self.bound_clients.contains_key(&d.client) {
            return;
        }
        for a in &d.answers {
            let Some(ip) = a.ip() else { continue };
            if let Some(b) = self.bindings.get_mut(&(d.client, ip)) {
                // The earliest shadowing answer counts: flows are reported when they end
                // (UDP at idle timeout), after later lookups of the same address.
                if d.ts >= b.last_seen && b.shadowed.is_none_or(|t| d.ts < t) {
                    b.shadowed = Some(d.ts);
                    self.stats.shadowed_bindings = self.stats.shadowed_bindings.saturating_add(1);
                }
            }
        }
    }

    /// Remembers, per (client, address), a non-pool answer naming a *pool* address: one
    /// bound by some client's pool lookup or listed (the shared-address rule: the client's own
    /// name for the address outranks another client's binding). Answers naming other
    /// addresses (nearly all) cost one probe of the per-IP index and of the address lists, not
    /// a table entry; an answer seen before its address became a pool address is not kept
    /// (the flow's SNI/Host still speaks for it). Measured: docs/arch/correlate.md.
    fn remember_answer_names(&mut self, d: &DnsObservation) {
        if d.answers.is_empty() || d.rcode != Some(Rcode::NOERROR) {
            return;
        }
        let ttl_ts = d.response_ts().unwrap_or(d.ts);
        let lists = self.lists.load();
        for a in d.answers.iter().take(MAX_NAMED_ANSWERS) {
            let Some(ip) = a.ip() else { continue };
            if ip.is_unspecified() || self.sinkholes.contains(&ip) {
                continue;
            }
            if !self.ip_index.contains_key(&ip) && lists.match_ip(ip, None).is_none() {
                continue;
            }
            let ttl = a.ttl.unwrap_or(DEFAULT_TTL).min(MAX_TTL);
            let expires = ttl_ts
                .plus_secs(i64::from(ttl))
                .plus_secs(self.cfg.binding_grace_secs);
            self.answer_names.record(d.client, ip, d.ts, expires);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn upsert_binding(
        &mut self,
        client: IpAddr,
        ip: IpAddr,
        entry: &Arc<str>,
        qname: &Arc<str>,
        list: &Arc<str>,
        hit: (Category, u32),
        ts: Timestamp,
        ttl: u32,
        expires: Timestamp,
        shared: bool,
    ) -> Binding {
        let key = (client, ip);
        if !self.bound_clients.contains_key(&client) {
            self.bound_clients.insert(client, ());
        }
        let st = match self.bindings.get_mut_touch(&key) {
            Some(b) => {
                b.last_seen = b.last_seen.max(ts);
                b.first_seen = b.first_seen.min(ts);
                b.expires = b.expires.max(expires);
                b.ttl = ttl;
                b.entry = entry.clone();
                b.qname = qname.clone();
                b.list = list.clone();
                b.category = hit.0;
                b.line = hit.1;
                b.shadowed = None;
                b.shared = shared;
                b.clone()
            }
            None => {
                let b = BindingState {
                    entry: entry.clone(),
                    qname: qname.clone(),
                    list: list.clone(),
                    category: hit.0,
                    line: hit.1,
                    first_seen: ts,
                    last_seen: ts,
                    ttl,
                    expires,
                    shadowed: None,
                    shared,
                };
                if self.bindings.insert(key, b.clone()).is_some() {
                    self.stats.evicted += 1;
                }
                b
            }
        };
        Binding {
            client,
            ip,
            pool_domain: st.entry.to_string(),
            qname: st.qname.to_string(),
            list: st.list.to_string(),
            first_seen: st.first_seen,
            last_seen: st.last_seen,
            ttl: st.ttl,
            expires: st.expires,
            shared: st.shared,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Flows
    // -----------------------------------------------------------------------------------------

    fn on_flow(&mut self, f: &FlowObservation, out: &mut Changes) {
        let fkey: FlowKey = (f.src, f.src_port, f.dst, f.dst_port, f.proto, f.ts);
        // A later report of a flow that was waiting for its name replaces the wait.
        if !self.unnamed.is_empty() {
            self.unnamed.remove(&fkey);
        }
        match self.attribute(f, true) {
            Grade::Pool(att) => self.apply_flow(f, att, out),
            Grade::Wait => {
                let deadline = f.last_ts.plus_secs(self.cfg.reorder_window_secs);
                let waiting = FlowObservation {
                    payload_out: Vec::new(),
                    payload_in: Vec::new(),
                    app: f.app.clone(),
                    source: f.source.clone(),
                    ..*f
                };
                if self.unnamed.insert(fkey, (deadline, waiting)).is_some() {
                    self.stats.unnamed_evicted = self.stats.unnamed_evicted.saturating_add(1);
                }
                self.unnamed_order.push_back((deadline, fkey));
                // The queue holds at most one live item per map entry plus stale ones.
                if self.unnamed_order.len() > self.unnamed.cap().saturating_mul(2) {
                    let live = &self.unnamed;
                    self.unnamed_order
                        .retain(|(d, k)| live.get(k).is_some_and(|(dl, _)| dl == d));
                }
            }
            Grade::None => self.remember_recent(f),
        }
    }

    /// Grades the flows that waited for their own name and got no later report within the
    /// reorder window (an unrecognised protocol, or a client that never spoke): as they are.
    fn release_unnamed(&mut self, upto: Timestamp, out: &mut Changes) {
        while let Some((deadline, key)) = self.unnamed_order.front().copied() {
            if deadline > upto {
                break;
            }
            self.unnamed_order.pop_front();
            let live = self.unnamed.get(&key).is_some_and(|(d, _)| *d == deadline);
            if !live {
                continue;
            }
            let Some((_, f)) = self.unnamed.remove(&key) else {
                continue;
            };
            if let Grade::Pool(att) = self.attribute(&f, false) {
                self.apply_flow(&f, att, out);
            }
        }
    }

    fn binding_valid(
        &self,
        b_first: Timestamp,
        b_expires: Timestamp,
        flow_start: Timestamp,
    ) -> bool {
        flow_start >= b_first.plus_secs(-self.cfg.reorder_window_secs) && flow_start <= b_expires
    }

    /// Attribution, first match wins (docs/detections.md, "Shared-address rule"):
    /// own binding → listed SNI/Host → (unless the flow's own name is a non-pool site)
    /// another client's binding → listed address; Stratum on the wire makes any of them
    /// `stratum`, or attributes to `stratum:<dst>`. DNS service traffic between DNS servers is
    /// not graded by bindings or addresses (resolver rule).
    fn attribute(&mut self, f: &FlowObservation, wait_allowed: bool) -> Grade {
        let established = matches!(f.state, FlowState::Established | FlowState::Closed);
        let contact = if established {
            Stage::Connection
        } else {
            Stage::ConnectionAttempt
        };
        let direct = if established {
            Stage::DirectIp
        } else {
            Stage::ConnectionAttempt
        };
        // The Stratum rule is capture's (`capture::payload`); logs say what their source says.
        let stratum = f.app.is_stratum();
        if stratum {
            self.stats.stratum_flows += 1;
        }
        // The flow's own name and whether it is a pool's (one list probe).
        let own_name = flow_name(f).map(|(name, how)| {
            let lists = self.lists.load();
            (name.to_string(), how, lists.match_name(name).cloned())
        });
        let names_other_site = own_name.as_ref().is_some_and(|(_, _, hit)| hit.is_none());
        // The capture reports a TCP flow once when it is established, before its first payload
        // (SNI, Host) is seen: such a flow has not told its own name yet. It is not convicted
        // by another client's binding (or a listed or shared address) now, but on its next
        // report, or when none came within the reorder window (see `release_unnamed`).
        let unnamed_yet = wait_allowed
            && !stratum
            && f.report == FlowReport::Interim
            && f.bytes_out == 0
            && f.payload_out.is_empty()
            && own_name.is_none()
            && !f.app.tls;
        let dns_service = !stratum && self.infra.is_dns_service_flow(f);
        if dns_service {
            self.stats.dns_service_flows = self.stats.dns_service_flows.saturating_add(1);
        }
        let mut att = None;
        let mut shared_own_waits = false;
        if let Some(b) = self.bindings.get(&(f.src, f.dst)) {
            let shadowed = !stratum && b.shadowed.is_some_and(|t| f.ts >= t);
            let usable = self.binding_valid(b.first_seen, b.expires, f.ts) && !shadowed;
            // A shared (CDN) address serves other sites: a flow naming one is not the pool's.
            let other_site = !stratum && b.shared && (names_other_site || unnamed_yet);
            shared_own_waits = usable && b.shared && unnamed_yet && !dns_service;
            if usable && !other_site && !dns_service {
                att = Some(Attribution {
                    hit: ListHit {
                        list: b.list.to_string(),
                        entry: b.entry.to_string(),
                        category: b.category,
                        line: b.line,
                    },
                    qname: Some(b.qname.to_string()),
                    stage: contact,
                    how: How::OwnLookup,
                });
            }
        }
        if att.is_none() {
            if let Some((name, how, Some(hit))) = &own_name {
                match how {
                    How::HttpHost => {
                        self.stats.http_host_matches =
                            self.stats.http_host_matches.saturating_add(1)
                    }
                    _ => self.stats.sni_matches += 1,
                }
                att = Some(Attribution {
                    hit: hit.clone(),
                    qname: Some(name.clone()),
                    stage: contact,
                    how: *how,
                });
            }
        }
        // Evidence of the flow's own name outranks another client's binding and an address
        // list: its SNI/Host, or this client's own non-pool DNS answer for the address.
        let own_non_pool = att.is_none()
            && !stratum
            && (names_other_site
                || self.answer_names.names_non_pool(
                    f.src,
                    f.dst,
                    f.ts,
                    self.cfg.reorder_window_secs,
                ));
        if att.is_none()
            && unnamed_yet
            && !dns_service
            && !own_non_pool
            && (shared_own_waits || self.would_convict(f))
        {
            self.stats.flows_waiting_for_name = self.stats.flows_waiting_for_name.saturating_add(1);
            return Grade::Wait;
        }
        let may_convict = att.is_none() && !dns_service && !own_non_pool;
        if may_convict {
            if let Some(o) = self.ip_index.get(&f.dst) {
                if o.client != f.src && self.binding_valid(o.first_seen, o.expires, f.ts) {
                    att = Some(Attribution {
                        hit: o.hit.clone(),
                        qname: None,
                        stage: direct,
                        how: How::OtherClientBinding,
                    });
                }
            }
        }
        if may_convict && att.is_none() {
            let lists = self.lists.load();
            if let Some(hit) = lists.match_ip(f.dst, Some(f.dst_port)) {
                self.stats.ip_matches += 1;
                att = Some(Attribution {
                    hit: hit.clone(),
                    qname: None,
                    stage: direct,
                    how: How::ListedAddress,
                });
            }
        }
        if own_non_pool && att.is_none() && self.would_convict(f) {
            self.stats.own_name_overrides = self.stats.own_name_overrides.saturating_add(1);
        }
        if stratum {
            let a = att.get_or_insert_with(|| Attribution {
                hit: ListHit {
                    list: "stratum".into(),
                    entry: format!("stratum:{}", f.dst),
                    category: Category::Pool,
                    line: 0,
                },
                qname: None,
                stage: Stage::Stratum,
                how: How::StratumPayload,
            });
            a.stage = Stage::Stratum;
        }
        match att {
            Some(a) => Grade::Pool(a),
            None => Grade::None,
        }
    }

    /// Whether another client's binding or an address list would have convicted the flow
    /// (for the `own_name_overrides` counter only).
    fn would_convict(&self, f: &FlowObservation) -> bool {
        let bound = self.ip_index.get(&f.dst).is_some_and(|o| {
            o.client != f.src && self.binding_valid(o.first_seen, o.expires, f.ts)
        });
        bound
            || self
                .lists
                .load()
                .match_ip(f.dst, Some(f.dst_port))
                .is_some()
    }

    fn apply_flow(&mut self, f: &FlowObservation, att: Attribution, out: &mut Changes) {
        let entry: Arc<str> = Arc::from(att.hit.entry.as_str());
        let key: IncidentKey = (f.src, entry);
        let ts = f.ts;

        // Interim reports of the same flow supersede each other.
        let fkey: FlowKey = (f.src, f.src_port, f.dst, f.dst_port, f.proto, f.ts);
        let established = matches!(f.state, FlowState::Established | FlowState::Closed);
        let stratum_method = f.app.stratum_method.clone();
        let stratum = stratum_method.is_some();
        let prev = self.flows.get(&fkey).copied();
        let seen = FlowSeen {
            bytes_out: f.bytes_out,
            bytes_in: f.bytes_in,
            established: established || prev.is_some_and(|p| p.established),
            stratum: stratum || prev.is_some_and(|p| p.stratum),
        };
        match self.flows.get_mut(&fkey) {
            Some(s) => *s = seen,
            None => {
                self.flows.insert(fkey, seen);
            }
        }

        self.ensure_incident(&key, ts, ts, out);
        let Some(inc) = self.incidents.get_mut_touch(&key) else {
            return;
        };
        let det_id = inc.det.id.clone();
        let det = &mut inc.det;
        match prev {
            None => {
                det.counts.flows = det.counts.flows.saturating_add(1);
            }
            Some(p) => {
                det.counts.bytes_out = det.counts.bytes_out.saturating_sub(p.bytes_out);
                det.counts.bytes_in = det.counts.bytes_in.saturating_sub(p.bytes_in);
            }
        }
        det.counts.bytes_out = det.counts.bytes_out.saturating_add(f.bytes_out);
        det.counts.bytes_in = det.counts.bytes_in.saturating_add(f.bytes_in);
        if established && !prev.is_some_and(|p| p.established) {
            det.counts.established_flows = det.counts.established_flows.saturating_add(1);
        }
        if stratum && !prev.is_some_and(|p| p.stratum) {
            det.counts.stratum_flows = det.counts.stratum_flows.saturating_add(1);
        }

        push_unique(&mut det.pool_ips, f.dst, MAX_POOL_IPS);
        push_unique(&mut det.dst_ports, f.dst_port, MAX_PORTS);
        push_unique(&mut det.sources, f.source.clone(), MAX_SOURCES);
        push_hit(&mut det.lists, &att.hit);
        if let Some(q) = &att.qname {
            if att.how.is_flow_name() {
                push_unique(&mut det.query_names, q.clone(), MAX_QUERY_NAMES);
            }
        }
        let agent = f
            .app
            .stratum_agent
            .as_deref()
            .map(|a| truncate(a, MAX_AGENT_LEN));
        if let Some(a) = &agent {
            push_unique(&mut det.agents, a.clone(), MAX_AGENTS);
        }
        if f.duration_us() >= risk::SUSTAINED_DURATION_US && established {
            inc.sustained = true;
        }

        let kind = if stratum {
            EvidenceKind::Stratum
        } else if att.how == How::TlsSni {
            EvidenceKind::TlsSni
        } else {
            EvidenceKind::Flow
        };
        let duration_ms = u64::try_from(f.duration_us() / 1000).unwrap_or(0);
        let mut ev = Evidence::new(
            f.ts,
            kind,
            f.source.clone(),
            flow_summary(f, &att, stratum_method.as_deref()),
        );
        ev.qname = att.qname.clone();
        ev.dst = Some(f.dst);
        ev.dst_port = Some(f.dst_port);
        ev.src_port = Some(f.src_port);
        ev.state = Some(f.state);
        ev.bytes_out = Some(f.bytes_out);
        ev.bytes_in = Some(f.bytes_in);
        ev.duration_ms = Some(duration_ms);
        ev.agent = agent.clone();
        ev.method = stratum_method.clone();
        supersede_or_add(&mut inc.det.evidence, ev);
        raise(inc, att.stage, ts);
        touch_time(&mut inc.det, f.last_ts.max(ts));

        out.flows.push(PoolFlow {
            detection_id: det_id,
            client: f.src,
            src_port: f.src_port,
            dst: f.dst,
            dst_port: f.dst_port,
            proto: f.proto,
            start: f.ts,
            last: f.last_ts,
            state: f.state,
            report: f.report,
            bytes_out: f.bytes_out,
            bytes_in: f.bytes_in,
            packets_out: f.packets_out,
            packets_in: f.packets_in,
            duration_ms,
            stage: att.stage,
            sni: f.app.sni.clone(),
            stratum_method,
            agent,
            source: f.source.clone(),
            attribution: Some(att.how.as_str().to_string()),
        });
        self.report(&key, out);
    }

    fn remember_recent(&mut self, f: &FlowObservation) {
        self.expire_recent_flows();
        if self.recent_flows.len() >= self.cfg.limits.recent_flows.max(1) {
            self.recent_flows.pop_front();
        }
        // Payload is only needed for the Stratum sniff, which already failed.
        self.recent_flows.push_back(FlowObservation {
            payload_out: Vec::new(),
            payload_in: Vec::new(),
            app: f.app.clone(),
            source: f.source.clone(),
            ..*f
        });
    }

    fn expire_recent_flows(&mut self) {
        let horizon = self.watermark.plus_secs(-self.cfg.reorder_window_secs);
        while self
            .recent_flows
            .front()
            .is_some_and(|f| f.last_ts < horizon)
        {
            self.recent_flows.pop_front();
        }
    }

    fn recheck_recent(
        &mut self,
        client: IpAddr,
        ips: &[IpAddr],
        _ts: Timestamp,
        out: &mut Changes,
    ) {
        if self.recent_flows.is_empty() {
            return;
        }
        let mut hits = Vec::new();
        self.recent_flows.retain(|f| {
            let m = f.src == client && ips.contains(&f.dst);
            if m {
                hits.push(f.clone());
            }
            !m
        });
        for f in hits {
            let mut sub = Changes::default();
            self.on_flow(&f, &mut sub);
            out.append(sub);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Incidents
    // -----------------------------------------------------------------------------------------

    /// Makes sure an open incident exists for `key`: kept in memory, reloaded from history, or
    /// created. Returns whether it was created.
    fn ensure_incident(
        &mut self,
        key: &IncidentKey,
        ts: Timestamp,
        hold_until: Timestamp,
        out: &mut Changes,
    ) -> bool {
        let gap = self.cfg.incident_gap_secs;
        let stale = self
            .incidents
            .get(key)
            .is_some_and(|i| ts > i.det.last_seen.plus_secs(gap));
        if stale {
            if let Some(old) = self.incidents.remove(key) {
                self.write_back(old, out);
            }
        }
        if self.incidents.contains_key(key) {
            return false;
        }
        // Evicted since the last flush: the store may not have it yet (see `incidents`).
        if let Some(inc) = self.incidents.unpark(key) {
            if ts <= inc.det.last_seen.plus_secs(gap) {
                self.stats.unparked = self.stats.unparked.saturating_add(1);
                self.admit(key.clone(), inc, out);
                return false;
            }
            self.write_back(inc, out);
        }
        let (reloaded, owned) = match self.history.as_ref() {
            Some(h) => (h.take_incident(key.0, &key.1), h.hands_over()),
            None => (None, false),
        };
        // A stale detection the store handed over must still go back (unchanged).
        let (reloaded, stale_back) = match reloaded {
            Some(d) if ts > d.last_seen.plus_secs(gap) => (None, owned.then_some(d)),
            other => (other, None),
        };
        if let Some(d) = stale_back {
            out.detections.push(DetectionUpdate {
                kind: UpdateKind::Updated,
                detection: d,
            });
        }
        let created = reloaded.is_none();
        let inc = match reloaded {
            Some(det) => Incident {
                max_base: risk::base(det.stage).max(if det.counts.lookups > 0 {
                    risk::RISK_LOOKUP
                } else {
                    0
                }),
                reported_stage: Some(det.stage),
                det,
                emitted: true,
                sustained: false,
                reported_gen: u64::MAX,
                // Handed over by the store: this is the only copy until it is written back.
                dirty: owned,
            },
            None => Incident {
                det: new_detection(key.0, &key.1, ts),
                emitted: false,
                reported_stage: None,
                max_base: 0,
                sustained: false,
                reported_gen: u64::MAX,
                dirty: false,
            },
        };
        if created {
            self.held.push_back((hold_until, key.clone()));
            // Held incidents are released by time; if time stalls (a flood within one
            // timestamp), report the oldest early rather than let the queue grow.
            while self.held.len() > self.cfg.limits.incidents.max(1) {
                let Some((_, k)) = self.held.pop_front() else {
                    break;
                };
                let pending = self.incidents.get(&k).filter(|i| !i.emitted);
                if let Some(first) = pending.map(|i| i.det.first_seen) {
                    if self.lookup_exempt(k.0, &k.1, first) {
                        self.incidents.remove(&k);
                    } else {
                        self.report_force(&k, out);
                    }
                }
            }
        }
        self.admit(key.clone(), inc, out);
        created
    }

    /// An incident leaving memory for good (a new one replaces it): its unwritten state, if
    /// any, goes out as an update.
    fn write_back(&mut self, inc: Incident, out: &mut Changes) {
        if inc.dirty {
            out.detections.push(DetectionUpdate {
                kind: UpdateKind::Updated,
                detection: inc.det,
            });
        }
    }

    /// Puts an incident into the live table. The incident evicted to make room is reported if
    /// it never was, and parked if the store may not have its latest state yet, so its next
    /// event continues it instead of opening a second detection.
    fn admit(&mut self, key: IncidentKey, inc: Incident, out: &mut Changes) {
        let Some((ek, mut ev)) = self.incidents.insert(key, inc) else {
            return;
        };
        self.stats.evicted += 1;
        // An evicted incident that was never reported is reported now, not lost.
        if !ev.emitted {
            // (Only lookup-only incidents wait unreported: a resolver's are dropped.)
            if self.lookup_exempt(ek.0, &ek.1, ev.det.first_seen) {
                return;
            }
            self.finish_new(&mut ev);
            ev.reported_gen = self.incidents.generation();
            if self.defer_announcements {
                out.deferred.push((UpdateKind::New, ev.det.stage));
                ev.dirty = true;
            } else {
                out.detections.push(DetectionUpdate {
                    kind: UpdateKind::New,
                    detection: ev.det.clone(),
                });
            }
        }
        if self.incidents.park(ek, ev) {
            self.stats.parked_dropped = self.stats.parked_dropped.saturating_add(1);
        }
    }

    /// Emits the incident's current state if it is reportable.
    fn report(&mut self, key: &IncidentKey, out: &mut Changes) {
        let Some(inc) = self.incidents.get(key) else {
            return;
        };
        if !inc.emitted {
            // Lookup-only incidents wait for the reorder window (see `reorder_window_secs`).
            // Contact is reported at once, whoever the host is: a resolver's own flows are
            // graded like any host's (resolver rule).
            if inc.det.stage.is_contact() {
                self.report_force(key, out);
            }
            return;
        }
        self.refresh_suppression(key);
        let gen = self.incidents.generation();
        let Some(inc) = self.incidents.get_mut(key) else {
            return;
        };
        let kind = if inc.reported_stage.is_some_and(|s| inc.det.stage > s) {
            UpdateKind::Upgraded
        } else {
            UpdateKind::Updated
        };
        inc.reported_stage = Some(inc.det.stage);
        inc.reported_gen = gen;
        let client = key.0;
        let last = inc.det.last_seen;
        if self.defer_updates && kind == UpdateKind::Updated {
            self.stats.deferred_updates = self.stats.deferred_updates.saturating_add(1);
            self.incidents.mark_dirty(key);
        } else if self.defer_announcements {
            out.deferred.push((kind, inc.det.stage));
            self.incidents.mark_dirty(key);
        } else {
            // This copy carries the latest state: nothing is left unwritten.
            inc.dirty = false;
            out.detections.push(DetectionUpdate {
                kind,
                detection: inc.det.clone(),
            });
        }
        self.note_host(client, last);
    }

    fn refresh_suppression(&mut self, key: &IncidentKey) {
        let now = self.suppression_now;
        let rule = self
            .suppressions
            .iter()
            .find(|s| s.covers(key.0, &key.1, now))
            .map(|s| s.id.clone());
        if let Some(inc) = self.incidents.get_mut(key) {
            if let Some(id) = rule {
                inc.det.suppressed = true;
                inc.det.suppression_id = Some(id);
            }
        }
    }

    /// Completes a first report: score, `is_new`, host bookkeeping.
    fn finish_new(&mut self, inc: &mut Incident) {
        let client = inc.det.client_ip;
        let prior = self
            .hosts
            .get(&client)
            .copied()
            .or_else(|| self.history.as_ref().and_then(|h| h.last_detection(client)));
        let horizon = inc.det.first_seen.plus_secs(-self.cfg.lookback_secs);
        inc.det.is_new = prior.is_none_or(|p| p < horizon);
        inc.emitted = true;
        inc.reported_stage = Some(inc.det.stage);
        let now = self.suppression_now;
        if let Some(s) = self
            .suppressions
            .iter()
            .find(|s| s.covers(client, &inc.det.pool_domain, now))
        {
            inc.det.suppressed = true;
            inc.det.suppression_id = Some(s.id.clone());
        }
        self.note_host(client, inc.det.last_seen);
    }

    fn note_host(&mut self, client: IpAddr, last: Timestamp) {
        match self.hosts.get_mut_touch(&client) {
            Some(t) => *t = (*t).max(last),
            None => {
                self.hosts.insert(client, last);
            }
        }
    }

    fn release_held(&mut self, upto: Timestamp, out: &mut Changes) {
        while let Some((t, _)) = self.held.front() {
            if *t > upto {
                break;
            }
            let Some((_, key)) = self.held.pop_front() else {
                break;
            };
            let Some(first) = self
                .incidents
                .get(&key)
                .filter(|i| !i.emitted)
                .map(|i| i.det.first_seen)
            else {
                continue;
            };
            // A resolver's lookup (or a lookup forwarded for another client) is not reported.
            if self.lookup_exempt(key.0, &key.1, first) {
                self.incidents.remove(&key);
                self.stats.infra_dropped_incidents += 1;
                continue;
            }
            self.report_force(&key, out);
        }
    }

    fn report_force(&mut self, key: &IncidentKey, out: &mut Changes) {
        self.refresh_suppression(key);
        let Some(mut inc) = self.incidents.remove(key) else {
            return;
        };
        self.finish_new(&mut inc);
        inc.reported_gen = self.incidents.generation();
        if self.defer_announcements {
            out.deferred.push((UpdateKind::New, inc.det.stage));
            inc.dirty = true;
            self.incidents.insert(key.clone(), inc);
            return;
        }
        inc.dirty = false;
        let det = inc.det.clone();
        self.incidents.insert(key.clone(), inc);
        out.detections.push(DetectionUpdate {
            kind: UpdateKind::New,
            detection: det,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Raises the stage (never lowers it) and re-scores. Returns whether anything changed.
fn raise(inc: &mut Incident, stage: Stage, ts: Timestamp) -> bool {
    let mut changed = false;
    if stage > inc.det.stage || inc.max_base == 0 {
        if stage > inc.det.stage {
            inc.det.stage = stage;
            inc.det.stage_changed = Some(ts);
        }
        changed = true;
    }
    inc.max_base = inc.max_base.max(risk::base(stage));
    let score = risk::score(
        inc.max_base,
        &inc.det.counts,
        !inc.det.agents.is_empty(),
        inc.sustained,
    );
    if score != inc.det.risk_score {
        inc.det.risk_score = score;
        changed = true;
    }
    changed
}

fn touch_time(det: &mut Detection, ts: Timestamp) {
    if ts < det.first_seen {
        det.first_seen = ts;
    }
    if ts > det.last_seen {
        det.last_seen = ts;
    }
}

fn new_detection(client: IpAddr, entry: &str, ts: Timestamp) -> Detection {
    Detection {
        id: detection_id(client, entry, ts),
        client_ip: client,
        stage: Stage::Lookup,
        risk_score: 0,
        pool_domain: entry.to_string(),
        query_names: Vec::new(),
        pool_ips: Vec::new(),
        dst_ports: Vec::new(),
        first_seen: ts,
        last_seen: ts,
        is_new: true,
        evidence: Vec::new(),
        sources: Vec::new(),
        lists: Vec::new(),
        mitre: Mitre::default(),
        kill_chain: KILL_CHAIN.to_string(),
        title: DETECTION_TITLE.to_string(),
        counts: DetectionCounts::default(),
        agents: Vec::new(),
        suppressed: false,
        suppression_id: None,
        stage_changed: None,
        schema_version: DETECTION_SCHEMA_VERSION,
        retro: false,
    }
}

/// `<first_seen µs, 16 hex><hash of client+entry, 8 hex>`: unique per incident, sorts by time.
pub fn detection_id(client: IpAddr, entry: &str, first_seen: Timestamp) -> String {
    let mut h = FxHasher::default();
    client.hash(&mut h);
    entry.hash(&mut h);
    first_seen.0.hash(&mut h);
    format!("{:016x}{:08x}", first_seen.0 as u64, h.finish() as u32)
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T, cap: usize) {
    if v.len() < cap && !v.contains(&x) {
        v.push(x);
    }
}

/// Adds a list hit unless the same (list, entry) is already there.
fn push_hit(v: &mut Vec<ListHit>, hit: &ListHit) {
    if v.len() < MAX_LISTS && !v.iter().any(|h| h.list == hit.list && h.entry == hit.entry) {
        v.push(hit.clone());
    }
}

fn strength(e: &Evidence) -> u8 {
    match e.kind {
        EvidenceKind::Stratum => 5,
        EvidenceKind::Flow | EvidenceKind::TlsSni
            if matches!(e.state, Some(FlowState::Established | FlowState::Closed)) =>
        {
            4
        }
        EvidenceKind::TlsSni => 3,
        EvidenceKind::Flow => 2,
        EvidenceKind::DnsLookup => 1,
        EvidenceKind::DnsBlocked => 0,
    }
}

/// Keeps the first few items and, in the remaining slots, the strongest.
fn add_evidence(v: &mut Vec<Evidence>, ev: Evidence) {
    if v.len() < MAX_EVIDENCE {
        v.push(ev);
        return;
    }
    let new_s = strength(&ev);
    let weakest = v
        .iter()
        .enumerate()
        .skip(EVIDENCE_KEEP_FIRST)
        .min_by_key(|(_, e)| strength(e))
        .map(|(i, e)| (i, strength(e)));
    if let Some((i, s)) = weakest {
        if s < new_s {
            v.remove(i);
            v.push(ev);
        }
    }
}

/// A later report of the same flow replaces the earlier item; otherwise the item is added.
fn supersede_or_add(v: &mut Vec<Evidence>, ev: Evidence) {
    let same = v.iter_mut().find(|e| {
        matches!(
            e.kind,
            EvidenceKind::Flow | EvidenceKind::TlsSni | EvidenceKind::Stratum
        ) && e.ts == ev.ts
            && e.src_port == ev.src_port
            && e.dst == ev.dst
            && e.dst_port == ev.dst_port
    });
    let Some(e) = same else {
        add_evidence(v, ev);
        return;
    };
    // Keep the strongest kind seen for this flow (an interim Stratum stays Stratum).
    let keep_kind = (strength(e) > strength(&ev)).then_some(e.kind);
    let method = e.method.take();
    let agent = e.agent.take();
    *e = ev;
    if let Some(k) = keep_kind {
        e.kind = k;
    }
    if e.method.is_none() {
        e.method = method;
    }
    if e.agent.is_none() {
        e.agent = agent;
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_string()
}

fn dns_summary(d: &DnsObservation, hit: &ListHit, via_cname: bool) -> String {
    let mut s = format!("{} {}", d.qtype, d.qname);
    match d.rcode {
        Some(r) if r != Rcode::NOERROR => s.push_str(&format!(" -> {r}")),
        Some(_) => {
            let ips: Vec<String> = d.answer_ips().take(4).map(|i| i.to_string()).collect();
            if !ips.is_empty() {
                s.push_str(&format!(" -> {}", ips.join(", ")));
            }
            if let Some(ttl) = d.answers.iter().find_map(|a| a.ttl) {
                s.push_str(&format!(" (ttl {ttl})"));
            }
        }
        None => s.push_str(" (no answer seen)"),
    }
    if via_cname {
        s.push_str(&format!(" via CNAME under {}", hit.entry));
    }
    s
}

fn flow_summary(f: &FlowObservation, att: &Attribution, method: Option<&str>) -> String {
    let state = match f.state {
        FlowState::Attempted => "attempted",
        FlowState::Rejected => "rejected",
        FlowState::Established => "established",
        FlowState::Closed => "closed",
    };
    let proto = match f.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let mut s = format!(
        "{proto} {}:{} -> {}:{} {state} ({}), {} B out / {} B in",
        f.src,
        f.src_port,
        f.dst,
        f.dst_port,
        att.how.as_str(),
        f.bytes_out,
        f.bytes_in
    );
    if let Some(m) = method {
        s.push_str(&format!(", stratum {m}"));
    }
    if let Some(a) = &f.app.stratum_agent {
        s.push_str(&format!(", agent {}", truncate(a, 64)));
    }
    if let Some(sni) = &f.app.sni {
        s.push_str(&format!(", sni {sni}"));
    } else if let Some(host) = &f.app.http_host {
        s.push_str(&format!(", host {host}"));
    }
    s
}
