//! The write side of the recorder: a taken batch of pending rows into the history tree
//! (blocks numbered per day, the day index, the byte budget and day eviction).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::super::encode::{
    self as enc, ClientEntry, FlowBlock, FlowEntry, NameBlock, NameSummary, ServerRow, KIND_LOOKUP,
};
use super::super::HuntError;
use super::{
    row_cost, Batch, Core, DayState, Out, WriteState, DISK_REGROW_BYTES, DISK_SLACK_BYTES,
    MAX_BLOCK_ENTRIES, MAX_SERVER_CLIENTS, WRITE_BATCH_ROWS,
};
use crate::ports::{HistoryTree, Row};

impl Core {
    pub(super) fn flush_locked(&self, p: &mut WriteState, b: Batch) -> Result<(), HuntError> {
        let started = Instant::now();
        let Batch {
            names,
            flows,
            servers,
            newest_day: _,
        } = b;
        let mut out: Vec<Out> = Vec::new();
        for ((day, rev), agg) in names {
            let mut clients: Vec<ClientEntry> = agg
                .clients
                .into_iter()
                .map(|((kind, client), row)| ClientEntry { kind, client, row })
                .collect();
            clients.sort_by_key(|a| (a.kind, a.client));
            let mut summary = agg.summary;
            if let Some(s) = &mut summary {
                s.clients = clients.iter().filter(|c| c.kind == KIND_LOOKUP).count() as u64;
            }
            for block in split_names(summary, clients) {
                let entries = block.clients.len() as u64 + u64::from(block.summary.is_some());
                let key = enc::name_key(day, &rev, p.next_block());
                out.push(Out {
                    day,
                    tree: HistoryTree::Names,
                    key,
                    value: block.encode(),
                    entries,
                });
            }
        }
        for ((day, dst), agg) in flows {
            let mut entries: Vec<FlowEntry> = agg.into_iter().map(FlowEntry::from_keyed).collect();
            entries.sort_by_key(|a| (a.port, a.tcp, a.client));
            for block in entries.chunks(MAX_BLOCK_ENTRIES) {
                let b = FlowBlock {
                    flows: block.to_vec(),
                };
                let key = enc::flow_block_key(day, dst, p.next_block());
                out.push(Out {
                    day,
                    tree: HistoryTree::Flows,
                    key,
                    value: b.encode(),
                    entries: block.len() as u64,
                });
            }
        }
        // Oldest day first: when the cap bites, the newest day is the one that stops.
        out.sort_by(|a, b| (a.day, &a.key).cmp(&(b.day, &b.key)));
        let mut days = self.load_days()?;
        // A block numbered at or below a day's `covered` is invisible (its pages supersede
        // it): numbers stay above every covered one even if the clock went back since.
        let floor = days.values().map(|d| d.covered).max().unwrap_or(0);
        if floor >= p.last_block {
            p.last_block = floor;
            for o in &mut out {
                renumber(o, p.next_block());
            }
        }
        let mut refused = 0u64;
        let mut written = 0u64;
        let mut batch: HashMap<HistoryTree, Vec<Row>> = HashMap::new();
        let mut in_batch = 0usize;
        for o in out {
            if p.full_day == Some(o.day) {
                refused += o.entries;
                continue;
            }
            let d = days.entry(o.day).or_default();
            d.bytes = d.bytes.saturating_add(row_cost(&o.key, &o.value));
            d.compacted = false;
            batch.entry(o.tree).or_default().push((o.key, o.value));
            in_batch += 1;
            if in_batch >= WRITE_BATCH_ROWS {
                written += self.write_batch(&mut batch, &days)?;
                in_batch = 0;
                self.enforce(p, &mut days)?;
            }
        }
        written += self.write_batch(&mut batch, &days)?;
        // Servers: a handful of rows per day, merged with what is stored.
        let mut server_rows = Vec::new();
        for ((day, server), mut s) in servers {
            let key = enc::server_key(day, server);
            let old = self
                .kv
                .get(HistoryTree::Servers, &key)
                .map_err(HuntError::Store)?;
            if let Some(o) = old.as_deref().and_then(ServerRow::decode) {
                for c in o.clients.into_iter().rev() {
                    if !s.clients.contains(&c) {
                        s.clients.insert(0, c);
                    }
                }
                s.clients.truncate(MAX_SERVER_CLIENTS);
            }
            let value = s.encode();
            if old.is_none() {
                let d = days.entry(day).or_default();
                d.bytes = d.bytes.saturating_add(row_cost(&key, &value));
            }
            server_rows.push((key, value));
        }
        self.kv
            .put(HistoryTree::Servers, &server_rows)
            .map_err(HuntError::Store)?;
        self.save_days(&days)?;
        if refused > 0 {
            self.metrics.refused_cap.add(refused);
        }
        self.metrics.rows_written.add(written);
        self.enforce(p, &mut days)?;
        self.compact_finished(&mut days)?;
        self.metrics.flush_seconds.add(started.elapsed());
        Ok(())
    }

    pub(super) fn write_batch(
        &self,
        batch: &mut HashMap<HistoryTree, Vec<Row>>,
        days: &BTreeMap<u32, DayState>,
    ) -> Result<u64, HuntError> {
        let mut n = 0u64;
        for (tree, rows) in std::mem::take(batch) {
            if rows.is_empty() {
                continue;
            }
            self.kv.put(tree, &rows).map_err(HuntError::Store)?;
            n += rows.len() as u64;
        }
        if n > 0 {
            self.save_days(days)?;
        }
        Ok(n)
    }

    pub(super) fn load_days(&self) -> Result<BTreeMap<u32, DayState>, HuntError> {
        Ok(super::day_rows(&*self.kv)?.into_iter().collect())
    }

    pub(super) fn save_days(&self, days: &BTreeMap<u32, DayState>) -> Result<(), HuntError> {
        let rows: Vec<Row> = days
            .iter()
            .map(|(d, s)| (enc::day_key(*d).to_vec(), enc::day_value(s)))
            .collect();
        self.kv
            .put(HistoryTree::Days, &rows)
            .map_err(HuntError::Store)
    }

    /// Retention (days older than the newest day recorded minus `retention_days`), then the
    /// byte cap (oldest days first; the newest day is never evicted, it stops taking new rows).
    pub(super) fn enforce(
        &self,
        p: &mut WriteState,
        days: &mut BTreeMap<u32, DayState>,
    ) -> Result<(), HuntError> {
        let newest = days
            .last_key_value()
            .map_or(p.newest_day, |d| (*d.0).max(p.newest_day));
        let oldest_kept = newest.saturating_sub(self.cfg.retention_days.saturating_sub(1));
        while let Some((&day, _)) = days.first_key_value() {
            if day >= oldest_kept {
                break;
            }
            self.evict(day)?;
            self.metrics.evicted_retention.inc();
            days.remove(&day);
        }
        let mut total: u64 = days.values().map(|d| d.bytes).sum();
        while total > self.cfg.max_bytes && days.len() > 1 {
            let Some((day, st)) = days.pop_first() else {
                break;
            };
            self.evict(day)?;
            self.metrics.evicted_cap.inc();
            total = total.saturating_sub(st.bytes);
        }
        // The real size on disk. sled reuses the space a removal frees rather than shrinking
        // its file, so a day is evicted for the file only when it has grown past the cap (plus
        // slack) *and* past its size at the last such eviction: evicting again before the file
        // grows would discard history without making the file smaller.
        if let Some(disk) = self.kv.disk_bytes() {
            self.metrics
                .disk_bytes
                .set(i64::try_from(disk).unwrap_or(i64::MAX));
            let limit = self.cfg.max_bytes.saturating_add(DISK_SLACK_BYTES);
            if disk <= limit {
                p.disk_mark = 0;
            } else if disk > p.disk_mark && days.len() > 1 {
                if let Some((day, st)) = days.pop_first() {
                    self.evict(day)?;
                    self.metrics.evicted_disk.inc();
                    total = total.saturating_sub(st.bytes);
                    tracing::warn!(disk_bytes = disk, limit, "history: the database on disk exceeds the history's byte cap; oldest day evicted");
                }
                // The eviction's own removals are written to the log after this measurement:
                // the file must grow past them before another day goes for it.
                p.disk_mark = disk.saturating_add(DISK_REGROW_BYTES);
            }
        }
        p.full_day = match days.last_key_value() {
            Some((&day, _)) if total > self.cfg.max_bytes => Some(day),
            _ => None,
        };
        self.metrics.bytes.set(total as i64);
        self.metrics.days.set(days.len() as i64);
        Ok(())
    }

    pub(super) fn evict(&self, day: u32) -> Result<(), HuntError> {
        let lo = enc::day_key(day);
        let hi = enc::day_key(day.saturating_add(1));
        for t in [
            HistoryTree::Names,
            HistoryTree::Flows,
            HistoryTree::Servers,
            HistoryTree::Days,
        ] {
            self.kv
                .remove_range(t, &lo, &hi)
                .map_err(HuntError::Store)?;
        }
        tracing::info!(day = %enc::day_label(day), "history day evicted");
        Ok(())
    }
}

/// Gives a row written by this flush another block number (the last 8 bytes of its key).
pub(super) fn renumber(o: &mut Out, block: u64) {
    let keep = o.key.len().saturating_sub(enc::BLOCK_NO_LEN);
    o.key.truncate(keep);
    o.key.extend_from_slice(&block.to_be_bytes());
}

/// A name's summary and client entries as blocks of at most [`MAX_BLOCK_ENTRIES`] entries (the
/// summary in the first).
pub(super) fn split_names(
    summary: Option<NameSummary>,
    clients: Vec<ClientEntry>,
) -> Vec<NameBlock> {
    if clients.len() <= MAX_BLOCK_ENTRIES {
        return vec![NameBlock { summary, clients }];
    }
    let mut out = Vec::new();
    let mut summary = summary;
    for chunk in clients.chunks(MAX_BLOCK_ENTRIES) {
        out.push(NameBlock {
            summary: summary.take(),
            clients: chunk.to_vec(),
        });
    }
    out
}
