//! Compaction: once a day is over, its blocks (one row per flush per name or destination) are
//! merged into one block per (day, name) and per (day, destination), in one sled batch per
//! page; and the merge rules of the summaries, shared with the search.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use super::super::encode::{
    self as enc, ClientEntry, ClientRow, FlowBlock, FlowEntry, FlowSummary, NameBlock, NameSummary,
    KIND_LOOKUP,
};
use super::super::HuntError;
use super::{
    row_cost, split_names, DayState, Recorder, COMPACT_PAGE_ROWS, MAX_ANSWERS_KEPT,
    MAX_BLOCK_ENTRIES, MAX_CNAMES_KEPT,
};
use crate::ports::{HistoryTree, Row};

impl Recorder {
    /// Compacts every day older than the newest that took rows since its last compaction.
    pub(super) fn compact_finished(
        &self,
        days: &mut BTreeMap<u32, DayState>,
    ) -> Result<(), HuntError> {
        let Some(&newest) = days.keys().next_back() else {
            return Ok(());
        };
        let todo: Vec<u32> = days
            .iter()
            .filter(|(d, s)| **d < newest && !s.compacted)
            .map(|(d, _)| *d)
            .collect();
        for day in todo {
            let started = Instant::now();
            let bytes = self.compact_day(day)?;
            days.insert(
                day,
                DayState {
                    bytes,
                    compacted: true,
                },
            );
            self.save_days(days)?;
            self.metrics.compactions.inc();
            self.metrics.compact_seconds.add(started.elapsed());
            tracing::debug!(day = %enc::day_label(day), bytes, ms = started.elapsed().as_millis() as u64, "history day compacted");
        }
        Ok(())
    }

    /// Rewrites `day` with one block per name and per destination (split at
    /// [`MAX_BLOCK_ENTRIES`]); returns the day's counted bytes afterwards.
    pub fn compact_day(&self, day: u32) -> Result<u64, HuntError> {
        let mut bytes = 0u64;
        for tree in [HistoryTree::Names, HistoryTree::Flows] {
            bytes += self.compact_tree(tree, day)?;
        }
        let lo = enc::day_key(day);
        let hi = enc::day_key(day.saturating_add(1));
        for (k, v) in self
            .kv
            .scan(HistoryTree::Servers, &lo, &hi, usize::MAX)
            .map_err(HuntError::Store)?
        {
            bytes += row_cost(&k, &v);
        }
        Ok(bytes)
    }

    fn compact_tree(&self, tree: HistoryTree, day: u32) -> Result<u64, HuntError> {
        let hi = enc::day_key(day.saturating_add(1)).to_vec();
        let mut cursor = enc::day_key(day).to_vec();
        let mut bytes = 0u64;
        // The group being gathered: its prefix (key without the block number) and rows.
        let mut group: Option<(Vec<u8>, Vec<Row>)> = None;
        let mut removes: Vec<Vec<u8>> = Vec::new();
        let mut puts: Vec<Row> = Vec::new();
        loop {
            let page = self
                .kv
                .scan(tree, &cursor, &hi, COMPACT_PAGE_ROWS)
                .map_err(HuntError::Store)?;
            let last_page = page.len() < COMPACT_PAGE_ROWS;
            if let Some((k, _)) = page.last() {
                cursor = k.clone();
                cursor.push(0);
            }
            for (k, v) in page {
                let prefix = k
                    .get(..k.len().saturating_sub(enc::BLOCK_NO_LEN))
                    .unwrap_or_default()
                    .to_vec();
                match &mut group {
                    Some((gp, rows)) if *gp == prefix => rows.push((k, v)),
                    _ => {
                        if let Some((gp, rows)) = group.take() {
                            bytes += compact_group(tree, &gp, rows, &mut removes, &mut puts);
                        }
                        group = Some((prefix, vec![(k, v)]));
                    }
                }
            }
            if removes.len() + puts.len() >= COMPACT_PAGE_ROWS || last_page {
                if last_page {
                    if let Some((gp, rows)) = group.take() {
                        bytes += compact_group(tree, &gp, rows, &mut removes, &mut puts);
                    }
                }
                self.kv
                    .replace(tree, &removes, &puts)
                    .map_err(HuntError::Store)?;
                removes.clear();
                puts.clear();
            }
            if last_page {
                break;
            }
        }
        Ok(bytes)
    }
}

/// Merges the blocks of one (day, name) or (day, destination) into blocks numbered from 0;
/// queues the removal of the old rows and the new rows. Returns the new rows' counted bytes.
/// Rows that do not decode are dropped (counted in the log).
fn compact_group(
    tree: HistoryTree,
    prefix: &[u8],
    rows: Vec<Row>,
    removes: &mut Vec<Vec<u8>>,
    puts: &mut Vec<Row>,
) -> u64 {
    let key_of = |n: u64| {
        let mut k = prefix.to_vec();
        k.extend_from_slice(&n.to_be_bytes());
        k
    };
    // Already one block (most names of a day): nothing to merge, the row stays as written.
    if let [(k, v)] = rows.as_slice() {
        return row_cost(k, v);
    }
    let mut new_rows: Vec<Row> = Vec::new();
    match tree {
        HistoryTree::Names => {
            let mut summary: Option<NameSummary> = None;
            let mut clients: BTreeMap<(u8, IpAddr), ClientRow> = BTreeMap::new();
            for (_, v) in &rows {
                let Some(b) = NameBlock::decode(v) else {
                    tracing::warn!("history: undecodable name block dropped at compaction");
                    continue;
                };
                if let Some(s) = b.summary {
                    summary = Some(match summary.take() {
                        Some(o) => merge_summary(o, s),
                        None => s,
                    });
                }
                for e in b.clients {
                    let r = match clients.remove(&(e.kind, e.client)) {
                        Some(o) => merge_client(o, e.row),
                        None => e.row,
                    };
                    clients.insert((e.kind, e.client), r);
                }
            }
            let clients: Vec<ClientEntry> = clients
                .into_iter()
                .map(|((kind, client), row)| ClientEntry { kind, client, row })
                .collect();
            if let Some(s) = &mut summary {
                s.clients = clients.iter().filter(|c| c.kind == KIND_LOOKUP).count() as u64;
            }
            for (n, b) in split_names(summary, clients).into_iter().enumerate() {
                new_rows.push((key_of(n as u64), b.encode()));
            }
        }
        _ => {
            let mut flows: BTreeMap<(u16, bool, IpAddr), FlowSummary> = BTreeMap::new();
            for (_, v) in &rows {
                let Some(b) = FlowBlock::decode(v) else {
                    tracing::warn!("history: undecodable flow block dropped at compaction");
                    continue;
                };
                for e in b.flows {
                    let k = (e.port, e.tcp, e.client);
                    let s = match flows.remove(&k) {
                        Some(o) => merge_flow(o, e.summary),
                        None => e.summary,
                    };
                    flows.insert(k, s);
                }
            }
            let entries: Vec<FlowEntry> = flows.into_iter().map(FlowEntry::from_keyed).collect();
            for (n, chunk) in entries.chunks(MAX_BLOCK_ENTRIES).enumerate() {
                let b = FlowBlock {
                    flows: chunk.to_vec(),
                };
                new_rows.push((key_of(n as u64), b.encode()));
            }
        }
    }
    removes.extend(rows.into_iter().map(|(k, _)| k));
    let bytes = new_rows.iter().map(|(k, v)| row_cost(k, v)).sum();
    puts.extend(new_rows);
    bytes
}

pub(in crate::hunt) fn merge_summary(o: NameSummary, mut n: NameSummary) -> NameSummary {
    n.first_ms = n.first_ms.min(o.first_ms);
    n.last_ms = n.last_ms.max(o.last_ms);
    n.count = n.count.saturating_add(o.count);
    n.clients = n.clients.saturating_add(o.clients);
    n.min_ttl = match (o.min_ttl, n.min_ttl) {
        (0, t) | (t, 0) => t,
        (a, b) => a.min(b),
    };
    n.answered |= o.answered;
    n.rcode = n.rcode.or(o.rcode);
    let mut cn = o.cnames;
    for c in n.cnames {
        if cn.len() < MAX_CNAMES_KEPT && !cn.contains(&c) {
            cn.push(c);
        }
    }
    n.cnames = cn;
    let mut ans = o.answers;
    for a in n.answers {
        if ans.len() < MAX_ANSWERS_KEPT && !ans.contains(&a) {
            ans.push(a);
        }
    }
    n.answers = ans;
    n
}

pub(in crate::hunt) fn merge_client(o: ClientRow, mut n: ClientRow) -> ClientRow {
    n.first_ms = n.first_ms.min(o.first_ms);
    n.last_ms = n.last_ms.max(o.last_ms);
    n.count = n.count.saturating_add(o.count);
    n.rcode = n.rcode.or(o.rcode);
    n.qtypes |= o.qtypes;
    n.qname = o.qname.or(n.qname);
    if o.flow.is_some() {
        n.flow = o.flow;
        n.sni = o.sni;
    }
    n
}

pub(in crate::hunt) fn merge_flow(o: FlowSummary, mut n: FlowSummary) -> FlowSummary {
    if o.first_ms <= n.first_ms {
        n.first_ms = o.first_ms;
        n.src_port = o.src_port;
    }
    n.last_ms = n.last_ms.max(o.last_ms);
    n.count = n.count.saturating_add(o.count);
    n.established |= o.established;
    n.rejected |= o.rejected;
    n.stratum |= o.stratum;
    n.tls |= o.tls;
    n.bytes_out = n.bytes_out.saturating_add(o.bytes_out);
    n.bytes_in = n.bytes_in.saturating_add(o.bytes_in);
    n.sni = o.sni.or(n.sni);
    n.http_host = o.http_host.or(n.http_host);
    n.stratum_method = o.stratum_method.or(n.stratum_method);
    n.agent = o.agent.or(n.agent);
    n
}
