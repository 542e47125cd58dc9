//! Stage `store`: detections, bindings, pool flows, per-host first-seen, suppressions and
//! follower offsets in sled 0.34 (the only module that touches sled).
//!
//! Layout, key encodings, durability policy and retention: `docs/store.md`. Schema steps:
//! `migrations/` (applied by [`migrate`] on open).

mod detections;
pub mod history;
pub mod keys;
mod maintenance;
mod memory;
pub mod migrate;
pub mod outbox;
mod queries;
mod sink;
mod suppressions;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Detection, Evidence, EvidenceKind, PoolFlow, Stage, Timestamp};
use crate::ports::{FileOffset, History, OffsetStore, PersistenceError};
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
/// Longest accepted suppression reason (characters) and detection / suppression id: one
/// definition in `query`, shared with the API.
pub use crate::query::{MAX_ID_LEN, MAX_REASON_LEN};
/// Longest accepted suppression pool entry.
pub const MAX_POOL_LEN: usize = 253;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed (I/O, corruption found while reading); the message is sled's (source).
    #[error("database error")]
    Db(#[source] sled::Error),
    /// A record could not be encoded (never the caller's input).
    #[error("cannot encode a record")]
    Encode(#[source] serde_json::Error),
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

impl From<StoreError> for PersistenceError {
    fn from(e: StoreError) -> Self {
        PersistenceError::new(e)
    }
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

/// How long opening waits for sled's directory lock while it is held. A database of this
/// process that was just dropped still holds it until sled's last background thread lets go
/// (its next flush tick, later on a loaded machine): reopening right after a drop — a restart
/// in place, a migration check — must not fail on that. A lock another process holds is
/// reported once this has passed.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Pause between two attempts at the lock.
const LOCK_RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// [`open_catching_panics`], retrying sled's lock error (only that) for up to [`LOCK_WAIT`].
fn open_waiting_for_lock(cfg: &sled::Config) -> Result<sled::Result<sled::Db>, String> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match open_catching_panics(cfg.clone()) {
            // sled 0.34 reports a held lock only as this text in an `ErrorKind::Other`.
            Ok(Err(sled::Error::Io(e)))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(LOCK_RETRY_EVERY);
            }
            other => return other,
        }
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
    StoreError::Db(e)
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
    /// Bumped after every write that can change a detection page (see
    /// [`Store::detections_generation`]).
    detections_gen: AtomicU64,
}

/// Bumps a generation counter when dropped: after the writes of the scope that holds it,
/// whichever way that scope is left (an error half-way through a write still invalidates).
struct BumpOnDrop<'a>(&'a AtomicU64);

impl Drop for BumpOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
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
        let db = match open_waiting_for_lock(&cfg) {
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
            StoreError::Db(e) => StoreError::Damaged {
                path: path.to_path_buf(),
                detail: e.to_string(),
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
            detections_gen: AtomicU64::new(0),
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
