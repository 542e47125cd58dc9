//! A hash map with a hard entry cap that evicts the least recently touched entry first.
//!
//! Every state table of the correlation engine is one of these, so that a flood of random names,
//! answers or SYNs can only ever cost `cap` entries per table.

use std::collections::VecDeque;
use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Map with a capacity; inserting into a full map evicts the entry touched longest ago.
///
/// Recency is tracked with a generation number per entry and a queue of `(key, generation)`;
/// stale queue items are skipped on eviction and compacted away when the queue grows past twice
/// the map, so memory stays O(cap) and operations amortised O(1).
///
/// The queue is only kept once the map has had to evict (`queued`): until then it is built on
/// demand, by sorting the entries by generation — the same order the queue would hold. A table
/// that never fills (the scan's incident table, sized for 250 k, a flood's bindings) pays for
/// no queue at all (issue #11: pushing and compacting the queues was ≈ 25 M instructions of a
/// 8 192-client flood, and their memory a few MB).
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    map: FxHashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    /// Whether `order` is kept (from the first eviction or `pop_oldest` on).
    queued: bool,
    next_gen: u64,
    cap: usize,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// A map holding at most `cap` entries (at least 1).
    pub fn new(cap: usize) -> Self {
        BoundedMap {
            map: FxHashMap::default(),
            order: VecDeque::new(),
            queued: false,
            next_gen: 0,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Entries evicted because the map was full, since creation.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// Mutable access without changing recency.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(v, _)| v)
    }

    /// Mutable access that also marks the entry as most recently used.
    ///
    /// One probe of the map: touching the entry that is already the most recent one (the
    /// engine touches an incident right after admitting it, and a flood's events touch the
    /// same few entries in a row) queues nothing; otherwise the queue is compacted first, when
    /// due, so the entry is looked up once (issue #11).
    pub fn get_mut_touch(&mut self, k: &K) -> Option<&mut V> {
        if self.queued && self.order.len() >= self.map.len().saturating_mul(2).saturating_add(16) {
            self.maybe_compact_with(1);
        }
        let newest = self.next_gen;
        let (v, g) = self.map.get_mut(k)?;
        if *g != newest {
            self.next_gen = self.next_gen.wrapping_add(1);
            *g = self.next_gen;
            if self.queued {
                self.order.push_back((k.clone(), self.next_gen));
            }
        }
        Some(v)
    }

    /// Inserts or replaces `k` (most recently used). Returns the entry evicted to make room.
    ///
    /// Below the cap the key is hashed once (the map's own insert): whether it is present only
    /// matters when a full map has to make room (issue #11: every table insert of a flood event
    /// probed twice).
    pub fn insert(&mut self, k: K, v: V) -> Option<(K, V)> {
        let gen = self.bump();
        let mut evicted = None;
        if self.map.len() >= self.cap && !self.map.contains_key(&k) {
            evicted = self.evict_oldest();
        }
        let _ = self.push(k, v, gen);
        evicted
    }

    /// [`BoundedMap::insert`] of a key the caller has just looked up and not found, with no
    /// change to the map since (a miss of `get`/`get_mut`/`get_mut_touch`/`contains_key`): the
    /// same eviction and recency, without probing for the key again when the map is full (the
    /// engine's dedupe and flow tables are full for most of a flood, issue #11).
    pub fn insert_absent(&mut self, k: K, v: V) -> Option<(K, V)> {
        let gen = self.bump();
        let evicted = if self.map.len() >= self.cap {
            self.evict_oldest()
        } else {
            None
        };
        let replaced = self.push(k, v, gen);
        debug_assert!(!replaced, "insert_absent of a key present in the map");
        evicted
    }

    /// Stores the entry, and queues it when the queue is kept: whether it replaced one.
    fn push(&mut self, k: K, v: V, gen: u64) -> bool {
        if !self.queued {
            return self.map.insert(k, (v, gen)).is_some();
        }
        let replaced = self.map.insert(k.clone(), (v, gen)).is_some();
        self.order.push_back((k, gen));
        self.maybe_compact();
        replaced
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        // The queue item goes stale and is skipped later.
        self.map.remove(k).map(|(v, _)| v)
    }

    /// Removes and returns the least recently touched entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        self.keep_queue();
        while let Some((k, gen)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|(_, g)| *g == gen) {
                return self.map.remove(&k).map(|(v, _)| (k, v));
            }
        }
        None
    }

    /// Empties the map, oldest entry first: the order [`BoundedMap::pop_oldest`] would give,
    /// without a probe per entry. The entries are moved out of the table in its own order and
    /// visited by generation (one sort of (generation, index) pairs), so the table's memory
    /// is read once, front to back (issue #11: the end of a 65 536-client flood popped every
    /// incident with a cache-missing probe). Evictions so far are still counted.
    pub fn drain_oldest_first(&mut self) -> impl Iterator<Item = (K, V)> {
        let map = std::mem::take(&mut self.map);
        self.order = VecDeque::new();
        self.queued = false;
        let mut order: Vec<(u64, usize)> = Vec::with_capacity(map.len());
        let mut items: Vec<Option<(K, V)>> = Vec::with_capacity(map.len());
        for (i, (k, (v, g))) in map.into_iter().enumerate() {
            order.push((g, i));
            items.push(Some((k, v)));
        }
        order.sort_unstable();
        order
            .into_iter()
            .filter_map(move |(_, i)| items.get_mut(i).and_then(Option::take))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (v, _))| (k, v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.map.values_mut().map(|(v, _)| v)
    }

    /// Removes every entry for which `keep` returns false.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(|k, (v, _)| keep(k, v));
    }

    /// From now on the queue is kept: built once from the entries, oldest first (generations
    /// are unique, so this is the order the queue would have had after compaction).
    fn keep_queue(&mut self) {
        if self.queued {
            return;
        }
        self.queued = true;
        let mut all: Vec<(u64, &K)> = self.map.iter().map(|(k, (_, g))| (*g, k)).collect();
        all.sort_unstable_by_key(|&(g, _)| g);
        self.order = all.into_iter().map(|(g, k)| (k.clone(), g)).collect();
    }

    fn bump(&mut self) -> u64 {
        self.next_gen = self.next_gen.wrapping_add(1);
        self.next_gen
    }

    fn evict_oldest(&mut self) -> Option<(K, V)> {
        let out = self.pop_oldest();
        if out.is_some() {
            self.evicted = self.evicted.saturating_add(1);
        }
        out
    }

    fn maybe_compact(&mut self) {
        self.maybe_compact_with(0);
    }

    /// Compacts when the queue, plus `coming` items about to be pushed, is past its bound.
    fn maybe_compact_with(&mut self, coming: usize) {
        // Relative to the entries held, not the cap: a large table that is mostly empty (the
        // scan's incident table, sized for 250k) keeps a queue of its size, not of its cap.
        // Amortised O(1): a compaction leaves `len` items, the next one comes `len + 16`
        // pushes later.
        if self.order.len().saturating_add(coming)
            <= self.map.len().saturating_mul(2).saturating_add(16)
        {
            return;
        }
        let map = &self.map;
        self.order
            .retain(|(k, gen)| map.get(k).is_some_and(|(_, g)| g == gen));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_touched() {
        let mut m = BoundedMap::new(2);
        assert!(m.insert(1, "a").is_none());
        assert!(m.insert(2, "b").is_none());
        m.get_mut_touch(&1);
        let ev = m.insert(3, "c");
        assert_eq!(ev, Some((2, "b")));
        assert_eq!(m.len(), 2);
        assert_eq!(m.evicted(), 1);
        assert!(m.get(&1).is_some() && m.get(&3).is_some());
    }

    /// Issue #11: the engine touches an incident right after admitting it (and a flood's
    /// events touch the newest entries again); touching the most recent entry queues nothing,
    /// and the LRU order is the same as if it had.
    #[test]
    fn touching_the_newest_entry_queues_nothing() {
        let mut m = BoundedMap::new(3);
        m.insert(1, "a");
        m.insert(2, "b");
        m.insert(3, "c");
        assert_eq!(m.insert(4, "d"), Some((1, "a")), "the first eviction");
        let queued = m.order.len();
        for _ in 0..5 {
            assert!(m.get_mut_touch(&4).is_some());
        }
        assert_eq!(m.order.len(), queued);
        // 2 is the oldest, 4 the newest.
        m.get_mut_touch(&2);
        assert_eq!(m.order.len(), queued + 1);
        assert_eq!(m.insert(5, "e"), Some((3, "c")));
        assert_eq!(m.pop_oldest(), Some((4, "d")));
        assert_eq!(m.pop_oldest(), Some((2, "b")));
    }

    /// Issue #11: a map that has never had to evict keeps no queue, and the first eviction
    /// (or `pop_oldest`) finds the least recently touched entry all the same: the same
    /// evictions, in the same order, as a map that queued from the start.
    #[test]
    fn a_map_that_never_fills_keeps_no_queue() {
        let mut lazy = BoundedMap::new(64);
        let mut eager = BoundedMap::new(64);
        eager.keep_queue();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut evictions = (Vec::new(), Vec::new());
        for round in 0..4_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 97;
            match x % 5 {
                0 => {
                    lazy.remove(&k);
                    eager.remove(&k);
                }
                1 | 2 => {
                    lazy.get_mut_touch(&k);
                    eager.get_mut_touch(&k);
                }
                _ => {
                    evictions.0.push(lazy.insert(k, round));
                    evictions.1.push(eager.insert(k, round));
                }
            }
            if round == 60 {
                assert!(
                    lazy.order.is_empty() && !lazy.queued,
                    "{} queued",
                    lazy.order.len()
                );
            }
        }
        assert!(lazy.evicted() > 0);
        assert_eq!(evictions.0, evictions.1);
        while let Some(e) = eager.pop_oldest() {
            assert_eq!(lazy.pop_oldest(), Some(e));
        }
        assert!(lazy.is_empty());
    }

    /// `drain_oldest_first` is `pop_oldest` until empty — on a map that has evicted (queue
    /// kept) and on one that has not — and hashes no key doing it.
    #[test]
    fn draining_is_popping_the_oldest_until_empty() {
        for cap in [16usize, 1_000] {
            let (mut a, mut b) = (BoundedMap::new(cap), BoundedMap::new(cap));
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            for round in 0..3_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = Probed((x % 211) as u32);
                match x % 4 {
                    0 => {
                        a.remove(&k);
                        b.remove(&k);
                    }
                    1 => {
                        a.get_mut_touch(&k);
                        b.get_mut_touch(&k);
                    }
                    _ => {
                        a.insert(k, round);
                        b.insert(k, round);
                    }
                }
            }
            assert_eq!(cap == 16, a.evicted() > 0);
            let mut popped = Vec::new();
            while let Some(e) = b.pop_oldest() {
                popped.push(e);
            }
            let mut drained = Vec::new();
            let hashed = probes(|| drained.extend(a.drain_oldest_first()));
            assert_eq!(drained, popped);
            assert!(!drained.is_empty());
            assert_eq!(hashed, 0, "a probe per entry");
            assert!(a.is_empty());
            a.insert(Probed(1), 1);
            assert_eq!(a.pop_oldest(), Some((Probed(1), 1)));
        }
    }

    thread_local! {
        static HASHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// A key that counts how often it is hashed: one hash per map probe.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Probed(u32);
    impl Hash for Probed {
        fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
            HASHED.with(|c| c.set(c.get() + 1));
            self.0.hash(h);
        }
    }
    fn probes(f: impl FnOnce()) -> u64 {
        let before = HASHED.with(|c| c.get());
        f();
        HASHED.with(|c| c.get()) - before
    }

    /// Issue #11: an insert below the cap probes the map once, an `insert_absent` into a full
    /// map once plus the eviction's two (find and remove the oldest); both evict what `insert`
    /// evicted before. Fails on the old `insert` (a `contains_key` probe first, always).
    #[test]
    fn inserts_probe_once() {
        let mut m = BoundedMap::new(3);
        // Room up front: a growing table hashes its keys again (not a probe).
        m.map.reserve(16);
        m.insert(Probed(1), "a");
        assert_eq!(probes(|| assert!(m.insert(Probed(2), "b").is_none())), 1);
        assert_eq!(
            probes(|| assert!(m.insert_absent(Probed(3), "c").is_none())),
            1
        );
        // Full: `insert` must ask whether the key is there (a replacement evicts nothing).
        assert_eq!(probes(|| assert!(m.insert(Probed(3), "C").is_none())), 2);
        let mut evicted = None;
        assert_eq!(probes(|| evicted = m.insert_absent(Probed(4), "d")), 3);
        assert_eq!(evicted, Some((Probed(1), "a")));
        // The same order as plain inserts: 2 is the oldest now, 4 the newest.
        let mut n = BoundedMap::new(3);
        for (k, v) in [(1, "a"), (2, "b"), (3, "c"), (3, "C"), (4, "d")] {
            n.insert(Probed(k), v);
        }
        for _ in 0..3 {
            assert_eq!(m.pop_oldest(), n.pop_oldest());
        }
        assert!(m.is_empty() && n.is_empty());
    }

    #[test]
    fn queue_stays_bounded_under_touches() {
        let mut m = BoundedMap::new(10);
        for i in 0..11 {
            m.insert(i, i);
        }
        assert!(m.queued, "full and evicting: the queue is kept");
        for _ in 0..10_000 {
            m.get_mut_touch(&3);
        }
        assert!(m.order.len() <= 2 * 10 + 16 + 1);
        assert_eq!(m.len(), 10);
    }
}
