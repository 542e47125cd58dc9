//! `--format suricata-rules`: one DNS and one TLS SNI rule per listed name, for Suricata 7.
//!
//! The dataset export matches exact names only, while pool traffic uses subdomains
//! (`pool.supportxmr.com`, `xmr-eu1.nanopool.org`). These rules match an entry and every name
//! under it on a label boundary, the list semantics:
//!
//! ```text
//! alert dns any any -> any any (msg:"poolwatch pool lookup supportxmr.com (list pools-monero)";
//!     dns.query; dotprefix; content:".supportxmr.com"; nocase; endswith; ...)
//! ```
//!
//! `dotprefix` puts a `.` in front of the buffer, so `.supportxmr.com` + `endswith` matches
//! `supportxmr.com` and `pool.supportxmr.com` but not `notsupportxmr.com` nor
//! `supportxmr.com.evil.example`. `nocase` because resolvers and clients may randomise the case
//! of a query (DNS 0x20).
//!
//! **Signature ids** are stable per entry: the entry's SHA-256 picks a slot in
//! `0..SID_SLOTS`; the DNS rule gets [`SID_BASE_DNS`] + slot, the SNI rule [`SID_BASE_TLS`] +
//! slot (so the pair is recognisable), allow exceptions the same in the `pass` ranges. A slot
//! already taken (a hash collision) moves to the next free one, in sorted entry order, so the
//! file is deterministic. The whole export uses sids 1 496 000 000 – 1 499 999 999 (below 2³¹,
//! outside the ranges of the public rulesets: ET Open 2 000 000 – 2 999 999, local 1 000 000 –
//! 1 999 999). `rev` is 1: a rule's content is a function of its entry, so it never changes
//! under the same sid.
//!
//! **Allow entries** that carve an exception out of a listed name (an allow under a blocked
//! domain) become `pass` rules for the same buffers; allows that no block covers need no rule and
//! are left out, so the file never passes traffic other rulesets would alert on.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::Blocklists;
use crate::model::{Category, ListHit};

/// First sid of the DNS alert rules.
pub const SID_BASE_DNS: u32 = 1_496_000_000;
/// First sid of the TLS SNI alert rules (same slot as the entry's DNS rule).
pub const SID_BASE_TLS: u32 = 1_497_000_000;
/// First sid of the DNS `pass` rules of allow exceptions.
pub const SID_BASE_PASS_DNS: u32 = 1_498_000_000;
/// First sid of the TLS SNI `pass` rules of allow exceptions.
pub const SID_BASE_PASS_TLS: u32 = 1_499_000_000;
/// Slots per range: each range holds this many rules.
pub const SID_SLOTS: u32 = 1_000_000;
/// Most entries written per range: half the slots, so that probing after a hash collision
/// stays short. The shipped lists hold a few hundred names; entries beyond are left out and the
/// header says how many.
pub const MAX_RULE_ENTRIES: usize = (SID_SLOTS / 2) as usize;

/// MITRE ATT&CK: Impact (TA0040) / Resource Hijacking (T1496), as Suricata `metadata`.
const MITRE: &str = "mitre_tactic_id TA0040, mitre_tactic_name Impact, \
                     mitre_technique_id T1496, mitre_technique_name Resource_Hijacking";

/// Renders the rules file (see the module documentation).
pub(crate) fn suricata_rules(b: &Blocklists, out: &mut String) {
    super::export::header(out, "#", b, super::ExportFormat::SuricataRules);
    let _ = writeln!(
        out,
        "# Load with `rule-files: [poolwatch.rules]` (Suricata 7; dns and tls app-layer parsers on).\n\
         # sids: DNS {SID_BASE_DNS}+n, TLS SNI {SID_BASE_TLS}+n, allow passes {SID_BASE_PASS_DNS}+n / \
         {SID_BASE_PASS_TLS}+n; n is stable per entry."
    );
    // Sorted, unique entries (the set is unique already; a name in two lists is one entry).
    let mut block: BTreeMap<&str, &ListHit> = BTreeMap::new();
    let mut allow: BTreeMap<&str, &ListHit> = BTreeMap::new();
    let mut unusable = 0usize;
    for h in b.name_entries() {
        if !rule_safe(&h.entry) {
            unusable += 1;
            continue;
        }
        if h.category == Category::Allow {
            allow.entry(&h.entry).or_insert(h);
        } else {
            block.entry(&h.entry).or_insert(h);
        }
    }
    let blocked: HashSet<&str> = block.keys().copied().collect();
    // Only allows under (or equal to) a blocked name change what the alert rules match.
    allow.retain(|name, _| suffixes(name).any(|s| blocked.contains(s)));
    // Blocks under such an allow: Suricata's `pass` wins over `alert`, so they are passed.
    let passing: HashSet<&str> = allow.keys().copied().collect();
    let shadowed = block
        .keys()
        .filter(|name| suffixes(name).skip(1).any(|s| passing.contains(s)))
        .count();
    let (block, left_block) = capped(block);
    let (allow, left_allow) = capped(allow);
    if unusable > 0 {
        let _ = writeln!(
            out,
            "# {unusable} entries with characters a rule cannot carry were left out"
        );
    }
    if shadowed > 0 {
        let _ = writeln!(
            out,
            "# {shadowed} entries under an allow exception are passed by its pass rule (Suricata: pass before alert)"
        );
    }
    if left_block + left_allow > 0 {
        let _ = writeln!(
            out,
            "# {} entries beyond {MAX_RULE_ENTRIES} per range were left out",
            left_block + left_allow
        );
    }
    for (slot, h) in slots(&block) {
        let kind = match h.category {
            Category::Pool => "pool",
            Category::BrowserMiner => "browser-miner",
            Category::MinerProxy => "miner-proxy",
            Category::Allow => "allow",
        };
        let d = h.entry.as_str();
        let list = h.list.as_str();
        let meta = format!("{MITRE}, poolwatch_category {kind}, poolwatch_list {list}");
        let _ = writeln!(
            out,
            "alert dns any any -> any any (msg:\"poolwatch {kind} lookup {d} (list {list})\"; \
             dns.query; dotprefix; content:\".{d}\"; nocase; endswith; classtype:coin-mining; \
             sid:{}; rev:1; metadata: {meta};)",
            SID_BASE_DNS + slot
        );
        let _ = writeln!(
            out,
            "alert tls any any -> any any (msg:\"poolwatch {kind} TLS SNI {d} (list {list})\"; \
             tls.sni; dotprefix; content:\".{d}\"; nocase; endswith; classtype:coin-mining; \
             sid:{}; rev:1; metadata: {meta};)",
            SID_BASE_TLS + slot
        );
    }
    for (slot, h) in slots(&allow) {
        let d = h.entry.as_str();
        let list = h.list.as_str();
        for (buffer, proto, base) in [
            ("dns.query", "dns", SID_BASE_PASS_DNS),
            ("tls.sni", "tls", SID_BASE_PASS_TLS),
        ] {
            let _ = writeln!(
                out,
                "pass {proto} any any -> any any (msg:\"poolwatch allow {d} (list {list})\"; \
                 {buffer}; dotprefix; content:\".{d}\"; nocase; endswith; sid:{}; rev:1; \
                 metadata: poolwatch_category allow, poolwatch_list {list};)",
                base + slot
            );
        }
    }
}

/// Whether a name can go into a rule's `content` and `msg` verbatim: normalised names are
/// lower-case LDH labels (plus `_`, `*`-free); anything with quotes, `;`, `|` or `\` would need
/// escaping and is left out rather than guessed at.
fn rule_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

/// `a.b.c`, `b.c`, `c`: the name and each parent on label boundaries.
fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |n| n.split_once('.').map(|(_, rest)| rest))
}

fn capped<'a>(m: BTreeMap<&'a str, &'a ListHit>) -> (Vec<&'a ListHit>, usize) {
    let total = m.len();
    let kept: Vec<&ListHit> = m.into_values().take(MAX_RULE_ENTRIES).collect();
    let left = total - kept.len();
    (kept, left)
}

/// The stable slot of each entry (sorted input): hash, then the next free slot on collision.
fn slots<'a>(entries: &[&'a ListHit]) -> Vec<(u32, &'a ListHit)> {
    let mut taken: HashSet<u32> = HashSet::with_capacity(entries.len());
    let mut out = Vec::with_capacity(entries.len());
    for h in entries {
        let mut slot = home_slot(&h.entry);
        // At most MAX_RULE_ENTRIES (half the slots) are taken, so a free one is always found.
        while !taken.insert(slot) {
            slot = (slot + 1) % SID_SLOTS;
        }
        out.push((slot, *h));
    }
    out
}

fn home_slot(entry: &str) -> u32 {
    let d = Sha256::digest(entry.as_bytes());
    let mut first = [0u8; 8];
    for (dst, src) in first.iter_mut().zip(d.iter()) {
        *dst = *src;
    }
    // The remainder is below SID_SLOTS, so it fits u32.
    u32::try_from(u64::from_be_bytes(first) % u64::from(SID_SLOTS)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(entry: &str, category: Category) -> ListHit {
        ListHit {
            list: "t".into(),
            entry: entry.into(),
            category,
            line: 0,
        }
    }

    #[test]
    fn slots_are_stable_and_unique() {
        let a = hit("supportxmr.com", Category::Pool);
        let b = hit("nanopool.org", Category::Pool);
        let one = slots(&[&a]);
        let two = slots(&[&b, &a]);
        assert_eq!(
            one[0].0, two[1].0,
            "an entry keeps its sid when others join"
        );
        assert_ne!(two[0].0, two[1].0);
        assert!(one[0].0 < SID_SLOTS);
    }

    #[test]
    fn collisions_move_to_the_next_free_slot() {
        let a = hit("x.example", Category::Pool);
        let s = slots(&[&a, &a, &a]);
        let ids: HashSet<u32> = s.iter().map(|(n, _)| *n).collect();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn suffixes_walk_label_boundaries() {
        let v: Vec<&str> = suffixes("a.b.c").collect();
        assert_eq!(v, ["a.b.c", "b.c", "c"]);
        assert!(!rule_safe("a\";b"));
        assert!(rule_safe("xn--80ak6aa92e.com"));
    }
}
