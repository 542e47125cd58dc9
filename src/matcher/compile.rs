//! The compiled sets: names in one anchored Aho-Corasick automaton over reversed names, and
//! addresses in per-prefix-length hash maps.
//!
//! Names: every entry `d` becomes the pattern `reverse(d) + "."`; a query `q` is searched as
//! `reverse(lowercase(q)) + "."`, anchored at the start, leftmost-longest. A pattern can only
//! match a prefix of the reversed query that ends on a `.`, i.e. a label-aligned suffix of `q`,
//! so `notd` and `d.evil.example` can never match `d`; the longest such pattern is the most
//! specific entry. The anchored search stops at the first byte no entry shares, which for a
//! benign name is usually inside its TLD or second-level label.

use std::net::IpAddr;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};
use rustc_hash::FxHashMap;

use super::normalize::reverse_query;
use super::MAX_NAME_LEN;

/// Largest name set compiled into the automaton. Building Aho-Corasick costs about 10 s and
/// 0.9 GiB of transient heap per million reversed names (see `benches/matcher.rs`), against
/// under 1 s for the hash set; above this size the hash-set walk (same results, same match
/// speed within noise) takes over so a huge user list cannot stall a reload or exhaust memory.
pub const AUTOMATON_MAX_NAMES: usize = 250_000;

/// Name lookup structure; ids index the caller's hit table.
#[derive(Debug, Default)]
pub(crate) enum NameSet {
    #[default]
    Empty,
    /// Anchored, leftmost-longest Aho-Corasick over reversed names (the production path).
    Automaton(AhoCorasick),
    /// Hash set of entries probed with label-aligned suffixes (beyond [`AUTOMATON_MAX_NAMES`]).
    Walk(HashWalk),
}

impl NameSet {
    /// `domains` must be normalised, unique entries; id `i` is the `i`-th domain.
    pub(crate) fn build<'a, I>(
        domains: I,
        count: usize,
    ) -> Result<NameSet, aho_corasick::BuildError>
    where
        I: Iterator<Item = &'a str> + Clone,
    {
        if count == 0 {
            return Ok(NameSet::Empty);
        }
        if count > AUTOMATON_MAX_NAMES {
            return Ok(NameSet::Walk(HashWalk::new(domains)));
        }
        // Patterns are produced lazily so only the automaton under construction holds them.
        let patterns = domains.map(|d| {
            let mut p: Vec<u8> = Vec::with_capacity(d.len() + 1);
            p.extend(d.bytes().rev());
            p.push(b'.');
            p
        });
        // Contiguous NFA: in anchored mode it never follows failure links, so it costs about
        // what a DFA does per byte at a small fraction of the memory (a DFA of 100k reversed
        // names takes well over 64 MiB).
        let ac = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            // Anchored searches never use a prefilter; skip building one.
            .prefilter(false)
            .build(patterns)?;
        Ok(NameSet::Automaton(ac))
    }

    /// Id of the most specific entry covering the ASCII `name`, if any.
    #[inline]
    pub(crate) fn find(&self, name: &[u8]) -> Option<usize> {
        match self {
            NameSet::Empty => None,
            NameSet::Automaton(ac) => {
                let mut buf = [0u8; MAX_NAME_LEN + 2];
                let n = reverse_query(name, &mut buf)?;
                let hay = buf.get(..n)?;
                ac.find(Input::new(hay).anchored(Anchored::Yes))
                    .map(|m| m.pattern().as_usize())
            }
            NameSet::Walk(w) => w.find(std::str::from_utf8(name).ok()?),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            NameSet::Empty => 0,
            NameSet::Automaton(a) => a.memory_usage(),
            NameSet::Walk(w) => w.heap_bytes(),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            NameSet::Empty => "empty",
            NameSet::Automaton(_) => "aho-corasick",
            NameSet::Walk(_) => "hash-walk",
        }
    }
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

/// The straightforward alternative: a hash set of entries probed with every label-aligned
/// suffix of the name, most specific first. Kept as the cross-check for tests and as the
/// baseline in `benches/matcher.rs`.
#[derive(Debug, Default)]
pub struct HashWalk {
    map: FxHashMap<Box<str>, u32>,
}

impl HashWalk {
    /// Builds from normalised unique entries; the value of `domains[i]` is `i`.
    pub fn new<'a>(domains: impl Iterator<Item = &'a str>) -> HashWalk {
        let mut map = FxHashMap::default();
        for (i, d) in domains.enumerate() {
            map.entry(d.into())
                .or_insert(u32::try_from(i).unwrap_or(u32::MAX));
        }
        HashWalk { map }
    }

    /// Approximate heap held by the set.
    pub fn heap_bytes(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 1)
            + self.map.keys().map(|k| k.len()).sum::<usize>()
    }

    /// Index of the most specific entry covering `name` (ASCII; lowercased here).
    pub fn find(&self, name: &str) -> Option<usize> {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let lower = buf.get_mut(..name.len())?;
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        let lower = std::str::from_utf8(lower).ok()?;
        let mut suffix = lower;
        loop {
            if let Some(i) = self.map.get(suffix) {
                return Some(*i as usize);
            }
            let dot = suffix.find('.')?;
            suffix = suffix.get(dot + 1..)?;
        }
    }
}
