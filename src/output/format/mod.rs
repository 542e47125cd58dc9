//! Record shapes: pure functions of an [`OutputEvent`] (a detection change with its sequence)
//! and the [`Observer`] (who reports) to bytes. Shared by `scan --output ecs|eve` and every
//! sink, so an offline scan and a live sink print the same shape.
//!
//! * [`poolwatch`] — today's Detection JSON plus an `event` object (id, kind, sequence);
//! * [`ecs`] — Elastic Common Schema 8.x alert;
//! * [`eve`] — Suricata EVE `event_type: "alert"`;
//! * [`cef`] — ArcSight CEF 0 (syslog message);
//! * [`leef`] — IBM QRadar LEEF 2.0 (syslog message);
//! * [`text`] — a one-line human summary (Slack, syslog `msg`, CEF/LEEF `msg`).

pub mod cef;
pub mod ecs;
pub mod eve;
pub mod leef;
pub mod poolwatch;
pub mod text;

use std::net::IpAddr;

use super::OutputEvent;
use crate::model::{Detection, Stage, Timestamp};

/// Which record shape a sink writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The Detection JSON plus `event` (file, webhook; syslog calls it `json`).
    Poolwatch,
    Ecs,
    Eve,
    Cef,
    Leef,
    /// Slack-compatible `{"text": …}` (webhook only).
    Slack,
    /// A user template with `{{placeholders}}` (webhook only).
    Template,
}

impl Format {
    /// The name as written in the config (`json` is how syslog spells `poolwatch`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Poolwatch => "poolwatch",
            Format::Ecs => "ecs",
            Format::Eve => "eve",
            Format::Cef => "cef",
            Format::Leef => "leef",
            Format::Slack => "slack",
            Format::Template => "template",
        }
    }
}

/// Who reports: the `observer.*` of ECS, the `host` of EVE, the syslog HOSTNAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observer {
    /// The machine's host name.
    pub hostname: String,
    /// The sensor's name (default: the host name).
    pub name: String,
    pub version: &'static str,
}

/// Longest host name taken from the system (RFC 1035 name length).
const MAX_HOSTNAME_LEN: usize = 255;

impl Observer {
    /// This machine, named `name` (or after the host).
    pub fn local(name: Option<&str>) -> Observer {
        let hostname = hostname().unwrap_or_else(|| "localhost".to_string());
        Observer {
            name: name.map_or_else(|| hostname.clone(), str::to_string),
            hostname,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; MAX_HOSTNAME_LEN + 1];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let s = String::from_utf8_lossy(buf.get(..end)?).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Renders one record of a JSON shape (poolwatch, ecs, eve) as one line (no newline).
pub fn render_json(format: Format, ev: &OutputEvent, obs: &Observer) -> Vec<u8> {
    let v = match format {
        Format::Ecs => ecs::render(ev, obs),
        Format::Eve => eve::render(ev, obs),
        _ => poolwatch::render(ev),
    };
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Severity classes used by every shape (from the risk score, `docs/detections.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// Sets `key` on a JSON object built by `json!({...})`; unlike `v[key] = x`, never panics
/// (on a non-object it does nothing).
pub fn set(v: &mut serde_json::Value, key: &str, x: serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), x);
    }
}

/// Risk ≥ 90 critical (direct IP, Stratum), ≥ 80 high (connections), ≥ 50 medium (lookups),
/// else low (blocked lookups).
pub fn severity(risk: u8) -> Severity {
    match risk {
        90.. => Severity::Critical,
        80..=89 => Severity::High,
        50..=79 => Severity::Medium,
        _ => Severity::Low,
    }
}

/// The time the event is about: a new incident when it started, an upgrade when the stage rose,
/// an update when it was last seen.
pub fn event_time(ev: &OutputEvent) -> Timestamp {
    match (&ev.detection, ev.kind) {
        (Some(d), super::EventKind::New) => d.first_seen,
        (Some(d), super::EventKind::Upgrade) => d.stage_changed.unwrap_or(d.last_seen),
        (Some(d), _) => d.last_seen,
        (None, _) => ev.created,
    }
}

/// The pool address a detection is about (first of its pool IPs).
pub fn primary_dst(d: &Detection) -> Option<IpAddr> {
    d.pool_ips.first().copied()
}

/// A stable rule id per stage (`poolwatch-stratum`, …).
pub fn rule_id(stage: Stage) -> String {
    format!("poolwatch-{}", stage.as_str())
}

/// A stable numeric signature id per stage (EVE `signature_id`, CEF signature): 9 496 000 + the
/// stage's position (T1496 inside the local-rules range of Suricata, ≥ 9 000 000).
pub fn signature_id(stage: Stage) -> u32 {
    let idx = Stage::ALL.iter().position(|s| *s == stage).unwrap_or(0);
    9_496_000 + idx as u32
}

/// Signature id of the rate-limit summary record.
pub const RATE_LIMIT_SIGNATURE_ID: u32 = 9_496_900;

/// Human name of a stage for titles.
pub fn stage_title(stage: Stage) -> &'static str {
    match stage {
        Stage::Lookup => "pool lookup",
        Stage::BlockedLookup => "blocked pool lookup",
        Stage::ConnectionAttempt => "pool connection attempt",
        Stage::Connection => "pool connection",
        Stage::DirectIp => "direct-IP pool connection",
        Stage::Stratum => "Stratum mining session",
    }
}

/// ISO 8601 with microseconds and a `+0000` offset, as Suricata writes `timestamp`.
pub fn suricata_time(t: Timestamp) -> String {
    match t.to_datetime() {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.6f+0000").to_string(),
        None => "1970-01-01T00:00:00.000000+0000".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;
    use crate::output::EventKind;

    /// A stratum detection shaped like the sample's miner.
    pub fn sample_event() -> OutputEvent {
        let mut d = Detection {
            id: "0123456789abcdef01234567".into(),
            client_ip: "192.0.2.10".parse().unwrap(),
            stage: Stage::Stratum,
            risk_score: 97,
            pool_domain: "supportxmr.com".into(),
            query_names: vec!["pool.supportxmr.com".into()],
            pool_ips: vec!["203.0.113.10".parse().unwrap()],
            dst_ports: vec![3333],
            first_seen: Timestamp::from_secs(1_795_723_201),
            last_seen: Timestamp::from_secs(1_795_723_290),
            is_new: true,
            evidence: Vec::new(),
            sources: vec![Source::pcap("sample.pcap")],
            lists: Vec::new(),
            mitre: Mitre::default(),
            kill_chain: KILL_CHAIN.into(),
            title: DETECTION_TITLE.into(),
            counts: DetectionCounts::default(),
            agents: vec!["XMRig/6.21.0 (Linux x86_64)".into()],
            suppressed: false,
            suppression_id: None,
            stage_changed: Some(Timestamp::from_secs(1_795_723_203)),
            schema_version: DETECTION_SCHEMA_VERSION,
            retro: false,
        };
        d.counts.lookups = 2;
        OutputEvent {
            kind: EventKind::Upgrade,
            seq: 42,
            created: Timestamp::from_secs(1_795_723_204),
            detection: Some(d),
            rate_limit: None,
        }
    }

    pub fn observer() -> Observer {
        Observer {
            hostname: "sensor-1".into(),
            name: "dmz".into(),
            version: "0.1.0",
        }
    }

    #[test]
    fn severity_classes_follow_the_risk_scale() {
        use crate::correlate::risk::*;
        assert_eq!(severity(RISK_STRATUM), Severity::Critical);
        assert_eq!(severity(RISK_DIRECT_IP), Severity::Critical);
        assert_eq!(severity(RISK_CONNECTION), Severity::High);
        assert_eq!(severity(RISK_CONNECTION_ATTEMPT), Severity::High);
        assert_eq!(severity(RISK_LOOKUP), Severity::Medium);
        assert_eq!(severity(RISK_BLOCKED_LOOKUP), Severity::Low);
    }

    #[test]
    fn times_and_ids() {
        let ev = sample_event();
        assert_eq!(event_time(&ev), Timestamp::from_secs(1_795_723_203));
        assert_eq!(
            suricata_time(Timestamp::from_micros(1_795_723_201_000_123)),
            "2026-11-26T20:00:01.000123+0000"
        );
        assert_eq!(signature_id(Stage::Lookup), 9_496_000);
        assert_eq!(signature_id(Stage::Stratum), 9_496_005);
        assert_eq!(ev.event_id(), "0123456789abcdef01234567-42");
    }
}
