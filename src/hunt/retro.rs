//! The retro-hunt: when list entries are added, search the history for them, synthesise the
//! historical observations (lookups and flows, in time order) and run them through a fresh
//! [`Engine`] over the current lists, so the correlation rules live in one place. Detections
//! of the added entries are marked `retro`, their evidence says it came from history, and they
//! are merged into the store through the [`RetroSink`] port (create or upgrade, never delete).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::encode::{self as enc, QTYPE_A, QTYPE_AAAA};
use super::metrics::RetroMetrics;
use super::recorder::Recorder;
use super::search::{self, Found, FoundFlow, FoundLookup, Target};
use super::HuntError;
use crate::correlate::infra::RESOLVER_MIN_CLIENTS;
use crate::correlate::{Engine, EngineConfig};
use crate::matcher::{Blocklists, SharedBlocklists};
use crate::model::{
    AppInfo, Category, Detection, Direction, DnsAnswer, DnsObservation, FlowObservation,
    FlowReport, FlowState, ListHit, Observation, Proto, Rcode, RrType, Source, Transport,
};
use crate::ports::{HistoryKv, RetroMerge, RetroSink, StopToken};
use crate::query::Suppression;

/// Added entries searched per list change; a change adding more (a new feed) searches the
/// first ones and counts the rest (`poolwatch_retro_entries_skipped_total`).
pub const MAX_RETRO_ENTRIES: usize = 10_000;
/// Observations replayed per retro-hunt (all entries of one change together).
pub const MAX_RETRO_OBSERVATIONS: usize = 500_000;
/// How often the worker looks for a new list set.
pub const RETRO_POLL: Duration = Duration::from_millis(250);
/// Prefix of every retro evidence summary.
pub const EVIDENCE_PREFIX: &str = "from history: ";

/// What one retro-hunt did.
#[derive(Clone, Debug, Default)]
pub struct RetroReport {
    pub entries: usize,
    pub skipped_entries: usize,
    pub observations: usize,
    /// The detections found (as merged).
    pub detections: Vec<Detection>,
    pub merge: RetroMerge,
    pub truncated: bool,
    pub elapsed: Duration,
}

/// List entries in `new` that `old` did not have (allow-list entries never start a hunt).
pub fn added_entries(old: &Blocklists, new: &Blocklists) -> Vec<ListHit> {
    let before: HashSet<(&str, Category)> = old
        .name_entries()
        .iter()
        .chain(old.ip_entries())
        .map(|h| (h.entry.as_str(), h.category))
        .collect();
    new.name_entries()
        .iter()
        .chain(new.ip_entries())
        .filter(|h| h.category != Category::Allow)
        .filter(|h| !before.contains(&(h.entry.as_str(), h.category)))
        .cloned()
        .collect()
}

/// How the retro engine is set up: the live engine's configuration and suppression rules.
pub struct RetroEngine<'a> {
    pub config: &'a EngineConfig,
    pub suppressions: Vec<Suppression>,
}

/// The retro-hunt of `added` over the whole history, with `lists` (the current set) and the
/// live engine's configuration and suppressions; merges what it finds into `sink`.
pub fn retro_hunt(
    kv: &dyn HistoryKv,
    sink: &dyn RetroSink,
    lists: Arc<Blocklists>,
    added: &[ListHit],
    live: &RetroEngine<'_>,
) -> Result<RetroReport, HuntError> {
    let started = Instant::now();
    let metrics = RetroMetrics::get();
    metrics.runs.inc();
    let mut report = RetroReport::default();
    let entries: Vec<&ListHit> = added.iter().take(MAX_RETRO_ENTRIES).collect();
    report.entries = entries.len();
    report.skipped_entries = added.len() - entries.len();
    metrics.entries.add(entries.len() as u64);
    metrics.entries_skipped.add(report.skipped_entries as u64);
    let days = search::days_between(kv, 0, u32::MAX)?;
    let mut obs = Vec::new();
    let mut seen_lookups = HashSet::new();
    let mut seen_flows = HashSet::new();
    for hit in &entries {
        let Ok(target) = Target::parse(&hit.entry) else {
            continue;
        };
        let found = search::collect(kv, &target, &days)?;
        report.truncated |= found.truncated;
        synthesise(&found, &mut seen_lookups, &mut seen_flows, &mut obs);
        if obs.len() >= MAX_RETRO_OBSERVATIONS {
            report.truncated = true;
            obs.truncate(MAX_RETRO_OBSERVATIONS);
            break;
        }
    }
    // Lookups before flows at the same instant, like the inputs' own order.
    obs.sort_by_key(|o| (o.ts(), u8::from(matches!(o, Observation::Flow(_)))));
    report.observations = obs.len();
    metrics.observations.add(obs.len() as u64);

    let mut cfg = live.config.clone();
    for r in search::resolvers(kv, &days, RESOLVER_MIN_CLIENTS)? {
        if !cfg.resolvers.contains(&r) {
            cfg.resolvers.push(r);
        }
    }
    let wanted: HashSet<&str> = entries.iter().map(|h| h.entry.as_str()).collect();
    let mut engine = Engine::new(cfg, Arc::new(arc_swap::ArcSwap::new(lists)));
    // The live rules, judged at the wall clock like the live engine's (an expired rule
    // suppresses nothing).
    engine.set_suppressions(live.suppressions.clone(), crate::model::Timestamp::now());
    let mut dets: HashMap<String, Detection> = HashMap::new();
    let mut keep = |d: Detection| {
        if wanted.contains(d.pool_domain.as_str()) {
            dets.insert(d.id.clone(), d);
        }
    };
    for o in &obs {
        for u in engine.observe(o).detections {
            keep(u.detection);
        }
    }
    for u in engine.drain().detections {
        keep(u.detection);
    }
    engine.take_all_dirty(&mut keep);
    let mut found: Vec<Detection> = dets.into_values().map(mark_retro).collect();
    found.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
    if !found.is_empty() {
        report.merge = sink.merge_retro(&found).map_err(HuntError::Store)?;
    }
    metrics.created.add(report.merge.created);
    metrics.upgraded.add(report.merge.upgraded);
    report.detections = found;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn mark_retro(mut d: Detection) -> Detection {
    d.retro = true;
    for e in &mut d.evidence {
        if !e.summary.starts_with(EVIDENCE_PREFIX) {
            e.summary = format!("{EVIDENCE_PREFIX}{}", e.summary);
        }
    }
    d
}

fn history_source(day: u32) -> Source {
    Source::new(format!("history:{}", enc::day_label(day)))
}

/// Observations equivalent to what the history kept of `found` (deduplicated across entries).
fn synthesise(
    found: &Found,
    seen_lookups: &mut HashSet<(u32, String, IpAddr)>,
    seen_flows: &mut HashSet<enc::FlowKey>,
    out: &mut Vec<Observation>,
) {
    for l in &found.lookups {
        if l.folded || !seen_lookups.insert((l.day, l.qname.clone(), l.client)) {
            continue;
        }
        lookups_of(l, out);
    }
    for f in &found.flows {
        if seen_flows.insert(f.key) {
            out.push(Observation::Flow(flow_of(f)));
        }
    }
}

fn lookups_of(l: &FoundLookup, out: &mut Vec<Observation>) {
    let src = history_source(l.day);
    let empty = enc::NameSummary::default();
    let s = l.summary.as_ref().unwrap_or(&empty);
    let ttl = (s.min_ttl > 0).then_some(s.min_ttl);
    // The CNAME chain from the name asked, then the addresses, owned by the chain's end.
    let mut chain = Vec::new();
    let mut owner = l.qname.clone();
    for c in &s.cnames {
        chain.push(DnsAnswer {
            name: owner.clone(),
            rtype: RrType::CNAME,
            ttl,
            data: c.clone(),
        });
        owner = c.clone();
    }
    let rcode = l.row.rcode.or(s.rcode).map(Rcode);
    let mut qtypes = Vec::new();
    if l.row.qtypes & QTYPE_A != 0 || l.row.qtypes & (QTYPE_A | QTYPE_AAAA) == 0 {
        qtypes.push(RrType::A);
    }
    if l.row.qtypes & QTYPE_AAAA != 0 {
        qtypes.push(RrType::AAAA);
    }
    let mut times = vec![enc::at(l.day, l.row.first_ms)];
    // A second lookup at the last time keeps a binding alive for flows late in the day.
    if l.row.count > 1 && l.row.last_ms.saturating_sub(l.row.first_ms) > 2_000 {
        times.push(enc::at(l.day, l.row.last_ms));
    }
    for qtype in qtypes {
        let mut answers = chain.clone();
        for ip in &s.answers {
            let rtype = if ip.is_ipv4() {
                RrType::A
            } else {
                RrType::AAAA
            };
            if rtype == qtype {
                answers.push(DnsAnswer {
                    name: owner.clone(),
                    rtype,
                    ttl,
                    data: ip.to_string(),
                });
            }
        }
        for &ts in &times {
            out.push(Observation::Dns(DnsObservation {
                ts,
                client: l.client,
                client_port: None,
                server: None,
                server_port: None,
                transport: Transport::Udp,
                id: None,
                qname: l.qname.clone(),
                qtype,
                rcode,
                answers_known: s.answered || !answers.is_empty(),
                answers: answers.clone(),
                query_seen: true,
                rtt_us: None,
                truncated: false,
                salvaged: None,
                source: src.clone(),
            }));
        }
    }
}

fn flow_of(f: &FoundFlow) -> FlowObservation {
    let s = &f.summary;
    let k = &f.key;
    let state = if s.established {
        FlowState::Closed
    } else if s.rejected {
        FlowState::Rejected
    } else {
        FlowState::Attempted
    };
    let stratum_method = match (&s.stratum_method, s.stratum) {
        (Some(m), _) => Some(m.clone()),
        (None, true) => Some("login".to_string()),
        (None, false) => None,
    };
    FlowObservation {
        ts: enc::at(k.day, s.first_ms),
        last_ts: enc::at(k.day, s.last_ms.max(s.first_ms)),
        src: k.client,
        src_port: s.src_port,
        dst: k.dst,
        dst_port: k.port,
        proto: if k.tcp { Proto::Tcp } else { Proto::Udp },
        direction: Direction::Originator,
        state,
        report: FlowReport::Final,
        bytes_out: s.bytes_out,
        bytes_in: s.bytes_in,
        packets_out: s.count.max(1),
        packets_in: u64::from(s.established) * s.count.max(1),
        payload_out: Vec::new(),
        payload_in: Vec::new(),
        app: AppInfo {
            stratum_method,
            stratum_agent: s.agent.clone(),
            stratum_login: None,
            sni: s.sni.clone(),
            tls: s.tls,
            http_host: s.http_host.clone(),
        },
        source: history_source(k.day),
    }
}

/// Runs a retro-hunt whenever the shared list set gains entries (API edit, feed refresh, file
/// reload: every change swaps the set), on its own thread.
pub struct RetroWorker {
    stop: StopToken,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// Where the retro engine reads the suppression rules (the live pipeline's: the store's).
pub type SuppressionRules = Arc<dyn Fn() -> Result<Vec<Suppression>, String> + Send + Sync>;

/// What the worker needs.
pub struct RetroDeps {
    pub lists: SharedBlocklists,
    pub kv: Arc<dyn HistoryKv>,
    pub sink: Arc<dyn RetroSink>,
    /// Flushed before each hunt, so the hunt sees everything recorded so far.
    pub recorder: Option<Arc<Recorder>>,
    pub engine: EngineConfig,
    /// Read before each hunt and applied by the retro engine as by the live one (a
    /// suppressed detection is stored and sent only where suppressed ones are).
    pub suppressions: Option<SuppressionRules>,
}

impl RetroWorker {
    pub fn spawn(deps: RetroDeps) -> std::io::Result<RetroWorker> {
        let stop = StopToken::new();
        let s = stop.clone();
        // The set diffed against is the one current now, not when the thread gets to run: a
        // change made right after `spawn` returns is hunted.
        let current = deps.lists.load_full();
        let handle = std::thread::Builder::new()
            .name("retro-hunt".into())
            .spawn(move || worker(deps, current, s))?;
        Ok(RetroWorker {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the worker (a hunt in progress finishes first).
    pub fn stop(mut self) {
        self.stop.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RetroWorker {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

fn worker(deps: RetroDeps, mut current: Arc<Blocklists>, stop: StopToken) {
    // The service's one stop signal: a stop wakes the wait at once, not after a poll.
    while !stop.wait_timeout(RETRO_POLL) {
        let next = deps.lists.load_full();
        if Arc::ptr_eq(&next, &current) {
            continue;
        }
        let added = added_entries(&current, &next);
        current = next;
        RetroMetrics::get().list_changes.inc();
        if added.is_empty() {
            continue;
        }
        if let Some(r) = &deps.recorder {
            if let Err(e) = r.flush() {
                tracing::warn!(error = %e, "history flush before the retro-hunt failed");
            }
        }
        let names: BTreeSet<&str> = added.iter().take(8).map(|h| h.entry.as_str()).collect();
        let rules = match &deps.suppressions {
            Some(f) => f(),
            None => Ok(Vec::new()),
        };
        let result = rules.map_err(HuntError::Store).and_then(|rules| {
            retro_hunt(
                deps.kv.as_ref(),
                deps.sink.as_ref(),
                current.clone(),
                &added,
                &RetroEngine {
                    config: &deps.engine,
                    suppressions: rules,
                },
            )
        });
        match result {
            Ok(r) => tracing::info!(
                entries = r.entries,
                first_entries = ?names,
                observations = r.observations,
                created = r.merge.created,
                upgraded = r.merge.upgraded,
                truncated = r.truncated,
                ms = r.elapsed.as_millis() as u64,
                "retro-hunt finished"
            ),
            Err(e) => {
                RetroMetrics::get().errors.inc();
                tracing::error!(error = %e, "retro-hunt failed");
            }
        }
        // After the merge (and its flush): what is counted here is visible in the store.
        RetroMetrics::get().finished.inc();
    }
}
