//! The list pre-filter of offline log reading (`scan`, issue #16): the query name of a line is
//! located in place (a memchr/memmem search, no allocation) and looked up in the lists
//! (`matcher::Blocklists::match_name_bytes`, the engine's own test, handed in by `scan`) before
//! the address and the rest are parsed.
//! A line whose name is not listed is counted (`poolwatch_log_lines_prefiltered_total`) and
//! dropped: no address is parsed, no `String` or observation built, nothing reaches the engine.
//! Its time is still read (the year of a year-less syslog time is inferred from the line
//! before), and the name is taken where the parser takes it (after the tokens it skips):
//! `tests/it/prefilter_edges.rs`.
//!
//! Only for formats whose unlisted lines cannot change a verdict: BIND and Unbound query logs
//! carry no answer data (nothing to bind, shadow or name an address) and no rcode next to a
//! server address (nothing to learn a resolver from). dnsmasq logs answers — an unlisted
//! answer of a client holding a pool binding shadows that binding, and a listed CNAME target
//! follows its unlisted query line — so its lines are all parsed, but a transaction of a name
//! ruled out here is read lite and, read through a [`super::LogSink`], skipped only when the
//! engine says its addresses cannot matter (`dnsmasq`, `sink`). Not used where every lookup
//! is kept (`scan --history`) or lists change while running (the follower, the service).
//!
//! Tried first, rejected (docs/performance.md, "#16 logs and API"): an unanchored
//! case-insensitive Aho-Corasick over the whole raw line made BIND 2.9× slower than parsing it
//! (10k names: the automaton walks ~150 bytes a line through a large NFA; the name lookup
//! walks ~20 bytes anchored).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{self, Counter};

/// Whether a name, as raw ASCII bytes (any case, no trailing dot), is listed: `scan` passes
/// the engine's own test, `matcher::Blocklists::match_name_bytes(name).is_some()`, which is
/// case-insensitive and needs no UTF-8 check (`ingest` does not depend on `matcher`). A lookup
/// must not depend on the case of the name.
pub type BytesLookup = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Longest name looked up in place; longer (or non-ASCII) names are never dropped, the parser
/// decides.
const MAX_NAME: usize = 255;

/// Which lines can name a listed pool; shared by every log reader of one run.
pub struct Prefilter {
    listed: BytesLookup,
    skipped: AtomicU64,
    skipped_metric: Counter,
}

impl std::fmt::Debug for Prefilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefilter")
            .field("skipped", &self.skipped())
            .finish()
    }
}

impl Prefilter {
    /// The pre-filter for the lists behind `listed` (the engine's, which `scan` never reloads).
    pub fn new(listed: BytesLookup) -> Prefilter {
        Prefilter {
            listed,
            skipped: AtomicU64::new(0),
            skipped_metric: metrics::counter(
                "poolwatch_log_lines_prefiltered_total",
                "Log lines dropped before parsing: their query name is not listed (scan only).",
                &[],
            ),
        }
    }

    /// Whether the raw name token `name` (any case, optional trailing dot) may be listed;
    /// false only when it certainly is not (what the engine would find for its normalised form).
    /// The token is handed over as it is, without a lowercased copy or a UTF-8 check: the
    /// lookup is case-insensitive (it lowercases as it hashes and reverses the name).
    #[inline]
    pub fn may_match(&self, name: &[u8]) -> bool {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME || !name.is_ascii() {
            return true;
        }
        (self.listed)(name)
    }

    /// Counts a dropped line.
    #[inline]
    pub(crate) fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        self.skipped_metric.inc();
    }

    /// Lines dropped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The label-suffix rule of the matcher, for two entries.
    fn pre() -> Prefilter {
        Prefilter::new(Box::new(|n: &[u8]| {
            let n = String::from_utf8_lossy(n).to_ascii_lowercase();
            ["supportxmr.com", "nanopool.org"]
                .iter()
                .any(|e| n == *e || n.strip_suffix(e).is_some_and(|head| head.ends_with('.')))
        }))
    }

    #[test]
    fn drops_only_names_that_are_not_listed() {
        let p = pre();
        // Raw tokens: any case, trailing dot.
        assert!(p.may_match(b"POOL.SupportXMR.com."));
        assert!(p.may_match(b"supportxmr.com"));
        assert!(p.may_match(b"xmr-eu1.NANOPOOL.org"));
        assert!(!p.may_match(b"notsupportxmr.com"));
        assert!(!p.may_match(b"supportxmr.com.evil.example"));
        assert!(!p.may_match(b"example.com"));
        // Unknown shapes are left to the parser.
        assert!(p.may_match("b\u{fc}cher.example".as_bytes()));
        assert!(p.may_match(b""));
        assert!(p.may_match(&[b'a'; 300]));
        assert_eq!(p.skipped(), 0);
        p.skip();
        assert_eq!(p.skipped(), 1);
    }
}
