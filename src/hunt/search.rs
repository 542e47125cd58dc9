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

/// Everything the history holds about `target` on `days`.
pub fn collect(kv: &dyn HistoryKv, target: &Target, days: &[u32]) -> Result<Found, HuntError> {
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
            Target::Domain(name) => collect_domain(kv, name, day, &mut found, &mut flow_seen)?,
            Target::Net(net, port) => {
                collect_net(kv, *net, *port, day, &mut found, &mut flow_seen)?
            }
        }
    }
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

fn add_flow_block(out: &mut BTreeMap<IpAddr, DstFlows>, dst: IpAddr, v: &[u8]) {
    let Some(b) = FlowBlock::decode(v) else {
        return;
    };
    let m = out.entry(dst).or_default();
    for e in b.flows {
        let k = (e.port, e.tcp, e.client);
        let s = match m.remove(&k) {
            Some(o) => merge_flow(o, e.summary),
            None => e.summary,
        };
        m.insert(k, s);
    }
}

/// Every flow summary of `dst` on `day`.
fn flows_to(
    kv: &dyn HistoryKv,
    day: u32,
    dst: IpAddr,
    truncated: &mut bool,
) -> Result<DstFlows, HuntError> {
    let prefix = enc::flow_prefix(day, dst);
    let hi = enc::prefix_end(&prefix);
    let mut out = BTreeMap::new();
    for (k, v) in scan(kv, HistoryTree::Flows, &prefix, hi, truncated)? {
        if enc::parse_flow_block_key(&k).is_some_and(|(_, d, _)| d == dst) {
            add_flow_block(&mut out, dst, &v);
        }
    }
    Ok(out.remove(&dst).unwrap_or_default())
}

/// The merged summary of exactly `rev` on `day` (over its blocks).
fn summary_of(
    kv: &dyn HistoryKv,
    day: u32,
    rev: &str,
    truncated: &mut bool,
) -> Result<Option<NameSummary>, HuntError> {
    let prefix = enc::exact_name_prefix(day, rev);
    let hi = enc::prefix_end(&prefix);
    let mut out: Option<NameSummary> = None;
    for (_, v) in scan(kv, HistoryTree::Names, &prefix, hi, truncated)? {
        if let Some(s) = NameBlock::decode(&v).and_then(|b| b.summary) {
            out = Some(match out.take() {
                Some(o) => merge_summary(o, s),
                None => s,
            });
        }
    }
    Ok(out)
}

fn collect_domain(
    kv: &dyn HistoryKv,
    name: &str,
    day: u32,
    found: &mut Found,
    flow_seen: &mut BTreeSet<FlowKey>,
) -> Result<(), HuntError> {
    let rev = enc::reverse_name(name);
    let mut prefixes = vec![enc::name_prefix(day, &rev)];
    // A name below its zone may have been folded into the zone's `*.zone` row that day.
    let zone = enc::zone_of(name);
    if zone != name {
        prefixes.push(enc::name_prefix(
            day,
            &enc::reverse_name(&enc::folded_name(zone)),
        ));
    }
    // Merged over the blocks: summaries per name, entries per (name, kind, client).
    let mut summaries: HashMap<String, Option<NameSummary>> = HashMap::new();
    let mut entries: BTreeMap<(String, u8, IpAddr), ClientRow> = BTreeMap::new();
    for prefix in prefixes {
        let hi = enc::prefix_end(&prefix);
        for (k, v) in scan(kv, HistoryTree::Names, &prefix, hi, &mut found.truncated)? {
            let (Some(key), Some(block)) = (enc::parse_name_key(&k), NameBlock::decode(&v)) else {
                continue;
            };
            if let Some(s) = block.summary {
                let slot = summaries.entry(key.rev.clone()).or_insert(None);
                *slot = Some(match slot.take() {
                    Some(o) => merge_summary(o, s),
                    None => s,
                });
            }
            for e in block.clients {
                let k = (key.rev.clone(), e.kind, e.client);
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
                        let s = summary_of(kv, day, &qrev, &mut found.truncated)?;
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
                        e.insert(flows_to(kv, day, dst, &mut found.truncated)?)
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
            for ((port, tcp, client), s) in flows_to(kv, d, ip, &mut found.truncated)? {
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
    kv: &dyn HistoryKv,
    net: IpNet,
    port: Option<u16>,
    day: u32,
    found: &mut Found,
    flow_seen: &mut BTreeSet<FlowKey>,
) -> Result<(), HuntError> {
    let lo = enc::flow_prefix(day, net.network());
    let hi = enc::prefix_end(&enc::flow_prefix(day, net.broadcast()));
    let mut by_dst: BTreeMap<IpAddr, DstFlows> = BTreeMap::new();
    for (k, v) in scan(kv, HistoryTree::Flows, &lo, hi, &mut found.truncated)? {
        let Some((_, dst, _)) = enc::parse_flow_block_key(&k) else {
            continue;
        };
        if net.contains(&dst) {
            add_flow_block(&mut by_dst, dst, &v);
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
