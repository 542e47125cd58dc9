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

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::names::{check_name, is_usable_list_name};
use super::feeds::{self, FeedOrigin, FeedPolicy, FeedRequest, FeedState, Fetched};
use super::{
    category_from_name, parse_list, sources_for, BuildReport, ListFormat, ListSource, MatcherError,
    Origin, Problem, Reloader, Severity, SharedBlocklists, Target,
};
use crate::metrics;
use crate::model::{Category, Timestamp};

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

/// What kind of list this is (and so what may be done to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Embedded in the binary (`blocklists/`).
    Shipped,
    /// A `--blocklist` file.
    File,
    /// Uploaded through the API; persisted in the user-lists directory.
    User,
    /// A remote feed's last good copy.
    Feed,
}

/// One list as `GET /api/v1/blocklists` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ListInfo {
    pub name: String,
    pub kind: ListKind,
    pub category: Category,
    pub format: Option<ListFormat>,
    /// Valid entries parsed from the list.
    pub entries: u64,
    /// Entries it contributes to the running set (others duplicate earlier lists).
    pub kept: u64,
    pub duplicates: u64,
    /// Invalid lines dropped.
    pub invalid: u64,
    /// Lines skipped as meaningless for DNS (cosmetic/URL rules).
    pub skipped: u64,
    /// Where the entries come from: manifest source, file path or feed URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// When the list last changed (manifest date, file mtime, upload time, feed download).
    pub refreshed: Option<String>,
    /// Part of the running set (a feed without a good copy yet is not).
    pub active: bool,
    /// The first problems of the list (line, severity, message).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<FeedState>,
}

impl ListInfo {
    /// A list that is not (or not yet) in the running set: no counts, not active.
    fn inactive(name: String, kind: ListKind, category: Category) -> Self {
        ListInfo {
            name,
            kind,
            category,
            format: None,
            entries: 0,
            kept: 0,
            duplicates: 0,
            invalid: 0,
            skipped: 0,
            source: None,
            license: None,
            refreshed: None,
            active: false,
            problems: Vec::new(),
            feed: None,
        }
    }
}

/// One entry of a list, as parsed.
#[derive(Clone, Debug, Serialize)]
pub struct ListEntry {
    pub entry: String,
    pub line: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exception: bool,
}

/// A list's metadata, text and (a page of) its entries.
#[derive(Clone, Debug, Serialize)]
pub struct ListDetail {
    #[serde(flatten)]
    pub info: ListInfo,
    /// Total entries (all pages).
    pub total: usize,
    pub offset: usize,
    pub items: Vec<ListEntry>,
    pub next_offset: Option<usize>,
    #[serde(skip)]
    pub text: Arc<str>,
}

/// The outcome of an accepted update.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateReport {
    pub list: ListInfo,
    /// Entries in the running set after the update.
    pub total_entries: u64,
    pub compile_ms: f64,
}

/// The outcome of an entries add/remove.
#[derive(Clone, Debug, Serialize)]
pub struct EntriesReport {
    /// Entries added (or removed).
    pub changed: Vec<String>,
    /// Entries already present (add) or not present (remove).
    pub unchanged: Vec<String>,
    #[serde(flatten)]
    pub update: UpdateReport,
}

/// A user list held in memory (its text is also on disk).
#[derive(Clone, Debug)]
struct UserList {
    category: Category,
    format: Option<ListFormat>,
    text: Arc<str>,
    updated: Option<Timestamp>,
}

#[derive(Serialize, Deserialize)]
struct UserMeta {
    category: Category,
    #[serde(default)]
    format: Option<ListFormat>,
    #[serde(default)]
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
}

/// A feed's refresh lock and the number of refreshes it has finished.
#[derive(Default)]
struct Flight {
    lock: tokio::sync::Mutex<()>,
    done: AtomicU64,
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

    /// Every list: shipped, files, user lists and feeds (also those without a good copy yet).
    pub fn lists(&self) -> Vec<ListInfo> {
        let inner = self.lock();
        self.infos(&inner)
    }

    /// One list's metadata and a page of its entries (`offset`, at most `limit`).
    pub fn list(
        &self,
        name: &str,
        offset: usize,
        limit: usize,
    ) -> Result<ListDetail, MatcherError> {
        let (info, text, format) = {
            let inner = self.lock();
            let info = self
                .infos(&inner)
                .into_iter()
                .find(|i| i.name == name)
                .ok_or_else(|| MatcherError::UnknownList(super::normalize::clip(name)))?;
            let text: Option<(Arc<str>, Option<ListFormat>)> = match info.kind {
                ListKind::User => inner.user.get(name).map(|u| (u.text.clone(), u.format)),
                ListKind::Feed => inner
                    .feeds
                    .get(name)
                    .map(|f| (f.text.clone().unwrap_or_else(|| Arc::from("")), None)),
                ListKind::Shipped | ListKind::File => None,
            };
            match text {
                Some((t, f)) => (info, t, f),
                None => {
                    drop(inner);
                    let src = sources_for(&self.cfg.blocklists)?
                        .into_iter()
                        .find(|s| s.name == name)
                        .ok_or_else(|| MatcherError::UnknownList(super::normalize::clip(name)))?;
                    (info, src.text, src.format)
                }
            }
        };
        let parsed = parse_list(&text, format.or(info.format));
        let total = parsed.entries.len();
        let items: Vec<ListEntry> = parsed
            .entries
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|e| ListEntry {
                entry: e.target.to_string(),
                line: e.line,
                exception: e.exception,
            })
            .collect();
        let end = offset.saturating_add(items.len());
        Ok(ListDetail {
            info,
            total,
            offset,
            next_offset: (end < total).then_some(end),
            items,
            text,
        })
    }

    /// Replaces (or creates) user list `name` with `text`. The text must parse without errors
    /// and yield at least one entry; otherwise nothing changes and the problems (with line
    /// numbers) come back in [`MatcherError::Rejected`].
    pub fn put_user_list(
        &self,
        name: &str,
        text: &str,
        format: Option<ListFormat>,
        category: Option<Category>,
    ) -> Result<UpdateReport, MatcherError> {
        check_name(name)?;
        let mut inner = self.lock();
        self.check_user_name(&inner, name)?;
        validate_user_text(name, text, format)?;
        let category = category
            .or_else(|| inner.user.get(name).map(|u| u.category))
            .unwrap_or(Category::Pool);
        let new = UserList {
            category,
            format,
            text: Arc::from(text),
            updated: Some(Timestamp::now()),
        };
        self.commit_user(&mut inner, name, Some(new))
    }

    /// Adds entries (domains, IPs, CIDRs, `IP:port`) to user list `name`, creating it (with
    /// `category`, default `pool`) when missing. Each entry is validated; one bad entry rejects
    /// the request.
    pub fn add_entries(
        &self,
        name: &str,
        entries: &[String],
        category: Option<Category>,
    ) -> Result<EntriesReport, MatcherError> {
        check_name(name)?;
        let targets = validate_entries(entries)?;
        let mut inner = self.lock();
        self.check_user_name(&inner, name)?;
        let (mut text, format, cat) = match inner.user.get(name) {
            Some(u) => {
                plain_only(name, u)?;
                (u.text.to_string(), u.format, category.unwrap_or(u.category))
            }
            None => (String::new(), None, category.unwrap_or(Category::Pool)),
        };
        let present: std::collections::HashSet<Target> = parse_list(&text, Some(ListFormat::Plain))
            .entries
            .into_iter()
            .map(|e| e.target)
            .collect();
        let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        for (raw, t) in targets {
            if present.contains(&t) || !seen.insert(t.clone()) {
                unchanged.push(raw);
                continue;
            }
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&t.to_string());
            text.push('\n');
            changed.push(t.to_string());
        }
        let new = UserList {
            category: cat,
            format,
            text: Arc::from(text),
            updated: Some(Timestamp::now()),
        };
        let update = self.commit_user(&mut inner, name, Some(new))?;
        Ok(EntriesReport {
            changed,
            unchanged,
            update,
        })
    }

    /// Removes entries from user list `name` (every line that names them).
    pub fn remove_entries(
        &self,
        name: &str,
        entries: &[String],
    ) -> Result<EntriesReport, MatcherError> {
        check_name(name)?;
        let targets = validate_entries(entries)?;
        let mut inner = self.lock();
        let Some(u) = inner.user.get(name).cloned() else {
            return Err(self.not_user(&inner, name));
        };
        plain_only(name, &u)?;
        let parsed = parse_list(&u.text, Some(ListFormat::Plain));
        let wanted: std::collections::HashSet<&Target> = targets.iter().map(|(_, t)| t).collect();
        let drop_lines: std::collections::HashSet<u32> = parsed
            .entries
            .iter()
            .filter(|e| wanted.contains(&e.target))
            .map(|e| e.line)
            .collect();
        let found: std::collections::HashSet<&Target> = parsed
            .entries
            .iter()
            .filter(|e| wanted.contains(&e.target))
            .map(|e| &e.target)
            .collect();
        let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
        for (raw, t) in &targets {
            if found.contains(t) {
                changed.push(t.to_string());
            } else {
                unchanged.push(raw.clone());
            }
        }
        let mut text = String::with_capacity(u.text.len());
        for (i, line) in u.text.split_inclusive('\n').enumerate() {
            let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if !drop_lines.contains(&n) {
                text.push_str(line);
            }
        }
        let new = UserList {
            text: Arc::from(text),
            updated: Some(Timestamp::now()),
            ..u
        };
        let update = self.commit_user(&mut inner, name, Some(new))?;
        Ok(EntriesReport {
            changed,
            unchanged,
            update,
        })
    }

    /// Deletes a user list or unsubscribes an API feed. Shipped and `--blocklist` lists and
    /// configured feeds are read-only.
    pub fn delete(&self, name: &str) -> Result<BuildReport, MatcherError> {
        check_name(name)?;
        let mut inner = self.lock();
        if inner.user.contains_key(name) {
            self.commit_user(&mut inner, name, None)?;
            return Ok(self.shared.load().stats().clone());
        }
        if inner.feeds.contains_key(name) {
            drop(inner);
            return self.delete_feed(name);
        }
        Err(self.not_user(&inner, name))
    }

    /// Re-reads the `--blocklist` files and the user-lists directory (files edited by hand) and
    /// rebuilds. On failure the running set (and the lists in memory) stay as they were.
    pub fn reload(&self) -> Result<BuildReport, MatcherError> {
        let mut inner = self.lock();
        let mut errors = Vec::new();
        let user = load_user_lists(&self.cfg.user_lists_dir, &mut errors);
        let old = std::mem::replace(&mut inner.user, user);
        let extra = extra_sources(&self.cfg.user_lists_dir, &inner);
        match self.reloader.set_user_lists(extra) {
            Ok(r) => {
                inner.load_errors = errors;
                Ok(r)
            }
            Err(e) => {
                inner.user = old;
                Err(e)
            }
        }
    }

    /// Every feed's subscription and state.
    pub fn feeds(&self) -> Vec<FeedState> {
        self.lock()
            .feeds
            .values()
            .map(|f| f.state.clone())
            .collect()
    }

    /// One feed's state.
    pub fn feed(&self, name: &str) -> Option<FeedState> {
        self.lock().feeds.get(name).map(|f| f.state.clone())
    }

    /// Subscribes to a feed (persisted). The first download happens on the background task;
    /// call [`ListManager::refresh_feed`] to do it now.
    pub fn add_feed(&self, req: FeedRequest) -> Result<FeedState, MatcherError> {
        let mut state = feeds::validate_request(req, FeedOrigin::Api, &self.cfg.feed_policy)?;
        let mut inner = self.lock();
        let name = state.name.clone();
        if let Some(f) = inner.feeds.get(&name) {
            return Err(MatcherError::Conflict(format!(
                "a feed named {name:?} already exists ({}); delete it first",
                f.state.url
            )));
        }
        if inner.user.contains_key(&name) || self.fixed_kind(&inner, &name).is_some() {
            return Err(MatcherError::Conflict(format!(
                "the name {name:?} is taken by another list"
            )));
        }
        if inner.feeds.len() >= feeds::MAX_FEEDS {
            return Err(MatcherError::BadFeed(format!(
                "at most {} feeds",
                feeds::MAX_FEEDS
            )));
        }
        state.next_refresh = Some(Timestamp::now());
        self.save_feed_meta(&state)?;
        inner.feeds.insert(
            name,
            Feed {
                state: state.clone(),
                text: None,
            },
        );
        drop(inner);
        self.wake.notify_one();
        Ok(state)
    }

    /// Unsubscribes an API feed and drops its copy from the running set.
    pub fn delete_feed(&self, name: &str) -> Result<BuildReport, MatcherError> {
        let mut inner = self.lock();
        let Some(f) = inner.feeds.get(name) else {
            return Err(MatcherError::UnknownList(super::normalize::clip(name)));
        };
        if f.state.origin == FeedOrigin::Config {
            return Err(MatcherError::ReadOnly(format!(
                "feed {name:?} comes from the configuration file; remove it there"
            )));
        }
        let removed = inner.feeds.remove(name);
        let extra = extra_sources(&self.cfg.user_lists_dir, &inner);
        match self.reloader.set_user_lists(extra) {
            Ok(r) => {
                let dir = self.feeds_dir();
                remove_quietly(&dir.join(format!("{name}.txt")));
                remove_quietly(&dir.join(format!("{name}.meta.json")));
                Ok(r)
            }
            Err(e) => {
                if let Some(f) = removed {
                    inner.feeds.insert(name.to_string(), f);
                }
                Err(e)
            }
        }
    }

    /// Downloads feed `name` now (conditionally) and, when it served a usable list, swaps it
    /// in. Failures are recorded in the feed's state (the last good copy stays in use) and
    /// returned as `Ok(state)` with `last_error` set; `Err` only for an unknown feed.
    ///
    /// Concurrent refreshes of one feed are merged: while one downloads, the others wait and
    /// return its result instead of downloading again.
    pub async fn refresh_feed(self: &Arc<Self>, name: &str) -> Result<FeedState, MatcherError> {
        if self.feed(name).is_none() {
            return Err(MatcherError::UnknownList(super::normalize::clip(name)));
        }
        let flight = {
            let mut f = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded: entries only for feeds that exist (≤ MAX_FEEDS, pruned here).
            let inner = self.lock();
            f.retain(|n, _| inner.feeds.contains_key(n));
            drop(inner);
            f.entry(name.to_string()).or_default().clone()
        };
        let seen = flight.done.load(Ordering::Acquire);
        let _turn = flight.lock.lock().await;
        if flight.done.load(Ordering::Acquire) != seen {
            // Another caller refreshed while we waited: its result is ours.
            FeedMetrics::get().merged.inc();
            return self
                .feed(name)
                .ok_or_else(|| MatcherError::UnknownList(super::normalize::clip(name)));
        }
        let result = self.refresh_now(name).await;
        flight.done.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn refresh_now(self: &Arc<Self>, name: &str) -> Result<FeedState, MatcherError> {
        let snapshot = self
            .feed(name)
            .ok_or_else(|| MatcherError::UnknownList(super::normalize::clip(name)))?;
        let fetched = feeds::fetch(&self.http, &snapshot, &self.cfg.feed_policy).await;
        // Validating and compiling can take a second on big lists: off the async workers.
        let me = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || me.finish_refresh(&name, &snapshot.url, fetched))
            .await
            .map_err(|e| MatcherError::BadFeed(format!("feed refresh task failed: {e}")))?
    }

    fn finish_refresh(
        &self,
        name: &str,
        url: &str,
        fetched: Result<Fetched, String>,
    ) -> Result<FeedState, MatcherError> {
        let m = FeedMetrics::get();
        let now = Timestamp::now();
        let mut inner = self.lock();
        let Some(f) = inner.feeds.get_mut(name) else {
            return Err(MatcherError::UnknownList(super::normalize::clip(name)));
        };
        if f.state.url != url {
            // Re-subscribed with another URL while we were downloading: discard.
            return Ok(f.state.clone());
        }
        match fetched {
            Err(e) => {
                m.error.inc();
                tracing::warn!(feed = %name, error = %e, "feed refresh failed; keeping the last good copy");
                f.state.failed(now, &e);
            }
            Ok(Fetched::NotModified) => {
                m.not_modified.inc();
                f.state.succeeded(now);
            }
            Ok(Fetched::Body {
                bytes,
                etag,
                last_modified,
            }) => match self.apply_feed(&mut inner, name, bytes, now) {
                Ok(()) => {
                    m.ok.inc();
                    if let Some(f) = inner.feeds.get_mut(name) {
                        f.state.etag = etag;
                        f.state.last_modified = last_modified;
                    }
                }
                Err(e) => {
                    m.error.inc();
                    tracing::warn!(feed = %name, error = %e, "feed served an unusable list; keeping the last good copy");
                    if let Some(f) = inner.feeds.get_mut(name) {
                        f.state.failed(now, &e);
                    }
                }
            },
        }
        let failing = inner
            .feeds
            .values()
            .filter(|f| f.state.last_error.is_some())
            .count();
        m.failing.set(i64::try_from(failing).unwrap_or(i64::MAX));
        let state = inner
            .feeds
            .get(name)
            .map(|f| f.state.clone())
            .ok_or_else(|| MatcherError::UnknownList(super::normalize::clip(name)))?;
        // Persist under the lock so a concurrent refresh cannot write an older state last.
        if let Err(e) = self.save_feed_meta(&state) {
            tracing::error!(feed = %name, error = %e, "cannot persist feed state");
        }
        Ok(state)
    }

    // -----------------------------------------------------------------------------------------

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn feeds_dir(&self) -> PathBuf {
        self.cfg.user_lists_dir.join(FEEDS_SUBDIR)
    }

    /// Validates a feed download, rebuilds with it, persists it. On error nothing changes.
    fn apply_feed(
        &self,
        inner: &mut Inner,
        name: &str,
        bytes: Vec<u8>,
        now: Timestamp,
    ) -> Result<(), String> {
        let len = bytes.len() as u64;
        let text =
            String::from_utf8(bytes).map_err(|_| "the feed is not UTF-8 text".to_string())?;
        let parsed = parse_list(&text, None);
        if parsed.entries.is_empty() {
            // Counts and a line number only: the state is shown to read-token holders, and a
            // feed pointed at the wrong file must not put that file's lines on display.
            let first = parsed
                .errors()
                .next()
                .map(|e| format!("; the first at line {}", e.line))
                .unwrap_or_default();
            return Err(format!(
                "the feed holds no valid entry ({} invalid lines{first})",
                parsed.invalid
            ));
        }
        let text: Arc<str> = Arc::from(text);
        let Some(f) = inner.feeds.get_mut(name) else {
            return Err("feed removed".into());
        };
        let old = f.text.replace(text.clone());
        let extra = extra_sources(&self.cfg.user_lists_dir, inner);
        if let Err(e) = self.reloader.set_user_lists(extra) {
            if let Some(f) = inner.feeds.get_mut(name) {
                f.text = old;
            }
            return Err(e.to_string());
        }
        if let Err(e) = write_atomic(
            &self.feeds_dir().join(format!("{name}.txt")),
            text.as_bytes(),
        ) {
            tracing::error!(feed = %name, error = %e, "cannot persist the feed copy");
        }
        if let Some(f) = inner.feeds.get_mut(name) {
            f.state.succeeded(now);
            f.state.last_change = Some(now);
            f.state.entries = parsed.entries.len() as u64;
            f.state.invalid = parsed.invalid;
            f.state.bytes = len;
            f.state.active = true;
        }
        Ok(())
    }

    fn save_feed_meta(&self, state: &FeedState) -> Result<(), MatcherError> {
        let path = self.feeds_dir().join(format!("{}.meta.json", state.name));
        let json = serde_json::to_vec_pretty(state).map_err(|e| MatcherError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &json).map_err(|source| MatcherError::Io { path, source })
    }

    /// Feeds due for a refresh at `now`.
    fn due_feeds(&self, now: Timestamp) -> Vec<String> {
        self.lock()
            .feeds
            .values()
            .filter(|f| f.state.next_refresh.is_none_or(|t| t <= now))
            .map(|f| f.state.name.clone())
            .collect()
    }

    /// Time until the next feed is due, at most [`MAX_IDLE`].
    fn next_wait(&self, now: Timestamp) -> Duration {
        let inner = self.lock();
        let next = inner
            .feeds
            .values()
            .filter_map(|f| f.state.next_refresh)
            .min();
        match next {
            Some(t) => {
                let us = t.as_micros().saturating_sub(now.as_micros()).max(0);
                Duration::from_micros(u64::try_from(us).unwrap_or(0)).min(MAX_IDLE)
            }
            None => MAX_IDLE,
        }
    }

    /// A user-list write to `name` is allowed: not a shipped/file list, not a feed, and the
    /// number of user lists stays bounded.
    fn check_user_name(&self, inner: &Inner, name: &str) -> Result<(), MatcherError> {
        if let Some(kind) = self.fixed_kind(inner, name) {
            return Err(MatcherError::ReadOnly(format!(
                "{name:?} is a {} list and cannot be changed through the API; pick another name",
                if kind == ListKind::Shipped {
                    "shipped"
                } else {
                    "--blocklist file"
                }
            )));
        }
        if inner.feeds.contains_key(name) {
            return Err(MatcherError::Conflict(format!(
                "{name:?} is a feed; its content comes from its URL"
            )));
        }
        if !inner.user.contains_key(name) && inner.user.len() >= MAX_USER_LISTS {
            return Err(MatcherError::Conflict(format!(
                "at most {MAX_USER_LISTS} user lists; delete one first"
            )));
        }
        Ok(())
    }

    fn not_user(&self, inner: &Inner, name: &str) -> MatcherError {
        match self.fixed_kind(inner, name) {
            Some(ListKind::Shipped) => MatcherError::ReadOnly(format!(
                "{name:?} is a shipped list and cannot be changed or deleted; add an allowlist entry to override it"
            )),
            Some(_) => MatcherError::ReadOnly(format!(
                "{name:?} comes from a --blocklist file; edit or remove the file instead"
            )),
            None => MatcherError::UnknownList(super::normalize::clip(name)),
        }
    }

    /// Installs `new` as user list `name` (or removes it with `None`): rebuild, then persist;
    /// a failure of either leaves memory, disk and the running set as they were.
    fn commit_user(
        &self,
        inner: &mut Inner,
        name: &str,
        new: Option<UserList>,
    ) -> Result<UpdateReport, MatcherError> {
        let old = match &new {
            Some(n) => inner.user.insert(name.to_string(), n.clone()),
            None => inner.user.remove(name),
        };
        let restore = |inner: &mut Inner| match old.clone() {
            Some(o) => {
                inner.user.insert(name.to_string(), o);
            }
            None => {
                inner.user.remove(name);
            }
        };
        let extra = extra_sources(&self.cfg.user_lists_dir, inner);
        let report = match self.reloader.set_user_lists(extra) {
            Ok(r) => r,
            Err(e) => {
                restore(inner);
                return Err(match e {
                    MatcherError::Parse {
                        path,
                        line,
                        message,
                    } => MatcherError::Rejected {
                        message: format!("{}:{line}: {message}", path.display()),
                        problems: vec![Problem {
                            line,
                            severity: Severity::Error,
                            message,
                        }],
                    },
                    other => other,
                });
            }
        };
        if let Err(e) = persist_user(&self.cfg.user_lists_dir, name, new.as_ref()) {
            restore(inner);
            let extra = extra_sources(&self.cfg.user_lists_dir, inner);
            if let Err(e2) = self.reloader.set_user_lists(extra) {
                tracing::error!(error = %e2, "cannot restore the previous lists");
            }
            return Err(e);
        }
        let info = self
            .infos(inner)
            .into_iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| {
                ListInfo::inactive(name.to_string(), ListKind::User, Category::Pool)
            });
        Ok(UpdateReport {
            list: info,
            total_entries: report.entries,
            compile_ms: report.compile_ms,
        })
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

    fn infos(&self, inner: &Inner) -> Vec<ListInfo> {
        let set = self.shared.load();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for l in &set.stats().lists {
            let kind = if inner.user.contains_key(&l.name) {
                ListKind::User
            } else if inner.feeds.contains_key(&l.name) {
                ListKind::Feed
            } else {
                match l.origin {
                    Origin::Builtin(_) => ListKind::Shipped,
                    _ => ListKind::File,
                }
            };
            let feed = inner.feeds.get(&l.name).map(|f| f.state.clone());
            let (source, refreshed) = match kind {
                ListKind::Shipped => (l.source.clone(), l.refreshed.clone()),
                ListKind::File => {
                    let p = l.origin.display_path();
                    let mtime = std::fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .ok()
                        .map(|t| {
                            Timestamp::from_secs_f64(
                                t.duration_since(std::time::UNIX_EPOCH)
                                    .map_or(0.0, |d| d.as_secs_f64()),
                            )
                            .to_string()
                        });
                    (Some(p.display().to_string()), mtime)
                }
                ListKind::User => (
                    None,
                    inner
                        .user
                        .get(&l.name)
                        .and_then(|u| u.updated)
                        .map(|t| t.to_string()),
                ),
                ListKind::Feed => (
                    feed.as_ref().map(|f| f.url.clone()),
                    feed.as_ref()
                        .and_then(|f| f.last_change)
                        .map(|t| t.to_string()),
                ),
            };
            seen.insert(l.name.clone());
            out.push(ListInfo {
                name: l.name.clone(),
                kind,
                category: l.category,
                format: l.format,
                entries: l.parsed,
                kept: l.kept,
                duplicates: l.duplicates,
                invalid: l.invalid,
                skipped: l.skipped,
                source,
                license: l.license.clone(),
                refreshed,
                active: true,
                problems: l.problems.clone(),
                feed,
            });
        }
        // Feeds without a good copy yet are not in the set, but users want to see them.
        for f in inner.feeds.values() {
            if seen.contains(&f.state.name) {
                continue;
            }
            out.push(ListInfo {
                source: Some(f.state.url.clone()),
                feed: Some(f.state.clone()),
                ..ListInfo::inactive(f.state.name.clone(), ListKind::Feed, f.state.category)
            });
        }
        out
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

/// A user upload must parse cleanly: any invalid line, or no entry at all, rejects it.
fn validate_user_text(
    name: &str,
    text: &str,
    format: Option<ListFormat>,
) -> Result<(), MatcherError> {
    let parsed = parse_list(text, format);
    let errors: Vec<Problem> = parsed.errors().take(MAX_REJECT_PROBLEMS).cloned().collect();
    if !errors.is_empty() {
        let first = errors
            .first()
            .map(|p| format!("line {}: {}", p.line, p.message))
            .unwrap_or_default();
        return Err(MatcherError::Rejected {
            message: format!(
                "list {name:?} has {} invalid line(s); first: {first}; nothing was changed",
                parsed.invalid
            ),
            problems: errors,
        });
    }
    if parsed.entries.is_empty() {
        return Err(MatcherError::Rejected {
            message: format!("list {name:?} holds no entry; to remove it use DELETE"),
            problems: Vec::new(),
        });
    }
    Ok(())
}

/// Each entry must be exactly one valid plain-format entry (no whitespace, no second entry).
fn validate_entries(entries: &[String]) -> Result<Vec<(String, Target)>, MatcherError> {
    if entries.is_empty() {
        return Err(MatcherError::Rejected {
            message: "`entries` is empty".into(),
            problems: Vec::new(),
        });
    }
    if entries.len() > MAX_ENTRY_CHANGES {
        return Err(MatcherError::Rejected {
            message: format!(
                "at most {MAX_ENTRY_CHANGES} entries per request; PUT the whole list for more"
            ),
            problems: Vec::new(),
        });
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut problems = Vec::new();
    for (i, raw) in entries.iter().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let trimmed = raw.trim();
        let bad = |m: String| Problem {
            line,
            severity: Severity::Error,
            message: m,
        };
        if trimmed.is_empty()
            || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
            || trimmed.starts_with(['#', '!', ';'])
        {
            problems.push(bad(format!(
                "{:?} is not a single entry",
                super::normalize::clip(raw)
            )));
            continue;
        }
        let p = parse_list(trimmed, Some(ListFormat::Plain));
        match (p.entries.as_slice(), p.errors().next()) {
            ([e], None) if !e.exception => out.push((trimmed.to_string(), e.target.clone())),
            (_, Some(err)) => problems.push(bad(err.message.clone())),
            _ => problems.push(bad(format!(
                "{:?} is not a single entry",
                super::normalize::clip(raw)
            ))),
        }
        if problems.len() >= MAX_REJECT_PROBLEMS {
            break;
        }
    }
    if !problems.is_empty() {
        return Err(MatcherError::Rejected {
            message: format!(
                "{} invalid entr{} (line = position in `entries`, from 1); nothing was changed",
                problems.len(),
                if problems.len() == 1 { "y" } else { "ies" }
            ),
            problems,
        });
    }
    Ok(out)
}

/// Entry-level edits rewrite lines, which is only safe when a line is one entry.
fn plain_only(name: &str, u: &UserList) -> Result<(), MatcherError> {
    let format = u.format.unwrap_or_else(|| super::detect_format(&u.text));
    if format == ListFormat::Plain {
        Ok(())
    } else {
        Err(MatcherError::Conflict(format!(
            "list {name:?} is in {format} format; entry edits need a plain list — replace it with PUT"
        )))
    }
}

fn persist_user(dir: &Path, name: &str, list: Option<&UserList>) -> Result<(), MatcherError> {
    let text_path = dir.join(format!("{name}.txt"));
    let meta_path = dir.join(format!("{name}.meta.json"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MatcherError::Io { path, source }
    };
    match list {
        Some(u) => {
            let meta = UserMeta {
                category: u.category,
                format: u.format,
                updated: u.updated,
            };
            let json = serde_json::to_vec_pretty(&meta).map_err(|e| MatcherError::Io {
                path: meta_path.clone(),
                source: std::io::Error::other(e),
            })?;
            // Meta first: a crash in between leaves the old text with the new category, never
            // a text without its meta.
            write_atomic(&meta_path, &json).map_err(io(&meta_path))?;
            write_atomic(&text_path, u.text.as_bytes()).map_err(io(&text_path))?;
        }
        None => {
            match std::fs::remove_file(&text_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&text_path)(e)),
            }
            remove_quietly(&meta_path);
        }
    }
    Ok(())
}

fn remove_quietly(p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove file");
        }
    }
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`.
/// Why a list that parsed to nothing is empty: its first error as `line N: message`.
fn first_error(parsed: &super::ParsedList) -> Option<String> {
    let e = parsed.errors().next()?;
    Some(format!("line {}: {}", e.line, e.message))
}

/// Largest `.meta.json` read back: ours are well under 4 KiB (a name, a URL, a few stamps).
const MAX_META_BYTES: u64 = 64 * 1024;

/// A metadata file we wrote, read back; a missing, oversized or unreadable one is `None`
/// (the caller falls back to defaults, as for a list copied in by hand).
fn read_meta<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = super::read_text(path, MAX_META_BYTES).ok()?;
    serde_json::from_str(&text).ok()
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every filesystem allows it).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads `<dir>/<name>.txt` user lists (with their `.meta.json`); broken ones are reported in
/// `errors` and skipped.
fn load_user_lists(dir: &Path, errors: &mut Vec<String>) -> BTreeMap<String, UserList> {
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return out;
        }
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for p in files {
        if out.len() >= MAX_USER_LISTS {
            errors.push(format!(
                "{}: more than {MAX_USER_LISTS} user lists; the rest are ignored",
                dir.display()
            ));
            break;
        }
        let name = super::list_name(&p);
        if !is_usable_list_name(&name) {
            errors.push(format!("{}: not a valid list name", p.display()));
            continue;
        }
        let text = match super::read_text(&p, super::MAX_LIST_BYTES) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let meta_path = dir.join(format!("{name}.meta.json"));
        let meta: Option<UserMeta> = read_meta(&meta_path);
        let (category, format, updated) = match meta {
            Some(m) => (m.category, m.format, m.updated),
            None => (category_from_name(&p), None, None),
        };
        let parsed = parse_list(&text, format);
        if parsed.entries.is_empty() {
            let why = first_error(&parsed).unwrap_or_else(|| "no entry".into());
            errors.push(format!("{}: {why}", p.display()));
            continue;
        }
        out.insert(
            name,
            UserList {
                category,
                format,
                text: Arc::from(text),
                updated,
            },
        );
    }
    out
}

/// Configured feeds (with their persisted state when the URL is unchanged) plus feeds added
/// through the API, each with its last good copy.
fn load_feeds(
    dir: &Path,
    configured: &[FeedState],
    errors: &mut Vec<String>,
) -> BTreeMap<String, Feed> {
    let mut out = BTreeMap::new();
    let persisted = |name: &str| -> Option<FeedState> {
        let mut st = read_meta::<FeedState>(&dir.join(format!("{name}.meta.json")))?;
        // Earlier versions quoted the first invalid line in `last_error`: drop such a quote.
        if let Some(e) = &st.last_error {
            if e.starts_with("the feed holds no valid entry (line") {
                st.last_error = Some("the feed holds no valid entry".into());
            }
        }
        Some(st)
    };
    let copy = |name: &str, errors: &mut Vec<String>| -> Option<Arc<str>> {
        let p = dir.join(format!("{name}.txt"));
        if !p.exists() {
            return None;
        }
        match super::read_text(&p, super::MAX_LIST_BYTES) {
            Ok(t) if !parse_list(&t, None).entries.is_empty() => Some(Arc::from(t)),
            Ok(_) => {
                errors.push(format!("{}: no valid entry", p.display()));
                None
            }
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        }
    };
    for c in configured {
        let mut state = c.clone();
        let mut text = None;
        if let Some(p) = persisted(&c.name).filter(|p| p.url == c.url) {
            text = copy(&c.name, errors);
            state = FeedState {
                interval_secs: c.interval_secs,
                max_bytes: c.max_bytes,
                category: c.category,
                origin: FeedOrigin::Config,
                active: text.is_some(),
                ..p
            };
        }
        if !state.active {
            state.etag = None;
            state.last_modified = None;
        }
        out.insert(c.name.clone(), Feed { state, text });
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut metas: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".meta.json"))
                .map(str::to_string)
        })
        .collect();
    metas.sort();
    for name in metas {
        if out.contains_key(&name) || out.len() >= feeds::MAX_FEEDS {
            continue;
        }
        if !is_usable_list_name(&name) {
            continue;
        }
        let Some(state) = persisted(&name) else {
            errors.push(format!(
                "{}: unreadable feed state",
                dir.join(format!("{name}.meta.json")).display()
            ));
            continue;
        };
        // Only API subscriptions persist on their own; a configured feed that left the
        // configuration is gone.
        if state.origin != FeedOrigin::Api
            || state.name != name
            || feeds::check_url(&state.url).is_err()
        {
            continue;
        }
        let text = copy(&name, errors);
        let state = FeedState {
            active: text.is_some(),
            ..state
        };
        out.insert(name, Feed { state, text });
    }
    out
}

struct FeedMetrics {
    ok: metrics::Counter,
    not_modified: metrics::Counter,
    error: metrics::Counter,
    /// Refresh calls that waited for a concurrent refresh of the same feed and shared it.
    merged: metrics::Counter,
    /// Feeds whose last attempt failed (their last good copy, if any, is in use): alert on > 0.
    failing: metrics::Gauge,
}

impl FeedMetrics {
    fn get() -> &'static FeedMetrics {
        static M: std::sync::OnceLock<FeedMetrics> = std::sync::OnceLock::new();
        const NAME: &str = "poolwatch_feed_refreshes_total";
        const HELP: &str = "Feed downloads by result (ok: new content swapped in).";
        M.get_or_init(|| FeedMetrics {
            ok: metrics::counter(NAME, HELP, &[("result", "ok")]),
            not_modified: metrics::counter(NAME, HELP, &[("result", "not_modified")]),
            error: metrics::counter(NAME, HELP, &[("result", "error")]),
            merged: metrics::counter(NAME, HELP, &[("result", "merged")]),
            failing: metrics::gauge(
                "poolwatch_feeds_failing",
                "Feeds whose last download failed or served an unusable list.",
                &[],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_reads_are_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("l.meta.json");
        std::fs::write(&p, r#"{"category":"allow"}"#).unwrap();
        let m: UserMeta = read_meta(&p).unwrap();
        assert_eq!(m.category, Category::Allow);
        // Padded past the limit: ignored (defaults apply), not read whole.
        let big = format!(
            r#"{{"category":"allow"}}{}"#,
            " ".repeat(MAX_META_BYTES as usize)
        );
        std::fs::write(&p, big).unwrap();
        assert!(read_meta::<UserMeta>(&p).is_none());
        assert!(read_meta::<UserMeta>(&tmp.path().join("missing.meta.json")).is_none());
    }

    fn mgr(dir: &Path) -> Arc<ListManager> {
        ListManager::open(ListManagerConfig::new(dir)).unwrap().0
    }

    #[test]
    fn user_lists_persist_across_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let m = mgr(tmp.path());
        m.put_user_list("mine", "evil-pool.example\n", None, Some(Category::Pool))
            .unwrap();
        m.add_entries("mine", &["other-pool.example".into()], None)
            .unwrap();
        assert!(m
            .shared()
            .load()
            .match_name("x.evil-pool.example")
            .is_some());
        drop(m);
        let m = mgr(tmp.path());
        let set = m.shared().load();
        assert_eq!(set.match_name("a.other-pool.example").unwrap().list, "mine");
        let info = m.lists().into_iter().find(|l| l.name == "mine").unwrap();
        assert_eq!(info.kind, ListKind::User);
        assert_eq!(info.entries, 2);
    }

    #[test]
    fn bad_upload_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let m = mgr(tmp.path());
        let before = m.shared().load().len();
        let err = m
            .put_user_list("bad", "good.example\nbad..name\n", None, None)
            .unwrap_err();
        match err {
            MatcherError::Rejected { problems, .. } => assert_eq!(problems[0].line, 2),
            other => panic!("{other}"),
        }
        assert_eq!(m.shared().load().len(), before);
        assert!(!tmp.path().join("bad.txt").exists());
    }

    #[test]
    fn names_cannot_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let m = mgr(tmp.path());
        for bad in [
            "../x",
            "a/b",
            "/etc/passwd",
            "..",
            "x\0",
            "reload",
            "",
            "%2e%2e",
        ] {
            assert!(
                matches!(
                    m.put_user_list(bad, "a.example\n", None, None),
                    Err(MatcherError::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            m.put_user_list("pools-monero", "a.example\n", None, None),
            Err(MatcherError::ReadOnly(_))
        ));
        assert!(matches!(
            m.delete("allowlist"),
            Err(MatcherError::ReadOnly(_))
        ));
    }

    #[test]
    fn remove_entries_and_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let m = mgr(tmp.path());
        m.add_entries(
            "l",
            &["a.example".into(), "b.example".into(), "203.0.113.9".into()],
            None,
        )
        .unwrap();
        let r = m
            .remove_entries("l", &["A.Example.".into(), "zzz.example".into()])
            .unwrap();
        assert_eq!(r.changed, vec!["a.example"]);
        assert_eq!(r.unchanged, vec!["zzz.example"]);
        let set = m.shared().load();
        assert!(set.match_name("a.example").is_none());
        assert!(set.match_name("b.example").is_some());
        drop(set);
        m.delete("l").unwrap();
        assert!(m.shared().load().match_name("b.example").is_none());
        assert!(!tmp.path().join("l.txt").exists());
        assert!(matches!(m.delete("l"), Err(MatcherError::UnknownList(_))));
    }

    #[test]
    fn hostile_uploads_and_names_never_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let m = mgr(tmp.path());
        let before = m.shared().load().len();
        let alphabet: Vec<char> = "abcxyz019.-_*|^@$/:#!; \t\r\n[]0.0.0.0éü\u{0}\u{202e}%"
            .chars()
            .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let len = (next() % 200) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let name: String = text.chars().take((next() % 12) as usize).collect();
            let _ = m.put_user_list(&name, &text, None, None);
            let _ = m.put_user_list("g", &text, None, None);
            let entries: Vec<String> = text.split('\n').map(str::to_string).collect();
            let _ = m.add_entries("g2", &entries, None);
            let _ = m.remove_entries("g2", &entries);
            let _ = m.list(&name, (next() % 5) as usize, 3);
            let _ = m.delete(&name);
        }
        // Whatever was accepted is on disk under a valid name and nowhere else.
        for e in std::fs::read_dir(tmp.path()).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            let stem = n
                .strip_suffix(".meta.json")
                .or(n.strip_suffix(".txt"))
                .unwrap_or(&n);
            assert!(stem == "feeds" || super::super::is_valid_list_name(stem), "{n:?}");
        }
        assert!(m.shared().load().len() >= before);
    }
}
