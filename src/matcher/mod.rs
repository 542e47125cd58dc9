//! Stage `matcher`: pool-domain and pool-IP lists, compiled into one set that answers
//! "is this name (or address) a mining pool, and which list says so?".
//!
//! FOUNDATION VERSION: plain-domain lists matched by a label-suffix hash walk. The list engine
//! issue replaces the internals (formats, Aho-Corasick, exports) behind the same API.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::model::{Category, ListHit};

/// Longest name accepted (RFC 1035 presentation limit without the trailing dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label accepted.
pub const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    #[error("cannot read list {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: u32,
        message: String,
    },
    #[error("the lists compile to an empty set; keeping the previous one")]
    Empty,
}

/// A compiled, immutable set of lists. Share it through [`SharedBlocklists`].
#[derive(Debug, Default)]
pub struct Blocklists {
    names: HashMap<String, ListHit>,
    allow: HashMap<String, ListHit>,
    ips: HashMap<IpAddr, ListHit>,
}

impl Blocklists {
    pub fn empty() -> Self {
        Self::default()
    }

    /// The lists shipped in `blocklists/`, embedded in the binary so that every command works
    /// from any directory.
    pub fn builtin() -> Result<Self, MatcherError> {
        let mut b = Blocklists::default();
        b.add_text(
            "pools",
            Category::Pool,
            include_str!("../../blocklists/pools.txt"),
        );
        Ok(b)
    }

    /// Loads list files; with no paths, the built-in default.
    pub fn load(paths: &[PathBuf]) -> Result<Self, MatcherError> {
        if paths.is_empty() {
            return Self::builtin();
        }
        let mut b = Blocklists::default();
        for p in paths {
            let text = std::fs::read_to_string(p).map_err(|source| MatcherError::Io {
                path: p.clone(),
                source,
            })?;
            let name = list_name(p);
            b.add_text(&name, Category::Pool, &text);
        }
        if b.names.is_empty() && b.ips.is_empty() {
            return Err(MatcherError::Empty);
        }
        Ok(b)
    }

    fn add_text(&mut self, list: &str, category: Category, text: &str) {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            // hosts format: "0.0.0.0 name"
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or("");
            let entry = if first.parse::<IpAddr>().is_ok() {
                match fields.next() {
                    Some(n) => n,
                    None => {
                        if let Ok(ip) = first.parse::<IpAddr>() {
                            self.ips.entry(ip).or_insert(ListHit {
                                list: list.to_string(),
                                entry: ip.to_string(),
                                category,
                                line: i as u32 + 1,
                            });
                        }
                        continue;
                    }
                }
            } else {
                first
            };
            let entry = crate::model::normalize_name(entry.trim_start_matches("*."));
            if entry.len() > MAX_NAME_LEN || entry == "." {
                continue;
            }
            let hit = ListHit {
                list: list.to_string(),
                entry: entry.clone(),
                category,
                line: i as u32 + 1,
            };
            if category == Category::Allow {
                self.allow.entry(entry).or_insert(hit);
            } else {
                self.names.entry(entry).or_insert(hit);
            }
        }
    }

    /// The most specific entry that covers `name` on label boundaries, unless an allowlist
    /// entry covers it at least as specifically.
    pub fn match_name(&self, name: &str) -> Option<&ListHit> {
        let lower;
        let name = name.strip_suffix('.').unwrap_or(name);
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let mut suffix = name;
        loop {
            if self.allow.contains_key(suffix) {
                return None;
            }
            if let Some(hit) = self.names.get(suffix) {
                return Some(hit);
            }
            match suffix.find('.') {
                Some(i) => suffix = &suffix[i + 1..],
                None => return None,
            }
        }
    }

    /// A listed pool address (or endpoint) covering `ip` (and `port`, when the entry names one).
    pub fn match_ip(&self, ip: IpAddr, _port: Option<u16>) -> Option<&ListHit> {
        self.ips.get(&ip)
    }

    /// Number of name entries (blocks and allows) plus IP entries.
    pub fn len(&self) -> usize {
        self.names.len() + self.allow.len() + self.ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A list's name from its file name: the stem (`pools.txt` → `pools`).
pub fn list_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The working set, swapped atomically on reload; readers never block.
pub type SharedBlocklists = Arc<ArcSwap<Blocklists>>;

pub fn shared(b: Blocklists) -> SharedBlocklists {
    Arc::new(ArcSwap::from_pointee(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_boundaries() {
        let mut b = Blocklists::empty();
        b.add_text("t", Category::Pool, "supportxmr.com\n");
        assert!(b.match_name("supportxmr.com").is_some());
        assert!(b.match_name("Pool.SupportXMR.com.").is_some());
        assert!(b.match_name("notsupportxmr.com").is_none());
        assert!(b.match_name("supportxmr.com.evil.example").is_none());
    }
}
