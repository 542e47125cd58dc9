//! Query strings and the values in them: the parameter map (unknown names, repeats and floods
//! refused), the detection filter, limits, booleans, networks, time ranges, pool entries and
//! domain names. Every check a client's query or body value goes through before a handler.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use ipnet::IpNet;

use super::{ApiError, MAX_API_TIME, MAX_QUERY_PARAMS, MIN_API_TIME};
use crate::matcher::{MAX_LABEL_LEN, MAX_NAME_LEN};
use crate::model::{Stage, Timestamp};
use crate::query::DetectionFilter;

/// Query parameters as a map, rejecting unknown names (a typo must not silently widen a
/// filter), repeats and floods.
pub(super) fn params(
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::bad("invalid_parameter", e.body_text()))?;
    if pairs.len() > MAX_QUERY_PARAMS {
        return Err(ApiError::bad(
            "invalid_parameter",
            format!("at most {MAX_QUERY_PARAMS} query parameters"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            let known = if allowed.is_empty() {
                "this route takes no parameters".to_string()
            } else {
                format!("known: {}", allowed.join(", "))
            };
            return Err(ApiError::bad(
                "unknown_parameter",
                format!("unknown query parameter {} ({known})", quote(&k)),
            ));
        }
        if out.contains_key(&k) {
            return Err(ApiError::bad(
                "invalid_parameter",
                format!("{k}: given more than once"),
            ));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// The detection filter from query parameters (shared by the list and the stream).
pub(super) fn parse_filter(p: &BTreeMap<String, String>) -> Result<DetectionFilter, ApiError> {
    let mut f = DetectionFilter::default();
    if let Some(c) = p.get("client") {
        f.client = Some(parse_net(c).map_err(|m| ApiError::invalid("client", m))?);
    }
    if let Some(pool) = p.get("pool") {
        f.pool = Some(pool_entry(pool).map_err(|m| ApiError::invalid("pool", m))?);
    }
    if let Some(s) = p.get("stage") {
        let st = Stage::parse(s.trim()).ok_or_else(|| {
            let all: Vec<_> = Stage::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid(
                "stage",
                format!("{} is not one of {}", quote(s), all.join(", ")),
            )
        })?;
        f.stage = Some(st);
    }
    if let Some(r) = p.get("min_risk") {
        let v: u8 = r
            .trim()
            .parse()
            .ok()
            .filter(|v| *v <= 100)
            .ok_or_else(|| ApiError::invalid("min_risk", "must be an integer from 0 to 100"))?;
        f.min_risk = Some(v);
    }
    for (key, slot) in [("since", &mut f.since), ("until", &mut f.until)] {
        if let Some(t) = p.get(key) {
            let ts = Timestamp::parse(t).ok_or_else(|| {
                ApiError::invalid(key, format!("{} is not RFC 3339 or Unix seconds", quote(t)))
            })?;
            check_time_range(key, ts)?;
            *slot = Some(ts);
        }
    }
    if let (Some(s), Some(u)) = (f.since, f.until) {
        if s > u {
            return Err(ApiError::invalid("since", "must not be after `until`"));
        }
    }
    if let Some(s) = p.get("suppressed") {
        f.suppressed = Some(
            parse_bool(s)
                .ok_or_else(|| ApiError::invalid("suppressed", "must be true or false"))?,
        );
    }
    Ok(f)
}

pub(super) fn parse_limit(
    p: &BTreeMap<String, String>,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid(key, format!("must be an integer from 1 to {max}"))),
    }
}

pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// An IP address (a /32 or /128) or a CIDR block, host bits cleared.
pub(super) fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| format!("{} is not an IP address or CIDR block", quote(s)))
}

/// Every time the API accepts lies in [`MIN_API_TIME`, `MAX_API_TIME`]: a stamp outside cannot
/// be written back as RFC 3339, so it is refused here rather than accepted and lost later.
pub(super) fn check_time_range(param: &str, t: Timestamp) -> Result<(), ApiError> {
    if (MIN_API_TIME..=MAX_API_TIME).contains(&t) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            param,
            format!(
                "out of range: times must be from {} to {} (Unix seconds 0 to {})",
                MIN_API_TIME.to_rfc3339(),
                MAX_API_TIME.to_rfc3339(),
                MAX_API_TIME.as_secs()
            ),
        ))
    }
}

/// A pool entry as stored in detections: a domain, or an IP/CIDR/endpoint for IP-list matches.
/// Lowercased; printable ASCII only.
pub(super) fn pool_entry(s: &str) -> Result<String, String> {
    let s = s.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > MAX_NAME_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{} is not a pool entry (a domain like supportxmr.com)",
            quote(s)
        ));
    }
    Ok(s.to_ascii_lowercase())
}

/// A DNS name to check: IDNs become A-labels; lowercase, no trailing dot; label syntax checked.
pub(super) fn domain_name(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    if t.len() > 4 * MAX_NAME_LEN {
        return Err("too long for a DNS name".into());
    }
    let ascii = if t.is_ascii() {
        t.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(t).map_err(|_| format!("{} is not a valid domain name", quote(t)))?
    };
    let name = ascii.strip_suffix('.').unwrap_or(&ascii).to_string();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("a domain name has 1 to {MAX_NAME_LEN} characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "{} has an empty label or one longer than {MAX_LABEL_LEN}",
                quote(&name)
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        {
            return Err(format!(
                "{} contains characters not allowed in a DNS name",
                quote(&name)
            ));
        }
    }
    Ok(name)
}

/// Quotes user input for an error message, shortened so that a huge value cannot bloat the
/// response.
pub(super) fn quote(s: &str) -> String {
    const MAX_ECHO: usize = 80;
    let short: String = s.chars().take(MAX_ECHO).collect();
    if short.len() < s.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}
