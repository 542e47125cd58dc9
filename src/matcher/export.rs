//! Exports of the compiled set for the blockers people run.
//!
//! Every format is written from the same unique entries: blocks (pool, browser miner, miner
//! proxy) and allows. Output is deterministic (sorted), so identical sets give identical files
//! and the RPZ serial only changes when the content does.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::{Blocklists, Target};
use crate::model::{Category, ListHit};

/// Origin the RPZ export is written for; owner names are relative, so the zone loads under any
/// origin, but names are skipped when they would not fit under this one.
pub const RPZ_ORIGIN: &str = "rpz.poolwatch.";

/// An export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// BIND/Unbound Response Policy Zone: `d CNAME .`, `*.d CNAME .`, `rpz-passthru.` allows.
    Rpz,
    /// `0.0.0.0 d` (hosts files cannot cover subdomains).
    Hosts,
    /// `address=/d/` (NXDOMAIN for d and subdomains); allows as `server=/a/#`.
    Dnsmasq,
    /// Unbound `local-zone: "d." always_nxdomain`; allows `always_transparent`.
    Unbound,
    /// AdBlock/uBlock `||d^`, `@@||d^`.
    Adblock,
    /// nftables table with address and endpoint sets and drop rules.
    Nftables,
    /// Suricata `string` dataset (base64 lines) of the listed names.
    SuricataDataset,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 7] = [
        ExportFormat::Rpz,
        ExportFormat::Hosts,
        ExportFormat::Dnsmasq,
        ExportFormat::Unbound,
        ExportFormat::Adblock,
        ExportFormat::Nftables,
        ExportFormat::SuricataDataset,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Rpz => "rpz",
            ExportFormat::Hosts => "hosts",
            ExportFormat::Dnsmasq => "dnsmasq",
            ExportFormat::Unbound => "unbound",
            ExportFormat::Adblock => "adblock",
            ExportFormat::Nftables => "nftables",
            ExportFormat::SuricataDataset => "suricata-dataset",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown export format `{}` (expected one of: {})",
                    super::normalize::clip(s),
                    ExportFormat::ALL.map(|f| f.as_str()).join(", ")
                )
            })
    }
}

/// Sorted block and allow domains.
fn split_names(b: &Blocklists) -> (Vec<&str>, Vec<&str>) {
    let mut block = Vec::new();
    let mut allow = Vec::new();
    for h in b.name_entries() {
        if h.category == Category::Allow {
            allow.push(h.entry.as_str());
        } else {
            block.push(h.entry.as_str());
        }
    }
    block.sort_unstable();
    allow.sort_unstable();
    (block, allow)
}

fn header(out: &mut String, comment: &str, b: &Blocklists, format: ExportFormat) {
    let s = b.stats();
    let _ = writeln!(
        out,
        "{comment} poolwatch blocklist export --format {format}: {} names, {} addresses from {} lists",
        s.domains,
        s.addresses,
        s.lists.len()
    );
    for l in &s.lists {
        let _ = writeln!(
            out,
            "{comment}   list {} ({}): {} entries",
            l.name, l.category, l.kept
        );
    }
}

pub(crate) fn export(b: &Blocklists, format: ExportFormat) -> String {
    let (block, allow) = split_names(b);
    let mut out = String::with_capacity((block.len() + allow.len()) * 40 + 256);
    match format {
        ExportFormat::Rpz => rpz(b, &block, &allow, &mut out),
        ExportFormat::Hosts => {
            header(&mut out, "#", b, format);
            for d in &block {
                let _ = writeln!(out, "0.0.0.0 {d}");
            }
        }
        ExportFormat::Dnsmasq => {
            header(&mut out, "#", b, format);
            for d in &block {
                let _ = writeln!(out, "address=/{d}/");
            }
            for a in &allow {
                let _ = writeln!(out, "server=/{a}/#");
            }
        }
        ExportFormat::Unbound => {
            header(&mut out, "#", b, format);
            out.push_str("server:\n");
            for d in &block {
                let _ = writeln!(out, "    local-zone: \"{d}.\" always_nxdomain");
            }
            for a in &allow {
                let _ = writeln!(out, "    local-zone: \"{a}.\" always_transparent");
            }
        }
        ExportFormat::Adblock => {
            out.push_str("[Adblock Plus 2.0]\n! Title: poolwatch mining-pool blocklist\n");
            header(&mut out, "!", b, format);
            for d in &block {
                let _ = writeln!(out, "||{d}^");
            }
            for a in &allow {
                let _ = writeln!(out, "@@||{a}^");
            }
        }
        ExportFormat::Nftables => nftables(b, &mut out),
        ExportFormat::SuricataDataset => {
            // Suricata string datasets are one base64 value a line, no comments.
            for d in &block {
                out.push_str(&base64(d.as_bytes()));
                out.push('\n');
            }
        }
    }
    out
}

fn rpz(b: &Blocklists, block: &[&str], allow: &[&str], out: &mut String) {
    let mut body = String::with_capacity(out.capacity());
    // Relative owner names must fit under the origin with a `*.` in front.
    let max = super::MAX_NAME_LEN.saturating_sub(RPZ_ORIGIN.len() + 2);
    let mut skipped = 0usize;
    for (names, target) in [(block, "."), (allow, "rpz-passthru.")] {
        for d in names {
            if d.len() > max {
                skipped += 1;
                continue;
            }
            let _ = writeln!(body, "{d} CNAME {target}\n*.{d} CNAME {target}");
        }
    }
    for h in b.ip_entries() {
        if let Some(owner) = rpz_ip_owner(h) {
            let target = if h.category == Category::Allow {
                "rpz-passthru."
            } else {
                "."
            };
            let _ = writeln!(body, "{owner} CNAME {target}");
        }
    }
    let digest = Sha256::digest(body.as_bytes());
    // Serial from the content: identical content, identical serial; any change, a new one.
    let [d0, d1, d2, d3, ..]: [u8; 32] = digest.into();
    let serial = u32::from_be_bytes([d0, d1, d2, d3]).max(1);
    let _ = writeln!(out, "; poolwatch RPZ (load with origin {RPZ_ORIGIN})");
    header(out, ";", b, ExportFormat::Rpz);
    if skipped > 0 {
        let _ = writeln!(
            out,
            "; {skipped} names too long for the origin were left out"
        );
    }
    let _ = writeln!(
        out,
        "$TTL 300\n@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 300 )\n  IN NS localhost."
    );
    out.push_str(&body);
}

/// `rpz-ip` trigger for an IPv4 address or block (`24.0.113.0.203.rpz-ip`); IPv6 triggers and
/// endpoints (ports) have no simple RPZ form and are left to the nftables export.
fn rpz_ip_owner(h: &ListHit) -> Option<String> {
    let net: IpNet = h
        .entry
        .parse()
        .ok()
        .or_else(|| h.entry.parse::<IpAddr>().ok().map(IpNet::from))?;
    let IpNet::V4(n) = net else { return None };
    let o = n.network().octets();
    Some(format!(
        "{}.{}.{}.{}.{}.rpz-ip",
        n.prefix_len(),
        o[3],
        o[2],
        o[1],
        o[0]
    ))
}

fn nftables(b: &Blocklists, out: &mut String) {
    header(out, "#", b, ExportFormat::Nftables);
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let mut allow4 = Vec::new();
    let mut allow6 = Vec::new();
    let mut ep4 = Vec::new();
    let mut ep6 = Vec::new();
    for h in b.ip_entries() {
        let allow = h.category == Category::Allow;
        let target = super::parse::parse_ip_token(&h.entry).and_then(Result::ok);
        match target {
            Some(Target::Net(n)) => match (n, allow) {
                (IpNet::V4(_), false) => v4.push(n),
                (IpNet::V6(_), false) => v6.push(n),
                (IpNet::V4(_), true) => allow4.push(n),
                (IpNet::V6(_), true) => allow6.push(n),
            },
            Some(Target::Endpoint(ip, port)) if !allow => match ip {
                IpAddr::V4(a) => ep4.push(format!("{a} . {port}")),
                IpAddr::V6(a) => ep6.push(format!("{a} . {port}")),
            },
            _ => {}
        }
    }
    ep4.sort();
    ep4.dedup();
    ep6.sort();
    ep6.dedup();
    out.push_str("# Load with `nft -f FILE`; replaces table inet poolwatch.\n");
    out.push_str("table inet poolwatch\ndelete table inet poolwatch\n");
    out.push_str("table inet poolwatch {\n");
    // Interval sets refuse overlapping elements: aggregate first.
    let sets: [(&str, &str, Vec<String>); 6] = [
        ("pool_v4", "ipv4_addr", nets(v4)),
        ("pool_v6", "ipv6_addr", nets(v6)),
        ("allow_v4", "ipv4_addr", nets(allow4)),
        ("allow_v6", "ipv6_addr", nets(allow6)),
        ("pool_v4_endpoints", "ipv4_addr . inet_service", ep4),
        ("pool_v6_endpoints", "ipv6_addr . inet_service", ep6),
    ];
    for (name, ty, elems) in &sets {
        let _ = writeln!(out, "    set {name} {{\n        type {ty}");
        if !ty.contains('.') {
            out.push_str("        flags interval\n");
        }
        if !elems.is_empty() {
            let _ = writeln!(
                out,
                "        elements = {{\n            {}\n        }}",
                elems.join(",\n            ")
            );
        }
        out.push_str("    }\n");
    }
    for (chain, hook) in [("output", "output"), ("forward", "forward")] {
        let _ = writeln!(
            out,
            "    chain {chain} {{\n        type filter hook {hook} priority filter; policy accept;\n        \
             ip daddr @allow_v4 accept\n        ip6 daddr @allow_v6 accept\n        \
             ip daddr . tcp dport @pool_v4_endpoints counter drop\n        \
             ip6 daddr . tcp dport @pool_v6_endpoints counter drop\n        \
             ip daddr @pool_v4 counter drop\n        ip6 daddr @pool_v6 counter drop\n    }}"
        );
    }
    out.push_str("}\n");
}

fn nets(v: Vec<IpNet>) -> Vec<String> {
    IpNet::aggregate(&v)
        .into_iter()
        .map(|n| {
            if n.prefix_len() == n.max_prefix_len() {
                n.addr().to_string()
            } else {
                n.to_string()
            }
        })
        .collect()
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
            c.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                // A 6-bit index into a 64-entry table: never out of range.
                let sextet = ((n >> (18 - 6 * i)) & 63) as usize;
                s.extend(T.get(sextet).map(|&c| char::from(c)));
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"supportxmr.com"), "c3VwcG9ydHhtci5jb20=");
    }
}
