//! What the list manager shows: the JSON shapes of `GET /api/v1/blocklists…` and of the
//! reports an accepted update returns.

use std::sync::Arc;

use serde::Serialize;

use super::super::{ListFormat, Problem};
use super::FeedState;
use crate::model::Category;

/// What kind of list this is (and so what may be done to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Embedded in the binary (`blocklists/`).
    Shipped,
    /// A `--blocklist` file.
    File,
    /// Uploaded through the API; persisted in the user-lists directory.
    User,
    /// A remote feed's last good copy.
    Feed,
}

/// One list as `GET /api/v1/blocklists` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ListInfo {
    pub name: String,
    pub kind: ListKind,
    pub category: Category,
    pub format: Option<ListFormat>,
    /// Valid entries parsed from the list.
    pub entries: u64,
    /// Entries it contributes to the running set (others duplicate earlier lists).
    pub kept: u64,
    pub duplicates: u64,
    /// Invalid lines dropped.
    pub invalid: u64,
    /// Lines skipped as meaningless for DNS (cosmetic/URL rules).
    pub skipped: u64,
    /// Where the entries come from: manifest source, file path or feed URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// When the list last changed (manifest date, file mtime, upload time, feed download).
    pub refreshed: Option<String>,
    /// Part of the running set (a feed without a good copy yet is not).
    pub active: bool,
    /// The first problems of the list (line, severity, message).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<FeedState>,
}

impl ListInfo {
    /// A list that is not (or not yet) in the running set: no counts, not active.
    pub(super) fn inactive(name: String, kind: ListKind, category: Category) -> Self {
        ListInfo {
            name,
            kind,
            category,
            format: None,
            entries: 0,
            kept: 0,
            duplicates: 0,
            invalid: 0,
            skipped: 0,
            source: None,
            license: None,
            refreshed: None,
            active: false,
            problems: Vec::new(),
            feed: None,
        }
    }
}

/// One entry of a list, as parsed.
#[derive(Clone, Debug, Serialize)]
pub struct ListEntry {
    pub entry: String,
    pub line: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exception: bool,
}

/// A list's metadata, text and (a page of) its entries.
#[derive(Clone, Debug, Serialize)]
pub struct ListDetail {
    #[serde(flatten)]
    pub info: ListInfo,
    /// Total entries (all pages).
    pub total: usize,
    pub offset: usize,
    pub items: Vec<ListEntry>,
    pub next_offset: Option<usize>,
    #[serde(skip)]
    pub text: Arc<str>,
}

/// The outcome of an accepted update.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateReport {
    pub list: ListInfo,
    /// Entries in the running set after the update.
    pub total_entries: u64,
    pub compile_ms: f64,
}

/// The outcome of an entries add/remove.
#[derive(Clone, Debug, Serialize)]
pub struct EntriesReport {
    /// Entries added (or removed).
    pub changed: Vec<String>,
    /// Entries already present (add) or not present (remove).
    pub unchanged: Vec<String>,
    #[serde(flatten)]
    pub update: UpdateReport,
}
