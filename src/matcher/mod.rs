//! Stage `matcher`: pool-domain and pool-IP lists, compiled into one set that answers
//! "is this name (or address) a mining pool, and which list says so?".
//!
//! * [`parse`] reads the published list formats (plain, hosts, AdBlock, dnsmasq) into entries
//!   plus problems with line numbers; [`normalize`] validates and canonicalises names.
//! * [`Blocklists::build`] merges named [`ListSource`]s (shipped lists, files, directories,
//!   in-memory user lists), dedupes, and compiles names into one hash set probed with
//!   label-aligned suffixes behind an exact quick reject ([`compile`]; [`Automaton`], an
//!   anchored Aho-Corasick automaton over reversed names, is the reference it is tested
//!   against) and addresses into prefix maps.
//! * [`precision`] flags entries that cover far more than pools (`blocklist lint`): the bare
//!   domain of a multi-purpose site, a public suffix.
//! * [`export`] writes the compiled set for blockers (RPZ, hosts, dnsmasq, Unbound, AdBlock,
//!   nftables, Suricata dataset and rules: [`export_rules`]); [`watch`] reloads on change into a [`SharedBlocklists`].
//! * [`manager`] ([`ListManager`]) owns the running set in `serve`: user lists persisted in the
//!   user-lists directory, remote [`feeds`] with their last good copy, validated atomic updates.
//!
//! Semantics: an entry `d` matches `d` and its subdomains on label boundaries; the most specific
//! entry wins; on equal specificity an allow (allowlist or `@@` exception) beats a block; an
//! allow as the most specific entry means "no match".

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::model::{Category, ListHit};

mod automaton;
pub mod changes;
pub mod compile;
pub mod export;
pub mod export_rules;
pub mod feeds;
pub mod manager;
pub mod manifest;
pub mod names;
pub mod normalize;
pub mod parse;
pub mod precision;
pub mod watch;

pub use automaton::Automaton;
pub use compile::HashWalk;
pub use export::ExportFormat;
pub use feeds::{
    is_private_address, FeedOrigin, FeedPolicy, FeedRequest, FeedState, DEFAULT_FEED_INTERVAL_SECS,
    DEFAULT_FEED_MAX_BYTES, FEED_TIMEOUT, MAX_FEEDS, MAX_FEED_INTERVAL_SECS, MAX_FEED_MAX_BYTES,
    MAX_FEED_POLICY_ENTRIES, MIN_FEED_INTERVAL_SECS,
};
pub use manager::{
    EntriesReport, ListDetail, ListEntry, ListInfo, ListKind, ListManager, ListManagerConfig,
    ListReplicator, UpdateReport, UserListRecord, DEFAULT_WATCH_INTERVAL, MAX_ENTRY_CHANGES,
    MAX_USER_LISTS,
};
pub use manifest::{Manifest, ManifestList};
pub use names::{is_reserved_name, is_usable_list_name, is_valid_list_name, MAX_LIST_NAME_LEN};
pub use parse::{
    check_prefix, detect_format, parse_list, Entry, ListFormat, ParsedList, Problem, Severity,
    Target, MIN_PREFIX_V4, MIN_PREFIX_V6,
};
pub use watch::{record_entries, reload, Reloader, WatchHandle};

/// Longest name accepted (RFC 1035 presentation limit without the trailing dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label accepted.
pub const MAX_LABEL_LEN: usize = 63;
/// Largest list file read (the biggest public lists are a few MiB; 1M entries is ~30 MiB).
pub const MAX_LIST_BYTES: u64 = 256 << 20;
/// Most entries (names + addresses) in one compiled set: bounds memory (~100 B per entry
/// compiled) and compile time (the 1M-entry goal is 5 s; this leaves headroom).
pub const MAX_ENTRIES: usize = 4_000_000;
/// Most list files taken from one directory (a wrong `--blocklist /` must not read the disk).
pub const MAX_DIR_FILES: usize = 1_000;
/// Problems kept in a build report per list (the full set is available from [`parse_list`]).
const REPORT_PROBLEMS: usize = 20;

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
    #[error("the lists hold no valid entry")]
    Empty,
    #[error("list {path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("the lists hold more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    /// Not produced since the name set became the hash walk (issue #16, fourth pass: it cannot
    /// fail to build); kept so the error type's variants stay as they were.
    #[error("cannot compile the name automaton: {0}")]
    Compile(String),
    /// A list or feed name that is not `[a-z0-9._-]` (or is reserved).
    #[error(
        "invalid list name {0:?}: use [a-z0-9._-], start with a letter or digit, at most 64 bytes"
    )]
    InvalidName(String),
    #[error("no list or feed named {0:?}")]
    UnknownList(String),
    /// The operation is not allowed on this list (shipped, file or configured lists).
    #[error("{0}")]
    ReadOnly(String),
    /// The name is taken by a list of another kind.
    #[error("{0}")]
    Conflict(String),
    /// An update that failed validation; the running set is unchanged.
    #[error("{message}")]
    Rejected {
        message: String,
        problems: Vec<Problem>,
    },
    /// A bad feed subscription (URL, interval, size limit).
    #[error("{0}")]
    BadFeed(String),
    /// The change could not be handed on (a cluster's list replication is unreachable);
    /// nothing changed, retrying later may work.
    #[error("{0}")]
    Unavailable(String),
}

/// Where a list came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum Origin {
    /// Shipped in the binary (`blocklists/<file>`).
    Builtin(String),
    File(PathBuf),
    /// Supplied in memory (API upload, tests).
    Memory,
}

impl Origin {
    /// Path used in error messages.
    pub fn display_path(&self) -> PathBuf {
        match self {
            Origin::Builtin(f) => PathBuf::from(format!("blocklists/{f}")),
            Origin::File(p) => p.clone(),
            Origin::Memory => PathBuf::from("<memory>"),
        }
    }
}

/// One named list to compile.
#[derive(Clone, Debug)]
pub struct ListSource {
    pub name: String,
    pub category: Category,
    /// `None`: detect from content.
    pub format: Option<ListFormat>,
    pub origin: Origin,
    pub text: Arc<str>,
    /// Manifest metadata, when a manifest described the list.
    pub meta: Option<ManifestList>,
}

impl ListSource {
    /// An in-memory list (user list from the API, tests).
    pub fn memory(name: &str, category: Category, format: Option<ListFormat>, text: &str) -> Self {
        ListSource {
            name: name.to_string(),
            category,
            format,
            origin: Origin::Memory,
            text: Arc::from(text),
            meta: None,
        }
    }

    /// The shipped lists described by the embedded manifest.
    pub fn builtin() -> Result<Vec<ListSource>, MatcherError> {
        let path = PathBuf::from("blocklists/manifest.toml");
        let m = Manifest::parse(manifest::BUILTIN_MANIFEST)
            .map_err(|message| MatcherError::Manifest { path, message })?;
        let mut out = Vec::with_capacity(m.lists.len());
        for l in m.lists {
            let Some((_, text)) = manifest::BUILTIN_FILES.iter().find(|(f, _)| *f == l.file) else {
                return Err(MatcherError::Manifest {
                    path: PathBuf::from("blocklists/manifest.toml"),
                    message: format!("list file `{}` is not embedded", l.file),
                });
            };
            out.push(ListSource {
                name: l
                    .name
                    .clone()
                    .unwrap_or_else(|| list_name(Path::new(&l.file))),
                category: l.category,
                format: l.format,
                origin: Origin::Builtin(l.file.clone()),
                text: Arc::from(*text),
                meta: Some(l),
            });
        }
        Ok(out)
    }

    /// Reads a list file, or every list in a directory (described by its `manifest.toml` when
    /// present, else every regular file that is not documentation, sorted by name).
    /// Without a manifest, the category comes from the file name: `allow`/`white` → allow,
    /// `browser` → browser miner, `proxy` → miner proxy, else pool.
    pub fn from_path(path: &Path) -> Result<Vec<ListSource>, MatcherError> {
        let md = std::fs::metadata(path).map_err(|source| MatcherError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if !md.is_dir() {
            return Ok(vec![Self::read_file(path, None)?]);
        }
        let manifest_path = path.join("manifest.toml");
        if manifest_path.is_file() {
            let text = read_text(&manifest_path, MAX_MANIFEST_BYTES)?;
            let m = Manifest::parse(&text).map_err(|message| MatcherError::Manifest {
                path: manifest_path.clone(),
                message,
            })?;
            return m
                .lists
                .into_iter()
                .map(|l| Self::read_file(&path.join(&l.file), Some(l)))
                .collect();
        }
        let rd = std::fs::read_dir(path).map_err(|source| MatcherError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_list_file(p))
            .take(MAX_DIR_FILES)
            .collect();
        files.sort();
        files.iter().map(|p| Self::read_file(p, None)).collect()
    }

    fn read_file(path: &Path, meta: Option<ManifestList>) -> Result<ListSource, MatcherError> {
        let text = read_text(path, MAX_LIST_BYTES)?;
        let (name, category, format) = match &meta {
            Some(l) => (
                l.name.clone().unwrap_or_else(|| list_name(path)),
                l.category,
                l.format,
            ),
            None => (list_name(path), category_from_name(path), None),
        };
        Ok(ListSource {
            name,
            category,
            format,
            origin: Origin::File(path.to_path_buf()),
            text: Arc::from(text),
            meta,
        })
    }
}

use manifest::MAX_MANIFEST_BYTES;

fn read_text(path: &Path, limit: u64) -> Result<String, MatcherError> {
    let io = |source| MatcherError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Bounded by reading, not by metadata: a FIFO or device (`/dev/zero`) reports length 0, and a
    // file may grow between the two calls.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            use std::io::Read as _;
            f.take(limit.saturating_add(1)).read_to_end(&mut bytes)
        })
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(MatcherError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let line = e
            .as_bytes()
            .get(..upto)
            .map_or(0, |b| memchr::memchr_iter(b'\n', b).count())
            + 1;
        MatcherError::Parse {
            path: path.to_path_buf(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            message: "not UTF-8 text".into(),
        }
    })
}

/// Files in a list directory that are documentation or metadata, not lists.
fn is_list_file(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.starts_with('.') || name.contains("license") || name.starts_with("readme") {
        return false;
    }
    !matches!(
        p.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref(),
        Some("md" | "toml" | "json" | "tsv" | "csv" | "rst" | "html" | "gz" | "zip")
    )
}

fn category_from_name(p: &Path) -> Category {
    let stem = list_name(p).to_ascii_lowercase();
    if stem.contains("allow") || stem.contains("white") || stem.contains("exception") {
        Category::Allow
    } else if stem.contains("browser") {
        Category::BrowserMiner
    } else if stem.contains("proxy") || stem.contains("proxies") {
        Category::MinerProxy
    } else {
        Category::Pool
    }
}

/// Per-list outcome of a build.
#[derive(Clone, Debug, Serialize)]
pub struct ListReport {
    pub name: String,
    pub category: Category,
    pub format: Option<ListFormat>,
    pub origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshed: Option<String>,
    /// Entries parsed from the list.
    pub parsed: u64,
    /// Entries this list contributed to the set (parsed minus duplicates of earlier lists).
    pub kept: u64,
    pub duplicates: u64,
    /// Invalid lines dropped (errors).
    pub invalid: u64,
    /// Lines skipped as meaningless at the DNS level (cosmetic/URL rules).
    pub skipped: u64,
    /// The first problems (all of them: `poolwatch blocklist lint`).
    pub problems: Vec<Problem>,
}

/// What a build produced: per-list counts, per-category counts, time and size.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BuildReport {
    pub lists: Vec<ListReport>,
    /// Unique entries by category (`pool`, `browser_miner`, `miner_proxy`, `allow`).
    pub categories: BTreeMap<String, u64>,
    pub entries: u64,
    pub domains: u64,
    pub addresses: u64,
    pub invalid: u64,
    pub skipped: u64,
    pub duplicates: u64,
    pub compile_ms: f64,
    /// Part of `compile_ms` spent building the name set (the field keeps the name it had when
    /// the set was an automaton).
    pub automaton_ms: f64,
    /// Name lookup engine: `hash-walk` (`empty` without name entries; `aho-corasick` before
    /// issue #16's fourth pass).
    pub engine: String,
    /// Heap used by the name set.
    pub automaton_bytes: u64,
}

/// A compiled, immutable set of lists. Share it through [`SharedBlocklists`].
#[derive(Debug, Default)]
pub struct Blocklists {
    names: compile::NameSet,
    /// Indexed by name-set id.
    name_hits: Vec<ListHit>,
    ips: compile::IpSet,
    ip_hits: Vec<ListHit>,
    report: BuildReport,
}

impl Blocklists {
    pub fn empty() -> Self {
        Self::default()
    }

    /// The lists shipped in `blocklists/`, embedded in the binary so that every command works
    /// from any directory.
    pub fn builtin() -> Result<Self, MatcherError> {
        Ok(Self::build(ListSource::builtin()?)?.0)
    }

    /// Loads list files and directories; with no paths, the built-in default.
    pub fn load(paths: &[PathBuf]) -> Result<Self, MatcherError> {
        Ok(Self::load_with_report(paths)?.0)
    }

    /// [`Blocklists::load`] with the build report.
    pub fn load_with_report(paths: &[PathBuf]) -> Result<(Self, BuildReport), MatcherError> {
        Self::build(sources_for(paths)?)
    }

    /// Compiles named sources into one set. Invalid lines are dropped and counted; a list that
    /// has invalid lines and yields no entry at all is an error (it is not a list), as is a
    /// set with no entries.
    pub fn build(sources: Vec<ListSource>) -> Result<(Self, BuildReport), MatcherError> {
        let start = Instant::now();
        let mut report = BuildReport::default();
        let mut name_hits: Vec<ListHit> = Vec::new();
        let mut name_idx: FxHashMap<Box<str>, u32> = FxHashMap::default();
        let mut ip_hits: Vec<ListHit> = Vec::new();
        let mut ip_idx: FxHashMap<Target, u32> = FxHashMap::default();
        let mut ip_targets: Vec<Target> = Vec::new();

        for src in sources {
            let parsed = parse_list(&src.text, src.format);
            if parsed.entries.is_empty() {
                if let Some(p) = parsed.errors().next() {
                    return Err(MatcherError::Parse {
                        path: src.origin.display_path(),
                        line: p.line,
                        message: format!("{} (no valid entry in this list)", p.message),
                    });
                }
            }
            let mut lr = ListReport {
                name: src.name.clone(),
                category: src.category,
                format: parsed.format,
                origin: src.origin.clone(),
                source: src.meta.as_ref().map(|m| m.source.clone()),
                license: src.meta.as_ref().map(|m| m.license.clone()),
                refreshed: src.meta.as_ref().map(|m| m.refreshed.clone()),
                parsed: parsed.entries.len() as u64,
                kept: 0,
                duplicates: 0,
                invalid: parsed.invalid,
                skipped: parsed.skipped,
                problems: parsed
                    .problems
                    .iter()
                    .take(REPORT_PROBLEMS)
                    .cloned()
                    .collect(),
            };
            for e in parsed.entries {
                if name_hits.len() + ip_hits.len() >= MAX_ENTRIES {
                    return Err(MatcherError::TooManyEntries { limit: MAX_ENTRIES });
                }
                let category = if e.exception {
                    Category::Allow
                } else {
                    src.category
                };
                // A domain entry displays as itself: clone it instead of formatting it.
                let entry = match &e.target {
                    Target::Domain(d) => d.clone(),
                    t => t.to_string(),
                };
                let hit = ListHit {
                    list: src.name.clone(),
                    entry,
                    category,
                    line: e.line,
                };
                let (hits, slot) = match e.target {
                    Target::Domain(d) => {
                        let next = name_hits.len() as u32;
                        let slot = *name_idx.entry(d.into_boxed_str()).or_insert(next);
                        (&mut name_hits, slot)
                    }
                    t => {
                        let next = ip_hits.len() as u32;
                        let slot = *ip_idx.entry(t.clone()).or_insert(next);
                        if slot == next {
                            ip_targets.push(t);
                        }
                        (&mut ip_hits, slot)
                    }
                };
                let slot = slot as usize;
                if slot == hits.len() {
                    hits.push(hit);
                    lr.kept += 1;
                } else {
                    lr.duplicates += 1;
                    // Equal specificity: an allow beats a block.
                    if let Some(old) = hits.get_mut(slot) {
                        if category == Category::Allow && old.category != Category::Allow {
                            *old = hit;
                        }
                    }
                }
            }
            report.invalid += lr.invalid;
            report.skipped += lr.skipped;
            report.duplicates += lr.duplicates;
            report.lists.push(lr);
        }
        if name_hits.is_empty() && ip_hits.is_empty() {
            return Err(MatcherError::Empty);
        }
        // Ids follow `name_hits`, whose `entry` is the normalised domain; the index map is no
        // longer needed and goes before the name set is built.
        drop(name_idx);
        let ac_start = Instant::now();
        let names =
            compile::NameSet::build(name_hits.iter().map(|h| h.entry.as_str()), name_hits.len());
        report.automaton_ms = ac_start.elapsed().as_secs_f64() * 1e3;
        report.engine = names.kind().to_string();
        let mut ips = compile::IpSet::default();
        for (i, t) in ip_targets.iter().enumerate() {
            let id = i as u32;
            match t {
                Target::Net(n) => ips.insert_net(*n, id),
                Target::Endpoint(ip, port) => ips.insert_endpoint(*ip, *port, id),
                Target::Domain(_) => {}
            }
        }
        for h in name_hits.iter().chain(ip_hits.iter()) {
            *report
                .categories
                .entry(h.category.as_str().to_string())
                .or_default() += 1;
        }
        report.domains = name_hits.len() as u64;
        report.addresses = ip_hits.len() as u64;
        report.entries = report.domains + report.addresses;
        report.automaton_bytes = names.heap_bytes() as u64;
        report.compile_ms = start.elapsed().as_secs_f64() * 1e3;
        let b = Blocklists {
            names,
            name_hits,
            ips,
            ip_hits,
            report: report.clone(),
        };
        Ok((b, report))
    }

    /// The most specific entry that covers `name` on label boundaries, unless an allow entry
    /// covers it at least as specifically. Case-insensitive; a trailing dot is ignored;
    /// Unicode names are converted to punycode first.
    #[inline]
    pub fn match_name(&self, name: &str) -> Option<&ListHit> {
        let id = if name.is_ascii() {
            self.names.find(name.as_bytes())?
        } else {
            let ascii = idna::domain_to_ascii(name.strip_suffix('.').unwrap_or(name)).ok()?;
            self.names.find(ascii.as_bytes())?
        };
        let hit = self.name_hits.get(id)?;
        (hit.category != Category::Allow).then_some(hit)
    }

    /// [`Blocklists::match_name`] for a name as raw bytes (a log token: any case, optional
    /// trailing dot), without the UTF-8 check a `&str` needs first: the same answer as
    /// `match_name(std::str::from_utf8(name)?)`, and `None` for bytes that are not UTF-8.
    #[inline]
    pub fn match_name_bytes(&self, name: &[u8]) -> Option<&ListHit> {
        if !name.is_ascii() {
            return self.match_name(std::str::from_utf8(name).ok()?);
        }
        let hit = self.name_hits.get(self.names.find(name)?)?;
        (hit.category != Category::Allow).then_some(hit)
    }

    /// Like [`Blocklists::match_name`] but also returns allow entries (for "why was this not
    /// flagged?" answers in the CLI and API).
    pub fn explain_name(&self, name: &str) -> Option<&ListHit> {
        let id = if name.is_ascii() {
            self.names.find(name.as_bytes())?
        } else {
            let ascii = idna::domain_to_ascii(name.strip_suffix('.').unwrap_or(name)).ok()?;
            self.names.find(ascii.as_bytes())?
        };
        self.name_hits.get(id)
    }

    /// A listed pool address, CIDR block or endpoint covering `ip` (and `port`, when the entry
    /// names one). With `port: None`, endpoint entries match on the address alone.
    pub fn match_ip(&self, ip: IpAddr, port: Option<u16>) -> Option<&ListHit> {
        let hit = self.ip_hits.get(self.ips.find(ip, port)? as usize)?;
        (hit.category != Category::Allow).then_some(hit)
    }

    /// Number of unique name entries (blocks and allows) plus address entries.
    pub fn len(&self) -> usize {
        self.name_hits.len() + self.ip_hits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Per-list and per-category counts, compile time and automaton size.
    pub fn stats(&self) -> &BuildReport {
        &self.report
    }

    /// Every unique name entry (the winner on duplicates), in first-seen order.
    pub fn name_entries(&self) -> &[ListHit] {
        &self.name_hits
    }

    /// Every unique address/CIDR/endpoint entry, in first-seen order.
    pub fn ip_entries(&self) -> &[ListHit] {
        &self.ip_hits
    }

    /// Renders the set for a blocker (see [`ExportFormat`]).
    pub fn export(&self, format: ExportFormat) -> String {
        export::export(self, format)
    }
}

/// Sources for `paths` (files or directories); the shipped lists when empty.
pub fn sources_for(paths: &[PathBuf]) -> Result<Vec<ListSource>, MatcherError> {
    if paths.is_empty() {
        return ListSource::builtin();
    }
    let mut out = Vec::new();
    for p in paths {
        out.extend(ListSource::from_path(p)?);
    }
    Ok(out)
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
    fn read_text_is_bounded_by_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.txt");
        std::fs::write(&p, "a.example\n").unwrap();
        assert_eq!(read_text(&p, 10).unwrap(), "a.example\n");
        assert!(matches!(
            read_text(&p, 9),
            Err(MatcherError::TooLarge { .. })
        ));
        // A device reports length 0 but never ends: the limit must still hold.
        let zero = Path::new("/dev/zero");
        if zero.exists() {
            assert!(matches!(
                read_text(zero, 1024),
                Err(MatcherError::TooLarge { .. })
            ));
        }
    }

    fn set(lists: &[(&str, Category, &str)]) -> Blocklists {
        let src = lists
            .iter()
            .map(|(n, c, t)| ListSource::memory(n, *c, None, t))
            .collect();
        Blocklists::build(src).unwrap().0
    }

    #[test]
    fn label_boundaries() {
        let b = set(&[("t", Category::Pool, "supportxmr.com\n")]);
        assert!(b.match_name("supportxmr.com").is_some());
        assert!(b.match_name("Pool.SupportXMR.com.").is_some());
        assert!(b.match_name("notsupportxmr.com").is_none());
        assert!(b.match_name("supportxmr.com.evil.example").is_none());
    }

    #[test]
    fn builtin_compiles_and_the_automaton_agrees() {
        let b = Blocklists::builtin().unwrap();
        assert!(b.len() > 100);
        assert_eq!(b.stats().engine, "hash-walk");
        let hw = Automaton::new(b.name_entries().iter().map(|h| h.entry.as_str())).unwrap();
        for n in [
            "pool.supportxmr.com",
            "x.binance.com",
            "example.org",
            "gulf.moneroocean.stream.",
        ] {
            let a = b.explain_name(n).map(|h| h.entry.as_str());
            let c = hw.find(n).map(|i| b.name_entries()[i].entry.as_str());
            assert_eq!(a, c, "{n}");
        }
    }

    #[test]
    fn allow_ties_and_specificity() {
        let b = set(&[
            ("p", Category::Pool, "duckdns.org\nxmr.duckdns.org\n"),
            ("a", Category::Allow, "duckdns.org\n"),
        ]);
        assert!(b.match_name("foo.duckdns.org").is_none());
        assert_eq!(
            b.match_name("a.xmr.duckdns.org").unwrap().entry,
            "xmr.duckdns.org"
        );
    }
}
