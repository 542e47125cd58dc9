//! The domain model: the observations every input stage produces and the detections the correlation
//! stage makes of them.
//!
//! Both packet input (`capture` + `dns`) and log input (`ingest`) produce the same
//! [`Observation`]s, so everything downstream is independent of where a fact came from. Foreign types
//! (hickory, pcap, sled, axum) never appear here.
//!
//! JSON shapes are part of the public contract (`docs/observations.md`, `docs/detections.md`):
//! change them only by adding fields.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod detection;
mod dns;
mod flow;
mod pos;
mod rfc3339;

pub use detection::*;
pub use dns::*;
pub use flow::*;
pub use pos::*;

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// A point in time, microseconds since the Unix epoch, UTC.
///
/// Kept as an integer so that observations are cheap to copy and compare and sled keys can be
/// big-endian encodings of it. Serialised as RFC 3339 (`2026-11-26T20:26:41.951234Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1_000_000.0).round() as i64)
    }
    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }
    pub fn as_micros(self) -> i64 {
        self.0
    }
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
    /// `self + secs`, saturating.
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_micros(self.0).single()
    }
    /// Length of [`Timestamp::rfc3339_bytes`]'s text.
    pub const RFC3339_LEN: usize = rfc3339::RFC3339_LEN;

    /// The RFC 3339 text of [`Timestamp::to_rfc3339`] in `buf`, without allocating, for years
    /// 0000–9999; `None` outside them (use `to_rfc3339`). The bytes are ASCII.
    pub fn rfc3339_bytes(self, buf: &mut [u8; Self::RFC3339_LEN]) -> Option<&[u8]> {
        rfc3339::write_bytes(self, buf).then_some(&buf[..])
    }
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; rfc3339::RFC3339_LEN];
        if let Some(s) = rfc3339::write(self, &mut buf) {
            return s.to_string();
        }
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => format!("@{}us", self.0),
        }
    }
    /// Parses RFC 3339 (any offset) or a plain Unix epoch in seconds (with optional fraction).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(Timestamp(dt.with_timezone(&Utc).timestamp_micros()));
        }
        let f: f64 = s.parse().ok()?;
        if f.is_finite() && f.abs() < 1.0e12 {
            Some(Timestamp::from_secs_f64(f))
        } else {
            None
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; rfc3339::RFC3339_LEN];
        match rfc3339::write(*self, &mut buf) {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.to_rfc3339()),
        }
    }
}

impl Serialize for Timestamp {
    /// Written from a stack buffer (`model::rfc3339`), no `String` per timestamp.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; rfc3339::RFC3339_LEN];
        match rfc3339::write(*self, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&self.to_rfc3339()),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            F(f64),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) => Timestamp::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {s:?}"))),
            Raw::F(f) if f.is_finite() => Ok(Timestamp::from_secs_f64(f)),
            Raw::F(_) => Err(serde::de::Error::custom("invalid timestamp")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Where an observation came from
// ---------------------------------------------------------------------------------------------

/// Where an observation came from, e.g. `pcap:lab.pcap`, `live:eth1`, `log:bind:/var/log/query.log`,
/// `dnstap:unix:/run/dnstap.sock`. Shared (`Arc`) because every observation of one input carries it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(Arc<str>);

impl Source {
    pub fn new(s: impl Into<Arc<str>>) -> Self {
        Source(s.into())
    }
    pub fn pcap(path: &str) -> Self {
        Source(format!("pcap:{path}").into())
    }
    pub fn live(iface: &str) -> Self {
        Source(format!("live:{iface}").into())
    }
    pub fn log(format: &str, path: &str) -> Self {
        Source(format!("log:{format}:{path}").into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The kind prefix (`pcap`, `live`, `log`, `dnstap`, …).
    pub fn kind(&self) -> &str {
        self.0.split(':').next().unwrap_or("")
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Source(String::deserialize(d)?.into()))
    }
}

/// serde defaults shared by the model's types.
fn yes() -> bool {
    true
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// Lowercase, strip one trailing dot; the root stays `.`. Used by every input stage so that names
/// compare equal whatever case or form the source used.
pub fn normalize_name(name: &str) -> String {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return ".".to_string();
    }
    trimmed.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_rfc3339_round_trip() {
        let t = Timestamp::from_micros(1_795_724_797_123_456);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "\"2026-11-26T20:26:37.123456Z\"");
        let back: Timestamp = serde_json::from_str(&s).unwrap();
        assert_eq!(back, t);
        let from_epoch: Timestamp = serde_json::from_str("1795724797.123456").unwrap();
        assert_eq!(from_epoch, t);
    }

    #[test]
    fn codes_by_mnemonic() {
        assert_eq!(RrType::parse("aaaa"), Some(RrType::AAAA));
        assert_eq!(RrType::parse("TYPE65534"), Some(RrType(65534)));
        assert_eq!(RrType(65534).to_string(), "TYPE65534");
        assert_eq!(Rcode::parse("NXDOMAIN"), Some(Rcode::NXDOMAIN));
        assert_eq!(Rcode(4000).to_string(), "RCODE4000");
    }

    #[test]
    fn stage_order_is_strength() {
        let mut v = Stage::ALL.to_vec();
        v.reverse();
        v.sort();
        assert_eq!(v, Stage::ALL.to_vec());
        assert!(Stage::Stratum > Stage::DirectIp);
        assert!(Stage::Connection.is_contact());
        assert!(!Stage::BlockedLookup.is_contact());
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_name("Pool.HashVault.PRO."), "pool.hashvault.pro");
        assert_eq!(normalize_name("."), ".");
        assert_eq!(normalize_name(""), ".");
    }
}
