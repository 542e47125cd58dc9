//! Encoded detection pages, kept until the store changes (issue #16: "store what you serve,
//! encoded once"). A dashboard and every analyst's browser poll the same first page; while no
//! detection is written, each poll after the first is answered with the bytes already built,
//! without the blocking pool, sled reads or a 76 kB copy.
//!
//! Correctness rests on one rule: an entry is served only under the generation it was built
//! under ([`super::Backend::detections_generation`]), read *before* the page was fetched. A
//! write bumps the generation after it is visible, so a request that sees the new generation
//! never gets a page built before the write; a request that still sees the old one gets a page
//! the store held at some moment after that generation was reached. The first insert under a
//! newer generation drops every older entry, so the cache only ever holds the current one.
//!
//! Bounded: at most [`PAGE_CACHE_ENTRIES`] pages and [`PAGE_CACHE_BYTES`] of keys and bodies;
//! the oldest insert goes first. A page larger than [`PAGE_CACHE_MAX_PAGE`] is not kept.
//! Counters (`/metrics`): hits, misses, evictions, pages not kept for size, and the bytes held.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// Most pages held.
pub const PAGE_CACHE_ENTRIES: usize = 64;
/// Most bytes held (bodies plus keys).
pub const PAGE_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Largest page kept (a quarter of the budget, so one query cannot flush the rest).
pub const PAGE_CACHE_MAX_PAGE: usize = PAGE_CACHE_BYTES / 4;

#[derive(Default)]
pub(super) struct PageCache {
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    too_large: AtomicU64,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    pages: HashMap<String, Bytes>,
    /// Insertion order of `pages`' keys (each key once).
    order: VecDeque<String>,
    bytes: usize,
}

impl PageCache {
    /// The page for `key` built under `generation`, if held.
    pub(super) fn get(&self, key: &str, generation: u64) -> Option<Bytes> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let hit = (g.generation == generation)
            .then(|| g.pages.get(key).cloned())
            .flatten();
        drop(g);
        let counter = if hit.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Keeps `body` for `key`, built from a page fetched after `generation` was read.
    pub(super) fn insert(&self, key: String, generation: u64, body: Bytes) {
        if body.len() > PAGE_CACHE_MAX_PAGE {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if generation < g.generation {
            return; // built before a write that has bumped the generation since: stale
        }
        if generation > g.generation {
            g.generation = generation;
            g.pages.clear();
            g.order.clear();
            g.bytes = 0;
        }
        let size = key.len() + body.len();
        if let Some(old) = g.pages.insert(key.clone(), body) {
            // The same page built twice by concurrent misses: keep one copy and its place.
            g.bytes = g.bytes.saturating_sub(key.len() + old.len());
        } else {
            g.order.push_back(key);
        }
        g.bytes += size;
        let mut evicted = 0;
        while g.pages.len() > PAGE_CACHE_ENTRIES || g.bytes > PAGE_CACHE_BYTES {
            let Some(k) = g.order.pop_front() else { break };
            if let Some(v) = g.pages.remove(&k) {
                g.bytes = g.bytes.saturating_sub(k.len() + v.len());
                evicted += 1;
            }
        }
        drop(g);
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// Prometheus text for `/metrics`.
    pub(super) fn render(&self, out: &mut String) {
        let bytes = self.inner.lock().map_or(0, |g| g.bytes);
        let counters = [
            (
                "hits",
                "Detection pages answered from the page cache.",
                &self.hits,
            ),
            (
                "misses",
                "Detection pages built afresh (not cached, or the store changed).",
                &self.misses,
            ),
            (
                "evictions",
                "Cached detection pages dropped for the entry or byte cap.",
                &self.evictions,
            ),
            (
                "too_large",
                "Detection pages not cached: larger than the per-page cap.",
                &self.too_large,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP poolwatch_api_page_cache_{name}_total {help}");
            let _ = writeln!(out, "# TYPE poolwatch_api_page_cache_{name}_total counter");
            let _ = writeln!(
                out,
                "poolwatch_api_page_cache_{name}_total {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP poolwatch_api_page_cache_bytes Bytes of detection pages held (cap {PAGE_CACHE_BYTES})."
        );
        let _ = writeln!(out, "# TYPE poolwatch_api_page_cache_bytes gauge");
        let _ = writeln!(out, "poolwatch_api_page_cache_bytes {bytes}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn serves_only_under_the_generation_it_was_built_under() {
        let c = PageCache::default();
        c.insert("limit=50".into(), 3, body(10));
        assert_eq!(c.get("limit=50", 3).map(|b| b.len()), Some(10));
        assert!(c.get("limit=50", 4).is_none());
        assert!(c.get("limit=5", 3).is_none());
        // A page fetched before the latest write is not kept.
        c.insert("limit=5".into(), 4, body(1));
        c.insert("limit=50".into(), 3, body(10));
        assert!(c.get("limit=50", 4).is_none());
        assert!(c.get("limit=50", 3).is_none(), "older entries were dropped");
        assert_eq!(c.hits.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn holds_at_most_the_caps_oldest_first() {
        let c = PageCache::default();
        for n in 0..PAGE_CACHE_ENTRIES + 5 {
            c.insert(format!("k{n}"), 1, body(8));
        }
        let g = c.inner.lock().unwrap();
        assert_eq!(g.pages.len(), PAGE_CACHE_ENTRIES);
        assert_eq!(g.order.len(), PAGE_CACHE_ENTRIES);
        assert!(!g.pages.contains_key("k0") && g.pages.contains_key("k5"));
        drop(g);
        assert_eq!(c.evictions.load(Ordering::Relaxed), 5);

        let big = PageCache::default();
        for n in 0..6 {
            big.insert(format!("k{n}"), 1, body(PAGE_CACHE_MAX_PAGE - 2));
        }
        let g = big.inner.lock().unwrap();
        assert!(g.bytes <= PAGE_CACHE_BYTES, "{}", g.bytes);
        assert_eq!(g.pages.len(), 4);
        drop(g);
        big.insert("huge".into(), 1, body(PAGE_CACHE_MAX_PAGE + 1));
        assert_eq!(big.too_large.load(Ordering::Relaxed), 1);
        assert!(big.get("huge", 1).is_none());
    }

    #[test]
    fn the_same_page_twice_is_counted_once() {
        let c = PageCache::default();
        c.insert("k".into(), 1, body(100));
        c.insert("k".into(), 1, body(100));
        let g = c.inner.lock().unwrap();
        assert_eq!((g.pages.len(), g.order.len(), g.bytes), (1, 1, 101));
    }
}
