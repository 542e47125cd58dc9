//! Shapes shared by the `store` (which answers queries) and the `api` (which exposes them):
//! filters, pages, host timelines, pool prevalence, suppressions and the live detection feed.
//! They are plain data; neither sled nor axum types appear here.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{Category, Detection, Evidence, Stage, Timestamp};

/// Filter for listing detections. Every field narrows; `None` means "any".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectionFilter {
    /// Client address or CIDR block.
    pub client: Option<IpNet>,
    /// Pool entry (exact list entry, e.g. `supportxmr.com`).
    pub pool: Option<String>,
    /// Exact stage.
    pub stage: Option<Stage>,
    pub min_risk: Option<u8>,
    /// Detections whose `last_seen` is at or after this instant.
    pub since: Option<Timestamp>,
    /// Detections whose `first_seen` is at or before this instant.
    pub until: Option<Timestamp>,
    /// `Some(false)` hides suppressed incidents, `Some(true)` shows only them.
    pub suppressed: Option<bool>,
}

/// One page of results; `next_cursor` is opaque and `None` on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A live binding: this client resolved a pool name to this address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub client: IpAddr,
    pub ip: IpAddr,
    /// The matched list entry.
    pub pool_domain: String,
    pub qname: String,
    pub list: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub ttl: u32,
    /// When the binding stops attributing flows (TTL plus grace).
    pub expires: Timestamp,
    /// The address's owner was an unlisted (CDN) name: it serves other sites too, so it is
    /// bound for this client only and never convicts another client (`direct_ip`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// Everything known about one host, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostTimeline {
    pub ip: IpAddr,
    pub first_seen: Option<Timestamp>,
    pub detections: Vec<Detection>,
    pub bindings: Vec<Binding>,
    /// Recent evidence across the host's detections, newest first.
    pub timeline: Vec<Evidence>,
}

/// Prevalence of one pool entry across clients.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolSummary {
    pub pool_domain: String,
    pub category: Option<Category>,
    pub list: Option<String>,
    /// Distinct clients with a detection for this entry.
    pub clients: u64,
    pub detections: u64,
    pub strongest_stage: Stage,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// An address currently bound to a pool lookup (for firewall exports).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolIp {
    pub ip: IpAddr,
    pub pool_domains: Vec<String>,
    pub clients: u64,
    pub last_seen: Timestamp,
    pub expires: Timestamp,
}

/// Longest detection / suppression id anywhere (ids are 16–24 characters; longer input is not
/// ours): the API answers 404 without asking the store, the store finds nothing.
pub const MAX_ID_LEN: usize = 64;
/// Longest suppression reason, in characters: the API's 400 and the store's refusal use it.
pub const MAX_REASON_LEN: usize = 1000;

/// A request to suppress incidents (by client, by pool entry, or both).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewSuppression {
    #[serde(default)]
    pub client: Option<IpNet>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub expires: Option<Timestamp>,
    pub reason: String,
}

/// A stored suppression rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    pub id: String,
    pub client: Option<IpNet>,
    pub pool: Option<String>,
    pub expires: Option<Timestamp>,
    pub reason: String,
    pub created: Timestamp,
}

impl Suppression {
    /// Whether the rule covers `client`/`pool` at `now`.
    pub fn covers(&self, client: IpAddr, pool: &str, now: Timestamp) -> bool {
        if self.expires.is_some_and(|e| e <= now) {
            return false;
        }
        if self.client.is_none() && self.pool.is_none() {
            return false;
        }
        self.client.is_none_or(|net| net.contains(&client))
            && self
                .pool
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case(pool))
    }
}

/// What happened to a detection. The one change kind of the engine (`correlate::Changes`), the
/// live feed (`GET /detections/stream`: event names `new` / `upgraded`), the alert sinks
/// (`ports::DetectionSink`) and the cluster publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new incident (first report).
    New,
    /// The stage rose.
    Upgraded,
    /// Counts, evidence or last_seen changed (coalesced per flush; never on the live feed).
    Updated,
}

impl ChangeKind {
    /// The name on the wire (SSE event name, JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::New => "new",
            ChangeKind::Upgraded => "upgraded",
            ChangeKind::Updated => "updated",
        }
    }
}

/// One detection change: the one output event type. Owned (`DetectionEvent`, the engine's
/// output and the live feed's item) or borrowed (`DetectionEvent<&Detection>`, what the
/// pipeline hands the alert sinks without copying: `ports::DetectionChange`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionEvent<D = Detection> {
    pub kind: ChangeKind,
    pub detection: D,
}

impl DetectionEvent {
    /// The borrowed form of this event.
    pub fn as_ref(&self) -> DetectionEvent<&Detection> {
        DetectionEvent {
            kind: self.kind,
            detection: &self.detection,
        }
    }
}
