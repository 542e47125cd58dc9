//! `MemoryStore`: the pipeline's [`DetectionStore`] held in process memory, for `scan` without
//! `--db` (no sled, no temporary directory, nothing to fsync). Same semantics as the sled store
//! for what the pipeline and `scan` use: detections keyed by id with their first-insert order,
//! the newest detection per (client, pool entry) for incident continuity, per-host last seen for
//! `is_new`, bindings and pool flows.
//!
//! Every table has a cap; rows beyond it are dropped and counted
//! (`poolwatch_store_memory_dropped_total{table}`, [`MemoryStore::dropped`]). A scan that
//! reaches the detection cap says so and suggests `--db`.

use rustc_hash::{FxHashMap as HashMap, FxHashSet, FxHasher};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::HostRecord;
use crate::metrics::{self, Counter};
use crate::model::{Detection, PoolFlow, Timestamp};
use crate::ports::{Batch, DetectionStore, FlowId, History, PersistenceError, MAX_BINDINGS};
use crate::query::{Binding, Suppression};

/// Detections kept in memory. Output of a scan: ~2–4 KB each with full evidence, so 250k stay
/// near the 512 MiB scan memory cap together with the engine's tables; a larger result needs
/// `scan --db`.
pub const MAX_MEMORY_DETECTIONS: usize = 250_000;
/// Pool flow rows kept (only inspected by tests and the API of a sled store; `scan` prints
/// detections, whose counts hold the totals).
pub const MAX_MEMORY_FLOWS: usize = 65_536;
/// Bindings kept: the engine's own binding cap.
pub const MAX_MEMORY_BINDINGS: usize = MAX_BINDINGS;

/// Rows dropped because a table was full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryDropped {
    pub detections: u64,
    pub bindings: u64,
    pub flows: u64,
}

struct Row {
    seq: u64,
    created: Timestamp,
    /// None while the engine holds the incident ([`History::take_incident`]): one copy of a
    /// detection in memory, never two. The pipeline writes it back. Boxed, like the engine's
    /// incidents: handing one over moves a pointer.
    det: Option<Box<Detection>>,
}

/// One (client, pool entry) incident's newest detection: (entry, created, seq, id).
type IncidentRef = (String, Timestamp, u64, String);

#[derive(Default)]
struct Mem {
    detections: HashMap<String, Row>,
    /// Newest detection per (client, pool entry), by client: a client has a handful of pool
    /// entries, and a lookup by (address, &str) allocates nothing (it runs for every incident
    /// the engine reloads).
    incidents: HashMap<IpAddr, Vec<IncidentRef>>,
    hosts: HashMap<IpAddr, HostRecord>,
    bindings: HashMap<(IpAddr, IpAddr), Binding>,
    flows: HashMap<FlowId, PoolFlow>,
    next_seq: u64,
    dropped: MemoryDropped,
    /// Detections the end of input handed over ([`DetectionStore::write_boxed`]) that no
    /// table holds yet, in arrival order: new ids only (none is in `detections`, no two share
    /// an id). `scan` takes them straight into its result ([`MemoryStore::take_sorted`]); any
    /// other read or write first files them as [`Mem::upsert`] would have ([`Mem::settle`]).
    /// A 65 536-client flood's result otherwise went through three hash tables and three
    /// string copies per detection on its way out (issue #11).
    // Boxes as the engine hands them over and `take_sorted` returns them: kept, not moved.
    #[allow(clippy::vec_box)]
    tail: Vec<Box<Detection>>,
    /// `tail`'s ids, hashed: an id seen twice (or one a table has) settles the tail first.
    tail_ids: FxHashSet<u64>,
}

struct DropCounters {
    detections: Counter,
    bindings: Counter,
    flows: Counter,
}

impl DropCounters {
    fn new() -> Self {
        let c = |t| {
            metrics::counter(
                "poolwatch_store_memory_dropped_total",
                "Rows the in-memory store (scan without --db) dropped because its table was full.",
                &[("table", t)],
            )
        };
        DropCounters {
            detections: c("detections"),
            bindings: c("bindings"),
            flows: c("flows"),
        }
    }
}

/// The in-memory store. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Mem>>,
    counters: Arc<DropCounters>,
    /// Keeps binding and pool-flow rows ([`MemoryStore::new`]) or only detections
    /// ([`MemoryStore::detections_only`]).
    rows: bool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.lock();
        f.debug_struct("MemoryStore")
            .field("detections", &(m.detections.len() + m.tail.len()))
            .finish()
    }
}

impl MemoryStore {
    /// A store with every table: detections, hosts, bindings and pool flows.
    pub fn new() -> Self {
        MemoryStore {
            inner: Arc::new(Mutex::new(Mem::default())),
            counters: Arc::new(DropCounters::new()),
            rows: true,
        }
    }

    /// A store that keeps only detections (and the per-host record behind `is_new`): what
    /// `scan` without `--db` prints. No binding or pool-flow rows (the engine's own bounded
    /// tables attribute flows; the detections' counts hold the totals), so the pipeline does
    /// not build them either ([`DetectionStore::keeps_rows`]).
    pub fn detections_only() -> Self {
        MemoryStore {
            rows: false,
            ..Self::new()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mem> {
        // A panic while holding the lock cannot leave a row half-written (each write is one
        // insert), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tables with the tail filed: what every read and write but the takes sees.
    fn settled(&self) -> MutexGuard<'_, Mem> {
        let mut m = self.lock();
        m.settle(&self.counters);
        m
    }

    /// Rows dropped so far because a table was full.
    pub fn dropped(&self) -> MemoryDropped {
        self.lock().dropped
    }

    pub fn detection_count(&self) -> usize {
        let m = self.lock();
        m.detections.len() + m.tail.len()
    }

    pub fn get_detection(&self, id: &str) -> Option<Detection> {
        self.settled()
            .detections
            .get(id)
            .and_then(|r| r.det.as_deref().cloned())
    }

    /// The flows recorded for one detection, in time order.
    pub fn detection_flows(&self, id: &str) -> Vec<PoolFlow> {
        let m = self.settled();
        let mut v: Vec<PoolFlow> = m
            .flows
            .values()
            .filter(|f| f.detection_id == id)
            .cloned()
            .collect();
        v.sort_by_key(|f| (f.start, f.src_port));
        v
    }

    pub fn host_record(&self, ip: IpAddr) -> Option<HostRecord> {
        self.settled().hosts.get(&ip).copied()
    }
}

fn incident_id<'a>(
    incidents: &'a HashMap<IpAddr, Vec<IncidentRef>>,
    client: IpAddr,
    pool_domain: &str,
) -> Option<&'a str> {
    incidents
        .get(&client)?
        .iter()
        .find(|r| r.0 == pool_domain)
        .map(|r| r.3.as_str())
}

/// `id` hashed, for [`Mem::tail_ids`].
fn id_hash(id: &str) -> u64 {
    let mut h = FxHasher::default();
    id.hash(&mut h);
    h.finish()
}

impl Mem {
    /// Files the tail into the tables, in arrival order (as [`Mem::upsert`] on arrival).
    fn settle(&mut self, counters: &DropCounters) {
        if self.tail.is_empty() {
            return;
        }
        self.tail_ids = FxHashSet::default();
        for d in std::mem::take(&mut self.tail) {
            self.upsert(d, counters);
        }
    }

    /// A detection of the end of input: into the tail when its id is new to the store (no
    /// probe while the store is empty, `scan`'s usual case), else filed at once.
    fn upsert_final(&mut self, det: Box<Detection>, counters: &DropCounters) {
        let known = !self.detections.is_empty() && self.detections.contains_key(&det.id);
        if known || !self.tail_ids.insert(id_hash(&det.id)) {
            self.settle(counters);
            self.upsert(det, counters);
            return;
        }
        if self.detections.len() + self.tail.len() >= MAX_MEMORY_DETECTIONS {
            self.tail_ids.remove(&id_hash(&det.id));
            self.dropped.detections = self.dropped.detections.saturating_add(1);
            counters.detections.inc();
            return;
        }
        self.tail.push(det);
    }

    /// The id of the newest detection of (`client`, `pool_domain`).
    fn incident_id(&self, client: IpAddr, pool_domain: &str) -> Option<&str> {
        incident_id(&self.incidents, client, pool_domain)
    }

    fn upsert(&mut self, det: Box<Detection>, counters: &DropCounters) {
        let is_new = !self.detections.contains_key(&det.id);
        if is_new && self.detections.len() >= MAX_MEMORY_DETECTIONS {
            self.dropped.detections = self.dropped.detections.saturating_add(1);
            counters.detections.inc();
            return;
        }
        let rec = self.hosts.entry(det.client_ip).or_insert(HostRecord {
            first_seen: det.first_seen,
            last_seen: det.last_seen,
            detections: 0,
        });
        rec.first_seen = rec.first_seen.min(det.first_seen);
        rec.last_seen = rec.last_seen.max(det.last_seen);
        match self.detections.get_mut(&det.id) {
            Some(row) => row.det = Some(det),
            None => {
                rec.detections = rec.detections.saturating_add(1);
                let seq = self.next_seq;
                self.next_seq += 1;
                let created = det.first_seen;
                let refs = self.incidents.entry(det.client_ip).or_default();
                match refs.iter_mut().find(|r| r.0 == det.pool_domain) {
                    Some(r) => {
                        if (created, seq) > (r.1, r.2) {
                            r.1 = created;
                            r.2 = seq;
                            r.3.clone_from(&det.id);
                        }
                    }
                    None => refs.push((det.pool_domain.clone(), created, seq, det.id.clone())),
                }
                self.detections.insert(
                    det.id.clone(),
                    Row {
                        seq,
                        created,
                        det: Some(det),
                    },
                );
            }
        }
    }
}

impl DetectionStore for MemoryStore {
    fn write_batch(&self, batch: &mut Batch) -> Result<(), PersistenceError> {
        let mut m = self.lock();
        // Only detections meet the tail (the pipeline's last flush carries none).
        if !batch.detections.is_empty() {
            m.settle(&self.counters);
        }
        if !self.rows {
            batch.bindings.clear();
            batch.flows.clear();
        }
        for (k, b) in batch.bindings.drain() {
            if m.bindings.len() >= MAX_MEMORY_BINDINGS && !m.bindings.contains_key(&k) {
                m.dropped.bindings = m.dropped.bindings.saturating_add(1);
                self.counters.bindings.inc();
                continue;
            }
            m.bindings.insert(k, b);
        }
        for (k, f) in batch.flows.drain() {
            if m.flows.len() >= MAX_MEMORY_FLOWS && !m.flows.contains_key(&k) {
                m.dropped.flows = m.dropped.flows.saturating_add(1);
                self.counters.flows.inc();
                continue;
            }
            m.flows.insert(k, f);
        }
        for (_, d) in batch.detections.drain() {
            m.upsert(Box::new(d), &self.counters);
        }
        Ok(())
    }

    /// Keeps the boxes: a detection the engine hands over at the end is stored as it is.
    fn write_boxed(&self, dets: &mut Vec<Box<Detection>>) -> Result<(), PersistenceError> {
        let mut m = self.lock();
        for d in dets.drain(..) {
            m.upsert_final(d, &self.counters);
        }
        Ok(())
    }

    fn preload_bindings(&self, limit: usize) -> Result<Vec<Binding>, PersistenceError> {
        let m = self.settled();
        let mut v: Vec<Binding> = m.bindings.values().take(limit).cloned().collect();
        v.sort_by_key(|b| b.last_seen);
        Ok(v)
    }

    fn suppression_generation(&self) -> u64 {
        0
    }

    fn list_suppressions(&self) -> Result<Vec<Suppression>, PersistenceError> {
        Ok(Vec::new())
    }

    fn history(&self) -> Box<dyn History> {
        Box::new(self.clone())
    }

    fn durable(&self) -> bool {
        false
    }

    fn keeps_rows(&self) -> bool {
        self.rows
    }

    /// Moves the detections out: the store is empty afterwards.
    fn take_detections(&self) -> Result<Vec<Detection>, PersistenceError> {
        Ok(self.take_all())
    }

    fn clone_handle(&self) -> Box<dyn DetectionStore> {
        Box::new(self.clone())
    }

    fn all_detections(&self) -> Result<Vec<Detection>, PersistenceError> {
        let m = self.settled();
        let mut rows: Vec<&Row> = m.detections.values().collect();
        rows.sort_by_key(|r| (r.created, r.seq));
        Ok(rows
            .into_iter()
            .filter_map(|r| r.det.as_deref().cloned())
            .collect())
    }
}

impl MemoryStore {
    /// Moves the detections out, boxed, in the order `scan` prints them (first seen, then id;
    /// ids are unique, so the order is total). Sorting boxes moves pointers; sorting the
    /// ~0.5 KB detections themselves, twice (store order, then print order), was ≈ 3% of a
    /// 65 536-client flood's CPU (issue #11). The store is empty afterwards.
    pub fn take_sorted(&self) -> Vec<Box<Detection>> {
        let mut m = self.lock();
        let mut v: Vec<Box<Detection>> = m.detections.drain().filter_map(|(_, r)| r.det).collect();
        // The tail's ids are new to the tables and unique: nothing to merge.
        v.append(&mut m.tail);
        m.tail_ids = FxHashSet::default();
        m.incidents.clear();
        drop(m);
        // Sorted by a first-seen copy beside each box: a comparison reads the detection
        // itself only on a tie (a 65 536-client flood's boxes are spread over ~400 MB).
        let mut keyed: Vec<(Timestamp, Box<Detection>)> =
            v.into_iter().map(|d| (d.first_seen, d)).collect();
        keyed.sort_unstable_by(|(ta, a), (tb, b)| ta.cmp(tb).then_with(|| a.id.cmp(&b.id)));
        keyed.into_iter().map(|(_, d)| d).collect()
    }

    fn take_all(&self) -> Vec<Detection> {
        let mut m = self.settled();
        let mut rows: Vec<(Timestamp, u64, Detection)> = m
            .detections
            .drain()
            .filter_map(|(_, r)| Some((r.created, r.seq, *r.det?)))
            .collect();
        m.incidents.clear();
        drop(m);
        rows.sort_by_key(|(c, s, _)| (*c, *s));
        rows.into_iter().map(|(_, _, d)| d).collect()
    }
}

impl History for MemoryStore {
    fn last_detection(&self, client: IpAddr) -> Option<Timestamp> {
        self.settled().hosts.get(&client).map(|r| r.last_seen)
    }

    fn open_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection> {
        let m = self.settled();
        let id = m.incident_id(client, pool_domain)?;
        m.detections.get(id).and_then(|r| r.det.as_deref().cloned())
    }

    fn take_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection> {
        self.take_incident_boxed(client, pool_domain).map(|b| *b)
    }

    fn take_incident_boxed(&self, client: IpAddr, pool_domain: &str) -> Option<Box<Detection>> {
        let mut m = self.settled();
        let m = &mut *m;
        let id = incident_id(&m.incidents, client, pool_domain)?;
        m.detections.get_mut(id).and_then(|r| r.det.take())
    }

    fn hands_over(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;

    fn det(id: &str, client: &str, first: i64, lookups: u64) -> Box<Detection> {
        let client = client.parse().unwrap();
        let stage = (Stage::Lookup, 60);
        let mut d = crate::model::test_detection(id, client, "pool.example", stage, first);
        d.counts.lookups = lookups;
        Box::new(d)
    }

    /// What the end of input hands over is the store's content for every reader, whether it
    /// waits in the tail or was filed: the same detections, the newest copy of a repeated
    /// id, the host record, the incident, and the order of first insertion.
    #[test]
    fn the_end_of_input_reads_as_if_filed() {
        let run = |tail: bool| {
            let s = MemoryStore::detections_only();
            let mut early = vec![det("a", "10.0.0.1", 5, 1)];
            s.write_boxed(&mut early).unwrap();
            let mut end = vec![
                det("c", "10.0.0.3", 1, 1),
                det("a", "10.0.0.1", 5, 2), // a table has it: replaces it
                det("b", "10.0.0.2", 3, 1),
                det("c", "10.0.0.3", 1, 7), // repeated within the end: the later one
            ];
            if tail {
                s.write_boxed(&mut end).unwrap();
            } else {
                let mut m = s.settled();
                for d in end {
                    m.upsert(d, &s.counters);
                }
            }
            let count = s.detection_count();
            let host = s.host_record("10.0.0.3".parse().unwrap());
            let inc = s.open_incident("10.0.0.2".parse().unwrap(), "pool.example");
            let all = s.all_detections().unwrap();
            (count, host, inc, all, s.take_detections().unwrap())
        };
        let (filed, tailed) = (run(false), run(true));
        assert_eq!(filed.0, 3);
        assert!(filed.1.is_some() && filed.2.is_some());
        assert_eq!(
            filed.4.iter().map(|d| d.counts.lookups).sum::<u64>(),
            2 + 1 + 7
        );
        assert_eq!(filed, tailed);
    }

    /// `scan`'s take: the tail and the tables merged, sorted by (first seen, id), the tail
    /// never filed (nothing probed or copied on the way out) when the store was empty.
    #[test]
    fn a_scan_takes_the_tail_sorted() {
        let s = MemoryStore::detections_only();
        let mut end = vec![
            det("b", "10.0.0.2", 3, 1),
            det("a2", "10.0.0.1", 1, 1),
            det("a1", "10.0.0.4", 1, 1),
        ];
        s.write_boxed(&mut end).unwrap();
        assert!(end.is_empty());
        // The pipeline's last flush carries no detections: it leaves the tail as it is.
        s.write_batch(&mut Batch::default()).unwrap();
        assert!(
            s.lock().detections.is_empty(),
            "filed instead of kept in the tail"
        );
        assert_eq!(s.detection_count(), 3);
        let ids: Vec<String> = s.take_sorted().into_iter().map(|d| d.id).collect();
        assert_eq!(ids, ["a1", "a2", "b"]);
        assert_eq!(s.detection_count(), 0);
    }

    /// The detection cap holds for the tail: beyond it, new ids are dropped and counted.
    #[test]
    fn the_tail_keeps_the_detection_cap() {
        let s = MemoryStore::detections_only();
        let mut end: Vec<Box<Detection>> = (0..MAX_MEMORY_DETECTIONS + 3)
            .map(|i| det(&format!("{i:08}"), "10.0.0.1", i as i64, 1))
            .collect();
        s.write_boxed(&mut end).unwrap();
        assert_eq!(s.detection_count(), MAX_MEMORY_DETECTIONS);
        assert_eq!(s.dropped().detections, 3);
        // A copy of a kept id is still taken after the cap.
        s.write_boxed(&mut vec![det("00000000", "10.0.0.1", 0, 9)])
            .unwrap();
        assert_eq!(s.detection_count(), MAX_MEMORY_DETECTIONS);
        assert_eq!(s.get_detection("00000000").unwrap().counts.lookups, 9);
    }
}
