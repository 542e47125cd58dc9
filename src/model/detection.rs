//! Detections: one per (client, pool entry) incident, with its stage, evidence and counts.

use std::borrow::Cow;

use super::*;

// ---------------------------------------------------------------------------------------------
// Detections
// ---------------------------------------------------------------------------------------------

/// How far a host got towards mining, weakest first. `Ord` follows strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Resolved a pool name.
    Lookup,
    /// Tried to resolve a pool name and the answer was blocked (NXDOMAIN, 0.0.0.0, sinkhole).
    BlockedLookup,
    /// Tried to connect to an address from a pool answer; no handshake.
    ConnectionAttempt,
    /// Connected to an address from its own pool answer.
    Connection,
    /// Connected to a pool address it never resolved itself (hard-coded IP, hosts file, DoH).
    DirectIp,
    /// Mining protocol (Stratum / XMRig JSON-RPC) seen on the wire.
    Stratum,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Lookup,
        Stage::BlockedLookup,
        Stage::ConnectionAttempt,
        Stage::Connection,
        Stage::DirectIp,
        Stage::Stratum,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Lookup => "lookup",
            Stage::BlockedLookup => "blocked_lookup",
            Stage::ConnectionAttempt => "connection_attempt",
            Stage::Connection => "connection",
            Stage::DirectIp => "direct_ip",
            Stage::Stratum => "stratum",
        }
    }
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
    /// Whether this stage means traffic actually went to a pool (not only a name lookup).
    pub fn is_contact(self) -> bool {
        self >= Stage::ConnectionAttempt
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Category of a list entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Mining pool (Stratum endpoints, pool web front-ends on the same domain).
    Pool,
    /// In-browser mining service (cryptojacking scripts).
    BrowserMiner,
    /// Mining proxy / relay services.
    MinerProxy,
    /// Known false positive; never reported.
    Allow,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pool => "pool",
            Category::BrowserMiner => "browser_miner",
            Category::MinerProxy => "miner_proxy",
            Category::Allow => "allow",
        }
    }
    pub fn parse(s: &str) -> Option<Category> {
        match s {
            "pool" => Some(Category::Pool),
            "browser_miner" => Some(Category::BrowserMiner),
            "miner_proxy" => Some(Category::MinerProxy),
            "allow" => Some(Category::Allow),
            _ => None,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which list entry matched: the answer to "which list flagged this?".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListHit {
    /// List name (from the manifest, or the file stem of a user list).
    pub list: String,
    /// The entry as normalised (`supportxmr.com`, `203.0.113.0/24`, `198.51.100.7:3333`).
    pub entry: String,
    pub category: Category,
    /// 1-based line in the list file (0 when the entry did not come from a file).
    pub line: u32,
}

/// What kind of fact an evidence item records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A DNS query for a listed name (or with a listed CNAME target).
    DnsLookup,
    /// A DNS answer that shows the lookup was blocked.
    DnsBlocked,
    /// A flow to a pool address.
    Flow,
    /// A TLS ClientHello naming a pool.
    TlsSni,
    /// Mining protocol on the wire.
    Stratum,
}

impl EvidenceKind {
    /// The serialised name (`serde`'s `snake_case`).
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::DnsLookup => "dns_lookup",
            EvidenceKind::DnsBlocked => "dns_blocked",
            EvidenceKind::Flow => "flow",
            EvidenceKind::TlsSni => "tls_sni",
            EvidenceKind::Stratum => "stratum",
        }
    }
}

/// One thing that was seen, with when and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub ts: Timestamp,
    pub kind: EvidenceKind,
    pub source: Source,
    /// One-line human summary, e.g. `A pool.supportxmr.com -> 127.20.141.17 (ttl 300)`.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<Rcode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FlowState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl Evidence {
    /// An evidence item with only the required fields set.
    pub fn new(ts: Timestamp, kind: EvidenceKind, source: Source, summary: String) -> Self {
        Evidence {
            ts,
            kind,
            source,
            summary,
            qname: None,
            rcode: None,
            answers: Vec::new(),
            dst: None,
            dst_port: None,
            src_port: None,
            state: None,
            bytes_out: None,
            bytes_in: None,
            duration_ms: None,
            agent: None,
            method: None,
        }
    }
}

/// MITRE ATT&CK mapping; constant for this detection. The fields are `Cow`s so that the
/// engine's detections share the constants instead of four allocations each (issue #11: a
/// flood creates one detection per client); the JSON is the same strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mitre {
    pub technique: Cow<'static, str>,
    pub technique_name: Cow<'static, str>,
    pub tactic: Cow<'static, str>,
    pub tactic_id: Cow<'static, str>,
}

impl Default for Mitre {
    fn default() -> Self {
        Mitre {
            technique: Cow::Borrowed("T1496"),
            technique_name: Cow::Borrowed("Resource Hijacking"),
            tactic: Cow::Borrowed("Impact"),
            tactic_id: Cow::Borrowed("TA0040"),
        }
    }
}

/// Running counts behind a detection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionCounts {
    pub lookups: u64,
    pub blocked_lookups: u64,
    pub flows: u64,
    pub established_flows: u64,
    pub stratum_flows: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// The kill-chain stage every detection maps to.
pub const KILL_CHAIN: &str = "actions_on_objective";
/// The name of the detection, as the reference NDR calls it.
pub const DETECTION_TITLE: &str = "New Cryptocurrency Mining Activity";
/// Version of the detection JSON shape (bumped only for additive changes, documented).
pub const DETECTION_SCHEMA_VERSION: u32 = 1;

/// One mining incident of one client with one pool entry, updated as stronger evidence arrives.
/// The JSON contract is documented in `docs/detections.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub id: String,
    pub client_ip: IpAddr,
    pub stage: Stage,
    /// 0–100; see `docs/detections.md` for the scale.
    pub risk_score: u8,
    /// The matched list entry (a domain, or an IP/CIDR/endpoint for IP-list matches, or
    /// `stratum` when only the protocol identified the pool).
    pub pool_domain: String,
    pub query_names: Vec<String>,
    pub pool_ips: Vec<IpAddr>,
    pub dst_ports: Vec<u16>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// True when this client had no mining detection in the look-back window before this one.
    pub is_new: bool,
    /// Bounded (oldest and strongest kept); see `counts` for totals.
    pub evidence: Vec<Evidence>,
    pub sources: Vec<Source>,
    pub lists: Vec<ListHit>,
    #[serde(default)]
    pub mitre: Mitre,
    /// Always [`KILL_CHAIN`] from the engine (shared, not copied per detection).
    #[serde(default = "kill_chain")]
    pub kill_chain: Cow<'static, str>,
    // --- additions beyond the first contract (additive only) ---
    /// Always [`DETECTION_TITLE`] from the engine (shared, not copied per detection).
    #[serde(default = "title")]
    pub title: Cow<'static, str>,
    #[serde(default)]
    pub counts: DetectionCounts,
    /// Miner agent strings seen in Stratum logins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Set when a suppression rule covers this incident (it is still recorded).
    #[serde(default)]
    pub suppressed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression_id: Option<String>,
    /// When the stage last rose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_changed: Option<Timestamp>,
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// Found by a retro-hunt: the history held this activity from before its list entry was
    /// added (`docs/hunt.md`). Absent (false) for live detections.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retro: bool,
    /// Per re-readable source (a followed log file), how far this detection's counts and
    /// evidence go: a line read again after a restart is not counted twice (`docs/follow.md`,
    /// "Exactly-once counting"; `correlate::replay`). Bounded (`MAX_SOURCE_MARKS`); absent when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_marks: Vec<SourceMark>,
}

fn kill_chain() -> Cow<'static, str> {
    Cow::Borrowed(KILL_CHAIN)
}
fn title() -> Cow<'static, str> {
    Cow::Borrowed(DETECTION_TITLE)
}
fn schema_version() -> u32 {
    DETECTION_SCHEMA_VERSION
}

impl Detection {
    /// A new incident's detection: `id`, client and pool entry, first and last seen at `ts`,
    /// stage `lookup` with score 0, everything else empty or the engine's constants (shared,
    /// not copied).
    #[inline]
    pub fn new(id: String, client: IpAddr, pool_domain: &str, ts: Timestamp) -> Detection {
        Detection {
            id,
            client_ip: client,
            stage: Stage::Lookup,
            risk_score: 0,
            pool_domain: pool_domain.to_string(),
            query_names: Vec::new(),
            pool_ips: Vec::new(),
            dst_ports: Vec::new(),
            first_seen: ts,
            last_seen: ts,
            is_new: true,
            evidence: Vec::new(),
            sources: Vec::new(),
            lists: Vec::new(),
            mitre: Mitre::default(),
            kill_chain: kill_chain(),
            title: title(),
            counts: DetectionCounts::default(),
            agents: Vec::new(),
            suppressed: false,
            suppression_id: None,
            stage_changed: None,
            schema_version: DETECTION_SCHEMA_VERSION,
            retro: false,
            source_marks: Vec::new(),
        }
    }
}

/// A detection for unit tests: `id`, client, pool entry, stage and score as given, first seen
/// at `first` (Unix seconds) and last seen 30 s later, one source (`test`).
#[cfg(test)]
pub(crate) fn test_detection(
    id: &str,
    client: IpAddr,
    pool: &str,
    (stage, risk): (Stage, u8),
    first: i64,
) -> Detection {
    let mut d = Detection::new(id.into(), client, pool, Timestamp::from_secs(first));
    d.stage = stage;
    d.risk_score = risk;
    d.last_seen = Timestamp::from_secs(first + 30);
    d.sources.push(Source::new("test"));
    d
}
