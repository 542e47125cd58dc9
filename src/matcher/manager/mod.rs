//! The list manager: every list the service matches with — shipped, `--blocklist` files, user
//! lists uploaded through the API and remote feeds — behind one owner that validates every
//! update, recompiles, swaps atomically and persists user lists and feed copies on disk.
//!
//! On-disk layout of the user-lists directory:
//!
//! ```text
//! <dir>/<name>.txt              a user list, as uploaded
//! <dir>/<name>.meta.json        its category and format
//! <dir>/feeds/<name>.txt        a feed's last good copy
//! <dir>/feeds/<name>.meta.json  the feed's subscription and state (FeedState)
//! ```
//!
//! Every file is written to a temporary file and renamed, so a crash leaves the old or the new
//! version, never half of one. Names are checked with [`super::names::is_valid_list_name`]
//! (`[a-z0-9._-]`, no `/`), so no name can leave the directory.
//!
//! Layout: this file holds the manager's state, `open` and the background task; the rest is
//! split by what it does — [`lists`] (user-list edits, views), [`refresh`] (feed
//! subscriptions, downloads, scheduling), [`persist`] (the on-disk layout, loading and atomic
//! writes), [`views`] (the JSON shapes the API serves). The download itself is
//! [`super::feeds`], which knows nothing of the manager.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::feeds::{self, FeedPolicy, FeedState};
use super::{ListFormat, ListSource, MatcherError, Origin, Reloader, SharedBlocklists};
use crate::model::{Category, Timestamp};

mod lists;
mod persist;
mod refresh;
mod replica;
#[cfg(test)]
mod tests;
mod views;

pub use replica::{ListReplicator, UserListRecord};
pub use views::{EntriesReport, ListDetail, ListEntry, ListInfo, ListKind, UpdateReport};

use persist::{load_feeds, load_user_lists};
use refresh::Flight;

/// Most user lists kept: each is a file and a list in every rebuild.
pub const MAX_USER_LISTS: usize = 256;
/// Most entries in one add/remove request (bigger changes: `PUT` the whole list).
pub const MAX_ENTRY_CHANGES: usize = 10_000;
/// Problems returned with a rejected update (the count of all of them is in the message).
pub const MAX_REJECT_PROBLEMS: usize = 100;
/// Longest wait of the background task between checks (so a changed clock or a missed wake-up
/// never delays a due feed by more than this).
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How often `serve` polls `--blocklist` files for changes: a stat per file, cheap, and quick
/// enough that an edited list is live within seconds.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Sub-directory of the user-lists directory holding feed copies and state.
const FEEDS_SUBDIR: &str = "feeds";

/// Where lists come from and how often to look at them.
#[derive(Clone, Debug)]
pub struct ListManagerConfig {
    /// `--blocklist` files and directories; empty means the shipped lists.
    pub blocklists: Vec<PathBuf>,
    /// Where user lists and feed copies persist (created when missing).
    pub user_lists_dir: PathBuf,
    /// Feeds from the configuration (read-only through the API).
    pub feeds: Vec<FeedState>,
    /// Poll interval for `--blocklist` file changes; `None` disables the watcher.
    pub watch_interval: Option<Duration>,
    /// Deadline of one feed download.
    pub feed_timeout: Duration,
    /// What feeds may reach (addresses, `file://` roots); the default allows public
    /// addresses only and no files.
    pub feed_policy: FeedPolicy,
}

impl ListManagerConfig {
    /// Shipped lists only, user lists in `dir`, no feeds, no watcher (tests, embedding).
    pub fn new(user_lists_dir: impl Into<PathBuf>) -> Self {
        ListManagerConfig {
            blocklists: Vec::new(),
            user_lists_dir: user_lists_dir.into(),
            feeds: Vec::new(),
            watch_interval: None,
            feed_timeout: feeds::FEED_TIMEOUT,
            feed_policy: FeedPolicy::default(),
        }
    }
}

/// A user list held in memory (its text is also on disk).
#[derive(Clone, Debug)]
struct UserList {
    category: Category,
    format: Option<ListFormat>,
    text: Arc<str>,
    updated: Option<Timestamp>,
}

struct Feed {
    state: FeedState,
    /// The last good copy, when there is one.
    text: Option<Arc<str>>,
}

struct Inner {
    user: BTreeMap<String, UserList>,
    feeds: BTreeMap<String, Feed>,
    /// Problems found while loading persisted lists (broken files are skipped, not fatal).
    load_errors: Vec<String>,
}

/// Owns the running set and everything it is built from. See the module documentation.
pub struct ListManager {
    cfg: ListManagerConfig,
    shared: SharedBlocklists,
    reloader: Reloader,
    inner: Mutex<Inner>,
    http: reqwest::Client,
    wake: tokio::sync::Notify,
    /// One refresh per feed at a time; concurrent callers wait and share its result
    /// (single flight: 12 parallel refreshes must not hold 12 copies of a 64 MiB feed).
    flights: Mutex<BTreeMap<String, Arc<Flight>>>,
    /// Where validated user-list edits go before they are kept (a cluster; `replica.rs`).
    replicator: Mutex<Option<Arc<dyn ListReplicator>>>,
}

impl std::fmt::Debug for ListManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListManager")
            .field("user_lists_dir", &self.cfg.user_lists_dir)
            .finish_non_exhaustive()
    }
}

impl ListManager {
    /// Loads the shipped/`--blocklist` lists, the persisted user lists and feed copies, builds
    /// the running set and returns it with the manager. Broken persisted files are skipped and
    /// logged (see [`ListManager::load_errors`]); unreadable `--blocklist` files are an error.
    pub fn open(
        cfg: ListManagerConfig,
    ) -> Result<(Arc<ListManager>, SharedBlocklists), MatcherError> {
        let dir = cfg.user_lists_dir.clone();
        let feeds_dir = dir.join(FEEDS_SUBDIR);
        std::fs::create_dir_all(&feeds_dir).map_err(|source| MatcherError::Io {
            path: feeds_dir.clone(),
            source,
        })?;
        let mut load_errors = Vec::new();
        let user = load_user_lists(&dir, &mut load_errors);
        let feeds = load_feeds(&feeds_dir, &cfg.feeds, &mut load_errors);
        for e in &load_errors {
            tracing::warn!(error = %e, "skipping a persisted list");
        }
        let http = feeds::http_client(cfg.feed_timeout, &cfg.feed_policy)?;
        let shared = super::shared(super::Blocklists::empty());
        let reloader = Reloader::new(shared.clone(), cfg.blocklists.clone());
        let mgr = ListManager {
            cfg,
            shared: shared.clone(),
            reloader,
            inner: Mutex::new(Inner {
                user,
                feeds,
                load_errors,
            }),
            http,
            wake: tokio::sync::Notify::new(),
            flights: Mutex::new(BTreeMap::new()),
            replicator: Mutex::new(None),
        };
        {
            let mut inner = mgr.lock();
            let extra = extra_sources(&mgr.cfg.user_lists_dir, &inner);
            if let Err(e) = mgr.reloader.set_user_lists(extra) {
                // The persisted lists together do not build (e.g. over the entry limit): start
                // with the shipped/`--blocklist` lists alone rather than not at all, and say so.
                // A failure of those is a configuration error and is returned.
                tracing::error!(error = %e, "user lists and feed copies not loaded");
                mgr.reloader.set_user_lists(Vec::new())?;
                inner
                    .load_errors
                    .push(format!("user lists and feed copies not loaded: {e}"));
                inner.user.clear();
                for f in inner.feeds.values_mut() {
                    f.text = None;
                    f.state.active = false;
                }
            }
        }
        Ok((Arc::new(mgr), shared))
    }

    /// The running set (the same handle [`ListManager::open`] returned).
    pub fn shared(&self) -> &SharedBlocklists {
        &self.shared
    }

    /// Registers the port that hears which entries each swap of the running set added: user
    /// list edits, feed refreshes and `--blocklist` reloads alike (see `docs/arch/matcher.md`,
    /// "List changes"). `None` removes it.
    pub fn set_change_sink(&self, sink: Option<Arc<dyn crate::ports::ListChangeSink>>) {
        self.reloader.set_change_sink(sink);
    }

    /// Problems met while loading persisted lists at start-up.
    pub fn load_errors(&self) -> Vec<String> {
        self.lock().load_errors.clone()
    }

    /// Starts the background work on the current tokio runtime: the `--blocklist` file watcher
    /// (when configured) and feed refreshes. Both stop when `shutdown` resolves; await the
    /// handle to wait for that.
    pub fn spawn_background<F>(self: &Arc<Self>, shutdown: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let watch = match me.cfg.watch_interval {
                Some(iv) if !me.cfg.blocklists.is_empty() => match me.reloader.watch(iv) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the blocklist watcher");
                        None
                    }
                },
                _ => None,
            };
            let mut shutdown = std::pin::pin!(shutdown);
            'run: loop {
                for name in me.due_feeds(Timestamp::now()) {
                    tokio::select! {
                        r = me.refresh_feed(&name) => {
                            if let Err(e) = r {
                                tracing::debug!(feed = %name, error = %e, "feed refresh skipped");
                            }
                        }
                        _ = &mut shutdown => break 'run,
                    }
                }
                let wait = me.next_wait(Timestamp::now());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = me.wake.notified() => {}
                    _ = &mut shutdown => break 'run,
                }
            }
            // Dropping the watch handle joins its thread (≤ 50 ms): keep that off the workers.
            if let Some(w) = watch {
                let _ = tokio::task::spawn_blocking(move || drop(w)).await;
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn feeds_dir(&self) -> PathBuf {
        self.cfg.user_lists_dir.join(FEEDS_SUBDIR)
    }

    /// Whether `name` is a shipped or `--blocklist` list of the running set (read-only).
    fn fixed_kind(&self, inner: &Inner, name: &str) -> Option<ListKind> {
        if inner.user.contains_key(name) || inner.feeds.contains_key(name) {
            return None;
        }
        let set = self.shared.load();
        let l = set.stats().lists.iter().find(|l| l.name == name)?;
        Some(match l.origin {
            Origin::Builtin(_) => ListKind::Shipped,
            _ => ListKind::File,
        })
    }
}

/// User lists and feed copies as build sources, in a stable order (user lists, then feeds).
fn extra_sources(dir: &Path, inner: &Inner) -> Vec<ListSource> {
    let mut out = Vec::with_capacity(inner.user.len() + inner.feeds.len());
    for (name, u) in &inner.user {
        out.push(ListSource {
            name: name.clone(),
            category: u.category,
            format: u.format,
            origin: Origin::File(dir.join(format!("{name}.txt"))),
            text: u.text.clone(),
            meta: None,
        });
    }
    for (name, f) in &inner.feeds {
        if let Some(text) = &f.text {
            out.push(ListSource {
                name: name.clone(),
                category: f.state.category,
                format: None,
                origin: Origin::File(dir.join(FEEDS_SUBDIR).join(format!("{name}.txt"))),
                text: text.clone(),
                meta: None,
            });
        }
    }
    out
}
