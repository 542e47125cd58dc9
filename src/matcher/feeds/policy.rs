//! What feeds may reach: the [`FeedPolicy`] (public addresses only and no files by default),
//! checked before every request and redirect (literal addresses), after resolution
//! ([`GuardedResolver`], names) and for `file://` paths (below `file_roots`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use super::file_path;

/// What feeds may fetch (`[feeds]` in the configuration; see `docs/security.md`).
///
/// By default a feed reaches only public addresses and no local file: an admin token (or a
/// configuration typo) must not turn the feed fetcher into a way to read local files or to
/// reach services that trust the host's network position (cloud metadata at 169.254.169.254,
/// admin panels on loopback, the internal network).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedPolicy {
    /// Allow loopback, link-local, private, shared (CGNAT), multicast and reserved addresses.
    pub allow_private: bool,
    /// Directories `file://` feeds may read from (symlinks resolved); empty: no `file://` feed.
    pub file_roots: Vec<PathBuf>,
    /// Hosts (as written in the URL: a name or a literal address) that may be private even
    /// when `allow_private` is off, e.g. an internal list server.
    pub allow_hosts: Vec<String>,
}

impl FeedPolicy {
    /// Everything allowed (tests and embedders that serve feeds from loopback or temp dirs).
    pub fn permissive(file_roots: Vec<PathBuf>) -> Self {
        FeedPolicy {
            allow_private: true,
            file_roots,
            allow_hosts: Vec::new(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        self.allow_hosts.iter().any(|a| {
            a.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(h)
        })
    }
}

/// Whether a feed may not connect to `ip` without `allow_private`: every address that is not
/// globally routable unicast. IPv4-mapped, IPv4-compatible and NAT64 IPv6 forms are judged by
/// the IPv4 address inside.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let seg = v6.segments();
            // ::a.b.c.d (deprecated IPv4-compatible) and 64:ff9b::a.b.c.d (NAT64).
            let embedded = Ipv4Addr::new(
                (seg[6] >> 8) as u8,
                seg[6] as u8,
                (seg[7] >> 8) as u8,
                seg[7] as u8,
            );
            if seg[..6] == [0, 0, 0, 0, 0, 0] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return v6.is_unspecified() || v6.is_loopback() || private_v4(embedded);
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (seg[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (seg[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard-only 100::/64
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_unspecified()
        || o[0] == 0 // 0.0.0.0/8 "this network" (0.0.0.0 reaches the local host on Linux)
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared address space (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 IETF protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // documentation
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
        || ip.is_multicast()
        || o[0] >= 240 // reserved and broadcast
}

/// Checks a URL's host against the policy before any connection: a literal address (in any
/// form the URL parser accepts — `2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]` all arrive here
/// as 127.0.0.1) must be public unless allowed. Names are checked after resolution by
/// [`GuardedResolver`].
pub(crate) fn check_http_target(url: &reqwest::Url, policy: &FeedPolicy) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" => {}
        _ => return Err("only http and https URLs may be fetched".into()),
    }
    let host = url.host_str().unwrap_or("");
    if policy.allow_private || policy.host_allowed(host) {
        return Ok(());
    }
    // The URL parser normalises every IPv4 spelling to dotted decimal and IPv6 to its
    // bracketed canonical form, so parsing the host string sees each literal address.
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    match ip {
        Some(ip) if is_private_address(ip) => Err(private_refusal()),
        _ => Ok(()),
    }
}

fn private_refusal() -> String {
    "refused: the address is loopback, link-local, private or reserved \
     (set feeds.allow_private = true, or list the host in feeds.allow_hosts)"
        .into()
}

/// DNS for feed downloads: resolves once with the system resolver and hands reqwest only the
/// addresses the policy allows, so the connection goes to a checked address (no second lookup
/// that could answer differently).
#[derive(Clone, Debug)]
pub(crate) struct GuardedResolver {
    pub(super) policy: Arc<FeedPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?
                .collect();
            let open = policy.allow_private || policy.host_allowed(&host);
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| open || !is_private_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(private_refusal().into());
            }
            let it: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(it)
        })
    }
}

/// The `file://` path, if it lies inside one of the policy's roots (both sides with symlinks
/// resolved, so `..` and links cannot leave a root).
pub(crate) fn check_file_target(url: &str, policy: &FeedPolicy) -> Result<PathBuf, String> {
    let path = file_path(url)?;
    if policy.file_roots.is_empty() {
        return Err(
            "file:// feeds are disabled (list allowed directories in feeds.file_roots)".into(),
        );
    }
    let real =
        std::fs::canonicalize(&path).map_err(|e| format!("{}: {}", path.display(), io_kind(&e)))?;
    let inside = policy
        .file_roots
        .iter()
        .any(|root| std::fs::canonicalize(root).is_ok_and(|r| real.starts_with(r)));
    if inside {
        Ok(real)
    } else {
        Err(format!(
            "{} is outside feeds.file_roots; file:// feeds may only read from there",
            path.display()
        ))
    }
}

/// An I/O error as its kind only (the OS message may quote nothing, but keep it uniform).
fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_in_every_form() {
        for private in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(is_private_address(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_private_address(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn literal_targets_are_checked_without_connecting() {
        let strict = FeedPolicy::default();
        for url in [
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://0177.0.0.1/x",
            "http://127.1/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://0/x",
            "http://[::]/x",
            "http://[fe80::1]/x",
            "http://[fc00::1]/x",
            "http://100.64.1.1/x",
            "http://10.0.0.1/x",
            "https://192.168.0.1/x",
        ] {
            let u = reqwest::Url::parse(url).unwrap();
            assert!(check_http_target(&u, &strict).is_err(), "{url}");
            assert!(check_http_target(&u, &FeedPolicy::permissive(Vec::new())).is_ok());
        }
        let named = reqwest::Url::parse("https://lists.example.org/pools.txt").unwrap();
        assert!(
            check_http_target(&named, &strict).is_ok(),
            "names are checked after DNS"
        );
        let ftp = reqwest::Url::parse("ftp://example.org/x").unwrap();
        assert!(check_http_target(&ftp, &strict).is_err());
        let allow = FeedPolicy {
            allow_hosts: vec!["10.0.0.5".into(), "[fd00::5]".into()],
            ..FeedPolicy::default()
        };
        let ok = reqwest::Url::parse("http://10.0.0.5:8080/x").unwrap();
        assert!(check_http_target(&ok, &allow).is_ok());
        let ok6 = reqwest::Url::parse("http://[fd00::5]/x").unwrap();
        assert!(check_http_target(&ok6, &allow).is_ok());
        let other = reqwest::Url::parse("http://10.0.0.6/x").unwrap();
        assert!(check_http_target(&other, &allow).is_err());
    }
}
