//! `GET /api/v1/export/pool-ips`: the pool addresses currently bound (a client resolved a pool
//! name to them and the binding has not expired), for firewalls.
//!
//! Formats (`format=`): `text` (one address a line, the default), `json` (`{"items": [PoolIp]}`),
//! `nft` (an nftables table `inet poolwatch_bound` with `bound_v4`/`bound_v6` sets whose elements
//! time out when their binding expires, plus drop rules; load with `nft -f`), `ipset` (sets
//! `poolwatch_bound_v4`/`_v6` with per-entry timeouts; load with `ipset restore -exist`).
//!
//! The clock (`at=`): `now`, the wall clock (the default, right for live inputs), or `latest`,
//! the newest stored binding's `last_seen`: the clock of the data, for an imported capture or
//! `poolwatch demo`, consistent with the bindings `GET /hosts/{ip}` shows. (An arbitrary past
//! instant is not offered: bindings keep their latest refresh only, so "bound at T" cannot be
//! answered exactly.)

use std::fmt::Write as _;
use std::net::IpAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::handlers::{call, conditional, etag_of, params, quote};
use super::{ApiError, AppState, ReadAccess};
use crate::model::Timestamp;
use crate::query::PoolIp;

/// nftables table the `nft` format replaces (separate from the blocklist export's
/// `inet poolwatch`, so both can be loaded).
pub const NFT_TABLE: &str = "poolwatch_bound";
/// ipset set names of the `ipset` format (`_v4`, `_v6`).
pub const IPSET_PREFIX: &str = "poolwatch_bound";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Nft,
    Ipset,
}

impl Format {
    const NAMES: &'static str = "text, json, nft, ipset";

    fn parse(s: Option<&str>) -> Result<Format, ApiError> {
        match s {
            None | Some("text") => Ok(Format::Text),
            Some("json") => Ok(Format::Json),
            Some("nft" | "nftables") => Ok(Format::Nft),
            Some("ipset") => Ok(Format::Ipset),
            Some(other) => Err(ApiError::invalid(
                "format",
                format!("{} is not one of {}", quote(other), Format::NAMES),
            )),
        }
    }
}

/// Which instant "currently bound" refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    Now,
    Latest,
}

fn parse_clock(s: Option<&str>) -> Result<Clock, ApiError> {
    match s {
        None | Some("now") => Ok(Clock::Now),
        Some("latest") => Ok(Clock::Latest),
        Some(t) => Err(ApiError::invalid(
            "at",
            format!("{} is not one of now, latest", quote(t)),
        )),
    }
}

pub async fn export_pool_ips(
    _: ReadAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q, &["format", "at"])?;
    let format = Format::parse(p.get("format").map(String::as_str))?;
    let clock = parse_clock(p.get("at").map(String::as_str))?;
    let (at, mut ips) = call(&state, move |b| {
        let at = match clock {
            Clock::Now => Timestamp::now(),
            Clock::Latest => {
                // Every stored binding (none expires before the epoch), for the newest time.
                let all = b.pool_ips(Timestamp(0))?;
                all.iter()
                    .map(|p| p.last_seen)
                    .max()
                    .unwrap_or_else(Timestamp::now)
            }
        };
        Ok((at, b.pool_ips(at)?))
    })
    .await?;
    ips.sort_by_key(|p| p.ip);
    ips.dedup_by_key(|p| p.ip);
    let (body, ctype) = match format {
        Format::Json => {
            let v = serde_json::to_vec(&json!({ "at": at, "items": ips })).map_err(|e| {
                tracing::error!(error = %e, "cannot serialise pool IPs");
                ApiError::Internal
            })?;
            (v, "application/json")
        }
        Format::Text => {
            let mut out = String::with_capacity(ips.len() * 16);
            for p in &ips {
                let _ = writeln!(out, "{}", p.ip);
            }
            (out.into_bytes(), "text/plain; charset=utf-8")
        }
        Format::Nft => (nft(&ips, at).into_bytes(), "text/plain; charset=utf-8"),
        Format::Ipset => (ipset(&ips, at).into_bytes(), "text/plain; charset=utf-8"),
    };
    let etag = etag_of(&body);
    Ok(conditional(&headers, &etag, ctype, body))
}

/// Seconds until a binding expires, seen from `at` (at least 1: an element with timeout 0 would
/// never expire).
fn timeout_secs(p: &PoolIp, at: Timestamp) -> i64 {
    let us = p.expires.as_micros().saturating_sub(at.as_micros());
    (us / 1_000_000).max(1)
}

fn split(ips: &[PoolIp]) -> (Vec<&PoolIp>, Vec<&PoolIp>) {
    ips.iter().partition(|p| matches!(p.ip, IpAddr::V4(_)))
}

/// An nftables script that replaces table `inet poolwatch_bound`.
fn nft(ips: &[PoolIp], at: Timestamp) -> String {
    let (v4, v6) = split(ips);
    let mut out = String::with_capacity(ips.len() * 40 + 1024);
    let _ = writeln!(
        out,
        "# poolwatch pool addresses bound at {}: {} IPv4, {} IPv6\n\
         # Load with `nft -f FILE`; replaces table inet {NFT_TABLE}. Elements time out when\n\
         # their binding expires; reload periodically (GET /api/v1/export/pool-ips?format=nft).",
        at.to_rfc3339(),
        v4.len(),
        v6.len()
    );
    let _ = writeln!(
        out,
        "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\ntable inet {NFT_TABLE} {{"
    );
    for (name, ty, list) in [
        ("bound_v4", "ipv4_addr", &v4),
        ("bound_v6", "ipv6_addr", &v6),
    ] {
        let _ = writeln!(
            out,
            "    set {name} {{\n        type {ty}\n        flags timeout"
        );
        if !list.is_empty() {
            let elems: Vec<String> = list
                .iter()
                .map(|p| format!("{} timeout {}s", p.ip, timeout_secs(p, at)))
                .collect();
            let _ = writeln!(
                out,
                "        elements = {{\n            {}\n        }}",
                elems.join(",\n            ")
            );
        }
        out.push_str("    }\n");
    }
    for hook in ["output", "forward"] {
        let _ = writeln!(
            out,
            "    chain {hook} {{\n        type filter hook {hook} priority filter; policy accept;\n        \
             ip daddr @bound_v4 counter drop\n        ip6 daddr @bound_v6 counter drop\n    }}"
        );
    }
    out.push_str("}\n");
    out
}

/// An `ipset restore` script: both sets created if missing, flushed and refilled.
fn ipset(ips: &[PoolIp], at: Timestamp) -> String {
    let (v4, v6) = split(ips);
    let mut out = String::with_capacity(ips.len() * 48 + 512);
    let _ = writeln!(
        out,
        "# poolwatch pool addresses bound at {}: {} IPv4, {} IPv6\n\
         # Load with `ipset restore -exist -f FILE` (sets {IPSET_PREFIX}_v4, {IPSET_PREFIX}_v6;\n\
         # entries time out when their binding expires).",
        at.to_rfc3339(),
        v4.len(),
        v6.len()
    );
    for (suffix, family, list) in [("v4", "inet", &v4), ("v6", "inet6", &v6)] {
        let set = format!("{IPSET_PREFIX}_{suffix}");
        let _ = writeln!(
            out,
            "create {set} hash:ip family {family} timeout 0\nflush {set}"
        );
        for p in list.iter() {
            let _ = writeln!(out, "add {set} {} timeout {}", p.ip, timeout_secs(p, at));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str, expires: i64) -> PoolIp {
        PoolIp {
            ip: s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            pool_domains: vec!["supportxmr.com".into()],
            clients: 1,
            last_seen: Timestamp::from_secs(100),
            expires: Timestamp::from_secs(expires),
        }
    }

    #[test]
    fn formats_and_clocks_parse() {
        assert_eq!(Format::parse(None).ok(), Some(Format::Text));
        assert_eq!(Format::parse(Some("nftables")).ok(), Some(Format::Nft));
        assert!(Format::parse(Some("iptables")).is_err());
        assert_eq!(parse_clock(Some("latest")).ok(), Some(Clock::Latest));
        assert!(parse_clock(Some("100")).is_err());
    }

    #[test]
    fn ipset_lines_carry_the_remaining_ttl() {
        let text = ipset(
            &[ip("203.0.113.10", 400), ip("2001:db8::1", 100)],
            Timestamp::from_secs(100),
        );
        assert!(text.contains("add poolwatch_bound_v4 203.0.113.10 timeout 300\n"));
        // Expiring right now still gets one second, never `timeout 0` (= permanent).
        assert!(text.contains("add poolwatch_bound_v6 2001:db8::1 timeout 1\n"));
        assert!(text.contains("create poolwatch_bound_v6 hash:ip family inet6 timeout 0\n"));
    }
}
