//! A bounded table of transactions waiting for their completing line (a reply waiting to be
//! joined to its query), keyed by a 64-bit key, in arrival order.
//!
//! Arrival order is a ring of slots; a taken entry leaves a tombstone that is dropped once it
//! reaches the front. The ring (live entries plus tombstones) never exceeds the cap: inserting
//! into a full ring evicts the oldest slot, which the caller emits as unanswered. So memory is
//! bounded by the cap whatever the input, and an entry never waits longer than `cap` newer
//! entries (or the caller's time-out).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

pub struct Pending<V> {
    ring: VecDeque<Option<(u64, V)>>,
    front_seq: u64,
    /// key → sequence numbers of its live entries, oldest first. Almost always one entry, so
    /// the first is stored inline (no allocation per key).
    index: FxHashMap<u64, Seqs>,
    cap: usize,
    /// Live entries (the ring also holds tombstones).
    live: usize,
}

#[derive(Default)]
struct Seqs {
    first: u64,
    more: VecDeque<u64>,
}

impl Seqs {
    fn push(&mut self, seq: u64) {
        self.more.push_back(seq);
    }
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(self.first).chain(self.more.iter().copied())
    }
    fn last(&self) -> u64 {
        self.more.back().copied().unwrap_or(self.first)
    }
    /// Removes `seq`; returns whether the list is now empty.
    fn remove(&mut self, seq: u64) -> bool {
        if self.first == seq {
            match self.more.pop_front() {
                Some(next) => {
                    self.first = next;
                    false
                }
                None => true,
            }
        } else {
            self.more.retain(|s| *s != seq);
            false
        }
    }
}

impl<V> Pending<V> {
    pub fn new(cap: usize) -> Self {
        Pending {
            ring: VecDeque::new(),
            front_seq: 0,
            index: FxHashMap::default(),
            cap: cap.max(1),
            live: 0,
        }
    }

    /// Adds an entry; returns the entry evicted to make room, if any.
    pub fn insert(&mut self, key: u64, v: V) -> Option<V> {
        let evicted = if self.ring.len() >= self.cap {
            self.pop_front_slot()
        } else {
            None
        };
        let seq = self.front_seq + self.ring.len() as u64;
        self.ring.push_back(Some((key, v)));
        self.live += 1;
        match self.index.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push(seq),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Seqs {
                    first: seq,
                    more: VecDeque::new(),
                });
            }
        }
        evicted
    }

    /// Takes the oldest entry under `key` for which `pred` holds.
    pub fn take(&mut self, key: u64, pred: impl Fn(&V) -> bool) -> Option<V> {
        // One probe of the index when the key's only entry is taken (the usual case): its list
        // is taken out, and put back only while entries remain under the key.
        let mut seqs = self.index.remove(&key)?;
        let mut found = None;
        for seq in seqs.iter() {
            let slot = seq
                .checked_sub(self.front_seq)
                .and_then(|off| self.ring.get(off as usize));
            if let Some(Some((_, v))) = slot {
                if pred(v) {
                    found = Some(seq);
                    break;
                }
            }
        }
        let emptied = found.is_some_and(|seq| seqs.remove(seq));
        if !emptied {
            self.index.insert(key, seqs);
        }
        let seq = found?;
        let off = seq.checked_sub(self.front_seq)? as usize;
        let v = self.ring.get_mut(off)?.take().map(|(_, v)| v);
        if v.is_some() {
            self.live -= 1;
        }
        self.drop_tombstones();
        v
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    /// The most recently inserted live entry under `key` (for updating it in place).
    pub fn newest_mut(&mut self, key: u64) -> Option<&mut V> {
        let seq = self.index.get(&key)?.last();
        let off = seq.checked_sub(self.front_seq)? as usize;
        match self.ring.get_mut(off) {
            Some(Some((_, v))) => Some(v),
            _ => None,
        }
    }

    /// The oldest live entry.
    pub fn oldest(&self) -> Option<&V> {
        self.ring.front().and_then(|s| s.as_ref().map(|(_, v)| v))
    }

    /// Removes and returns the oldest live entry.
    pub fn pop_oldest(&mut self) -> Option<V> {
        self.drop_tombstones();
        self.pop_front_slot()
    }

    /// Hands `emit` every entry, oldest first, while `expired` holds for the oldest: entries
    /// are in arrival order, so the first one still waiting ends the sweep (the time-out of
    /// every parser that joins lines).
    pub fn drain_expired(&mut self, expired: impl Fn(&V) -> bool, mut emit: impl FnMut(V)) {
        while self.oldest().is_some_and(&expired) {
            match self.pop_oldest() {
                Some(v) => emit(v),
                None => break,
            }
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn pop_front_slot(&mut self) -> Option<V> {
        let slot = self.ring.pop_front()?;
        let seq = self.front_seq;
        self.front_seq += 1;
        let (key, v) = slot?;
        self.live -= 1;
        if let Some(seqs) = self.index.get_mut(&key) {
            if seqs.remove(seq) {
                self.index.remove(&key);
            }
        }
        self.drop_tombstones();
        Some(v)
    }

    fn drop_tombstones(&mut self) {
        while let Some(None) = self.ring.front() {
            self.ring.pop_front();
            self.front_seq += 1;
        }
    }
}

/// FxHash of a byte string folded to lowercase plus extra parts (join keys: client, name, type).
pub fn key_of(parts: &[&[u8]], extra: u64) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    for p in parts {
        for c in *p {
            h.write_u8(c.to_ascii_lowercase());
        }
        h.write_u8(0xff);
    }
    h.write_u64(extra);
    h.finish()
}

/// The join key of a DNS name: equal for any two names equal but for ASCII case (the
/// callers strip one trailing dot first). Eight bytes at a time, with bit 0x20 of every byte
/// set before hashing: `A`–`Z` become `a`–`z`, so case never changes the key. Bytes that differ
/// only in that bit elsewhere (`@` and `` ` ``, some non-ASCII bytes) share a key too; the
/// table's callers compare names on every lookup, so a shared key only costs a comparison.
/// Issue #16: [`key_of`]'s byte loop, twice a dnsmasq transaction, was ≈ 2 % of a scan.
#[inline]
pub fn name_key(name: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let mut h = (name.len() as u64).wrapping_mul(K);
    let mut rest = name;
    while let Some((word, more)) = rest.split_first_chunk::<8>() {
        h = (h.rotate_left(5) ^ (u64::from_le_bytes(*word) | FOLD)).wrapping_mul(K);
        rest = more;
    }
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        if let Some(dst) = last.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        h = (h.rotate_left(5) ^ (u64::from_le_bytes(last) | FOLD)).wrapping_mul(K);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names equal but for ASCII case get one key, at every length and case position: each
    /// byte value against its lowercase form at every offset of names up to 20 bytes. Keys
    /// of different names differ (a sample: every name of up to 3 bytes over a small
    /// alphabet, and the lengths of a run of one letter), so the key is not constant. Fails
    /// when the case fold is dropped.
    #[test]
    fn name_key_ignores_ascii_case_only() {
        for len in 1..=20usize {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut name: Vec<u8> = (0..len).map(|i| b"pool.x-9"[i % 8]).collect();
                    name[pos] = b;
                    let lower = name.to_ascii_lowercase();
                    assert_eq!(
                        name_key(&name),
                        name_key(&lower),
                        "{b:#x} at {pos} of {len}"
                    );
                }
            }
        }
        let mut seen = std::collections::HashMap::new();
        let alphabet = b"a9.-";
        for len in 0..=3u32 {
            for code in 0..alphabet.len().pow(len) {
                let mut c = code;
                let name: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = alphabet[c % alphabet.len()];
                        c /= alphabet.len();
                        b
                    })
                    .collect();
                if let Some(other) = seen.insert(name_key(&name), name.clone()) {
                    panic!("{name:?} and {other:?} share a key");
                }
            }
        }
        for n in 0..64 {
            let run = vec![b'a'; n];
            if let Some(other) = seen.insert(name_key(&run), run.clone()) {
                assert_eq!(other, run, "runs of {n}");
            }
        }
    }

    #[test]
    fn bounded_and_ordered() {
        let mut p = Pending::new(3);
        assert!(p.insert(1, "a").is_none());
        assert!(p.insert(2, "b").is_none());
        assert!(p.insert(1, "c").is_none());
        assert_eq!(p.insert(3, "d"), Some("a"));
        assert_eq!(p.take(1, |_| true), Some("c"));
        assert_eq!(p.take(1, |_| true), None);
        assert_eq!(p.pop_oldest(), Some("b"));
        assert_eq!(p.pop_oldest(), Some("d"));
        assert_eq!(p.pop_oldest(), None);
        assert!(p.is_empty() && p.index.is_empty());
        for i in 0..100u64 {
            p.insert(i % 7, "x");
            p.take(i % 5, |_| true);
        }
        assert!(p.ring.len() <= 3);
        assert_eq!(p.len(), p.ring.iter().filter(|s| s.is_some()).count());
    }
}
