//! Feeds inside the manager: subscriptions, refreshes (single flight per feed), validating and
//! swapping in a download, and the background schedule. The download itself is
//! [`super::super::feeds`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::super::feeds::{self, FeedOrigin, FeedRequest, FeedState, Fetched};
use super::super::{parse_list, BuildReport, MatcherError};
use super::persist::{remove_quietly, write_atomic};
use super::{extra_sources, Feed, Inner, ListManager, MAX_IDLE};
use crate::metrics;
use crate::model::Timestamp;

/// A feed's refresh lock and the number of refreshes it has finished.
#[derive(Default)]
pub(super) struct Flight {
    lock: tokio::sync::Mutex<()>,
    done: AtomicU64,
}

impl ListManager {
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
            return Err(MatcherError::UnknownList(super::super::normalize::clip(
                name,
            )));
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
            return Err(MatcherError::UnknownList(super::super::normalize::clip(
                name,
            )));
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
                .ok_or_else(|| MatcherError::UnknownList(super::super::normalize::clip(name)));
        }
        let result = self.refresh_now(name).await;
        flight.done.fetch_add(1, Ordering::AcqRel);
        result
    }

    pub(super) async fn refresh_now(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<FeedState, MatcherError> {
        let snapshot = self
            .feed(name)
            .ok_or_else(|| MatcherError::UnknownList(super::super::normalize::clip(name)))?;
        let fetched = feeds::fetch(&self.http, &snapshot, &self.cfg.feed_policy).await;
        // Validating and compiling can take a second on big lists: off the async workers.
        let me = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || me.finish_refresh(&name, &snapshot.url, fetched))
            .await
            .map_err(|e| MatcherError::BadFeed(format!("feed refresh task failed: {e}")))?
    }

    pub(super) fn finish_refresh(
        &self,
        name: &str,
        url: &str,
        fetched: Result<Fetched, String>,
    ) -> Result<FeedState, MatcherError> {
        let m = FeedMetrics::get();
        let now = Timestamp::now();
        let mut inner = self.lock();
        let Some(f) = inner.feeds.get_mut(name) else {
            return Err(MatcherError::UnknownList(super::super::normalize::clip(
                name,
            )));
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
            .ok_or_else(|| MatcherError::UnknownList(super::super::normalize::clip(name)))?;
        // Persist under the lock so a concurrent refresh cannot write an older state last.
        if let Err(e) = self.save_feed_meta(&state) {
            tracing::error!(feed = %name, error = %e, "cannot persist feed state");
        }
        Ok(state)
    }

    /// Validates a feed download, rebuilds with it, persists it. On error nothing changes.
    pub(super) fn apply_feed(
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

    pub(super) fn save_feed_meta(&self, state: &FeedState) -> Result<(), MatcherError> {
        let path = self.feeds_dir().join(format!("{}.meta.json", state.name));
        let json = serde_json::to_vec_pretty(state).map_err(|e| MatcherError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &json).map_err(|source| MatcherError::Io { path, source })
    }

    /// Feeds due for a refresh at `now`.
    pub(super) fn due_feeds(&self, now: Timestamp) -> Vec<String> {
        self.lock()
            .feeds
            .values()
            .filter(|f| f.state.next_refresh.is_none_or(|t| t <= now))
            .map(|f| f.state.name.clone())
            .collect()
    }

    /// Time until the next feed is due, at most [`MAX_IDLE`].
    pub(super) fn next_wait(&self, now: Timestamp) -> Duration {
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
}

pub(super) struct FeedMetrics {
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
