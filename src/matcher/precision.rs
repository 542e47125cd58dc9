//! List precision: block entries that cover far more than pools.
//!
//! * An entry that is the bare registrable domain of a known multi-purpose site
//!   (`blocklists/multi-purpose.toml`: a pool operator whose domain also serves an explorer, a
//!   wallet, an exchange or news) makes every visit to that site a pool `connection`.
//! * An entry that is a public suffix (`com`, `co.uk`, `duckdns.org`, `github.io`) covers every
//!   site registered under it.
//!
//! Both are `blocklist lint` warnings. Registrable domains come from the Public Suffix List
//! shipped in `blocklists/public_suffix_list.dat` (Mozilla Public License 2.0), parsed once on
//! first use: normal, wildcard (`*.ck`) and exception (`!www.ck`) rules; a name no rule covers
//! has its last label as suffix (the list's default rule).

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;

use super::parse::{ParsedList, Problem, Severity, Target};
use crate::model::Category;

/// The shipped table of multi-purpose registrable domains.
pub const MULTI_PURPOSE_TOML: &str = include_str!("../../blocklists/multi-purpose.toml");
/// The shipped Public Suffix List.
const PUBLIC_SUFFIX_LIST: &str = include_str!("../../blocklists/public_suffix_list.dat");
/// Precision warnings reported per list at most (a list of a million bare domains must not
/// print a million lines; the rest are counted).
pub const MAX_PRECISION_WARNINGS: usize = 1_000;

/// One multi-purpose registrable domain.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MultiPurposeSite {
    pub domain: String,
    pub reason: String,
    #[serde(default)]
    pub pool_hosts: Vec<String>,
}

/// A pool site reviewed and kept whole (documentation, and checked by the tests).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolSite {
    pub domain: String,
    pub reason: String,
}

/// `multi-purpose.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiPurposeTable {
    #[serde(default, rename = "site")]
    pub sites: Vec<MultiPurposeSite>,
    #[serde(default, rename = "pool_site")]
    pub pool_sites: Vec<PoolSite>,
}

impl MultiPurposeTable {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The shipped table (parsed once; the tests check that it parses).
    pub fn builtin() -> &'static MultiPurposeTable {
        static T: OnceLock<MultiPurposeTable> = OnceLock::new();
        T.get_or_init(|| MultiPurposeTable::parse(MULTI_PURPOSE_TOML).unwrap_or_default())
    }

    pub fn site(&self, domain: &str) -> Option<&MultiPurposeSite> {
        self.sites.iter().find(|s| s.domain == domain)
    }
}

/// The Public Suffix List's rules.
pub struct PublicSuffixList {
    rules: HashSet<String>,
    /// `*.ck` stored as `ck`.
    wildcards: HashSet<String>,
    /// `!www.ck` stored as `www.ck`.
    exceptions: HashSet<String>,
}

impl PublicSuffixList {
    /// Parses the list's text format (comments `//`, one rule a line, first word only).
    pub fn parse(text: &str) -> Self {
        let mut l = PublicSuffixList {
            rules: HashSet::new(),
            wildcards: HashSet::new(),
            exceptions: HashSet::new(),
        };
        for line in text.lines() {
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if rule.starts_with("//") {
                continue;
            }
            let rule = rule.to_ascii_lowercase();
            if let Some(e) = rule.strip_prefix('!') {
                l.exceptions.insert(e.to_string());
            } else if let Some(w) = rule.strip_prefix("*.") {
                l.wildcards.insert(w.to_string());
            } else {
                l.rules.insert(rule);
            }
        }
        l
    }

    /// The shipped list (parsed once, ~10k rules).
    pub fn builtin() -> &'static PublicSuffixList {
        static L: OnceLock<PublicSuffixList> = OnceLock::new();
        L.get_or_init(|| PublicSuffixList::parse(PUBLIC_SUFFIX_LIST))
    }

    /// The public suffix of a normalised name (lowercase, no trailing dot).
    pub fn suffix<'a>(&self, name: &'a str) -> &'a str {
        let starts = label_starts(name);
        for (i, &at) in starts.iter().enumerate() {
            let suf = name.get(at..).unwrap_or("");
            if self.exceptions.contains(suf) {
                // An exception's suffix is the rule minus its leftmost label.
                return starts.get(i + 1).and_then(|&n| name.get(n..)).unwrap_or("");
            }
            if self.rules.contains(suf) {
                return suf;
            }
            let parent = starts.get(i + 1).and_then(|&n| name.get(n..));
            if parent.is_some_and(|p| self.wildcards.contains(p)) {
                return suf;
            }
        }
        // Default rule `*`: the last label.
        starts.last().and_then(|&n| name.get(n..)).unwrap_or(name)
    }

    /// The registrable domain (public suffix plus one label), `None` for a suffix itself.
    pub fn registrable<'a>(&self, name: &'a str) -> Option<&'a str> {
        let suf = self.suffix(name);
        if suf.len() >= name.len() {
            return None;
        }
        let head = name.get(..name.len() - suf.len())?.strip_suffix('.')?;
        let start = head.rfind('.').map_or(0, |i| i + 1);
        name.get(start..)
    }
}

/// Byte offsets where each label starts, leftmost first.
fn label_starts(name: &str) -> Vec<usize> {
    let mut v = vec![0];
    v.extend(name.match_indices('.').map(|(i, _)| i + 1));
    v
}

/// Precision warnings for the block entries of one parsed list (allow lists get none).
pub fn lint(parsed: &ParsedList, category: Category) -> (Vec<Problem>, u64) {
    let mut out = Vec::new();
    let mut total = 0u64;
    if category == Category::Allow {
        return (out, total);
    }
    let table = MultiPurposeTable::builtin();
    let psl = PublicSuffixList::builtin();
    for e in parsed.entries.iter().filter(|e| !e.exception) {
        let Target::Domain(d) = &e.target else {
            continue;
        };
        let message = if psl.suffix(d) == d {
            format!(
                "`{d}` is a public suffix: it covers every site registered under it; list the \
                 pool hosts instead"
            )
        } else if let Some(site) = table
            .site(d)
            .filter(|_| psl.registrable(d) == Some(d.as_str()))
        {
            let hosts = if site.pool_hosts.is_empty() {
                String::from("none on this domain")
            } else {
                site.pool_hosts.join(", ")
            };
            format!(
                "`{d}` is the whole of a multi-purpose site ({}): every visit becomes a pool \
                 connection; list its pool hosts instead ({hosts}) and allow the rest",
                site.reason
            )
        } else {
            continue;
        };
        total += 1;
        if out.len() < MAX_PRECISION_WARNINGS {
            out.push(Problem {
                line: e.line,
                severity: Severity::Warning,
                message,
            });
        }
    }
    (out, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_registrable_domains() {
        let l = PublicSuffixList::builtin();
        for (name, suffix, reg) in [
            ("btc.com", "com", Some("btc.com")),
            ("eu.ss.btc.com", "com", Some("btc.com")),
            ("com", "com", None),
            ("gntl.co.uk", "co.uk", Some("gntl.co.uk")),
            ("pool.gntl.co.uk", "co.uk", Some("gntl.co.uk")),
            ("co.uk", "co.uk", None),
            ("xmr.duckdns.org", "duckdns.org", Some("xmr.duckdns.org")),
            ("duckdns.org", "duckdns.org", None),
            ("a.b.example.ck", "example.ck", Some("b.example.ck")),
            ("www.ck", "ck", Some("www.ck")),
            ("host.unknowntld", "unknowntld", Some("host.unknowntld")),
        ] {
            assert_eq!(l.suffix(name), suffix, "{name}");
            assert_eq!(l.registrable(name), reg, "{name}");
        }
    }

    #[test]
    fn shipped_table_parses() {
        let t = MultiPurposeTable::parse(MULTI_PURPOSE_TOML).unwrap();
        assert!(t.site("btc.com").is_some());
        assert!(t.pool_sites.iter().any(|s| s.domain == "2miners.com"));
        assert!(MultiPurposeTable::parse("[[site]]\ndomain = 1\n").is_err());
    }
}
