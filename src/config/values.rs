//! Value parsers and checks shared by the resolution steps.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

pub(super) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    // A bare address means the default port; a bare `:port` means loopback.
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 8080));
    }
    if let Some(port) = s.strip_prefix(':') {
        if let Ok(p) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
        }
    }
    Err(format!(
        "{s:?} is not an address like 127.0.0.1:8080 or [::1]:8080"
    ))
}

/// `unix:PATH` or `tcp:IP:PORT`; a bare form is refused so that the intent is explicit.
pub(super) fn validate_dnstap(s: &str) -> Result<(), String> {
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() || p.len() > MAX_UNIX_PATH_LEN {
            return Err(format!(
                "unix socket path must be 1 to {MAX_UNIX_PATH_LEN} bytes"
            ));
        }
        return Ok(());
    }
    if let Some(a) = s.strip_prefix("tcp:") {
        return a
            .parse::<SocketAddr>()
            .map(|_| ())
            .map_err(|_| format!("{a:?} is not an address like 127.0.0.1:6000"));
    }
    Err(format!("{s:?} must be unix:PATH or tcp:ADDR:PORT"))
}

pub(super) fn validate_interface(i: &str) -> Result<(), String> {
    if i.is_empty() || i.len() > MAX_INTERFACE_LEN {
        return Err(format!(
            "interface name {i:?} must be 1 to {MAX_INTERFACE_LEN} characters"
        ));
    }
    if i.chars()
        .any(|c| c.is_whitespace() || c == '/' || c.is_control())
    {
        return Err(format!("interface name {i:?} contains invalid characters"));
    }
    Ok(())
}

pub(super) fn parse_ips(v: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let ip = s
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{s:?} is not an IP address"))?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// A `[[feeds]]` table or `--feed` flag, checked by the matcher's one subscription rule.
pub(super) fn validate_feed(fc: &FeedConfig) -> Result<FeedSettings, String> {
    let interval = fc.interval.as_ref().map(duration_secs).transpose()?;
    let sub = crate::matcher::feeds::check_subscription(
        &fc.url,
        fc.name.as_deref(),
        interval,
        fc.max_bytes,
    )
    .map_err(|e| e.to_string())?;
    Ok(FeedSettings {
        url: sub.url,
        name: sub.name,
        interval: Duration::from_secs(sub.interval_secs),
        max_bytes: sub.max_bytes,
    })
}

pub(super) fn token(
    cli: Option<Secret>,
    cli_file: Option<PathBuf>,
    file: Option<Secret>,
    file_file: Option<PathBuf>,
    (flag, env, key): (&str, &str, &str),
) -> Result<Option<Secret>, ConfigError> {
    let flag_file = format!("{flag}-file");
    let env_file = format!("{env}_FILE");
    let key_file = format!("{key}_file");
    let (secret, origin) = if let Some(s) = cli {
        (s, Origin::Cli { flag, env })
    } else if let Some(p) = cli_file {
        let o = Origin::Cli {
            flag: &flag_file,
            env: &env_file,
        };
        (read_token_file(&p).map_err(|m| o.err(m))?, o)
    } else if let Some(s) = file {
        (s, Origin::File { key })
    } else if let Some(p) = file_file {
        let o = Origin::File { key: &key_file };
        (read_token_file(&p).map_err(|m| o.err(m))?, o)
    } else {
        return Ok(None);
    };
    let t = secret.expose();
    if t.len() < MIN_TOKEN_LEN || t.len() > MAX_TOKEN_LEN {
        return Err(origin.err(format!(
            "a token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters"
        )));
    }
    // Tokens travel in an HTTP header: printable ASCII without spaces only.
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(origin.err("a token may contain only printable ASCII without spaces"));
    }
    Ok(Some(secret))
}

pub(super) fn read_token_file(p: &Path) -> Result<Secret, String> {
    let text = read_bounded(p, MAX_TOKEN_LEN as u64 + 2)
        .map_err(|e| format!("cannot read {}: {e}", p.display()))?
        .ok_or_else(|| format!("{} is too large for a token file", p.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// Reads at most `max` bytes of UTF-8 text; `Ok(None)` when the file is longer. Bounded by
/// reading, not by metadata, so that devices and FIFOs (`/dev/zero`) cannot make it read forever.
pub(super) fn read_bounded(p: &Path, max: u64) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    std::fs::File::open(p)?
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Ok(None);
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

pub(super) fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

pub(super) fn ser_opt_secs<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}
