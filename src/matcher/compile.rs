//! The compiled sets: names in a hash set probed with label-aligned suffixes behind an exact
//! quick reject, and addresses in per-prefix-length hash maps.
//!
//! Names ([`HashWalk`]): every entry is stored once, keyed by a 64-bit hash of its bytes; a
//! query `q` (any ASCII case, optional trailing dot) is probed with `q`, then each suffix of `q`
//! after a `.`, most specific first, and the first suffix equal to an entry (checked byte for
//! byte, so a hash collision cannot give a wrong answer) names it. Only label-aligned suffixes
//! are probed, so `notd` and `d.evil.example` can never match `d`; the first hit is the longest,
//! i.e. the most specific entry. [`super::Automaton`] (anchored Aho-Corasick over reversed
//! names, the production path until issue #16's fourth pass) is the reference the tests
//! compare it with.
//!
//! In front of the walk, an exact quick reject ([`TailGate`], issue #16): a name whose last two
//! (three) labels are no two-label entry's (no longer entry's last three) is covered by no
//! entry. One or two hashes of a few bytes instead of the walk's probes for nearly every
//! benign name.

use rustc_hash::FxHashMap;
use std::net::IpAddr;

use super::MAX_NAME_LEN;

/// Name lookup structure; ids index the caller's hit table.
#[derive(Debug, Default)]
pub(crate) enum NameSet {
    #[default]
    Empty,
    /// The suffix walk behind the quick reject (`None` when some entry has a single label).
    Walk(HashWalk, Option<TailGate>),
}

impl NameSet {
    /// `domains` must be normalised, unique entries; id `i` is the `i`-th domain.
    pub(crate) fn build<'a, I>(domains: I, count: usize) -> NameSet
    where
        I: Iterator<Item = &'a str> + Clone,
    {
        if count == 0 {
            return NameSet::Empty;
        }
        let gate = TailGate::build(domains.clone());
        NameSet::Walk(HashWalk::new(domains), gate)
    }

    /// Id of the most specific entry covering the ASCII `name`, if any.
    #[inline]
    pub(crate) fn find(&self, name: &[u8]) -> Option<usize> {
        match self {
            NameSet::Empty => None,
            NameSet::Walk(w, gate) => {
                if gate.as_ref().is_some_and(|g| !g.may_cover(name)) {
                    return None;
                }
                w.find_bytes(name)
            }
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            NameSet::Empty => 0,
            NameSet::Walk(w, g) => w.heap_bytes() + g.as_ref().map_or(0, TailGate::heap_bytes),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            NameSet::Empty => "empty",
            NameSet::Walk(..) => "hash-walk",
        }
    }
}

/// Longest tail hashed by [`TailGate`]; a longer one is left to the automaton.
const MAX_TAIL: usize = 128;

/// The exact quick reject in front of the automaton. An entry covers a name only as a
/// label-aligned suffix of it, so a covered name's last `k` labels are the entry's last `k`
/// labels for any `k` up to the entry's label count. Every entry has at least two labels
/// (`normalize_entry` refuses single-label ones; [`TailGate::build`] gives up otherwise): the
/// gate holds a hash of each two-label entry and of the last three labels of each longer one
/// (so names under a listed `pool.<popular-domain>` are told apart from the popular domain's
/// other names). A name whose last two labels match no two-label entry and whose last three
/// match no longer one is covered by no entry. A collision (or a tail over [`MAX_TAIL`])
/// only sends the name on to the automaton, which decides.
#[derive(Debug, Default)]
pub(crate) struct TailGate {
    tails: rustc_hash::FxHashSet<u64>,
}

impl TailGate {
    /// `None` when some entry has a single label (the rule above would not hold).
    fn build<'a>(domains: impl Iterator<Item = &'a str>) -> Option<TailGate> {
        let mut set = rustc_hash::FxHashSet::default();
        for d in domains {
            let d = d.as_bytes();
            let (two, three) = tails(d);
            let key = match memchr::memchr_iter(b'.', d).take(2).count() {
                0 => return None,
                1 => tail_hash(two, 2)?,
                _ => tail_hash(three, 3)?,
            };
            set.insert(key);
        }
        Some(TailGate { tails: set })
    }

    /// False only when no entry covers `name` (ASCII, any case, optional trailing dot).
    #[inline]
    pub(crate) fn may_cover(&self, name: &[u8]) -> bool {
        let name = name.strip_suffix(b".").unwrap_or(name);
        let (two, three) = tails(name);
        match tail_hash(two, 2) {
            Some(h) if !self.tails.contains(&h) => {}
            _ => return true,
        }
        if three.len() == two.len() {
            return false;
        }
        tail_hash(three, 3).is_none_or(|h| self.tails.contains(&h))
    }

    fn heap_bytes(&self) -> usize {
        self.tails.capacity() * (std::mem::size_of::<u64>() + 1)
    }
}

/// The last two and the last three labels of `name` (all of it when it has fewer). One
/// backward scan: names are short, and `memrchr`'s set-up per call cost more than the scan.
#[inline]
fn tails(name: &[u8]) -> (&[u8], &[u8]) {
    let mut dots = 0;
    let mut two = name;
    for (i, c) in name.iter().enumerate().rev() {
        if *c == b'.' {
            dots += 1;
            let after = name.get(i + 1..).unwrap_or(name);
            if dots == 2 {
                two = after;
            } else if dots == 3 {
                return (two, after);
            }
        }
    }
    (two, name)
}

/// A hash of the ASCII-lowercased `tail` and its label count; `None` over [`MAX_TAIL`] bytes.
/// Insert and probe use this one function, so only its determinism matters;
/// `tests::tail_hash_ignores_ascii_case`.
#[inline]
fn tail_hash(tail: &[u8], labels: usize) -> Option<u64> {
    if tail.len() > MAX_TAIL {
        return None;
    }
    Some(lower_hash(tail, labels as u64))
}

/// A hash of the ASCII-lowercased `bytes` and `tag` (small). Eight bytes at a time, lowercased
/// in the word (issue #16: copying into a zeroed buffer, lowercasing and FxHash's byte loop were
/// most of a rejected name's cost). The length is hashed, so the zero padding of the last word
/// cannot make two inputs equal.
#[inline]
fn lower_hash(bytes: &[u8], tag: u64) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h = (bytes.len() as u64) << 2 | tag;
    let mut rest = bytes;
    while let Some((word, more)) = rest.split_first_chunk::<8>() {
        h = (h.rotate_left(26) ^ ascii_lower_word(u64::from_le_bytes(*word))).wrapping_mul(K);
        rest = more;
    }
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        if let Some(dst) = last.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        h = (h.rotate_left(26) ^ ascii_lower_word(u64::from_le_bytes(last))).wrapping_mul(K);
    }
    h ^ h >> 29
}

/// `make_ascii_lowercase` on the eight bytes of `w` at once: `A`–`Z` get bit 0x20, every other
/// byte (non-ASCII included) is unchanged.
#[inline]
fn ascii_lower_word(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HIGHS;
    // High bit set where the low seven bits are >= 'A', and where they are > 'Z' (no carry
    // crosses a byte: at most 0x7f + 0x3f).
    let ge_a = low7.wrapping_add(ONES.wrapping_mul(u64::from(0x80 - b'A')));
    let gt_z = low7.wrapping_add(ONES.wrapping_mul(u64::from(0x80 - b'Z' - 1)));
    let upper = ge_a & !gt_z & !w & HIGHS;
    w | upper >> 2
}

/// Addresses, CIDR blocks and endpoints. Lookup walks the prefix lengths present, longest first,
/// so the most specific block wins; at most 33 (IPv4) or 129 (IPv6) probes.
#[derive(Debug, Default)]
pub(crate) struct IpSet {
    v4: Vec<(u8, FxHashMap<u32, u32>)>,
    v6: Vec<(u8, FxHashMap<u128, u32>)>,
    endpoints: FxHashMap<(IpAddr, u16), u32>,
    /// First endpoint entry of each address, for lookups without a port.
    endpoint_addrs: FxHashMap<IpAddr, u32>,
}

impl IpSet {
    pub(crate) fn insert_net(&mut self, net: ipnet::IpNet, id: u32) {
        let len = net.prefix_len();
        match net {
            ipnet::IpNet::V4(n) => insert_prefix(&mut self.v4, len, u32::from(n.network()), id),
            ipnet::IpNet::V6(n) => insert_prefix(&mut self.v6, len, u128::from(n.network()), id),
        }
    }

    pub(crate) fn insert_endpoint(&mut self, ip: IpAddr, port: u16, id: u32) {
        self.endpoints.entry((ip, port)).or_insert(id);
        self.endpoint_addrs.entry(ip).or_insert(id);
    }

    pub(crate) fn find(&self, ip: IpAddr, port: Option<u16>) -> Option<u32> {
        let ip = ip.to_canonical();
        if let Some(p) = port {
            if let Some(id) = self.endpoints.get(&(ip, p)) {
                return Some(*id);
            }
        }
        let net = match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, map)| {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                    map.get(&(a & mask)).copied()
                })
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, map)| {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                    map.get(&(a & mask)).copied()
                })
            }
        };
        if net.is_some() {
            return net;
        }
        // Without a port, an endpoint entry still says "this address is a pool".
        match port {
            None => self.endpoint_addrs.get(&ip).copied(),
            Some(_) => None,
        }
    }
}

/// Adds `key` under prefix length `len`, keeping the tables ordered longest prefix first.
fn insert_prefix<K: std::hash::Hash + Eq>(
    tables: &mut Vec<(u8, FxHashMap<K, u32>)>,
    len: u8,
    key: K,
    id: u32,
) {
    let pos = match tables.binary_search_by(|(l, _)| len.cmp(l)) {
        Ok(p) => p,
        Err(p) => {
            tables.insert(p, (len, FxHashMap::default()));
            p
        }
    };
    if let Some((_, map)) = tables.get_mut(pos) {
        map.entry(key).or_insert(id);
    }
}

/// The name set: each entry under a 64-bit hash of its bytes, probed with every label-aligned
/// suffix of the name, most specific first (issue #16, fourth pass: it builds ≈ 13× cheaper
/// than the automaton it replaced, with the same answers; docs/performance.md). A probe hashes
/// the suffix a word at a time with ASCII letters lowercased and compares the stored entry with
/// it byte for byte, so no copy of the name is made. An entry whose hash is already another
/// entry's (no such pair is known for the 64-bit hash, but a list is untrusted input) goes
/// into `spill`, an exact map searched only when a probe's hash is taken by a different entry.
#[derive(Debug, Default)]
pub struct HashWalk {
    /// Hash of an entry → where its bytes are in `text`, and its id.
    slots: FxHashMap<u64, Slot>,
    /// Every entry's bytes, one after the other.
    text: Vec<u8>,
    /// Entries whose hash collides with an earlier, different entry's.
    spill: FxHashMap<Box<[u8]>, u32>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    start: u32,
    len: u32,
    id: u32,
}

impl Slot {
    /// A slot whose entries are all in `spill`.
    const NO_TEXT: Slot = Slot {
        start: u32::MAX,
        len: u32::MAX,
        id: u32::MAX,
    };
}

/// The hash tag of whole entries (the gate's tails use their label count, 2 or 3).
const ENTRY_TAG: u64 = 0;

impl HashWalk {
    /// Builds from normalised entries; the value of `domains[i]` is `i` (the first one of
    /// equal entries).
    pub fn new<'a>(domains: impl Iterator<Item = &'a str>) -> HashWalk {
        let mut w = HashWalk::default();
        for (i, d) in domains.enumerate() {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            let d = d.as_bytes();
            let h = lower_hash(d, ENTRY_TAG);
            match w.slots.get(&h) {
                Some(s) if w.entry(*s) == Some(d) => {}
                Some(_) => {
                    w.spill.entry(d.into()).or_insert(id);
                }
                None => {
                    // `Blocklists` holds at most `MAX_ENTRIES` entries of at most
                    // `MAX_NAME_LEN` bytes, far below `u32::MAX` bytes in all; past it an
                    // entry is kept in `spill` behind a slot that holds no text.
                    match (u32::try_from(w.text.len()), u32::try_from(d.len())) {
                        (Ok(start), Ok(len)) if start.checked_add(len).is_some() => {
                            w.text.extend_from_slice(d);
                            w.slots.insert(h, Slot { start, len, id });
                        }
                        _ => {
                            w.slots.insert(h, Slot::NO_TEXT);
                            w.spill.entry(d.into()).or_insert(id);
                        }
                    }
                }
            }
        }
        w.text.shrink_to_fit();
        w
    }

    /// The bytes of a slot's entry (`None` for [`Slot::NO_TEXT`]).
    #[inline]
    fn entry(&self, s: Slot) -> Option<&[u8]> {
        let start = s.start as usize;
        self.text.get(start..start.checked_add(s.len as usize)?)
    }

    /// Entries held in the collision map (for tests).
    #[cfg(test)]
    pub(crate) fn spill_len(&self) -> usize {
        self.spill.len()
    }

    /// Approximate heap held by the set.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * (std::mem::size_of::<(u64, Slot)>() + 1)
            + self.text.capacity()
            + self.spill.capacity() * (std::mem::size_of::<(Box<[u8]>, u32)>() + 1)
            + self.spill.keys().map(|k| k.len()).sum::<usize>()
    }

    /// Index of the most specific entry covering `name` (ASCII; any case; optional trailing
    /// dot).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.find_bytes(name.as_bytes())
    }

    /// [`HashWalk::find`] on bytes.
    #[inline]
    pub(crate) fn find_bytes(&self, name: &[u8]) -> Option<usize> {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return None;
        }
        let mut suffix = name;
        loop {
            if let Some(s) = self.slots.get(&lower_hash(suffix, ENTRY_TAG)) {
                if self.entry(*s).is_some_and(|e| lower_eq(e, suffix)) {
                    return Some(s.id as usize);
                }
                if let Some(id) = self.spilled(suffix) {
                    return Some(id);
                }
            }
            // Names are short: a plain scan costs less than `memchr`'s set-up.
            let dot = suffix.iter().position(|&b| b == b'.')?;
            suffix = suffix.get(dot + 1..)?;
        }
    }

    /// The spilled entry equal to the lowercased `suffix` (cold: a probe whose hash another
    /// entry holds).
    #[cold]
    fn spilled(&self, suffix: &[u8]) -> Option<usize> {
        if self.spill.is_empty() {
            return None;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let lower = buf.get_mut(..suffix.len())?;
        lower.copy_from_slice(suffix);
        lower.make_ascii_lowercase();
        self.spill.get(&*lower).map(|i| *i as usize)
    }
}

/// Whether `entry` equals `probe` with ASCII letters lowercased (entries are stored lowercased;
/// an entry with an upper-case letter is equal to no probe, as in an exact map of lowercased
/// probes).
/// Eight bytes at a time, lowercased in the word as [`lower_hash`] does.
#[inline]
fn lower_eq(entry: &[u8], probe: &[u8]) -> bool {
    if entry.len() != probe.len() {
        return false;
    }
    let (mut e, mut p) = (entry, probe);
    while let (Some((ew, er)), Some((pw, pr))) =
        (e.split_first_chunk::<8>(), p.split_first_chunk::<8>())
    {
        if u64::from_le_bytes(*ew) != ascii_lower_word(u64::from_le_bytes(*pw)) {
            return false;
        }
        (e, p) = (er, pr);
    }
    e.iter().zip(p).all(|(e, p)| *e == p.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::super::Automaton;
    use super::*;

    /// The word lowercasing is `make_ascii_lowercase` on every byte value in every position,
    /// and the tail hash is the same for any ASCII case of a tail (what the gate relies on:
    /// lists are stored lowercased, queries come in any case).
    #[test]
    fn tail_hash_ignores_ascii_case() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = *b"aZ-9.\xc3@[";
                bytes[pos] = b;
                let mut want = bytes;
                want.make_ascii_lowercase();
                let got = ascii_lower_word(u64::from_le_bytes(bytes)).to_le_bytes();
                assert_eq!(got, want, "byte {b:#x} at {pos}");
            }
        }
        for t in [
            "pool.SupportXMR.com",
            "XMR.POOL.MINERGATE.COM",
            "a.b",
            "Ab",
            "",
        ] {
            let lower = t.to_ascii_lowercase();
            assert_eq!(tail_hash(t.as_bytes(), 2), tail_hash(lower.as_bytes(), 2));
            assert_ne!(
                tail_hash(lower.as_bytes(), 2),
                tail_hash(lower.as_bytes(), 3)
            );
        }
        let long = "a".repeat(MAX_TAIL + 1);
        assert_eq!(tail_hash(long.as_bytes(), 2), None);
        assert!(tail_hash(&long.as_bytes()[..MAX_TAIL], 2).is_some());
        // Tails that differ only past the first word, or only in length, hash apart.
        assert_ne!(tail_hash(b"abcdefgh.x", 2), tail_hash(b"abcdefgh.y", 2));
        assert_ne!(tail_hash(b"abcdefgh", 2), tail_hash(b"abcdefgh\0", 2));
    }

    /// The quick reject changes no answer: the gated walk agrees with the reference automaton
    /// (no gate) on names around every entry (covered, decoys, other tails, odd shapes), and the
    /// gate is off when an entry has a single label.
    #[test]
    fn tail_gate_is_exact() {
        let entries = [
            "supportxmr.com",
            "pool.nanopool.org",
            "a.b.c.example.net",
            "xmr.duckdns.org",
            "Mixed.Case.test",
            "pool.popular.com",
            "x.y.deep.example.org",
        ];
        let lower: Vec<String> = entries.iter().map(|e| e.to_ascii_lowercase()).collect();
        let set = NameSet::build(lower.iter().map(|s| s.as_str()), lower.len());
        assert!(matches!(&set, NameSet::Walk(_, Some(_))));
        let reference = Automaton::new(lower.iter().map(|s| s.as_str())).unwrap();
        let mut names = vec![
            String::new(),
            ".".into(),
            "com".into(),
            "org.".into(),
            "..".into(),
            "a..com".into(),
            "supportxmr.com..".into(),
        ];
        for e in &lower {
            for pre in ["", "x.", "X.Y.", "not", "-"] {
                for post in ["", ".", ".evil.example", "x"] {
                    names.push(format!("{pre}{e}{post}"));
                    names.push(format!("{pre}{e}{post}").to_ascii_uppercase());
                }
            }
            // Every label-aligned tail of the entry, alone and under a prefix.
            let mut rest = e.as_str();
            while let Some(dot) = rest.find('.') {
                rest = &rest[dot + 1..];
                names.push(rest.to_string());
                names.push(format!("w.{rest}"));
            }
        }
        names.push("www.popular.com".into());
        names.push("popular.com".into());
        names.push("a.pool.popular.com".into());
        names.push("deep.example.org".into());
        names.push("y.deep.example.org".into());
        names.push("q.x.y.deep.example.org".into());
        names.push("x..y.deep.example.org".into());
        names.push("..pool.popular.com".into());
        names.push(format!("{}.supportxmr.com", "a".repeat(200)));
        names.push(format!("{}.com", "b".repeat(200)));
        let mut rejected = 0;
        for n in &names {
            let gated = set.find(n.as_bytes());
            assert_eq!(gated, reference.find(n), "{n:?}");
            if let NameSet::Walk(_, Some(g)) = &set {
                if !g.may_cover(n.as_bytes()) {
                    rejected += 1;
                    assert_eq!(gated, None, "{n:?}");
                }
            }
        }
        assert!(
            rejected > 20,
            "the gate rejects the names it can: {rejected}"
        );
        let single = NameSet::build(["example.com", "lan"].into_iter(), 2);
        assert!(matches!(&single, NameSet::Walk(_, None)));
        assert_eq!(single.find(b"host.lan"), Some(1));
    }
}
