//! The user-lists directory on disk: loading user lists and feed copies at start-up (broken
//! files are reported and skipped), writing them back atomically (temp file, `sync_all`,
//! rename), and bounded reads of our own metadata files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::super::feeds::{self, FeedOrigin, FeedState};
use super::super::names::is_usable_list_name;
use super::super::{category_from_name, parse_list, ListFormat, MatcherError};
use super::{Feed, UserList, MAX_USER_LISTS};
use crate::model::{Category, Timestamp};

/// A user list's `.meta.json`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct UserMeta {
    pub(super) category: Category,
    #[serde(default)]
    pub(super) format: Option<ListFormat>,
    #[serde(default)]
    pub(super) updated: Option<Timestamp>,
}

pub(super) fn persist_user(
    dir: &Path,
    name: &str,
    list: Option<&UserList>,
) -> Result<(), MatcherError> {
    let text_path = dir.join(format!("{name}.txt"));
    let meta_path = dir.join(format!("{name}.meta.json"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MatcherError::Io { path, source }
    };
    match list {
        Some(u) => {
            let meta = UserMeta {
                category: u.category,
                format: u.format,
                updated: u.updated,
            };
            let json = serde_json::to_vec_pretty(&meta).map_err(|e| MatcherError::Io {
                path: meta_path.clone(),
                source: std::io::Error::other(e),
            })?;
            // Meta first: a crash in between leaves the old text with the new category, never
            // a text without its meta.
            write_atomic(&meta_path, &json).map_err(io(&meta_path))?;
            write_atomic(&text_path, u.text.as_bytes()).map_err(io(&text_path))?;
        }
        None => {
            match std::fs::remove_file(&text_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&text_path)(e)),
            }
            remove_quietly(&meta_path);
        }
    }
    Ok(())
}

pub(super) fn remove_quietly(p: &Path) {
    if let Err(e) = std::fs::remove_file(p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove file");
        }
    }
}

/// Why a list that parsed to nothing is empty: its first error as `line N: message`.
pub(super) fn first_error(parsed: &super::super::ParsedList) -> Option<String> {
    let e = parsed.errors().next()?;
    Some(format!("line {}: {}", e.line, e.message))
}

/// Largest `.meta.json` read back: ours are well under 4 KiB (a name, a URL, a few stamps).
pub(super) const MAX_META_BYTES: u64 = 64 * 1024;

/// A metadata file we wrote, read back; a missing, oversized or unreadable one is `None`
/// (the caller falls back to defaults, as for a list copied in by hand).
pub(super) fn read_meta<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = super::super::read_text(path, MAX_META_BYTES).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file}.tmp-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable (best effort: not every filesystem allows it).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads `<dir>/<name>.txt` user lists (with their `.meta.json`); broken ones are reported in
/// `errors` and skipped.
pub(super) fn load_user_lists(dir: &Path, errors: &mut Vec<String>) -> BTreeMap<String, UserList> {
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            errors.push(format!("{}: {e}", dir.display()));
            return out;
        }
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for p in files {
        if out.len() >= MAX_USER_LISTS {
            errors.push(format!(
                "{}: more than {MAX_USER_LISTS} user lists; the rest are ignored",
                dir.display()
            ));
            break;
        }
        let name = super::super::list_name(&p);
        if !is_usable_list_name(&name) {
            errors.push(format!("{}: not a valid list name", p.display()));
            continue;
        }
        let text = match super::super::read_text(&p, super::super::MAX_LIST_BYTES) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let meta_path = dir.join(format!("{name}.meta.json"));
        let meta: Option<UserMeta> = read_meta(&meta_path);
        let (category, format, updated) = match meta {
            Some(m) => (m.category, m.format, m.updated),
            None => (category_from_name(&p), None, None),
        };
        let parsed = parse_list(&text, format);
        if parsed.entries.is_empty() {
            let why = first_error(&parsed).unwrap_or_else(|| "no entry".into());
            errors.push(format!("{}: {why}", p.display()));
            continue;
        }
        out.insert(
            name,
            UserList {
                category,
                format,
                text: Arc::from(text),
                updated,
            },
        );
    }
    out
}

/// Configured feeds (with their persisted state when the URL is unchanged) plus feeds added
/// through the API, each with its last good copy.
pub(super) fn load_feeds(
    dir: &Path,
    configured: &[FeedState],
    errors: &mut Vec<String>,
) -> BTreeMap<String, Feed> {
    let mut out = BTreeMap::new();
    let persisted = |name: &str| -> Option<FeedState> {
        let mut st = read_meta::<FeedState>(&dir.join(format!("{name}.meta.json")))?;
        // Earlier versions quoted the first invalid line in `last_error`: drop such a quote.
        if let Some(e) = &st.last_error {
            if e.starts_with("the feed holds no valid entry (line") {
                st.last_error = Some("the feed holds no valid entry".into());
            }
        }
        Some(st)
    };
    let copy = |name: &str, errors: &mut Vec<String>| -> Option<Arc<str>> {
        let p = dir.join(format!("{name}.txt"));
        if !p.exists() {
            return None;
        }
        match super::super::read_text(&p, super::super::MAX_LIST_BYTES) {
            Ok(t) if !parse_list(&t, None).entries.is_empty() => Some(Arc::from(t)),
            Ok(_) => {
                errors.push(format!("{}: no valid entry", p.display()));
                None
            }
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        }
    };
    for c in configured {
        let mut state = c.clone();
        let mut text = None;
        if let Some(p) = persisted(&c.name).filter(|p| p.url == c.url) {
            text = copy(&c.name, errors);
            state = FeedState {
                interval_secs: c.interval_secs,
                max_bytes: c.max_bytes,
                category: c.category,
                origin: FeedOrigin::Config,
                active: text.is_some(),
                ..p
            };
        }
        if !state.active {
            state.etag = None;
            state.last_modified = None;
        }
        out.insert(c.name.clone(), Feed { state, text });
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut metas: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".meta.json"))
                .map(str::to_string)
        })
        .collect();
    metas.sort();
    for name in metas {
        if out.contains_key(&name) || out.len() >= feeds::MAX_FEEDS {
            continue;
        }
        if !is_usable_list_name(&name) {
            continue;
        }
        let Some(state) = persisted(&name) else {
            errors.push(format!(
                "{}: unreadable feed state",
                dir.join(format!("{name}.meta.json")).display()
            ));
            continue;
        };
        // Only API subscriptions persist on their own; a configured feed that left the
        // configuration is gone.
        if state.origin != FeedOrigin::Api
            || state.name != name
            || feeds::check_url(&state.url).is_err()
        {
            continue;
        }
        let text = copy(&name, errors);
        let state = FeedState {
            active: text.is_some(),
            ..state
        };
        out.insert(name, Feed { state, text });
    }
    out
}
