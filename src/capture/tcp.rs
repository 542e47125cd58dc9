//! DNS-over-TCP stream reassembly: per direction of each connection on a DNS port, put segments
//! in sequence order, then cut messages by their 2-byte length prefix (RFC 1035 §4.2.2).
//! Several messages in one segment and one message over several segments both work.
//!
//! Bounded: at most [`MAX_TCP_DNS_STREAMS`] directions tracked (oldest dropped first), each
//! holding at most [`MAX_STREAM_BUFFER`] bytes in order and [`MAX_OOO_SEGMENTS`] segments out of
//! order; a stream idle for [`TCP_DNS_IDLE_US`] is dropped.

use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

/// Directions of DNS-over-TCP connections tracked at once. DNS over TCP is rare (truncated
/// answers, zone transfers, some stubs); worst case memory is this times
/// (`MAX_STREAM_BUFFER` + `MAX_OOO_BYTES`), about 256 MiB, reached only by a crafted flood.
pub const MAX_TCP_DNS_STREAMS: usize = 2048;
/// Bytes appended to a stream's buffer before it is cut into messages: one maximal message
/// plus its prefix, plus one maximal segment of the next. A leftover partial message is always
/// shorter than `2 + 65_535`.
pub const MAX_STREAM_BUFFER: usize = 2 + 65_535 + 65_535;
/// Bytes held out of order per stream.
pub const MAX_OOO_BYTES: usize = 65_536;
/// Segments held waiting for a gap to fill; beyond that we resynchronise at the gap.
pub const MAX_OOO_SEGMENTS: usize = 16;
/// Idle time after which a stream's state is dropped (capture time).
pub const TCP_DNS_IDLE_US: i64 = 120_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}

struct Stream {
    next_seq: Option<u32>,
    buf: Vec<u8>,
    ooo: Vec<(u32, Vec<u8>)>,
    last_ts: i64,
    serial: u64,
}

/// Counters of the reassembler (merged into the capture stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpDnsStats {
    pub gaps: u64,
    pub evicted: u64,
    pub oversize: u64,
}

#[derive(Default)]
pub struct TcpDns {
    map: FxHashMap<StreamKey, Stream>,
    order: VecDeque<(StreamKey, u64)>,
    serial: u64,
    pub stats: TcpDnsStats,
}

/// TCP flag bits.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;

impl TcpDns {
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Feeds one segment; calls `on_msg` with each complete DNS message it completes.
    pub fn segment(
        &mut self,
        ts: i64,
        key: StreamKey,
        flags: u8,
        seq: u32,
        payload: &[u8],
        mut on_msg: impl FnMut(&[u8]),
    ) {
        if flags & RST != 0 {
            self.map.remove(&key);
            return;
        }
        if flags & SYN != 0 {
            self.map.remove(&key);
            self.insert(ts, key, Some(seq.wrapping_add(1)));
            // SYN with data (TFO) falls through.
        }
        if !payload.is_empty() {
            if !self.map.contains_key(&key) {
                self.insert(ts, key, None);
            }
            let stats = &mut self.stats;
            if let Some(s) = self.map.get_mut(&key) {
                s.last_ts = ts;
                let seq = if flags & SYN != 0 {
                    seq.wrapping_add(1)
                } else {
                    seq
                };
                accept(s, seq, payload, stats);
                drain(s, stats, &mut on_msg);
            }
        }
        if flags & FIN != 0 {
            self.map.remove(&key);
        }
    }

    fn insert(&mut self, ts: i64, key: StreamKey, next_seq: Option<u32>) {
        self.expire(ts);
        if self.map.len() >= MAX_TCP_DNS_STREAMS {
            while let Some((k, s)) = self.order.pop_front() {
                if self.map.get(&k).is_some_and(|st| st.serial == s) {
                    self.map.remove(&k);
                    self.stats.evicted += 1;
                    break;
                }
            }
        }
        self.serial += 1;
        self.order.push_back((key, self.serial));
        self.map.insert(
            key,
            Stream {
                next_seq,
                buf: Vec::new(),
                ooo: Vec::new(),
                last_ts: ts,
                serial: self.serial,
            },
        );
    }

    /// Drops streams idle longer than [`TCP_DNS_IDLE_US`] from the front of the age queue.
    pub fn expire(&mut self, now: i64) {
        while let Some((k, s)) = self.order.front().copied() {
            match self.map.get(&k) {
                Some(st) if st.serial == s => {
                    if now.saturating_sub(st.last_ts) <= TCP_DNS_IDLE_US {
                        break;
                    }
                    self.map.remove(&k);
                    self.stats.evicted += 1;
                    self.order.pop_front();
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
        if self.order.len() > MAX_TCP_DNS_STREAMS * 4 {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|st| st.serial == *s));
        }
    }
}

/// Sequence comparison modulo 2^32 (RFC 1982).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn accept(s: &mut Stream, seq: u32, payload: &[u8], stats: &mut TcpDnsStats) {
    let next = *s.next_seq.get_or_insert(seq);
    if seq == next {
        append(s, payload, stats);
        s.next_seq = Some(next.wrapping_add(payload.len() as u32));
    } else if seq_lt(seq, next) {
        // Retransmission, possibly carrying new bytes at its end.
        let overlap = next.wrapping_sub(seq) as usize;
        if let Some(new) = payload.get(overlap..).filter(|n| !n.is_empty()) {
            append(s, new, stats);
            s.next_seq = Some(next.wrapping_add(new.len() as u32));
        }
    } else {
        if s.ooo.len() >= MAX_OOO_SEGMENTS {
            // Lost segment that will not come: give up on the partial message and resync at
            // the earliest buffered segment.
            stats.gaps += 1;
            s.buf.clear();
            s.ooo.sort_by_key(|a| a.0.wrapping_sub(next));
            if let Some((first_seq, _)) = s.ooo.first() {
                s.next_seq = Some(*first_seq);
            }
        } else {
            let held: usize = s.ooo.iter().map(|(_, d)| d.len()).sum();
            if held.saturating_add(payload.len()) > MAX_OOO_BYTES {
                stats.oversize += 1;
                return;
            }
            s.ooo.push((seq, payload.to_vec()));
            return;
        }
    }
    // Pull in buffered segments that are now in order.
    while let Some(next) = s.next_seq {
        let Some(i) = s
            .ooo
            .iter()
            .position(|(q, d)| !seq_lt(next, *q) && seq_lt(next, q.wrapping_add(d.len() as u32)))
        else {
            // Drop segments wholly before `next` (already covered).
            s.ooo
                .retain(|(q, d)| seq_lt(next, q.wrapping_add(d.len() as u32)));
            break;
        };
        let (q, d) = s.ooo.swap_remove(i);
        let skip = next.wrapping_sub(q) as usize;
        if let Some(new) = d.get(skip..) {
            append(s, new, stats);
            s.next_seq = Some(next.wrapping_add(new.len() as u32));
        }
    }
}

fn append(s: &mut Stream, bytes: &[u8], stats: &mut TcpDnsStats) {
    if s.buf.len().saturating_add(bytes.len()) > MAX_STREAM_BUFFER {
        stats.oversize += 1;
        s.buf.clear();
        return;
    }
    s.buf.extend_from_slice(bytes);
}

fn drain(s: &mut Stream, _stats: &mut TcpDnsStats, on_msg: &mut impl FnMut(&[u8])) {
    let mut off = 0usize;
    while let Some(len) = s
        .buf
        .get(off..off + 2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    {
        let Some(msg) = s.buf.get(off + 2..off + 2 + len) else {
            break;
        };
        if !msg.is_empty() {
            on_msg(msg);
        }
        off += 2 + len;
    }
    if off > 0 {
        s.buf.drain(..off);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StreamKey {
        StreamKey {
            src: "10.0.0.1".parse().unwrap(),
            sport: 4000,
            dst: "10.0.0.2".parse().unwrap(),
            dport: 53,
        }
    }

    #[test]
    fn split_joined_and_out_of_order() {
        let mut t = TcpDns::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        t.segment(0, key(), SYN, 99, &[], |m| got.push(m.to_vec()));
        // two messages in one segment
        t.segment(1, key(), 0, 100, &[0, 2, 1, 1, 0, 1, 2], |m| {
            got.push(m.to_vec())
        });
        assert_eq!(got, vec![vec![1, 1], vec![2]]);
        // one message split in three, middle part arriving last, plus a retransmission
        t.segment(2, key(), 0, 107, &[0, 3], |m| got.push(m.to_vec()));
        t.segment(3, key(), 0, 111, &[9], |m| got.push(m.to_vec()));
        t.segment(3, key(), 0, 107, &[0, 3], |m| got.push(m.to_vec()));
        assert_eq!(got.len(), 2);
        t.segment(4, key(), 0, 109, &[7, 8], |m| got.push(m.to_vec()));
        assert_eq!(got.last().unwrap(), &vec![7, 8, 9]);
        t.segment(5, key(), FIN, 112, &[], |_| {});
        assert!(t.is_empty());
    }

    #[test]
    fn capped() {
        let mut t = TcpDns::default();
        for p in 0..(MAX_TCP_DNS_STREAMS * 2) {
            let mut k = key();
            k.sport = (p % 65536) as u16;
            k.src = std::net::IpAddr::from([10, 1, (p >> 16) as u8, 1]);
            t.segment(0, k, 0, 1, &[0, 9, 1], |_| {});
            assert!(t.len() <= MAX_TCP_DNS_STREAMS);
        }
        for s in 0..1000u32 {
            t.segment(1, key(), 0, s.wrapping_mul(7919), &[1, 2, 3], |_| {});
        }
    }
}
