//! User lists: upload, entry edits, delete, reload, and the list views. Every change builds a
//! complete new set first and persists only then (see the module documentation of
//! [`super`]).

use std::sync::Arc;

use super::super::names::check_name;
use super::super::{
    parse_list, sources_for, BuildReport, ListFormat, MatcherError, Origin, Problem, Severity,
    Target,
};
use super::persist::{load_user_lists, persist_user};
use super::replica::UserListRecord;
use super::{
    extra_sources, EntriesReport, Inner, ListDetail, ListEntry, ListInfo, ListKind, ListManager,
    UpdateReport, UserList, MAX_ENTRY_CHANGES, MAX_REJECT_PROBLEMS, MAX_USER_LISTS,
};
use crate::model::{Category, Timestamp};

impl ListManager {
    /// Every list: shipped, files, user lists and feeds (also those without a good copy yet).
    pub fn lists(&self) -> Vec<ListInfo> {
        let inner = self.lock();
        self.infos(&inner)
    }

    /// One list's metadata and a page of its entries (`offset`, at most `limit`).
    pub fn list(
        &self,
        name: &str,
        offset: usize,
        limit: usize,
    ) -> Result<ListDetail, MatcherError> {
        let (info, text, format) = {
            let inner = self.lock();
            let info = self
                .infos(&inner)
                .into_iter()
                .find(|i| i.name == name)
                .ok_or_else(|| MatcherError::UnknownList(super::super::normalize::clip(name)))?;
            let text: Option<(Arc<str>, Option<ListFormat>)> = match info.kind {
                ListKind::User => inner.user.get(name).map(|u| (u.text.clone(), u.format)),
                ListKind::Feed => inner
                    .feeds
                    .get(name)
                    .map(|f| (f.text.clone().unwrap_or_else(|| Arc::from("")), None)),
                ListKind::Shipped | ListKind::File => None,
            };
            match text {
                Some((t, f)) => (info, t, f),
                None => {
                    drop(inner);
                    let src = sources_for(&self.cfg.blocklists)?
                        .into_iter()
                        .find(|s| s.name == name)
                        .ok_or_else(|| {
                            MatcherError::UnknownList(super::super::normalize::clip(name))
                        })?;
                    (info, src.text, src.format)
                }
            }
        };
        let parsed = parse_list(&text, format.or(info.format));
        let total = parsed.entries.len();
        let items: Vec<ListEntry> = parsed
            .entries
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|e| ListEntry {
                entry: e.target.to_string(),
                line: e.line,
                exception: e.exception,
            })
            .collect();
        let end = offset.saturating_add(items.len());
        Ok(ListDetail {
            info,
            total,
            offset,
            next_offset: (end < total).then_some(end),
            items,
            text,
        })
    }

    /// Replaces (or creates) user list `name` with `text`. The text must parse without errors
    /// and yield at least one entry; otherwise nothing changes and the problems (with line
    /// numbers) come back in [`MatcherError::Rejected`].
    pub fn put_user_list(
        &self,
        name: &str,
        text: &str,
        format: Option<ListFormat>,
        category: Option<Category>,
    ) -> Result<UpdateReport, MatcherError> {
        check_name(name)?;
        let mut inner = self.lock();
        self.check_user_name(&inner, name)?;
        validate_user_text(name, text, format)?;
        let category = category
            .or_else(|| inner.user.get(name).map(|u| u.category))
            .unwrap_or(Category::Pool);
        let new = UserList {
            category,
            format,
            text: Arc::from(text),
            updated: Some(Timestamp::now()),
        };
        self.commit_user(&mut inner, name, Some(new))
    }

    /// Adds entries (domains, IPs, CIDRs, `IP:port`) to user list `name`, creating it (with
    /// `category`, default `pool`) when missing. Each entry is validated; one bad entry rejects
    /// the request.
    pub fn add_entries(
        &self,
        name: &str,
        entries: &[String],
        category: Option<Category>,
    ) -> Result<EntriesReport, MatcherError> {
        check_name(name)?;
        let targets = validate_entries(entries)?;
        let mut inner = self.lock();
        self.check_user_name(&inner, name)?;
        let (mut text, format, cat) = match inner.user.get(name) {
            Some(u) => {
                plain_only(name, u)?;
                (u.text.to_string(), u.format, category.unwrap_or(u.category))
            }
            None => (String::new(), None, category.unwrap_or(Category::Pool)),
        };
        let present: std::collections::HashSet<Target> = parse_list(&text, Some(ListFormat::Plain))
            .entries
            .into_iter()
            .map(|e| e.target)
            .collect();
        let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        for (raw, t) in targets {
            if present.contains(&t) || !seen.insert(t.clone()) {
                unchanged.push(raw);
                continue;
            }
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&t.to_string());
            text.push('\n');
            changed.push(t.to_string());
        }
        let new = UserList {
            category: cat,
            format,
            text: Arc::from(text),
            updated: Some(Timestamp::now()),
        };
        let update = self.commit_user(&mut inner, name, Some(new))?;
        Ok(EntriesReport {
            changed,
            unchanged,
            update,
        })
    }

    /// Removes entries from user list `name` (every line that names them).
    pub fn remove_entries(
        &self,
        name: &str,
        entries: &[String],
    ) -> Result<EntriesReport, MatcherError> {
        check_name(name)?;
        let targets = validate_entries(entries)?;
        let mut inner = self.lock();
        let Some(u) = inner.user.get(name).cloned() else {
            return Err(self.not_user(&inner, name));
        };
        plain_only(name, &u)?;
        let parsed = parse_list(&u.text, Some(ListFormat::Plain));
        let wanted: std::collections::HashSet<&Target> = targets.iter().map(|(_, t)| t).collect();
        let drop_lines: std::collections::HashSet<u32> = parsed
            .entries
            .iter()
            .filter(|e| wanted.contains(&e.target))
            .map(|e| e.line)
            .collect();
        let found: std::collections::HashSet<&Target> = parsed
            .entries
            .iter()
            .filter(|e| wanted.contains(&e.target))
            .map(|e| &e.target)
            .collect();
        let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
        for (raw, t) in &targets {
            if found.contains(t) {
                changed.push(t.to_string());
            } else {
                unchanged.push(raw.clone());
            }
        }
        let mut text = String::with_capacity(u.text.len());
        for (i, line) in u.text.split_inclusive('\n').enumerate() {
            let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if !drop_lines.contains(&n) {
                text.push_str(line);
            }
        }
        let new = UserList {
            text: Arc::from(text),
            updated: Some(Timestamp::now()),
            ..u
        };
        let update = self.commit_user(&mut inner, name, Some(new))?;
        Ok(EntriesReport {
            changed,
            unchanged,
            update,
        })
    }

    /// Deletes a user list or unsubscribes an API feed. Shipped and `--blocklist` lists and
    /// configured feeds are read-only.
    pub fn delete(&self, name: &str) -> Result<BuildReport, MatcherError> {
        check_name(name)?;
        let mut inner = self.lock();
        if inner.user.contains_key(name) {
            self.commit_user(&mut inner, name, None)?;
            return Ok(self.shared.load().stats().clone());
        }
        if inner.feeds.contains_key(name) {
            drop(inner);
            return self.delete_feed(name);
        }
        Err(self.not_user(&inner, name))
    }

    /// Re-reads the `--blocklist` files and the user-lists directory (files edited by hand) and
    /// rebuilds. On failure the running set (and the lists in memory) stay as they were.
    pub fn reload(&self) -> Result<BuildReport, MatcherError> {
        let mut inner = self.lock();
        let mut errors = Vec::new();
        let user = load_user_lists(&self.cfg.user_lists_dir, &mut errors);
        let old = std::mem::replace(&mut inner.user, user);
        let extra = extra_sources(&self.cfg.user_lists_dir, &inner);
        match self.reloader.set_user_lists(extra) {
            Ok(r) => {
                inner.load_errors = errors;
                Ok(r)
            }
            Err(e) => {
                inner.user = old;
                Err(e)
            }
        }
    }

    /// A user-list write to `name` is allowed: not a shipped/file list, not a feed, and the
    /// number of user lists stays bounded.
    pub(super) fn check_user_name(&self, inner: &Inner, name: &str) -> Result<(), MatcherError> {
        if let Some(kind) = self.fixed_kind(inner, name) {
            return Err(MatcherError::ReadOnly(format!(
                "{name:?} is a {} list and cannot be changed through the API; pick another name",
                if kind == ListKind::Shipped {
                    "shipped"
                } else {
                    "--blocklist file"
                }
            )));
        }
        if inner.feeds.contains_key(name) {
            return Err(MatcherError::Conflict(format!(
                "{name:?} is a feed; its content comes from its URL"
            )));
        }
        if !inner.user.contains_key(name) && inner.user.len() >= MAX_USER_LISTS {
            return Err(MatcherError::Conflict(format!(
                "at most {MAX_USER_LISTS} user lists; delete one first"
            )));
        }
        Ok(())
    }

    pub(super) fn not_user(&self, inner: &Inner, name: &str) -> MatcherError {
        match self.fixed_kind(inner, name) {
            Some(ListKind::Shipped) => MatcherError::ReadOnly(format!(
                "{name:?} is a shipped list and cannot be changed or deleted; add an allowlist entry to override it"
            )),
            Some(_) => MatcherError::ReadOnly(format!(
                "{name:?} comes from a --blocklist file; edit or remove the file instead"
            )),
            None => MatcherError::UnknownList(super::super::normalize::clip(name)),
        }
    }

    /// Installs `new` as user list `name` (or removes it with `None`): rebuild, then persist;
    /// a failure of either leaves memory, disk and the running set as they were.
    pub(super) fn commit_user(
        &self,
        inner: &mut Inner,
        name: &str,
        new: Option<UserList>,
    ) -> Result<UpdateReport, MatcherError> {
        self.commit(inner, name, new, true)
    }

    /// [`Self::commit_user`]; with `publish`, the validated change goes to the replicator (when
    /// one is set) before it is persisted, and its refusal undoes it.
    pub(super) fn commit(
        &self,
        inner: &mut Inner,
        name: &str,
        new: Option<UserList>,
        publish: bool,
    ) -> Result<UpdateReport, MatcherError> {
        let old = match &new {
            Some(n) => inner.user.insert(name.to_string(), n.clone()),
            None => inner.user.remove(name),
        };
        let restore = |inner: &mut Inner| match old.clone() {
            Some(o) => {
                inner.user.insert(name.to_string(), o);
            }
            None => {
                inner.user.remove(name);
            }
        };
        let extra = extra_sources(&self.cfg.user_lists_dir, inner);
        let report = match self.reloader.set_user_lists(extra) {
            Ok(r) => r,
            Err(e) => {
                restore(inner);
                return Err(match e {
                    MatcherError::Parse {
                        path,
                        line,
                        message,
                    } => MatcherError::Rejected {
                        message: format!("{}:{line}: {message}", path.display()),
                        problems: vec![Problem {
                            line,
                            severity: Severity::Error,
                            message,
                        }],
                    },
                    other => other,
                });
            }
        };
        if let Some(r) = self.replicator().filter(|_| publish) {
            let record = new.as_ref().map(UserListRecord::of);
            if let Err(m) = r.publish(name, record.as_ref()) {
                restore(inner);
                let extra = extra_sources(&self.cfg.user_lists_dir, inner);
                if let Err(e2) = self.reloader.set_user_lists(extra) {
                    tracing::error!(error = %e2, "cannot restore the previous lists");
                }
                return Err(MatcherError::Unavailable(format!(
                    "the change of list {name:?} could not be distributed to the cluster ({m}); nothing was changed"
                )));
            }
        }
        if let Err(e) = persist_user(&self.cfg.user_lists_dir, name, new.as_ref()) {
            restore(inner);
            let extra = extra_sources(&self.cfg.user_lists_dir, inner);
            if let Err(e2) = self.reloader.set_user_lists(extra) {
                tracing::error!(error = %e2, "cannot restore the previous lists");
            }
            return Err(e);
        }
        let info = self
            .infos(inner)
            .into_iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| {
                ListInfo::inactive(name.to_string(), ListKind::User, Category::Pool)
            });
        Ok(UpdateReport {
            list: info,
            total_entries: report.entries,
            compile_ms: report.compile_ms,
        })
    }

    pub(super) fn infos(&self, inner: &Inner) -> Vec<ListInfo> {
        let set = self.shared.load();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for l in &set.stats().lists {
            let kind = if inner.user.contains_key(&l.name) {
                ListKind::User
            } else if inner.feeds.contains_key(&l.name) {
                ListKind::Feed
            } else {
                match l.origin {
                    Origin::Builtin(_) => ListKind::Shipped,
                    _ => ListKind::File,
                }
            };
            let feed = inner.feeds.get(&l.name).map(|f| f.state.clone());
            let (source, refreshed) = match kind {
                ListKind::Shipped => (l.source.clone(), l.refreshed.clone()),
                ListKind::File => {
                    let p = l.origin.display_path();
                    let mtime = std::fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .ok()
                        .map(|t| {
                            Timestamp::from_secs_f64(
                                t.duration_since(std::time::UNIX_EPOCH)
                                    .map_or(0.0, |d| d.as_secs_f64()),
                            )
                            .to_string()
                        });
                    (Some(p.display().to_string()), mtime)
                }
                ListKind::User => (
                    None,
                    inner
                        .user
                        .get(&l.name)
                        .and_then(|u| u.updated)
                        .map(|t| t.to_string()),
                ),
                ListKind::Feed => (
                    feed.as_ref().map(|f| f.url.clone()),
                    feed.as_ref()
                        .and_then(|f| f.last_change)
                        .map(|t| t.to_string()),
                ),
            };
            seen.insert(l.name.clone());
            out.push(ListInfo {
                name: l.name.clone(),
                kind,
                category: l.category,
                format: l.format,
                entries: l.parsed,
                kept: l.kept,
                duplicates: l.duplicates,
                invalid: l.invalid,
                skipped: l.skipped,
                source,
                license: l.license.clone(),
                refreshed,
                active: true,
                problems: l.problems.clone(),
                feed,
            });
        }
        // Feeds without a good copy yet are not in the set, but users want to see them.
        for f in inner.feeds.values() {
            if seen.contains(&f.state.name) {
                continue;
            }
            out.push(ListInfo {
                source: Some(f.state.url.clone()),
                feed: Some(f.state.clone()),
                ..ListInfo::inactive(f.state.name.clone(), ListKind::Feed, f.state.category)
            });
        }
        out
    }
}

/// A user upload must parse cleanly: any invalid line, or no entry at all, rejects it.
pub(super) fn validate_user_text(
    name: &str,
    text: &str,
    format: Option<ListFormat>,
) -> Result<(), MatcherError> {
    let parsed = parse_list(text, format);
    let errors: Vec<Problem> = parsed.errors().take(MAX_REJECT_PROBLEMS).cloned().collect();
    if !errors.is_empty() {
        let first = errors
            .first()
            .map(|p| format!("line {}: {}", p.line, p.message))
            .unwrap_or_default();
        return Err(MatcherError::Rejected {
            message: format!(
                "list {name:?} has {} invalid line(s); first: {first}; nothing was changed",
                parsed.invalid
            ),
            problems: errors,
        });
    }
    if parsed.entries.is_empty() {
        return Err(MatcherError::Rejected {
            message: format!("list {name:?} holds no entry; to remove it use DELETE"),
            problems: Vec::new(),
        });
    }
    Ok(())
}

/// Each entry must be exactly one valid plain-format entry (no whitespace, no second entry).
pub(super) fn validate_entries(entries: &[String]) -> Result<Vec<(String, Target)>, MatcherError> {
    if entries.is_empty() {
        return Err(MatcherError::Rejected {
            message: "`entries` is empty".into(),
            problems: Vec::new(),
        });
    }
    if entries.len() > MAX_ENTRY_CHANGES {
        return Err(MatcherError::Rejected {
            message: format!(
                "at most {MAX_ENTRY_CHANGES} entries per request; PUT the whole list for more"
            ),
            problems: Vec::new(),
        });
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut problems = Vec::new();
    for (i, raw) in entries.iter().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let trimmed = raw.trim();
        let bad = |m: String| Problem {
            line,
            severity: Severity::Error,
            message: m,
        };
        if trimmed.is_empty()
            || trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
            || trimmed.starts_with(['#', '!', ';'])
        {
            problems.push(bad(format!(
                "{:?} is not a single entry",
                super::super::normalize::clip(raw)
            )));
            continue;
        }
        let p = parse_list(trimmed, Some(ListFormat::Plain));
        match (p.entries.as_slice(), p.errors().next()) {
            ([e], None) if !e.exception => out.push((trimmed.to_string(), e.target.clone())),
            (_, Some(err)) => problems.push(bad(err.message.clone())),
            _ => problems.push(bad(format!(
                "{:?} is not a single entry",
                super::super::normalize::clip(raw)
            ))),
        }
        if problems.len() >= MAX_REJECT_PROBLEMS {
            break;
        }
    }
    if !problems.is_empty() {
        return Err(MatcherError::Rejected {
            message: format!(
                "{} invalid entr{} (line = position in `entries`, from 1); nothing was changed",
                problems.len(),
                if problems.len() == 1 { "y" } else { "ies" }
            ),
            problems,
        });
    }
    Ok(out)
}

/// Entry-level edits rewrite lines, which is only safe when a line is one entry.
pub(super) fn plain_only(name: &str, u: &UserList) -> Result<(), MatcherError> {
    let format = u
        .format
        .unwrap_or_else(|| super::super::detect_format(&u.text));
    if format == ListFormat::Plain {
        Ok(())
    } else {
        Err(MatcherError::Conflict(format!(
            "list {name:?} is in {format} format; entry edits need a plain list — replace it with PUT"
        )))
    }
}
