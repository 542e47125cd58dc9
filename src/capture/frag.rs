//! IPv4 / IPv6 fragment reassembly, bounded in entries, bytes and time.
//!
//! Large EDNS answers (DNSSEC, big TXT) arrive as fragments; only the first fragment has the UDP
//! header, so without reassembly the answer is invisible. The table is a classic flood target,
//! so it holds at most [`MAX_FRAG_DATAGRAMS`] datagrams, each at most [`MAX_DATAGRAM_LEN`] bytes
//! in at most [`MAX_FRAGS_PER_DATAGRAM`] pieces, and drops a datagram [`FRAG_TIMEOUT_US`] after
//! its first fragment (capture time). When full, the oldest datagram is dropped.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::ip::Fragment;

/// Datagrams being reassembled at once. A busy resolver has a handful in flight; the cap only
/// bites under a fragment flood.
pub const MAX_FRAG_DATAGRAMS: usize = 1024;
/// Largest reassembled datagram (the IP maximum).
pub const MAX_DATAGRAM_LEN: usize = 65_535;
/// Pieces per datagram: a 64 KiB datagram over a 1280-byte MTU is ~52 fragments.
pub const MAX_FRAGS_PER_DATAGRAM: usize = 64;
/// Linux's default `ipfrag_time` (30 s).
pub const FRAG_TIMEOUT_US: i64 = 30_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

struct Partial {
    first_ts: i64,
    serial: u64,
    pieces: Vec<(usize, Vec<u8>)>,
    total: Option<usize>,
    bytes: usize,
}

/// What happened to a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum FragOutcome {
    /// Stored; the datagram is not complete yet.
    Pending,
    /// The datagram is complete: its transport payload.
    Complete(Vec<u8>),
    /// Dropped (reason for metrics).
    Dropped(&'static str),
}

#[derive(Default)]
pub struct FragTable {
    map: HashMap<Key, Partial>,
    order: VecDeque<(Key, u64)>,
    serial: u64,
    /// Datagrams given up (timeout, cap, oversize).
    pub evicted: u64,
}

impl FragTable {
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn add(
        &mut self,
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        frag: Fragment,
        data: &[u8],
    ) -> FragOutcome {
        self.expire(ts);
        let key = Key {
            src,
            dst,
            proto,
            id: frag.id,
        };
        let end = match frag.offset.checked_add(data.len()) {
            Some(e) if e <= MAX_DATAGRAM_LEN => e,
            _ => {
                self.drop_key(&key);
                return FragOutcome::Dropped("frag_oversize");
            }
        };
        if !self.map.contains_key(&key) {
            if self.map.len() >= MAX_FRAG_DATAGRAMS {
                self.evict_oldest();
            }
            self.serial += 1;
            self.order.push_back((key, self.serial));
            self.map.insert(
                key,
                Partial {
                    first_ts: ts,
                    serial: self.serial,
                    pieces: Vec::new(),
                    total: None,
                    bytes: 0,
                },
            );
        }
        let Some(p) = self.map.get_mut(&key) else {
            return FragOutcome::Dropped("frag_internal");
        };
        if p.pieces.len() >= MAX_FRAGS_PER_DATAGRAM {
            self.drop_key(&key);
            return FragOutcome::Dropped("frag_too_many_pieces");
        }
        if !frag.more {
            p.total = Some(end);
        }
        p.bytes += data.len();
        p.pieces.push((frag.offset, data.to_vec()));
        let Some(total) = p.total else {
            return FragOutcome::Pending;
        };
        if p.bytes < total {
            return FragOutcome::Pending;
        }
        // Check coverage of [0, total) in offset order; later copies of overlapping bytes win
        // (matches Linux for the benign case of retransmitted identical fragments).
        p.pieces.sort_by_key(|(o, _)| *o);
        let mut covered = 0usize;
        for (o, d) in &p.pieces {
            if *o > covered {
                return FragOutcome::Pending;
            }
            covered = covered.max(o + d.len());
        }
        if covered < total {
            return FragOutcome::Pending;
        }
        let mut out = vec![0u8; total];
        for (o, d) in &p.pieces {
            let n = d.len().min(total.saturating_sub(*o));
            if let (Some(dst), Some(src)) = (out.get_mut(*o..o + n), d.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
        self.map.remove(&key);
        FragOutcome::Complete(out)
    }

    /// Drops datagrams whose first fragment is older than the timeout.
    pub fn expire(&mut self, now: i64) {
        while let Some((key, serial)) = self.order.front().copied() {
            match self.map.get(&key) {
                Some(p) if p.serial == serial => {
                    if now.saturating_sub(p.first_ts) <= FRAG_TIMEOUT_US {
                        break;
                    }
                    self.map.remove(&key);
                    self.evicted += 1;
                    self.order.pop_front();
                }
                // Completed or replaced: a stale queue entry.
                _ => {
                    self.order.pop_front();
                }
            }
        }
        // Stale queue entries of completed datagrams must not accumulate either.
        if self.order.len() > MAX_FRAG_DATAGRAMS * 4 {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|p| p.serial == *s));
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((key, serial)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|p| p.serial == serial) {
                self.map.remove(&key);
                self.evicted += 1;
                return;
            }
        }
    }

    fn drop_key(&mut self, key: &Key) {
        if self.map.remove(key).is_some() {
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_out_of_order_and_caps() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut t = FragTable::default();
        let f2 = Fragment {
            id: 1,
            offset: 8,
            more: false,
        };
        let f1 = Fragment {
            id: 1,
            offset: 0,
            more: true,
        };
        assert_eq!(t.add(0, a, b, 17, f2, &[2; 4]), FragOutcome::Pending);
        match t.add(0, a, b, 17, f1, &[1; 8]) {
            FragOutcome::Complete(v) => assert_eq!(v, [1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]),
            o => panic!("{o:?}"),
        }
        assert!(t.is_empty());
        for id in 0..(MAX_FRAG_DATAGRAMS as u32 * 3) {
            let f = Fragment {
                id,
                offset: 0,
                more: true,
            };
            t.add(1, a, b, 17, f, &[0; 8]);
            assert!(t.len() <= MAX_FRAG_DATAGRAMS);
        }
        t.expire(1 + FRAG_TIMEOUT_US + 1);
        assert!(t.is_empty());
    }
}
