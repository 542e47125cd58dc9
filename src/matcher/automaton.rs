//! The reference name matcher: one anchored, leftmost-longest Aho-Corasick automaton over
//! reversed entries. It was the production path until issue #16's fourth pass replaced it with
//! [`super::HashWalk`] behind the tail gate (same answers, ≈ 13× cheaper to build; see
//! docs/performance.md); it stays as the independent statement of the matching rule that the
//! differential tests and `benches/matcher.rs` compare the walk with.
//!
//! Every entry `d` becomes the pattern `reverse(d) + "."`; a query `q` is searched as
//! `reverse(lowercase(q)) + "."`, anchored at the start, leftmost-longest. A pattern can only
//! match a prefix of the reversed query that ends on a `.`, i.e. a label-aligned suffix of `q`,
//! so `notd` and `d.evil.example` can never match `d`; the longest such pattern is the most
//! specific entry.

use aho_corasick::{AhoCorasick, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};

use super::normalize::reverse_query;
use super::MAX_NAME_LEN;

/// Anchored Aho-Corasick over reversed names; pattern `i` is the `i`-th entry.
#[derive(Debug)]
pub struct Automaton {
    ac: AhoCorasick,
}

impl Automaton {
    /// Builds from normalised entries (of equal entries the first one's id is reported).
    pub fn new<'a>(
        domains: impl Iterator<Item = &'a str>,
    ) -> Result<Automaton, aho_corasick::BuildError> {
        let patterns = domains.map(|d| {
            let mut p: Vec<u8> = Vec::with_capacity(d.len() + 1);
            p.extend(d.bytes().rev());
            p.push(b'.');
            p
        });
        let ac = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .prefilter(false)
            .build(patterns)?;
        Ok(Automaton { ac })
    }

    /// Index of the most specific entry covering `name` (ASCII; any case; optional trailing
    /// dot).
    pub fn find(&self, name: &str) -> Option<usize> {
        let mut buf = [0u8; MAX_NAME_LEN + 2];
        let n = reverse_query(name.as_bytes(), &mut buf)?;
        let hay = buf.get(..n)?;
        self.ac
            .find(Input::new(hay).anchored(Anchored::Yes))
            .map(|m| m.pattern().as_usize())
    }

    /// Heap held by the automaton.
    pub fn heap_bytes(&self) -> usize {
        self.ac.memory_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::NameSet;
    use super::super::HashWalk;
    use super::*;

    /// Deterministic pseudo-random numbers (no extra dependency).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Labels that share prefixes and suffixes, so entries share tails and queries land next
    /// to entries on both sides of a label boundary.
    const LABELS: &[&str] = &[
        "a",
        "b",
        "ab",
        "ba",
        "aa",
        "pool",
        "xmr",
        "com",
        "org",
        "x-1",
        "_srv",
        "9",
        "xn--bcher-kva",
    ];

    fn label(r: &mut Lcg) -> String {
        if r.below(4) == 0 {
            (0..1 + r.below(9))
                .map(|_| char::from(b"ab-1"[r.below(4)]))
                .collect()
        } else {
            LABELS[r.below(LABELS.len())].to_string()
        }
    }

    fn name(r: &mut Lcg, labels: usize) -> String {
        (0..labels).map(|_| label(r)).collect::<Vec<_>>().join(".")
    }

    /// Names around `e`: itself in any case and with a trailing dot, under prefixes, glued to a
    /// label (no boundary), with a label added behind, every label-aligned tail, one-byte
    /// edits (a dot turned into `-` joins labels, a `-` turned into a dot splits one), empty
    /// labels, and names near the length limit.
    fn near(e: &str, r: &mut Lcg, out: &mut Vec<String>) {
        for q in [
            e.to_string(),
            format!("{e}."),
            format!("{e}.."),
            format!(".{e}"),
            e.to_ascii_uppercase(),
            format!("x.{e}"),
            format!("X.Y.{}", e.to_ascii_uppercase()),
            format!("not{e}"),
            format!("-{e}"),
            format!("{e}x"),
            format!("{e}.evil.example"),
            format!("a..{e}"),
        ] {
            out.push(q);
        }
        let mut rest = e;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            out.push(rest.to_string());
            out.push(format!("w.{rest}"));
        }
        let bytes = e.as_bytes();
        for _ in 0..4 {
            let mut m = bytes.to_vec();
            let i = r.below(m.len());
            m[i] = match m[i] {
                b'.' => b'-',
                b'-' => b'.',
                _ => b"ab.-A"[r.below(5)],
            };
            out.push(String::from_utf8(m).unwrap());
            let mut cut = bytes.to_vec();
            cut.remove(i);
            out.push(String::from_utf8(cut).unwrap());
        }
        // Just under, at and over the name limit, with and without a trailing dot.
        for total in [MAX_NAME_LEN - 1, MAX_NAME_LEN, MAX_NAME_LEN + 1] {
            if let Some(pad) = total.checked_sub(e.len() + 1).filter(|p| *p > 0) {
                let mut p = "a".repeat(pad);
                for i in (63..pad).step_by(64) {
                    p.replace_range(i..=i, ".");
                }
                out.push(format!("{p}.{e}"));
                out.push(format!("{p}.{e}."));
            }
        }
    }

    /// Differential test of the production name set (tail gate + hash walk) against the
    /// automaton, on generated lists (shared tails, duplicates, upper-case and single-label
    /// entries: the gate off, the walk's spill used) and names around every entry plus random
    /// ones. Fails when the walk skips the whole name, stops at the first label, accepts a
    /// suffix that is not label-aligned, or the gate rejects a covered name.
    #[test]
    fn walk_and_gate_agree_with_the_automaton() {
        let mut r = Lcg(0x9e37_79b9_7f4a_7c15);
        let (mut hits, mut spilled) = (0usize, 0usize);
        for round in 0..60 {
            let count = 1 + r.below(if round % 3 == 0 { 8 } else { 120 });
            let mut entries: Vec<String> = (0..count)
                .map(|_| {
                    let n = 2 + r.below(4);
                    name(&mut r, n)
                })
                .collect();
            match round % 5 {
                // Single-label entries turn the gate off.
                1 => entries.push(label(&mut r)),
                // An upper-case entry first: its lowercase twin hashes equal and is spilled.
                2 => {
                    let e = entries[0].clone();
                    entries.insert(0, e.to_ascii_uppercase());
                    entries.push(e);
                }
                _ => {}
            }
            let refs = || entries.iter().map(String::as_str);
            let set = NameSet::build(refs(), entries.len());
            let walk = HashWalk::new(refs());
            spilled += walk_spill(&walk);
            let reference = Automaton::new(refs()).unwrap();
            let mut names = Vec::new();
            for e in &entries {
                near(e, &mut r, &mut names);
            }
            for _ in 0..200 {
                let n = 1 + r.below(6);
                names.push(name(&mut r, n));
            }
            names.extend(["", ".", "..", "com", "a.b."].map(String::from));
            for q in &names {
                let want = reference.find(q);
                assert_eq!(set.find(q.as_bytes()), want, "round {round}: {q:?}");
                assert_eq!(walk.find(q), want, "round {round} (no gate): {q:?}");
                hits += usize::from(want.is_some());
            }
        }
        assert!(hits > 2_000, "the names hit entries: {hits}");
        assert!(spilled > 0, "the spill path is exercised");
    }

    fn walk_spill(w: &HashWalk) -> usize {
        w.spill_len()
    }
}
