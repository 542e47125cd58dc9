//! Reading the history: everything it holds about one domain (suffix semantics, like a list
//! entry) or one address / CIDR / endpoint, as decoded rows ([`Found`]). The hunt report and
//! the retro-hunt's synthesised observations are both made from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::encode::{
    self as enc, ClientRow, FlowBlock, FlowKey, FlowSummary, NameBlock, NameSummary,
    KIND_FLOW_NAME, KIND_LOOKUP, KIND_VIA_CNAME,
};
use super::recorder::{merge_client, merge_flow, merge_summary};
use super::HuntError;
use crate::model::normalize_name;
use crate::ports::{HistoryKv, HistoryTree, Row};

/// Blocks read per prefix or range scan; a day that holds more is reported `truncated`.
pub const MAX_SCAN_ROWS: usize = 50_000;
/// Lookups and flows collected per search (all days together).
pub const MAX_FOUND: usize = 100_000;
/// Days searched at most (the retention bounds this already; a guard against a bad `since`).
pub const MAX_DAYS: usize = 400;

/// What to search for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A domain and everything below it (normalised).
    Domain(String),
    /// Destinations inside a network, optionally one port.
    Net(IpNet, Option<u16>),
}

impl Target {
    /// A domain, an address, a CIDR or `ip:port` (`[v6]:port`).
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty target".into());
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Target::Net(IpNet::from(sa.ip()), Some(sa.port())));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Target::Net(IpNet::from(ip), None));
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Target::Net(net.trunc(), None));
        }
        let name = normalize_name(s);
        if !enc::storable_name(&name) || name.contains('/') || name.contains(':') {
            return Err(format!(
                "{s:?} is neither a domain nor an IP address, CIDR or ip:port"
            ));
        }
        Ok(Target::Domain(name))
    }
}

/// One lookup row found.
#[derive(Clone, Debug)]
pub struct FoundLookup {
    pub day: u32,
    /// The name the client asked for.
    pub qname: String,
    pub client: IpAddr,
    pub row: ClientRow,
    /// The summary of `qname` that day (answers, CNAME chain, TTL).
    pub summary: Option<NameSummary>,
    /// The listed name reached through `qname`'s CNAME chain.
    pub via_cname: Option<String>,
    /// A `*.zone` row (the zone had too many names that day): approximate.
    pub folded: bool,
}

/// Why a flow was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowWhy {
    Answer,
    Sni,
    HttpHost,
    Address,
}

impl FlowWhy {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowWhy::Answer => "answer",
            FlowWhy::Sni => "sni",
            FlowWhy::HttpHost => "http_host",
            FlowWhy::Address => "address",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FoundFlow {
    pub key: FlowKey,
    pub summary: FlowSummary,
    pub why: FlowWhy,
}

#[derive(Clone, Debug, Default)]
pub struct Found {
    pub days: Vec<u32>,
    pub lookups: Vec<FoundLookup>,
    pub flows: Vec<FoundFlow>,
    /// A scan limit cut the search short.
    pub truncated: bool,
}

/// The stored days within `[from, to]` (inclusive), oldest first, at most [`MAX_DAYS`].
pub fn days_between(kv: &dyn HistoryKv, from: u32, to: u32) -> Result<Vec<u32>, HuntError> {
    let mut days: Vec<u32> = super::recorder::days(kv)?
        .into_iter()
        .map(|d| d.0)
        .filter(|d| (from..=to).contains(d))
        .collect();
    if days.len() > MAX_DAYS {
        days.drain(..days.len() - MAX_DAYS);
    }
    Ok(days)
}

fn scan(
    kv: &dyn HistoryKv,
    tree: HistoryTree,
    lo: &[u8],
    hi: Option<Vec<u8>>,
    truncated: &mut bool,
) -> Result<Vec<Row>, HuntError> {
    let hi = hi.unwrap_or_else(|| vec![0xff; lo.len() + 1]);
    let rows = kv
        .scan(tree, lo, &hi, MAX_SCAN_ROWS)
        .map_err(HuntError::Store)?;
    if rows.len() >= MAX_SCAN_ROWS {
        *truncated = true;
    }
    Ok(rows)
}

/// Pages read per scan step (a page holds many names; a prefix rarely spans more than two).
const PAGE_SCAN_STEP: usize = 4;
/// Decoded pages kept per search (bytes): a search reads the same page again for the
/// summaries of CNAME'd names and for flows of answered addresses.
pub const MAX_PAGE_CACHE_BYTES: usize = 64 << 20;
/// Attempts of a search that raced a compaction (the day's pages changed under it).
const MAX_ATTEMPTS: usize = 4;

/// How a day is stored: its page generation and the highest block its pages cover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayView {
    pub gen: u32,
    pub covered: u64,
}

/// The views of every stored day.
pub fn day_views(kv: &dyn HistoryKv) -> Result<HashMap<u32, DayView>, HuntError> {
    Ok(super::recorder::day_rows(kv)?
        .into_iter()
        .map(|(d, v)| {
            let view = DayView {
                gen: v.gen,
                covered: v.covered,
            };
            (d, view)
        })
        .collect())
}

/// Reads a day's rows whatever their form: pages of the day's generation and the blocks
/// written since (blocks the pages cover are skipped). Decoded pages are cached per search.
struct Rd<'a> {
    kv: &'a dyn HistoryKv,
    views: HashMap<u32, DayView>,
    cache: HashMap<Vec<u8>, std::rc::Rc<enc::Page>>,
    cache_bytes: usize,
    truncated: bool,
}

impl<'a> Rd<'a> {
    fn new(kv: &'a dyn HistoryKv) -> Result<Self, HuntError> {
        Ok(Rd {
            kv,
            views: day_views(kv)?,
            cache: HashMap::new(),
            cache_bytes: 0,
            truncated: false,
        })
    }

    fn view(&self, day: u32) -> DayView {
        self.views.get(&day).copied().unwrap_or_default()
    }

    fn page(&mut self, k: &[u8], v: &[u8]) -> Option<std::rc::Rc<enc::Page>> {
        if let Some(p) = self.cache.get(k) {
            return Some(p.clone());
        }
        let p = std::rc::Rc::new(enc::Page::decode(v)?);
        if self.cache_bytes + p.weight() <= MAX_PAGE_CACHE_BYTES {
            self.cache_bytes += p.weight();
            self.cache.insert(k.to_vec(), p.clone());
        }
        Some(p)
    }

    /// Page records of `day` with `lo <= key`, until (and including) the first page whose
    /// last key makes `past(last)` true; `f` gets each record with its key.
    fn page_records(
        &mut self,
        tree: HistoryTree,
        day: u32,
        lo: &[u8],
        past: impl Fn(&[u8]) -> bool,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HuntError> {
        let view = self.view(day);
        if view.gen == 0 {
            return Ok(());
        }
        let names = tree == HistoryTree::Names;
        let prefix = enc::page_prefix(day, view.gen);
        let Some(hi) = enc::prefix_end(&prefix) else {
            return Ok(());
        };
        let mut cursor = prefix.clone();
        cursor.extend_from_slice(lo);
        let mut read = 0usize;
        loop {
            let rows = self
                .kv
                .scan(tree, &cursor, &hi, PAGE_SCAN_STEP)
                .map_err(HuntError::Store)?;
            let n = rows.len();
            for (k, v) in rows {
                read += 1;
                let Some(last) = enc::page_last(&k, day, view.gen, names) else {
                    continue;
                };
                let done = past(last);
                if let Some(p) = self.page(&k, &v) {
                    for (rk, rv) in p.records() {
                        if rk >= lo {
                            f(rk, rv);
                        }
                    }
                }
                if done {
                    return Ok(());
                }
                cursor = k;
                cursor.push(0);
            }
            if n < PAGE_SCAN_STEP {
                return Ok(());
            }
            if read >= MAX_SCAN_ROWS {
                self.truncated = true;
                return Ok(());
            }
        }
    }

    /// Name blocks of `day` whose reversed name starts with `rev` (exactly `rev` when
    /// `exact`), from pages and open blocks.
    fn names(
        &mut self,
        day: u32,
        rev: &str,
        exact: bool,
    ) -> Result<Vec<(String, NameBlock)>, HuntError> {
        let mut out = Vec::new();
        let want = rev.as_bytes();
        let keep = |k: &[u8]| {
            if exact {
                k == want
            } else {
                k.starts_with(want)
            }
        };
        self.page_records(
            HistoryTree::Names,
            day,
            want,
            |last| !last.starts_with(want),
            |k, v| {
                if keep(k) {
                    if let (Ok(name), Some(b)) = (std::str::from_utf8(k), NameBlock::decode(v)) {
                        out.push((name.to_string(), b));
                    }
                }
            },
        )?;
        let covered = self.view(day).covered;
        let prefix = if exact {
            enc::exact_name_prefix(day, rev)
        } else {
            enc::name_prefix(day, rev)
        };
        let hi = enc::prefix_end(&prefix);
        for (k, v) in scan(
            self.kv,
            HistoryTree::Names,
            &prefix,
            hi,
            &mut self.truncated,
        )? {
            let Some(key) = enc::parse_name_key(&k) else {
                continue;
            };
            if key.block <= covered && covered > 0 {
                continue;
            }
            if let Some(b) = NameBlock::decode(&v) {
                out.push((key.rev, b));
            }
        }
        Ok(out)
    }

    /// Flow blocks of `day` to destinations in `lo..=hi`, from pages and open blocks.
    fn flows(
        &mut self,
        day: u32,
        lo: IpAddr,
        hi: IpAddr,
    ) -> Result<Vec<(IpAddr, FlowBlock)>, HuntError> {
        let mut out = Vec::new();
        let mut lo_k = Vec::with_capacity(17);
        enc::put_ip(&mut lo_k, lo);
        let mut hi_k = Vec::with_capacity(17);
        enc::put_ip(&mut hi_k, hi);
        self.page_records(
            HistoryTree::Flows,
            day,
            &lo_k,
            |last| last > hi_k.as_slice(),
            |k, v| {
                if k <= hi_k.as_slice() {
                    if let (Some(ip), Some(b)) = (enc::Reader::new(k).ip(), FlowBlock::decode(v)) {
                        out.push((ip, b));
                    }
                }
            },
        )?;
        let covered = self.view(day).covered;
        let lo_p = enc::flow_prefix(day, lo);
        let hi_p = enc::prefix_end(&enc::flow_prefix(day, hi));
        for (k, v) in scan(
            self.kv,
            HistoryTree::Flows,
            &lo_p,
            hi_p,
            &mut self.truncated,
        )? {
            let Some((_, dst, block)) = enc::parse_flow_block_key(&k) else {
                continue;
            };
            if (block <= covered && covered > 0) || dst < lo || dst > hi {
                continue;
            }
            if let Some(b) = FlowBlock::decode(&v) {
                out.push((dst, b));
            }
        }
        Ok(out)
    }
}

/// Everything the history holds about `target` on `days`. A search that raced the
/// compaction of one of its days (the day's pages changed while it read) is run again.
pub fn collect(kv: &dyn HistoryKv, target: &Target, days: &[u32]) -> Result<Found, HuntError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut rd = Rd::new(kv)?;
        let found = collect_once(&mut rd, target, days)?;
        let before = std::mem::take(&mut rd.views);
        let after = day_views(kv)?;
        let changed = days
            .iter()
            .flat_map(|d| [*d, d.saturating_add(1)])
            .any(|d| {
                before.contains_key(&d) && after.contains_key(&d) && before.get(&d) != after.get(&d)
            });
        if !changed || attempt >= MAX_ATTEMPTS {
            let mut found = found;
            found.truncated |= changed;
            return Ok(found);
        }
    }
}

fn collect_once(rd: &mut Rd<'_>, target: &Target, days: &[u32]) -> Result<Found, HuntError> {
    let mut found = Found {
        days: days.to_vec(),
        ..Found::default()
    };
    let mut flow_seen = BTreeSet::new();
    for &day in days {
        if found.lookups.len() + found.flows.len() >= MAX_FOUND {
            found.truncated = true;
            break;
        }
        match target {
            Target::Domain(name) => collect_domain(rd, name, day, &mut found, &mut flow_seen)?,
            Target::Net(net, port) => {
                collect_net(rd, *net, *port, day, &mut found, &mut flow_seen)?
            }
        }
    }
    found.truncated |= rd.truncated;
    Ok(found)
}

fn push_flow(
    found: &mut Found,
    seen: &mut BTreeSet<FlowKey>,
    key: FlowKey,
    summary: FlowSummary,
    why: FlowWhy,
) {
    if seen.insert(key) {
        found.flows.push(FoundFlow { key, summary, why });
    }
}

/// The flow summaries of one (day, destination), merged over its blocks.
type DstFlows = BTreeMap<(u16, bool, IpAddr), FlowSummary>;

fn add_flow_block(out: &mut DstFlows, b: FlowBlock) {
    for e in b.flows {
        let k = (e.port, e.tcp, e.client);
        let s = match out.remove(&k) {
            Some(o) => merge_flow(o, e.summary),
            None => e.summary,
        };
        out.insert(k, s);
    }
}

/// Every flow summary of `dst` on `day`.
fn flows_to(rd: &mut Rd<'_>, day: u32, dst: IpAddr) -> Result<DstFlows, HuntError> {
    let mut out = BTreeMap::new();
    for (d, b) in rd.flows(day, dst, dst)? {
        if d == dst {
            add_flow_block(&mut out, b);
        }
    }
    Ok(out)
}

/// The merged summary of exactly `rev` on `day` (over its blocks).
fn summary_of(rd: &mut Rd<'_>, day: u32, rev: &str) -> Result<Option<NameSummary>, HuntError> {
    let mut out: Option<NameSummary> = None;
    for (_, b) in rd.names(day, rev, true)? {
        if let Some(s) = b.summary {
            out = Some(match out.take() {
                Some(o) => merge_summary(o, s),
                None => s,
            });
        }
    }
    Ok(out)
}

fn collect_domain(
    rd: &mut Rd<'_>,
    name: &str,
    day: u32,
    found: &mut Found,
    flow_seen: &mut BTreeSet<FlowKey>,
) -> Result<(), HuntError> {
    let rev = enc::reverse_name(name);
    let mut prefixes = vec![rev];
    // A name below its zone may have been folded into the zone's `*.zone` row that day.
    let zone = enc::zone_of(name);
    if zone != name {
        prefixes.push(enc::reverse_name(&enc::folded_name(zone)));
    }
    // Merged over the blocks: summaries per name, entries per (name, kind, client).
    let mut summaries: HashMap<String, Option<NameSummary>> = HashMap::new();
    let mut entries: BTreeMap<(String, u8, IpAddr), ClientRow> = BTreeMap::new();
    for prefix in prefixes {
        for (key_rev, block) in rd.names(day, &prefix, false)? {
            if let Some(s) = block.summary {
                let slot = summaries.entry(key_rev.clone()).or_insert(None);
                *slot = Some(match slot.take() {
                    Some(o) => merge_summary(o, s),
                    None => s,
                });
            }
            for e in block.clients {
                let k = (key_rev.clone(), e.kind, e.client);
                let r = match entries.remove(&k) {
                    Some(o) => merge_client(o, e.row),
                    None => e.row,
                };
                entries.insert(k, r);
            }
        }
    }
    let mut answers: BTreeSet<IpAddr> = BTreeSet::new();
    let mut dst_cache: HashMap<IpAddr, DstFlows> = HashMap::new();
    for ((rev, kind, client), row) in entries {
        let row_name = enc::unreverse_name(&rev);
        match kind {
            KIND_LOOKUP | KIND_VIA_CNAME => {
                let (qname, via) = match (kind, &row.qname) {
                    (KIND_VIA_CNAME, Some(q)) => (q.clone(), Some(row_name.clone())),
                    _ => (row_name.clone(), None),
                };
                let qrev = enc::reverse_name(&qname);
                let summary = match summaries.get(&qrev) {
                    Some(s) => s.clone(),
                    None => {
                        let s = summary_of(rd, day, &qrev)?;
                        summaries.insert(qrev, s.clone());
                        s
                    }
                };
                if let Some(s) = &summary {
                    answers.extend(s.answers.iter().copied());
                }
                found.lookups.push(FoundLookup {
                    day,
                    folded: qname.starts_with("*."),
                    qname,
                    client,
                    row,
                    summary,
                    via_cname: via,
                });
            }
            KIND_FLOW_NAME => {
                let Some((dst, port, tcp)) = row.flow else {
                    continue;
                };
                let flows = match dst_cache.entry(dst) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(flows_to(rd, day, dst)?)
                    }
                };
                let Some(s) = flows.get(&(port, tcp, client)) else {
                    continue;
                };
                let why = if row.sni {
                    FlowWhy::Sni
                } else {
                    FlowWhy::HttpHost
                };
                let key = FlowKey {
                    day,
                    dst,
                    port,
                    tcp,
                    client,
                };
                push_flow(found, flow_seen, key, s.clone(), why);
            }
            _ => {}
        }
    }
    // Flows to the addresses the name resolved to, that day and the next (a binding lives
    // for the TTL plus the grace, which may cross midnight).
    for ip in answers {
        if ip.is_unspecified() {
            continue;
        }
        for d in [day, day.saturating_add(1)] {
            for ((port, tcp, client), s) in flows_to(rd, d, ip)? {
                let key = FlowKey {
                    day: d,
                    dst: ip,
                    port,
                    tcp,
                    client,
                };
                push_flow(found, flow_seen, key, s, FlowWhy::Answer);
            }
        }
    }
    Ok(())
}

fn collect_net(
    rd: &mut Rd<'_>,
    net: IpNet,
    port: Option<u16>,
    day: u32,
    found: &mut Found,
    flow_seen: &mut BTreeSet<FlowKey>,
) -> Result<(), HuntError> {
    let mut by_dst: BTreeMap<IpAddr, DstFlows> = BTreeMap::new();
    for (dst, b) in rd.flows(day, net.network(), net.broadcast())? {
        if net.contains(&dst) {
            add_flow_block(by_dst.entry(dst).or_default(), b);
        }
    }
    for (dst, flows) in by_dst {
        for ((p, tcp, client), s) in flows {
            if port.is_some_and(|want| want != p) {
                continue;
            }
            let key = FlowKey {
                day,
                dst,
                port: p,
                tcp,
                client,
            };
            push_flow(found, flow_seen, key, s, FlowWhy::Address);
        }
    }
    Ok(())
}

/// DNS servers that answered at least `min_clients` distinct clients on one of `days` (the
/// resolver rule of `correlate::infra`, applied to what the history kept).
pub fn resolvers(
    kv: &dyn HistoryKv,
    days: &[u32],
    min_clients: usize,
) -> Result<Vec<IpAddr>, HuntError> {
    let mut out = BTreeSet::new();
    let mut truncated = false;
    for &day in days {
        let lo = enc::day_key(day);
        let hi = enc::prefix_end(&lo);
        for (k, v) in scan(kv, HistoryTree::Servers, &lo, hi, &mut truncated)? {
            let Some(row) = enc::ServerRow::decode(&v) else {
                continue;
            };
            if row.clients.len() >= min_clients {
                if let Some(ip) = enc::Reader::new(k.get(4..).unwrap_or(&[])).ip() {
                    out.insert(ip);
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}
