//! Pages: how a finished (compacted) day is kept (schema 4, `docs/hunt.md`).
//!
//! sled 0.34 pays per row (tree-node entries, node rewrites, log framing) far more than the
//! bytes of a small row: one row per (day, name) cost ~4× the counted bytes on disk. A
//! compacted day therefore holds *pages*: rows of many consecutive names (or destinations)
//! with their blocks, deflate-compressed, ~[`PAGE_TARGET_BYTES`] of records each.
//!
//! Key: `day ‖ 0x01 ‖ generation (u32 BE) ‖ last record key ‖ [0x00 for names] ‖ seq (u32 BE)`.
//! `0x01` sorts below every stored name (printable ASCII) and address tag (4, 6), so pages
//! and the open day's blocks share the trees without meeting. A page is keyed by its *last*
//! record: the pages that may hold the records `≥ x` start at the first page key `≥ x`, one
//! forward scan. Records inside a page are sorted; each key is stored as the length it shares
//! with the previous one plus the rest (sorted reversed names share long prefixes).
//!
//! Value: `VALUE_PAGE ‖ codec ‖ raw length (varint) ‖ payload`; the raw payload is
//! `records (varint) ‖ { shared (varint) ‖ rest length (varint) ‖ rest ‖ value length
//! (varint) ‖ value }…`, each value one block as `NameBlock::encode` / `FlowBlock::encode` wrote
//! it. Decoding is bounded ([`MAX_PAGE_RAW`]) and never panics.

use std::ops::Range;

use super::{put_varint, Reader};

/// Version byte of a page value.
pub const VALUE_PAGE: u8 = 3;
/// Payload stored as is.
pub const CODEC_RAW: u8 = 0;
/// Payload deflate-compressed (raw deflate, `miniz_oxide`).
pub const CODEC_DEFLATE: u8 = 1;
/// The byte after the day that marks a page key.
pub const PAGE_MARK: u8 = 0x01;
/// Raw bytes of records gathered before a page is closed. Larger pages mean fewer sled rows
/// and better compression; smaller ones less to inflate per search (`docs/hunt.md` measures).
pub const PAGE_TARGET_BYTES: usize = 64 * 1024;
/// Largest raw payload a page may declare: a block is bounded by `MAX_BLOCK_ENTRIES`, so a
/// page is at most the target plus one block; anything larger is corrupt, not allocated.
pub const MAX_PAGE_RAW: usize = 8 << 20;
/// Deflate level of the pages (1 fastest … 9 smallest).
pub const DEFLATE_LEVEL: u8 = 6;
/// Bytes of the page sequence number ending a page key.
pub const PAGE_SEQ_LEN: usize = 4;

/// `[day][0x01][gen]`: the prefix of one generation's pages of a day.
pub fn page_prefix(day: u32, gen: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + 1 + 4 + 64 + PAGE_SEQ_LEN);
    k.extend_from_slice(&day.to_be_bytes());
    k.push(PAGE_MARK);
    k.extend_from_slice(&gen.to_be_bytes());
    k
}

/// The first key of the open day's blocks of `day` (everything of the day above its pages).
pub fn blocks_start(day: u32) -> Vec<u8> {
    let mut k = day.to_be_bytes().to_vec();
    k.push(PAGE_MARK + 1);
    k
}

/// A page key: `[day][0x01][gen][last record key][0x00 if names][seq]`.
pub fn page_key(day: u32, gen: u32, last: &[u8], names: bool, seq: u32) -> Vec<u8> {
    let mut k = page_prefix(day, gen);
    k.extend_from_slice(last);
    if names {
        k.push(0);
    }
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The last record key of a page key (without the names' `0x00`), when `k` is a page key of
/// (`day`, `gen`).
pub fn page_last(k: &[u8], day: u32, gen: u32, names: bool) -> Option<&[u8]> {
    let p = page_prefix(day, gen);
    let rest = k.strip_prefix(p.as_slice())?;
    let end = rest.len().checked_sub(PAGE_SEQ_LEN + usize::from(names))?;
    rest.get(..end)
}

/// Gathers sorted records into pages.
#[derive(Default)]
pub struct PageBuilder {
    raw: Vec<u8>,
    prev: Vec<u8>,
    records: u64,
}

impl PageBuilder {
    /// Appends one record (keys must come in ascending order, equal keys allowed).
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        let shared = self
            .prev
            .iter()
            .zip(key)
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(&mut self.raw, shared as u64);
        let rest = key.get(shared..).unwrap_or_default();
        put_varint(&mut self.raw, rest.len() as u64);
        self.raw.extend_from_slice(rest);
        put_varint(&mut self.raw, value.len() as u64);
        self.raw.extend_from_slice(value);
        self.prev.clear();
        self.prev.extend_from_slice(key);
        self.records += 1;
    }

    /// Raw bytes gathered so far.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Closes the page: (last record key, value); `None` when empty. The builder starts over.
    pub fn finish(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        if self.records == 0 {
            return None;
        }
        let mut payload = Vec::with_capacity(self.raw.len() + 10);
        put_varint(&mut payload, self.records);
        payload.extend_from_slice(&self.raw);
        let packed = miniz_oxide::deflate::compress_to_vec(&payload, DEFLATE_LEVEL);
        let mut v = Vec::with_capacity(packed.len().min(payload.len()) + 12);
        v.push(VALUE_PAGE);
        if packed.len() < payload.len() {
            v.push(CODEC_DEFLATE);
            put_varint(&mut v, payload.len() as u64);
            v.extend_from_slice(&packed);
        } else {
            v.push(CODEC_RAW);
            put_varint(&mut v, payload.len() as u64);
            v.extend_from_slice(&payload);
        }
        let last = std::mem::take(&mut self.prev);
        self.raw.clear();
        self.records = 0;
        Some((last, v))
    }
}

/// A decoded page: its raw payload and where each record is.
#[derive(Debug, Default)]
pub struct Page {
    raw: Vec<u8>,
    records: Vec<(Vec<u8>, Range<usize>)>,
}

impl Page {
    /// Decodes a page value; `None` when it is not one or is corrupt.
    pub fn decode(v: &[u8]) -> Option<Page> {
        let mut r = Reader::new(v);
        if r.u8()? != VALUE_PAGE {
            return None;
        }
        let codec = r.u8()?;
        let raw_len = usize::try_from(r.varint()?).ok()?;
        if raw_len > MAX_PAGE_RAW {
            return None;
        }
        let raw = match codec {
            CODEC_RAW => r.rest().to_vec(),
            CODEC_DEFLATE => {
                miniz_oxide::inflate::decompress_to_vec_with_limit(r.rest(), raw_len).ok()?
            }
            _ => return None,
        };
        if raw.len() != raw_len {
            return None;
        }
        let mut records = Vec::new();
        {
            let mut r = Reader::new(&raw);
            let n = r.varint()?;
            // Every record takes at least 3 bytes.
            if n > (raw.len() / 3) as u64 {
                return None;
            }
            records.reserve(n as usize);
            let mut prev: Vec<u8> = Vec::new();
            for _ in 0..n {
                let shared = usize::try_from(r.varint()?).ok()?;
                let rest_len = usize::try_from(r.varint()?).ok()?;
                let rest = r.bytes(rest_len)?;
                let mut key = prev.get(..shared)?.to_vec();
                key.extend_from_slice(rest);
                let vlen = usize::try_from(r.varint()?).ok()?;
                let start = raw.len() - r.rest().len();
                r.bytes(vlen)?;
                records.push((key.clone(), start..start + vlen));
                prev = key;
            }
        }
        Some(Page { raw, records })
    }

    /// (record key, value) in order.
    pub fn records(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.records
            .iter()
            .filter_map(|(k, r)| Some((k.as_slice(), self.raw.get(r.clone())?)))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes the decoded page holds (for the search's cache bound).
    pub fn weight(&self) -> usize {
        self.raw.len()
            + self
                .records
                .iter()
                .map(|(k, _)| k.len() + 24)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip_and_hostile_bytes_do_not_panic() {
        let mut b = PageBuilder::default();
        assert!(b.finish().is_none());
        let recs: Vec<(Vec<u8>, Vec<u8>)> = (0..500u32)
            .map(|i| {
                (
                    format!("com.example{:04}.", i / 2).into_bytes(),
                    vec![2u8; (i % 40) as usize],
                )
            })
            .collect();
        for (k, v) in &recs {
            b.push(k, v);
        }
        let (last, v) = b.finish().unwrap();
        assert_eq!(last, recs.last().unwrap().0);
        assert_eq!(v[1], CODEC_DEFLATE, "repetitive records compress");
        let p = Page::decode(&v).unwrap();
        let got: Vec<(Vec<u8>, Vec<u8>)> =
            p.records().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(got, recs);
        for cut in 0..v.len() {
            let _ = Page::decode(&v[..cut]);
        }
        let mut bad = v.clone();
        bad[3] ^= 0x55;
        let _ = Page::decode(&bad);
        // A declared size beyond the bound is refused before inflating.
        let mut huge = vec![VALUE_PAGE, CODEC_DEFLATE];
        put_varint(&mut huge, (MAX_PAGE_RAW + 1) as u64);
        assert!(Page::decode(&huge).is_none());
        let k = page_key(7, 2, b"com.x.", true, 9);
        assert_eq!(page_last(&k, 7, 2, true), Some(&b"com.x."[..]));
        assert!(k < blocks_start(7));
        assert!(page_prefix(7, 2) > 7u32.to_be_bytes().to_vec());
    }
}
