//! The history port: what the retro-hunt (`crate::hunt`) needs from persistence, and what the
//! API and CLI ask of the hunt.
//!
//! * [`HistoryKv`] — ordered byte rows in a few named trees, plus per-day byte accounting. The
//!   hunt owns the encoding (`hunt::encode`); the store (`store::history`) owns sled and only
//!   keeps bytes, so neither knows the other's types.
//! * [`RetroSink`] — merges detections found in history into the detection store (create or
//!   upgrade, never delete).
//! * [`HuntQuery`] — "what does the history hold for this name / address?" as plain data
//!   ([`HuntRequest`] → [`HuntReport`]); implemented by `hunt::Hunter`, used by `api::hunt`
//!   and `cli::hunt`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{Detection, Timestamp};

/// The trees of the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HistoryTree {
    /// Per day, per name (reversed labels): blocks holding the name summary and one entry per
    /// client that asked.
    Names,
    /// Per day, per destination address: blocks of flow summaries per (port, client).
    Flows,
    /// Per day, per DNS server: the distinct clients it answered (the resolver rule).
    Servers,
    /// Per day: the bytes the day's rows hold (keys + values), for the byte cap.
    Days,
}

impl HistoryTree {
    pub const ALL: [HistoryTree; 4] = [
        HistoryTree::Names,
        HistoryTree::Flows,
        HistoryTree::Servers,
        HistoryTree::Days,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryTree::Names => "names",
            HistoryTree::Flows => "flows",
            HistoryTree::Servers => "servers",
            HistoryTree::Days => "days",
        }
    }
}

/// One stored row.
pub type Row = (Vec<u8>, Vec<u8>);

/// Ordered byte rows (implemented by `store::Store` over sled trees).
pub trait HistoryKv: Send + Sync {
    fn get(&self, tree: HistoryTree, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// Writes every row (insert or replace) in one batch per tree.
    fn put(&self, tree: HistoryTree, rows: &[Row]) -> Result<(), String>;
    /// Rows with `lo <= key < hi`, in key order, at most `limit`.
    fn scan(
        &self,
        tree: HistoryTree,
        lo: &[u8],
        hi: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, String>;
    /// Removes every row with `lo <= key < hi`; returns how many.
    fn remove_range(&self, tree: HistoryTree, lo: &[u8], hi: &[u8]) -> Result<u64, String>;
    /// Removes `remove`, then writes `put`, in one atomic batch (a key in both ends up
    /// written): the compaction of a day.
    fn replace(&self, tree: HistoryTree, remove: &[Vec<u8>], put: &[Row]) -> Result<(), String>;
    /// Bytes the history takes on disk, when the store can tell (whole database for sled).
    fn disk_bytes(&self) -> Option<u64> {
        None
    }
}

/// How a batch of retro detections went into the detection store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetroMerge {
    /// Detections that did not exist before.
    pub created: u64,
    /// Existing detections (same incident) whose stage rose.
    pub upgraded: u64,
    /// Existing detections already as strong (left as they were, apart from the retro mark).
    pub unchanged: u64,
}

/// Where retro detections go (implemented by `store::Store`).
pub trait RetroSink: Send + Sync {
    /// Creates each detection, or merges it into the stored one with the same id (the stage
    /// only rises; a live detection stays live). Never deletes.
    fn merge_retro(&self, dets: &[Detection]) -> Result<RetroMerge, String>;
}

/// `GET /api/v1/hunt` / `poolwatch hunt`: one name, address or CIDR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HuntRequest {
    /// A domain (suffix semantics, like a list entry), an IP address, a CIDR or `ip:port`.
    pub target: String,
    /// Oldest time of interest (default: the whole retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Most rows of each kind returned.
    pub limit: usize,
}

/// One (day, name, client) lookup summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HuntLookup {
    pub day: String,
    /// The name asked for.
    pub name: String,
    pub client: IpAddr,
    pub first: Timestamp,
    pub last: Timestamp,
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// Answer addresses of the name that day (bounded sample).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<IpAddr>,
    /// The name matched through a CNAME of `name` (set to the CNAME target that matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_cname: Option<String>,
    /// Many distinct names of this zone were asked that day: they were kept as one row per
    /// client under the zone (`name` is then `*.zone`), so this row is approximate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub folded: bool,
}

/// One (day, client, destination, port) flow summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HuntFlow {
    pub day: String,
    pub client: IpAddr,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub proto: String,
    pub first: Timestamp,
    pub last: Timestamp,
    pub count: u64,
    pub established: bool,
    pub bytes_out: u64,
    pub bytes_in: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stratum: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Why this flow is in the answer: `answer` (to an address the name resolved to),
    /// `sni`/`http_host` (the flow named it) or `address` (the target is this address).
    pub why: String,
}

/// What the history holds for a [`HuntRequest`]; creates nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HuntReport {
    pub target: String,
    /// `domain` or `address`.
    pub kind: String,
    /// Oldest and newest day searched (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_day: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_day: Option<String>,
    /// Distinct names found (bounded).
    pub names: Vec<String>,
    /// Distinct clients found (lookups and flows, bounded).
    pub clients: Vec<IpAddr>,
    pub lookups: Vec<HuntLookup>,
    pub flows: Vec<HuntFlow>,
    /// A limit cut the answer short (rows or scan budget).
    pub truncated: bool,
}

/// Answers [`HuntRequest`]s from the history (implemented by `hunt::Hunter`).
pub trait HuntQuery: Send + Sync {
    fn hunt(&self, req: &HuntRequest) -> Result<HuntReport, HuntQueryError>;
}

/// Why a hunt could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HuntQueryError {
    /// The target is neither a domain nor an address / CIDR (the message says why).
    #[error("{0}")]
    Invalid(String),
    #[error("history: {0}")]
    Store(String),
}
