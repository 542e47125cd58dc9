//! Stage `store`: detections, bindings, pool flows, per-host first-seen, suppressions and
//! follower offsets in sled 0.34 (the only module that touches sled).
//!
//! Layout, key encodings, durability policy and retention: `docs/store.md`. Schema steps:
//! `migrations/` (applied by [`migrate`] on open).

pub mod history;
pub mod keys;
mod memory;
pub mod migrate;
pub mod outbox;
mod sink;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::correlate::{History, PoolFlow};
use crate::model::{Detection, Evidence, EvidenceKind, Stage, Timestamp};
use crate::ports::{FileOffset, OffsetStore};
use crate::query::{
    Binding, DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary, Suppression,
};

pub use memory::{MemoryStore, MAX_MEMORY_DETECTIONS, MAX_MEMORY_FLOWS};
pub use migrate::CURRENT_SCHEMA;
pub use outbox::{Outbox, OutboxLimits};

pub(crate) const TREE_META: &str = "meta";
pub(crate) const TREE_DETECTIONS: &str = "detections";
pub(crate) const TREE_BY_TIME: &str = "det_by_time";
pub(crate) const TREE_BY_CLIENT: &str = "det_by_client";
pub(crate) const TREE_BINDINGS: &str = "bindings";
pub(crate) const TREE_FLOWS: &str = "pool_flows";
pub(crate) const TREE_HOSTS: &str = "hosts";
pub(crate) const TREE_SUPPRESSIONS: &str = "suppressions";
pub(crate) const TREE_OFFSETS: &str = "offsets";

/// sled's page cache (its default is 1 GiB, which would dominate the process under a flood).
pub const SLED_CACHE_BYTES: u64 = 64 << 20;
/// Largest page `list_detections` returns (bigger requests are clamped).
pub const MAX_PAGE: usize = 1_000;
/// Index entries examined per `list_detections` call: a filter that matches little cannot turn
/// one request into a full scan; the page then ends early with a cursor to continue.
pub const MAX_SCAN_PER_PAGE: usize = 50_000;
/// Entries returned per host timeline section.
pub const MAX_TIMELINE: usize = 1_000;
/// Flows kept per detection in the timeline view.
pub const MAX_FLOWS_PER_DETECTION_VIEW: usize = 200;
/// Detections examined when reloading an open incident for one client.
pub const MAX_INCIDENT_SCAN: usize = 256;
/// Longest accepted suppression reason / pool entry.
pub const MAX_REASON_LEN: usize = 1_024;
pub const MAX_POOL_LEN: usize = 253;
/// Longest accepted detection id (ids are 24 hex chars; longer input is not ours).
pub const MAX_ID_LEN: usize = 64;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    #[error("cannot open database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "database {path} has schema version {found}, newer than this poolwatch supports \
         ({supported}); use a newer poolwatch or another --db"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path} is not a poolwatch database: {reason}")]
    NotOurs { path: PathBuf, reason: String },
    /// sled could not read its own files (truncated segment, torn write, foreign bytes).
    #[error(
        "database {path} is damaged ({detail}); nothing was changed. Move it aside \
         (`mv {path} {path}.damaged`) and start again to create an empty database, or restore \
         it from a backup"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("invalid cursor")]
    BadCursor,
    #[error("corrupt record in tree {tree}: {message}")]
    Corrupt { tree: &'static str, message: String },
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Files sled 0.34 keeps in its directory, and the user-lists directory poolwatch puts there
/// by default (`<db>/lists`).
const SLED_FILES: &[&str] = &["conf", "db", "blobs"];
const OWN_ENTRIES: &[&str] = &["lists"];

/// A directory that exists must be a sled database (its `conf`/`db` files) or empty (apart
/// from poolwatch's own `lists/`): a directory of other files is never adopted as a new
/// database — sled would add its files beside them and `--db` typos would go unnoticed.
fn check_directory(path: &Path) -> Result<(), StoreError> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
    };
    if !md.is_dir() {
        return Err(StoreError::NotOurs {
            path: path.to_path_buf(),
            reason: "it is a file, not a database directory".into(),
        });
    }
    let entries = std::fs::read_dir(path).map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut sled_seen = false;
    let mut foreign = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if SLED_FILES.contains(&name.as_str()) || name.starts_with("snap.") {
            sled_seen = true;
        } else if !OWN_ENTRIES.contains(&name.as_str()) && foreign.is_none() {
            foreign = Some(name);
        }
    }
    match foreign {
        Some(name) if !sled_seen => Err(StoreError::NotOurs {
            path: path.to_path_buf(),
            reason: format!(
                "the directory holds other files ({name:?}, …) and no database; \
                 pass an empty or new directory to --db"
            ),
        }),
        _ => Ok(()),
    }
}

/// Opens sled, turning a panic inside it (a truncated segment makes 0.34 index out of
/// bounds in its page cache) into an error. While it runs, panics *on this thread* are not
/// printed (the caller reports them as a damaged database); other threads' panics still
/// reach the previous hook.
fn open_catching_panics(cfg: sled::Config) -> Result<sled::Result<sled::Db>, String> {
    use std::sync::{Mutex, PoisonError};
    type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync + 'static>;
    // One quiet window at a time: the hook is process-wide.
    static HOOK_LOCK: Mutex<()> = Mutex::new(());
    let _g = HOOK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let me = std::thread::current().id();
    let prev: Arc<Hook> = Arc::new(std::panic::take_hook());
    let chained = prev.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            chained(info);
        }
    }));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cfg.open()));
    drop(std::panic::take_hook());
    match Arc::try_unwrap(prev) {
        Ok(h) => std::panic::set_hook(h),
        Err(shared) => std::panic::set_hook(Box::new(move |i| shared(i))),
    }
    r.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

fn db_err(e: sled::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Per-host record (`hosts` tree): when the host's mining detections were first and last seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub detections: u64,
}

/// Entry counts per tree (for metrics gauges). `len()` walks a tree, so call it periodically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub detections: usize,
    pub bindings: usize,
    pub pool_flows: usize,
    pub hosts: usize,
    pub suppressions: usize,
    pub offsets: usize,
    pub size_on_disk: u64,
}

/// Retention policy for [`Store::prune`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Detections (and their flows) whose `last_seen` is older than this are deleted; so are
    /// bindings that expired this long ago and suppressions that expired this long ago.
    pub detections_secs: i64,
    /// Per-host records older than this are deleted. Keep it ≥ the `is_new` look-back.
    pub hosts_secs: i64,
}

impl Default for Retention {
    /// 90 days of detections, 180 days of host history (≥ the 30-day `is_new` look-back).
    fn default() -> Self {
        Retention {
            detections_secs: 90 * 86_400,
            hosts_secs: 180 * 86_400,
        }
    }
}

/// What [`Store::prune`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneStats {
    pub detections: u64,
    pub pool_flows: u64,
    pub bindings: u64,
    pub hosts: u64,
    pub suppressions: u64,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    schema: u32,
    detections: sled::Tree,
    by_time: sled::Tree,
    by_client: Option<sled::Tree>,
    bindings: sled::Tree,
    flows: sled::Tree,
    hosts: Option<sled::Tree>,
    suppressions: sled::Tree,
    offsets: sled::Tree,
    history: history::HistoryTrees,
    suppression_gen: AtomicU64,
}

/// The database. Cheap to clone (shared handle); all methods take `&self`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("schema", &self.inner.schema)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, upgrading an older schema in place.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_at(path, CURRENT_SCHEMA)
    }

    /// A throw-away database (sled temporary mode: deleted when the last handle drops).
    pub fn open_temporary() -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .cache_capacity(SLED_CACHE_BYTES)
            .temporary(true)
            .open()
            .map_err(|e| StoreError::Open {
                path: PathBuf::from("(temporary)"),
                message: e.to_string(),
            })?;
        Self::from_db(db, Path::new("(temporary)"), CURRENT_SCHEMA)
    }

    /// Opens `path` migrated only up to `schema` and writing that schema's layout. Exists so the
    /// upgrade fixture in `tests/data/store/` can be regenerated by the schema-1 write path.
    #[doc(hidden)]
    pub fn open_at(path: &Path, schema: u32) -> Result<Store, StoreError> {
        check_directory(path)?;
        let cfg = sled::Config::new()
            .cache_capacity(SLED_CACHE_BYTES)
            .path(path);
        let db = match open_catching_panics(cfg) {
            Ok(Ok(db)) => db,
            Ok(Err(sled::Error::Corruption { .. })) => {
                return Err(StoreError::Damaged {
                    path: path.to_path_buf(),
                    detail: "sled reports corruption".into(),
                })
            }
            Ok(Err(e)) => {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
            Err(panic) => {
                return Err(StoreError::Damaged {
                    path: path.to_path_buf(),
                    detail: format!("sled failed while reading it: {panic}"),
                })
            }
        };
        // Reading the trees at start-up is the first full read of the files: an error there is
        // damage sled's own open did not notice (foreign bytes inside a segment).
        Self::from_db(db, path, schema.min(CURRENT_SCHEMA)).map_err(|e| match e {
            StoreError::Db(detail) => StoreError::Damaged {
                path: path.to_path_buf(),
                detail,
            },
            StoreError::Corrupt { tree, message } => StoreError::Damaged {
                path: path.to_path_buf(),
                detail: format!("corrupt record in tree {tree}: {message}"),
            },
            other => other,
        })
    }

    fn from_db(db: sled::Db, path: &Path, target: u32) -> Result<Store, StoreError> {
        let before = migrate::migrate(&db, path, target)?;
        let schema = before.max(target);
        let open = |n: &str| db.open_tree(n).map_err(db_err);
        let inner = Inner {
            path: path.to_path_buf(),
            detections: open(TREE_DETECTIONS)?,
            by_time: open(TREE_BY_TIME)?,
            by_client: if schema >= 2 {
                Some(open(TREE_BY_CLIENT)?)
            } else {
                None
            },
            bindings: open(TREE_BINDINGS)?,
            flows: open(TREE_FLOWS)?,
            hosts: if schema >= 2 {
                Some(open(TREE_HOSTS)?)
            } else {
                None
            },
            suppressions: open(TREE_SUPPRESSIONS)?,
            offsets: open(TREE_OFFSETS)?,
            history: history::HistoryTrees::open(&db)?,
            schema,
            db,
            suppression_gen: AtomicU64::new(0),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> u32 {
        self.inner.schema
    }

    /// Makes every write so far durable (fsync). See the durability policy in `docs/store.md`.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush().map(|_| ()).map_err(db_err)
    }

    // -----------------------------------------------------------------------------------------
    // Writes (pipeline)
    // -----------------------------------------------------------------------------------------

    /// Inserts or replaces a detection (keyed by id) and maintains its indexes and the host
    /// record. Returns true when the detection was new to the store. Not durable until
    /// [`Store::flush`].
    pub fn upsert_detection(&self, det: &Detection) -> Result<bool, StoreError> {
        let i = &self.inner;
        let json = serde_json::to_vec(det).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let existing = i.detections.get(det.id.as_bytes()).map_err(db_err)?;
        let (seq, created, is_new) = match existing
            .as_deref()
            .and_then(|v| Some((keys::seq_from(v)?, keys::ts_from(v.get(keys::SEQ_LEN..)?)?)))
        {
            Some((seq, created)) => (seq, created, false),
            None => (i.db.generate_id().map_err(db_err)?, det.first_seen, true),
        };
        let mut v = Vec::with_capacity(keys::DET_HEADER_LEN + json.len());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&keys::ts(created));
        v.extend_from_slice(&json);
        i.detections.insert(det.id.as_bytes(), v).map_err(db_err)?;
        if is_new {
            i.by_time
                .insert(keys::by_time(created, seq), det.id.as_bytes())
                .map_err(db_err)?;
            if let Some(t) = &i.by_client {
                t.insert(
                    keys::by_client(det.client_ip, created, seq),
                    det.id.as_bytes(),
                )
                .map_err(db_err)?;
            }
        }
        if let Some(hosts) = &i.hosts {
            let k = keys::ip(det.client_ip);
            let mut rec = hosts
                .get(k)
                .map_err(db_err)?
                .and_then(|v| serde_json::from_slice::<HostRecord>(&v).ok())
                .unwrap_or(HostRecord {
                    first_seen: det.first_seen,
                    last_seen: det.last_seen,
                    detections: 0,
                });
            rec.first_seen = rec.first_seen.min(det.first_seen);
            rec.last_seen = rec.last_seen.max(det.last_seen);
            if is_new {
                rec.detections = rec.detections.saturating_add(1);
            }
            if let Ok(v) = serde_json::to_vec(&rec) {
                hosts.insert(k, v).map_err(db_err)?;
            }
        }
        Ok(is_new)
    }

    /// Records (or refreshes) a binding.
    pub fn put_binding(&self, b: &Binding) -> Result<(), StoreError> {
        let v = serde_json::to_vec(b).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.inner
            .bindings
            .insert(keys::binding(b.client, b.ip), v)
            .map_err(db_err)?;
        Ok(())
    }

    /// Stored bindings (at most `limit`), oldest `last_seen` first, for preloading the engine.
    pub fn bindings(&self, limit: usize) -> Result<Vec<Binding>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.bindings.iter().take(limit) {
            let (_, v) = entry.map_err(db_err)?;
            if let Ok(b) = serde_json::from_slice::<Binding>(&v) {
                out.push(b);
            }
        }
        out.sort_by_key(|b| b.last_seen);
        Ok(out)
    }

    /// Records a pool flow (a later report of the same flow replaces the earlier one).
    pub fn put_flow(&self, f: &PoolFlow) -> Result<(), StoreError> {
        let v = serde_json::to_vec(f).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let k = keys::pool_flow(
            &f.detection_id,
            f.start,
            f.src_port,
            f.dst,
            f.dst_port,
            f.proto,
        );
        self.inner.flows.insert(k, v).map_err(db_err)?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Queries (REST API)
    // -----------------------------------------------------------------------------------------

    /// Detections matching `f`, newest (by first_seen) first. The cursor is a position in the
    /// index, so concurrent inserts never shift or repeat items already paged past.
    pub fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let single = f
            .client
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr());
        let (tree, prefix, tag) = match (single, &self.inner.by_client) {
            (Some(ip), Some(t)) => (t, keys::ip(ip).to_vec(), 'c'),
            _ => (&self.inner.by_time, Vec::new(), 't'),
        };
        let upper = match cursor {
            Some(c) => {
                let mut chars = c.chars();
                if chars.next() != Some(tag) {
                    return Err(StoreError::BadCursor);
                }
                let k = keys::unhex(chars.as_str()).ok_or(StoreError::BadCursor)?;
                if !k.starts_with(&prefix) || k.len() != prefix.len() + keys::TS_LEN + keys::SEQ_LEN
                {
                    return Err(StoreError::BadCursor);
                }
                k
            }
            None => {
                let mut k = prefix.clone();
                k.extend_from_slice(&[0xff; keys::TS_LEN + keys::SEQ_LEN + 1]);
                k
            }
        };
        let mut items = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        let mut more = false;
        for (scanned, entry) in tree.range(prefix.clone()..upper).rev().enumerate() {
            let (k, id) = entry.map_err(db_err)?;
            if items.len() == limit || scanned >= MAX_SCAN_PER_PAGE {
                more = true;
                break;
            }
            last_key = Some(k.to_vec());
            let Some(det) = self.load(&id)? else { continue };
            if matches(f, &det) {
                items.push(det);
            }
        }
        let next_cursor = match (more, last_key) {
            (true, Some(k)) => Some(format!("{tag}{}", keys::hex(&k))),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    pub fn get_detection(&self, id: &str) -> Result<Option<Detection>, StoreError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Ok(None);
        }
        self.load(id.as_bytes())
    }

    /// Every detection, oldest first (for `scan` output and exports).
    pub fn all_detections(&self) -> Result<Vec<Detection>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.by_time.iter() {
            let (_, id) = entry.map_err(db_err)?;
            if let Some(d) = self.load(&id)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The flows recorded for one detection, in time order.
    pub fn detection_flows(&self, id: &str, limit: usize) -> Result<Vec<PoolFlow>, StoreError> {
        let mut out = Vec::new();
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Ok(out);
        }
        for entry in self
            .inner
            .flows
            .scan_prefix(keys::flow_prefix(id))
            .take(limit)
        {
            let (_, v) = entry.map_err(db_err)?;
            if let Ok(f) = serde_json::from_slice::<PoolFlow>(&v) {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// The host's detections (newest first), bindings, and recent evidence as a timeline.
    pub fn host_timeline(&self, ip: IpAddr, limit: usize) -> Result<HostTimeline, StoreError> {
        let limit = limit.clamp(1, MAX_TIMELINE);
        let detections = self.client_detections(ip, limit)?;
        let mut bindings = Vec::new();
        for entry in self
            .inner
            .bindings
            .scan_prefix(keys::ip(ip))
            .take(MAX_TIMELINE)
        {
            let (_, v) = entry.map_err(db_err)?;
            if let Ok(b) = serde_json::from_slice::<Binding>(&v) {
                bindings.push(b);
            }
        }
        bindings.sort_by_key(|b| std::cmp::Reverse(b.last_seen));
        let mut timeline: Vec<Evidence> = Vec::new();
        let mut seen = HashSet::new();
        for d in &detections {
            for e in &d.evidence {
                if seen.insert(evidence_key(e)) {
                    timeline.push(e.clone());
                }
            }
            for f in self.detection_flows(&d.id, MAX_FLOWS_PER_DETECTION_VIEW)? {
                let e = flow_evidence(&f);
                if seen.insert(evidence_key(&e)) {
                    timeline.push(e);
                }
            }
        }
        timeline.sort_by_key(|e| std::cmp::Reverse(e.ts));
        timeline.truncate(limit);
        let first_seen = match &self.inner.hosts {
            Some(h) => h
                .get(keys::ip(ip))
                .map_err(db_err)?
                .and_then(|v| serde_json::from_slice::<HostRecord>(&v).ok())
                .map(|r| r.first_seen),
            None => detections.iter().map(|d| d.first_seen).min(),
        };
        Ok(HostTimeline {
            ip,
            first_seen,
            detections,
            bindings,
            timeline,
        })
    }

    /// Pool entries seen, with prevalence (distinct clients), strongest stage and times.
    pub fn pools(&self) -> Result<Vec<PoolSummary>, StoreError> {
        struct Agg {
            s: PoolSummary,
            clients: BTreeSet<IpAddr>,
        }
        let mut by: BTreeMap<String, Agg> = BTreeMap::new();
        for entry in self.inner.detections.iter() {
            let (_, v) = entry.map_err(db_err)?;
            let Some((_, _, d)) = migrate::decode_detection(&v) else {
                continue;
            };
            let hit = d.lists.iter().find(|h| h.entry == d.pool_domain);
            let a = by.entry(d.pool_domain.clone()).or_insert_with(|| Agg {
                s: PoolSummary {
                    pool_domain: d.pool_domain.clone(),
                    category: hit.map(|h| h.category),
                    list: hit.map(|h| h.list.clone()),
                    clients: 0,
                    detections: 0,
                    strongest_stage: d.stage,
                    first_seen: d.first_seen,
                    last_seen: d.last_seen,
                },
                clients: BTreeSet::new(),
            });
            a.clients.insert(d.client_ip);
            a.s.detections += 1;
            a.s.strongest_stage = a.s.strongest_stage.max(d.stage);
            a.s.first_seen = a.s.first_seen.min(d.first_seen);
            a.s.last_seen = a.s.last_seen.max(d.last_seen);
            if a.s.category.is_none() {
                a.s.category = hit.map(|h| h.category);
                a.s.list = hit.map(|h| h.list.clone());
            }
        }
        let mut out: Vec<PoolSummary> = by
            .into_values()
            .map(|mut a| {
                a.s.clients = a.clients.len() as u64;
                a.s
            })
            .collect();
        out.sort_by(|a, b| {
            b.clients
                .cmp(&a.clients)
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.pool_domain.cmp(&b.pool_domain))
        });
        Ok(out)
    }

    /// Addresses currently bound to pool lookups (binding not yet expired at `now`).
    pub fn pool_ips(&self, now: Timestamp) -> Result<Vec<PoolIp>, StoreError> {
        struct Agg {
            domains: BTreeSet<String>,
            clients: BTreeSet<IpAddr>,
            last_seen: Timestamp,
            expires: Timestamp,
        }
        let mut by: BTreeMap<IpAddr, Agg> = BTreeMap::new();
        for entry in self.inner.bindings.iter() {
            let (_, v) = entry.map_err(db_err)?;
            let Ok(b) = serde_json::from_slice::<Binding>(&v) else {
                continue;
            };
            if b.expires <= now {
                continue;
            }
            let a = by.entry(b.ip).or_insert(Agg {
                domains: BTreeSet::new(),
                clients: BTreeSet::new(),
                last_seen: b.last_seen,
                expires: b.expires,
            });
            a.domains.insert(b.pool_domain);
            a.clients.insert(b.client);
            a.last_seen = a.last_seen.max(b.last_seen);
            a.expires = a.expires.max(b.expires);
        }
        Ok(by
            .into_iter()
            .map(|(ip, a)| PoolIp {
                ip,
                pool_domains: a.domains.into_iter().collect(),
                clients: a.clients.len() as u64,
                last_seen: a.last_seen,
                expires: a.expires,
            })
            .collect())
    }

    // -----------------------------------------------------------------------------------------
    // Suppressions
    // -----------------------------------------------------------------------------------------

    /// Validates and stores a suppression rule (durable on return).
    pub fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, StoreError> {
        if s.client.is_none() && s.pool.is_none() {
            return Err(StoreError::Invalid(
                "a suppression needs a client address/CIDR, a pool entry, or both".into(),
            ));
        }
        let reason = s.reason.trim();
        if reason.is_empty() {
            return Err(StoreError::Invalid("a suppression needs a reason".into()));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(StoreError::Invalid(format!(
                "reason longer than {MAX_REASON_LEN} bytes"
            )));
        }
        let pool = match s.pool.as_deref().map(crate::model::normalize_name) {
            Some(p) if p == "." || p.len() > MAX_POOL_LEN || p.chars().any(char::is_whitespace) => {
                return Err(StoreError::Invalid(format!("invalid pool entry {p:?}")));
            }
            other => other,
        };
        let id = format!("s{:015x}", self.inner.db.generate_id().map_err(db_err)?);
        let rule = Suppression {
            id: id.clone(),
            client: s.client.map(|n| n.trunc()),
            pool,
            expires: s.expires,
            reason: reason.to_string(),
            created: Timestamp::now(),
        };
        let v = serde_json::to_vec(&rule).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.inner
            .suppressions
            .insert(id.as_bytes(), v)
            .map_err(db_err)?;
        self.flush()?;
        self.inner.suppression_gen.fetch_add(1, Ordering::Relaxed);
        Ok(rule)
    }

    pub fn list_suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.suppressions.iter() {
            let (_, v) = entry.map_err(db_err)?;
            match serde_json::from_slice::<Suppression>(&v) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(error = %e, "skipping undecodable suppression"),
            }
        }
        Ok(out)
    }

    /// Deletes a rule (durable on return). False when no such id.
    pub fn delete_suppression(&self, id: &str) -> Result<bool, StoreError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Ok(false);
        }
        let removed = self
            .inner
            .suppressions
            .remove(id.as_bytes())
            .map_err(db_err)?
            .is_some();
        if removed {
            self.flush()?;
            self.inner.suppression_gen.fetch_add(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Changes whenever suppressions are added or deleted through this handle (or its clones),
    /// so the pipeline knows when to reload them.
    pub fn suppression_generation(&self) -> u64 {
        self.inner.suppression_gen.load(Ordering::Relaxed)
    }

    // -----------------------------------------------------------------------------------------
    // Maintenance
    // -----------------------------------------------------------------------------------------

    /// Deletes data older than the retention policy, relative to `now`.
    pub fn prune(&self, now: Timestamp, r: &Retention) -> Result<PruneStats, StoreError> {
        let i = &self.inner;
        let mut st = PruneStats::default();
        let cutoff = now.plus_secs(-r.detections_secs.max(0));
        // Index order is first_seen order; last_seen ≥ first_seen, so nothing past the cutoff
        // in first_seen can be prunable.
        let mut doomed = Vec::new();
        for entry in i.by_time.range(..keys::by_time(cutoff, 0)) {
            let (_, id) = entry.map_err(db_err)?;
            if let Some(d) = self.load(&id)? {
                if d.last_seen < cutoff {
                    doomed.push(id.to_vec());
                }
            }
        }
        for id in doomed {
            let Some(v) = i.detections.remove(&id).map_err(db_err)? else {
                continue;
            };
            if let Some((seq, created, d)) = migrate::decode_detection(&v) {
                i.by_time
                    .remove(keys::by_time(created, seq))
                    .map_err(db_err)?;
                if let Some(t) = &i.by_client {
                    t.remove(keys::by_client(d.client_ip, created, seq))
                        .map_err(db_err)?;
                }
                let fk: Vec<Vec<u8>> = i
                    .flows
                    .scan_prefix(keys::flow_prefix(&d.id))
                    .keys()
                    .filter_map(Result::ok)
                    .map(|k| k.to_vec())
                    .collect();
                for k in fk {
                    i.flows.remove(k).map_err(db_err)?;
                    st.pool_flows += 1;
                }
            }
            st.detections += 1;
        }
        let mut dead = Vec::new();
        for entry in i.bindings.iter() {
            let (k, v) = entry.map_err(db_err)?;
            let expired = serde_json::from_slice::<Binding>(&v)
                .map(|b| b.expires < cutoff)
                .unwrap_or(true);
            if expired {
                dead.push(k.to_vec());
            }
        }
        for k in dead {
            i.bindings.remove(k).map_err(db_err)?;
            st.bindings += 1;
        }
        if let Some(h) = &i.hosts {
            let hcut = now.plus_secs(-r.hosts_secs.max(0));
            let mut dead = Vec::new();
            for entry in h.iter() {
                let (k, v) = entry.map_err(db_err)?;
                let old = serde_json::from_slice::<HostRecord>(&v)
                    .map(|r| r.last_seen < hcut)
                    .unwrap_or(true);
                if old {
                    dead.push(k.to_vec());
                }
            }
            for k in dead {
                h.remove(k).map_err(db_err)?;
                st.hosts += 1;
            }
        }
        for s in self.list_suppressions()? {
            if s.expires.is_some_and(|e| e < cutoff) {
                i.suppressions.remove(s.id.as_bytes()).map_err(db_err)?;
                st.suppressions += 1;
            }
        }
        if st.suppressions > 0 {
            i.suppression_gen.fetch_add(1, Ordering::Relaxed);
        }
        self.flush()?;
        Ok(st)
    }

    /// Entry counts (walks the trees: call from a periodic task, not per request).
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let i = &self.inner;
        Ok(StoreStats {
            detections: i.detections.len(),
            bindings: i.bindings.len(),
            pool_flows: i.flows.len(),
            hosts: i.hosts.as_ref().map_or(0, |h| h.len()),
            suppressions: i.suppressions.len(),
            offsets: i.offsets.len(),
            size_on_disk: i.db.size_on_disk().map_err(db_err)?,
        })
    }

    /// The per-host record (first/last mining detection), if any.
    pub fn host_record(&self, ip: IpAddr) -> Result<Option<HostRecord>, StoreError> {
        let Some(h) = &self.inner.hosts else {
            return Ok(None);
        };
        Ok(h.get(keys::ip(ip))
            .map_err(db_err)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    // -----------------------------------------------------------------------------------------
    // Internals
    // -----------------------------------------------------------------------------------------

    fn load(&self, id: &[u8]) -> Result<Option<Detection>, StoreError> {
        let Some(v) = self.inner.detections.get(id).map_err(db_err)? else {
            return Ok(None);
        };
        match migrate::decode_detection(&v) {
            Some((_, _, d)) => Ok(Some(d)),
            None => Err(StoreError::Corrupt {
                tree: TREE_DETECTIONS,
                message: format!("undecodable detection {}", String::from_utf8_lossy(id)),
            }),
        }
    }

    fn client_detections(&self, ip: IpAddr, limit: usize) -> Result<Vec<Detection>, StoreError> {
        let mut out = Vec::new();
        match &self.inner.by_client {
            Some(t) => {
                for entry in t.scan_prefix(keys::ip(ip)).rev().take(limit) {
                    let (_, id) = entry.map_err(db_err)?;
                    if let Some(d) = self.load(&id)? {
                        out.push(d);
                    }
                }
            }
            None => {
                for entry in self.inner.by_time.iter().rev() {
                    let (_, id) = entry.map_err(db_err)?;
                    if let Some(d) = self.load(&id)? {
                        if d.client_ip == ip {
                            out.push(d);
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn matches(f: &DetectionFilter, d: &Detection) -> bool {
    f.client.is_none_or(|n| n.contains(&d.client_ip))
        && f.pool
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case(&d.pool_domain))
        && f.stage.is_none_or(|s| s == d.stage)
        && f.min_risk.is_none_or(|m| d.risk_score >= m)
        && f.since.is_none_or(|t| d.last_seen >= t)
        && f.until.is_none_or(|t| d.first_seen <= t)
        && f.suppressed.is_none_or(|s| s == d.suppressed)
}

fn evidence_key(e: &Evidence) -> (Timestamp, Option<u16>, Option<IpAddr>, Option<u16>, u8) {
    let k = match e.kind {
        EvidenceKind::DnsLookup | EvidenceKind::DnsBlocked => 0,
        _ => 1,
    };
    (e.ts, e.src_port, e.dst, e.dst_port, k)
}

fn flow_evidence(f: &PoolFlow) -> Evidence {
    let kind = if f.stratum_method.is_some() {
        EvidenceKind::Stratum
    } else if f.sni.is_some() {
        EvidenceKind::TlsSni
    } else {
        EvidenceKind::Flow
    };
    let mut e = Evidence::new(
        f.start,
        kind,
        f.source.clone(),
        format!(
            "{} {}:{} -> {}:{} {}, {} B out / {} B in, {} ms",
            match f.proto {
                crate::model::Proto::Tcp => "tcp",
                crate::model::Proto::Udp => "udp",
            },
            f.client,
            f.src_port,
            f.dst,
            f.dst_port,
            match f.state {
                crate::model::FlowState::Attempted => "attempted",
                crate::model::FlowState::Rejected => "rejected",
                crate::model::FlowState::Established => "established",
                crate::model::FlowState::Closed => "closed",
            },
            f.bytes_out,
            f.bytes_in,
            f.duration_ms
        ),
    );
    e.dst = Some(f.dst);
    e.dst_port = Some(f.dst_port);
    e.src_port = Some(f.src_port);
    e.state = Some(f.state);
    e.bytes_out = Some(f.bytes_out);
    e.bytes_in = Some(f.bytes_in);
    e.duration_ms = Some(f.duration_ms);
    e.agent = f.agent.clone();
    e.method = f.stratum_method.clone();
    e
}

impl History for Store {
    fn last_detection(&self, client: IpAddr) -> Option<Timestamp> {
        match self.host_record(client) {
            Ok(r) => r.map(|r| r.last_seen),
            Err(e) => {
                tracing::warn!(error = %e, "store lookup for is_new failed");
                None
            }
        }
    }

    fn open_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection> {
        let t = self.inner.by_client.as_ref()?;
        for entry in t
            .scan_prefix(keys::ip(client))
            .rev()
            .take(MAX_INCIDENT_SCAN)
        {
            let Ok((_, id)) = entry else { return None };
            if let Ok(Some(d)) = self.load(&id) {
                if d.pool_domain == pool_domain {
                    return Some(d);
                }
            }
        }
        None
    }
}

impl OffsetStore for Store {
    fn load_offset(&self, key: &str) -> Option<FileOffset> {
        let v = self.inner.offsets.get(key.as_bytes()).ok()??;
        serde_json::from_slice(&v).ok()
    }

    fn save_offset(&self, key: &str, offset: &FileOffset) -> Result<(), String> {
        let v = serde_json::to_vec(offset).map_err(|e| e.to_string())?;
        self.inner
            .offsets
            .insert(key.as_bytes(), v)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Stage counts helper for metrics: detections per stage in the store (walks the tree).
pub fn count_by_stage(store: &Store) -> Result<BTreeMap<Stage, u64>, StoreError> {
    let mut m = BTreeMap::new();
    for entry in store.inner.detections.iter() {
        let (_, v) = entry.map_err(db_err)?;
        if let Some((_, _, d)) = migrate::decode_detection(&v) {
            *m.entry(d.stage).or_insert(0) += 1;
        }
    }
    Ok(m)
}
