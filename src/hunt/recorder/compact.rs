//! Compaction: once a day is over, its blocks (one row per flush per name or destination)
//! and any pages it already had are merged per name / destination and rewritten as *pages*
//! (`hunt::encode::pages`: many names per row, deflate-compressed) of a new generation; and
//! the merge rules of the summaries, shared with the search.
//!
//! Crash- and reader-safe order: the new generation's pages are written first, then the day's
//! `hist_days` row switches to them (generation + the highest block they cover) in one write,
//! and only then are the old pages and the covered blocks removed. A reader that read the old
//! view while this ran sees the view change and searches again (`hunt::search::collect`).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use super::super::encode::{
    self as enc, ClientEntry, ClientRow, FlowBlock, FlowEntry, FlowSummary, NameBlock, NameSummary,
    PageBuilder, KIND_LOOKUP,
};
use super::super::HuntError;
use super::{
    row_cost, split_names, Core, DayState, COMPACT_PAGE_ROWS, MAX_ANSWERS_KEPT, MAX_BLOCK_ENTRIES,
    MAX_CNAMES_KEPT,
};
use crate::ports::{HistoryKv, HistoryTree, Row};

/// One record: (record key, block value).
type Rec = (Vec<u8>, Vec<u8>);
/// A record key with every block value stored under it.
type Group = (Vec<u8>, Vec<Vec<u8>>);

/// Page rows written per batch while a day is compacted.
const PAGE_WRITE_BATCH: usize = 64;

impl Core {
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
            let old = days.get(&day).copied().unwrap_or_default();
            let new = self.compact_day(day, old, days)?;
            days.insert(day, new);
            self.metrics.compactions.inc();
            self.metrics.compact_seconds.add(started.elapsed());
            tracing::debug!(day = %enc::day_label(day), bytes = new.bytes, gen = new.gen, ms = started.elapsed().as_millis() as u64, "history day compacted");
        }
        Ok(())
    }

    /// Rewrites `day` (stored as `old`) as pages of the next generation; saves and returns the
    /// day's new state. `days` is saved with it (the `hist_days` rows are written together).
    fn compact_day(
        &self,
        day: u32,
        old: DayState,
        days: &mut BTreeMap<u32, DayState>,
    ) -> Result<DayState, HuntError> {
        let gen = old.gen.wrapping_add(1).max(1);
        let kv = self.kv.as_ref();
        // Pages of this generation left by a compaction that did not finish are not visible
        // (the day row never switched to them): remove them before writing.
        remove_prefix(kv, HistoryTree::Names, &enc::page_prefix(day, gen))?;
        remove_prefix(kv, HistoryTree::Flows, &enc::page_prefix(day, gen))?;
        let mut bytes = 0u64;
        let mut covered = old.covered;
        for tree in [HistoryTree::Names, HistoryTree::Flows] {
            let (b, c) = compact_tree(kv, tree, day, old, gen)?;
            bytes += b;
            covered = covered.max(c);
        }
        let lo = enc::day_key(day);
        let hi = enc::day_key(day.saturating_add(1));
        for (k, v) in kv
            .scan(HistoryTree::Servers, &lo, &hi, usize::MAX)
            .map_err(HuntError::Store)?
        {
            bytes += row_cost(&k, &v);
        }
        let new = DayState {
            bytes,
            compacted: true,
            gen,
            covered,
        };
        days.insert(day, new);
        self.save_days(days)?;
        // Now readers use the new pages: the old generation and the covered blocks go.
        for tree in [HistoryTree::Names, HistoryTree::Flows] {
            if old.gen > 0 {
                remove_prefix(kv, tree, &enc::page_prefix(day, old.gen))?;
            }
            kv.remove_range(tree, &enc::blocks_start(day), &hi)
                .map_err(HuntError::Store)?;
        }
        Ok(new)
    }
}

fn remove_prefix(kv: &dyn HistoryKv, tree: HistoryTree, prefix: &[u8]) -> Result<u64, HuntError> {
    match enc::prefix_end(prefix) {
        Some(hi) => kv.remove_range(tree, prefix, &hi).map_err(HuntError::Store),
        None => Ok(0),
    }
}

/// Rows of `lo..hi` read page by page, in key order.
struct RowStream<'a> {
    kv: &'a dyn HistoryKv,
    tree: HistoryTree,
    cursor: Vec<u8>,
    hi: Vec<u8>,
    buf: VecDeque<Row>,
    done: bool,
    step: usize,
}

impl<'a> RowStream<'a> {
    fn new(
        kv: &'a dyn HistoryKv,
        tree: HistoryTree,
        lo: Vec<u8>,
        hi: Vec<u8>,
        step: usize,
    ) -> Self {
        RowStream {
            kv,
            tree,
            cursor: lo,
            hi,
            buf: VecDeque::new(),
            done: false,
            step,
        }
    }

    fn next(&mut self) -> Result<Option<Row>, HuntError> {
        if self.buf.is_empty() && !self.done {
            let rows = self
                .kv
                .scan(self.tree, &self.cursor, &self.hi, self.step)
                .map_err(HuntError::Store)?;
            self.done = rows.len() < self.step;
            if let Some((k, _)) = rows.last() {
                self.cursor = k.clone();
                self.cursor.push(0);
            }
            self.buf.extend(rows);
        }
        Ok(self.buf.pop_front())
    }
}

/// The records of a day in key order: (record key, block value) from the old pages and from
/// the open blocks, merged. Record keys: the reversed name (names) or the encoded address
/// (flows).
struct Records<'a> {
    pages: RowStream<'a>,
    page: VecDeque<(Vec<u8>, Vec<u8>)>,
    blocks: RowStream<'a>,
    block_head: Option<(Vec<u8>, Vec<u8>)>,
    names: bool,
    covered: u64,
    /// Highest block number read.
    max_block: u64,
}

impl Records<'_> {
    fn next_page_record(&mut self) -> Result<Option<Rec>, HuntError> {
        loop {
            if let Some(r) = self.page.pop_front() {
                return Ok(Some(r));
            }
            let Some((_, v)) = self.pages.next()? else {
                return Ok(None);
            };
            match enc::Page::decode(&v) {
                Some(p) => self
                    .page
                    .extend(p.records().map(|(k, v)| (k.to_vec(), v.to_vec()))),
                None => tracing::warn!("history: undecodable page dropped at compaction"),
            }
        }
    }

    fn next_block_record(&mut self) -> Result<Option<Rec>, HuntError> {
        while let Some((k, v)) = self.blocks.next()? {
            let parsed = if self.names {
                enc::parse_name_key(&k).map(|n| (n.rev.into_bytes(), n.block))
            } else {
                enc::parse_flow_block_key(&k).map(|(_, dst, b)| {
                    let mut ip = Vec::with_capacity(17);
                    enc::put_ip(&mut ip, dst);
                    (ip, b)
                })
            };
            let Some((rk, block)) = parsed else {
                tracing::warn!("history: unreadable block key dropped at compaction");
                continue;
            };
            self.max_block = self.max_block.max(block);
            if self.covered > 0 && block <= self.covered {
                continue;
            }
            return Ok(Some((rk, v)));
        }
        Ok(None)
    }

    /// The key of the next page record (refilling the queue from the next page).
    fn page_front(&mut self) -> Result<Option<Vec<u8>>, HuntError> {
        if self.page.is_empty() {
            if let Some(r) = self.next_page_record()? {
                self.page.push_front(r);
            }
        }
        Ok(self.page.front().map(|r| r.0.clone()))
    }

    /// The next record key and every block value stored under it (pages first).
    fn next_group(&mut self) -> Result<Option<Group>, HuntError> {
        if self.block_head.is_none() {
            self.block_head = self.next_block_record()?;
        }
        let page_head = self.page_front()?;
        let key = match (page_head, &self.block_head) {
            (None, None) => return Ok(None),
            (Some(p), None) => p,
            (None, Some((b, _))) => b.clone(),
            (Some(p), Some((b, _))) => p.min(b.clone()),
        };
        let mut values = Vec::new();
        while self.page_front()?.is_some_and(|k| k == key) {
            if let Some((_, v)) = self.page.pop_front() {
                values.push(v);
            }
        }
        while self.block_head.as_ref().is_some_and(|b| b.0 == key) {
            if let Some((_, v)) = self.block_head.take() {
                values.push(v);
            }
            self.block_head = self.next_block_record()?;
        }
        Ok(Some((key, values)))
    }
}

/// Writes `day`'s records of `tree` as pages of generation `gen`; returns (their counted
/// bytes, the highest block number read).
fn compact_tree(
    kv: &dyn HistoryKv,
    tree: HistoryTree,
    day: u32,
    old: DayState,
    gen: u32,
) -> Result<(u64, u64), HuntError> {
    let names = tree == HistoryTree::Names;
    let hi = enc::day_key(day.saturating_add(1)).to_vec();
    let pages_lo = enc::page_prefix(day, old.gen.max(1));
    let pages_hi = if old.gen > 0 {
        enc::prefix_end(&pages_lo).unwrap_or_else(|| pages_lo.clone())
    } else {
        pages_lo.clone()
    };
    let mut recs = Records {
        pages: RowStream::new(kv, tree, pages_lo, pages_hi, PAGE_WRITE_BATCH / 4),
        page: VecDeque::new(),
        blocks: RowStream::new(kv, tree, enc::blocks_start(day), hi, COMPACT_PAGE_ROWS),
        block_head: None,
        names,
        covered: old.covered,
        max_block: 0,
    };
    let mut builder = PageBuilder::default();
    let mut seq = 0u32;
    let mut bytes = 0u64;
    let mut out: Vec<Row> = Vec::new();
    let mut close = |builder: &mut PageBuilder, out: &mut Vec<Row>, bytes: &mut u64| {
        if let Some((last, v)) = builder.finish() {
            let k = enc::page_key(day, gen, &last, names, seq);
            seq = seq.wrapping_add(1);
            *bytes += row_cost(&k, &v);
            out.push((k, v));
        }
    };
    while let Some((key, values)) = recs.next_group()? {
        for v in merge_group(names, values) {
            builder.push(&key, &v);
        }
        if builder.len() >= enc::PAGE_TARGET_BYTES {
            close(&mut builder, &mut out, &mut bytes);
            if out.len() >= PAGE_WRITE_BATCH {
                kv.put(tree, &out).map_err(HuntError::Store)?;
                out.clear();
            }
        }
    }
    close(&mut builder, &mut out, &mut bytes);
    if !out.is_empty() {
        kv.put(tree, &out).map_err(HuntError::Store)?;
    }
    Ok((bytes, recs.max_block))
}

/// Merges the blocks of one (day, name) or (day, destination) into blocks of at most
/// [`MAX_BLOCK_ENTRIES`] entries. One block is kept as it is; blocks that do not decode are
/// dropped (logged).
fn merge_group(names: bool, values: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    if values.len() <= 1 {
        return values;
    }
    let mut out = Vec::new();
    if names {
        let mut summary: Option<NameSummary> = None;
        let mut clients: BTreeMap<(u8, IpAddr), ClientRow> = BTreeMap::new();
        for v in &values {
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
        for b in split_names(summary, clients) {
            out.push(b.encode());
        }
    } else {
        let mut flows: BTreeMap<(u16, bool, IpAddr), FlowSummary> = BTreeMap::new();
        for v in &values {
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
        for chunk in entries.chunks(MAX_BLOCK_ENTRIES) {
            out.push(
                FlowBlock {
                    flows: chunk.to_vec(),
                }
                .encode(),
            );
        }
    }
    out
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
