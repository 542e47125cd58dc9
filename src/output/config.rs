//! Output configuration: `[[output]]` tables of the config file and the repeatable
//! `serve --output TYPE:TARGET[,key=value…]` flag, validated into [`OutputSettings`].
//!
//! ```toml
//! [[output]]
//! type = "syslog"
//! name = "sentinel"
//! address = "tcp://127.0.0.1:514"
//! format = "cef"
//! min_stage = "connection_attempt"
//! ```
//!
//! Every key and its default: `poolwatch.example.toml` and `docs/outputs.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Format, Policy, RateLimit, DEFAULT_MAX_BACKLOG, DEFAULT_MAX_BACKLOG_BYTES};
use crate::model::Stage;
use crate::store::outbox::MAX_SINK_NAME_LEN;
use crate::store::OutboxLimits;
use crate::util::{parse_duration_secs, DurationSpec, Secret};

/// Most sinks configured at once (each has a task, an outbox and metrics series).
pub const MAX_OUTPUTS: usize = 32;
/// Largest configurable outbox (records).
pub const MAX_MAX_BACKLOG: u64 = 10_000_000;
/// Smallest configurable outbox (bytes): one large record must fit.
pub const MIN_MAX_BACKLOG_BYTES: u64 = 64 * 1024;
/// Largest configurable outbox (bytes): 16 GiB.
pub const MAX_MAX_BACKLOG_BYTES: u64 = 16 << 30;
/// Default webhook request deadline.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest webhook deadline accepted.
pub const MAX_WEBHOOK_TIMEOUT_SECS: u64 = 300;
/// Attempts for a record the receiver refuses for good (HTTP 400/413/422) before it is
/// dropped and counted. Transport errors and 5xx are retried until delivered.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
pub const MAX_MAX_RETRIES: u32 = 100;
/// Most custom webhook headers.
pub const MAX_HEADERS: usize = 32;
/// Longest webhook template (it is rendered per record).
pub const MAX_TEMPLATE_LEN: usize = 64 * 1024;
/// Longest RFC 5424 APP-NAME.
pub const MAX_APP_NAME_LEN: usize = 48;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Default rate-limit window.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);
/// Longest secret (HMAC key) accepted; shorter than 16 bytes is refused as guessable.
pub const MAX_SECRET_LEN: usize = 1024;
pub const MIN_SECRET_LEN: usize = 16;

/// One `[[output]]` table, as written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `file`, `syslog` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unique; used in metrics, the API and the outbox name (default: the type, numbered).
    pub name: Option<String>,
    pub format: Option<String>,
    pub min_stage: Option<String>,
    pub min_risk: Option<u8>,
    pub include_suppressed: Option<bool>,
    /// `new`, `upgrade`, `update` (default `["new", "upgrade"]`).
    pub on: Option<Vec<String>>,
    /// At most this many records per `rate_limit_window` (default: no limit).
    pub rate_limit: Option<u32>,
    pub rate_limit_window: Option<DurationSpec>,
    pub max_backlog: Option<u64>,
    pub max_backlog_bytes: Option<u64>,
    /// `observer.name` / EVE `host` (default: the host name).
    pub observer_name: Option<String>,
    // file
    pub path: Option<PathBuf>,
    /// `batch` (fsync before acknowledging each batch, default) or `never`.
    pub fsync: Option<String>,
    // syslog
    pub address: Option<String>,
    pub facility: Option<String>,
    pub app_name: Option<String>,
    /// PEM CA bundle for TLS (syslog `tls://`, webhook `https://`); default: the public roots.
    pub ca_file: Option<PathBuf>,
    /// TLS server name when it differs from the address's host.
    pub server_name: Option<String>,
    // webhook
    pub url: Option<Secret>,
    pub secret: Option<Secret>,
    pub headers: Option<BTreeMap<String, Secret>>,
    pub template: Option<String>,
    pub timeout: Option<DurationSpec>,
    pub max_retries: Option<u32>,
}

impl OutputConfig {
    /// Makes relative paths relative to the config file's directory.
    pub fn rebase(&mut self, dir: &Path) {
        for p in [self.path.as_mut(), self.ca_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }
}

/// Which transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    File,
    Syslog,
    Webhook,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Syslog => "syslog",
            SinkKind::Webhook => "webhook",
        }
    }
}

/// File sink durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// fsync before a batch is acknowledged (survives power loss).
    Batch,
    /// Written to the OS only (survives a poolwatch crash, not a power loss).
    Never,
}

/// Syslog transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    Udp,
    Tcp,
    Tls,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyslogTarget {
    pub transport: SyslogTransport,
    pub host: String,
    pub port: u16,
    /// RFC 5424 facility number (0–23).
    pub facility: u8,
    pub app_name: String,
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookTarget {
    /// Redacted when printed: chat webhook URLs carry their secret in the path.
    pub url: Secret,
    pub secret: Option<Secret>,
    pub headers: Vec<(String, Secret)>,
    pub template: Option<String>,
    #[serde(serialize_with = "ser_secs")]
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    File { path: PathBuf, fsync: Fsync },
    Syslog(SyslogTarget),
    Webhook(WebhookTarget),
}

/// One validated sink.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputSettings {
    pub name: String,
    pub format: Format,
    pub policy: Policy,
    pub rate_limit: Option<RateLimit>,
    #[serde(serialize_with = "ser_limits")]
    pub limits: OutboxLimits,
    pub observer_name: Option<String>,
    /// Attempts for a record the receiver refuses for good.
    pub max_retries: u32,
    pub target: Target,
}

fn ser_limits<S: serde::Serializer>(l: &OutboxLimits, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("OutboxLimits", 2)?;
    st.serialize_field("max_backlog", &l.max_records)?;
    st.serialize_field("max_backlog_bytes", &l.max_bytes)?;
    st.end()
}

impl OutputSettings {
    pub fn kind(&self) -> SinkKind {
        match self.target {
            Target::File { .. } => SinkKind::File,
            Target::Syslog(_) => SinkKind::Syslog,
            Target::Webhook(_) => SinkKind::Webhook,
        }
    }

    /// The format as the config spells it (syslog's poolwatch JSON is `json`).
    pub fn format_name(&self) -> &'static str {
        match (self.kind(), self.format) {
            (SinkKind::Syslog, Format::Poolwatch) => "json",
            (_, f) => f.as_str(),
        }
    }
}

/// Whether `name` is a valid sink name: `[a-z0-9._-]`, starting alphanumeric, at most
/// [`MAX_SINK_NAME_LEN`] bytes (it names an outbox tree and a metrics label).
pub fn is_valid_sink_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SINK_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Option keys accepted after the target in `--output TYPE:TARGET,key=value,…`.
const FLAG_KEYS: &[&str] = &[
    "format",
    "name",
    "min_stage",
    "min_risk",
    "include_suppressed",
    "on",
    "rate_limit",
    "rate_limit_window",
    "max_backlog",
    "max_backlog_bytes",
    "fsync",
    "facility",
    "app_name",
    "ca_file",
    "server_name",
    "secret",
    "timeout",
    "max_retries",
    "observer_name",
];

/// Parses one `--output` value: `file:PATH[,format=ecs]`, `syslog:tcp://HOST:PORT[,format=cef]`,
/// `webhook:URL[,secret=…]`. Options start at the first `,key=` with a known key, so a path or
/// URL may itself contain commas. `on` takes `+`-separated kinds (`on=new+upgrade+update`).
pub fn parse_flag(spec: &str) -> Result<OutputConfig, String> {
    let (kind, rest) = spec
        .split_once(':')
        .ok_or_else(|| format!("{spec:?} must be file:PATH, syslog:ADDRESS or webhook:URL"))?;
    let mut cut = rest.len();
    for (i, _) in rest.match_indices(',') {
        let tail = rest.get(i + 1..).unwrap_or("");
        if FLAG_KEYS
            .iter()
            .any(|k| tail.strip_prefix(k).is_some_and(|t| t.starts_with('=')))
        {
            cut = i;
            break;
        }
    }
    let target = rest.get(..cut).unwrap_or("");
    let opts = rest.get(cut..).unwrap_or("");
    let mut c = OutputConfig {
        kind: kind.to_string(),
        ..OutputConfig::default()
    };
    match kind {
        "file" => c.path = Some(PathBuf::from(target)),
        "syslog" => c.address = Some(target.to_string()),
        "webhook" => c.url = Some(Secret::new(target)),
        other => {
            return Err(format!(
                "unknown output type {other:?} (file, syslog or webhook)"
            ))
        }
    }
    // Split the options on `,key=` boundaries only (values may contain commas).
    let mut pieces: Vec<&str> = Vec::new();
    let mut start = 0usize;
    let body = opts.strip_prefix(',').unwrap_or(opts);
    for (i, _) in body.match_indices(',') {
        let tail = body.get(i + 1..).unwrap_or("");
        if FLAG_KEYS
            .iter()
            .any(|k| tail.strip_prefix(k).is_some_and(|t| t.starts_with('=')))
        {
            pieces.push(body.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    if !body.is_empty() {
        pieces.push(body.get(start..).unwrap_or(""));
    }
    for p in pieces {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("option {p:?} must be key=value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}={v:?} is not a number"))
        };
        match k {
            "format" => c.format = Some(v.into()),
            "name" => c.name = Some(v.into()),
            "min_stage" => c.min_stage = Some(v.into()),
            "min_risk" => {
                c.min_risk =
                    Some(u8::try_from(num(v)?).map_err(|_| format!("min_risk={v} is over 255"))?)
            }
            "include_suppressed" => {
                c.include_suppressed = Some(match v {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" => false,
                    _ => return Err(format!("include_suppressed={v:?} is not true/false")),
                })
            }
            "on" => c.on = Some(v.split('+').map(str::to_string).collect()),
            "rate_limit" => {
                c.rate_limit = Some(
                    u32::try_from(num(v)?).map_err(|_| format!("rate_limit={v} is too large"))?,
                )
            }
            "rate_limit_window" => c.rate_limit_window = Some(DurationSpec::Text(v.into())),
            "max_backlog" => c.max_backlog = Some(num(v)?),
            "max_backlog_bytes" => c.max_backlog_bytes = Some(num(v)?),
            "fsync" => c.fsync = Some(v.into()),
            "facility" => c.facility = Some(v.into()),
            "app_name" => c.app_name = Some(v.into()),
            "ca_file" => c.ca_file = Some(PathBuf::from(v)),
            "server_name" => c.server_name = Some(v.into()),
            "secret" => c.secret = Some(Secret::new(v)),
            "timeout" => c.timeout = Some(DurationSpec::Text(v.into())),
            "max_retries" => {
                c.max_retries = Some(
                    u32::try_from(num(v)?).map_err(|_| format!("max_retries={v} is too large"))?,
                )
            }
            "observer_name" => c.observer_name = Some(v.into()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(c)
}

const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("console", 14),
    ("solaris-cron", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Default syslog facility: `local0` (site-defined, the usual home of security appliances).
pub const DEFAULT_FACILITY: u8 = 16;

fn parse_facility(s: &str) -> Result<u8, String> {
    if let Some((_, n)) = FACILITIES.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        return Ok(*n);
    }
    match s.parse::<u8>() {
        Ok(n) if n <= 23 => Ok(n),
        _ => Err(format!(
            "facility {s:?} is not a syslog facility (local0…local7, auth, daemon, … or 0–23)"
        )),
    }
}

/// `udp://HOST:PORT`, `tcp://HOST:PORT`, `tls://HOST:PORT` (port default 514, TLS 6514; an
/// IPv6 host in brackets).
fn parse_syslog_address(s: &str) -> Result<(SyslogTransport, String, u16), String> {
    let (t, rest) = s.split_once("://").ok_or_else(|| {
        format!("{s:?} must be udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT")
    })?;
    let transport = match t {
        "udp" => SyslogTransport::Udp,
        "tcp" => SyslogTransport::Tcp,
        "tls" => SyslogTransport::Tls,
        other => {
            return Err(format!(
                "syslog transport {other:?} must be udp, tcp or tls"
            ))
        }
    };
    let default_port = if transport == SyslogTransport::Tls {
        6514
    } else {
        514
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed [ in the address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("{s:?}: bad port"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("{s:?}: junk after the address")),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("{s:?}: bad port {p:?}"))?,
            ),
            None => (rest.to_string(), default_port),
        }
    };
    let ok_host = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b));
    if !ok_host || port == 0 {
        return Err(format!("{s:?}: bad host or port"));
    }
    Ok((transport, host, port))
}

fn validate_url(u: &str) -> Result<(), String> {
    let lower = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err("a webhook url must start with http:// or https://".into());
    }
    if u.len() > MAX_URL_LEN || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "a webhook url must be at most {MAX_URL_LEN} characters without spaces"
        ));
    }
    reqwest::Url::parse(u)
        .map(|_| ())
        .map_err(|e| format!("webhook url: {e}"))
}

/// Validates every table; `origin` names where they came from in error messages. Names must
/// be unique; a missing name is the type, numbered from the second one (`webhook-2`).
pub fn validate_all(cfgs: &[OutputConfig]) -> Result<Vec<OutputSettings>, (usize, String)> {
    if cfgs.len() > MAX_OUTPUTS {
        return Err((0, format!("at most {MAX_OUTPUTS} outputs")));
    }
    let mut out: Vec<OutputSettings> = Vec::with_capacity(cfgs.len());
    for (i, c) in cfgs.iter().enumerate() {
        let mut s = validate(c).map_err(|m| (i, m))?;
        if c.name.is_none() {
            let base = s.kind().as_str();
            let mut n = 1;
            let mut name = base.to_string();
            while out.iter().any(|o| o.name == name)
                || cfgs
                    .iter()
                    .any(|o| o.name.as_deref() == Some(name.as_str()))
            {
                n += 1;
                name = format!("{base}-{n}");
            }
            s.name = name;
        }
        if out.iter().any(|o| o.name == s.name) {
            return Err((i, format!("two outputs are named {:?}", s.name)));
        }
        out.push(s);
    }
    Ok(out)
}

fn validate(c: &OutputConfig) -> Result<OutputSettings, String> {
    let kind = match c.kind.as_str() {
        "file" => SinkKind::File,
        "syslog" => SinkKind::Syslog,
        "webhook" => SinkKind::Webhook,
        other => {
            return Err(format!(
                "type {other:?} must be \"file\", \"syslog\" or \"webhook\""
            ))
        }
    };
    let name = match &c.name {
        Some(n) if !is_valid_sink_name(n) => {
            return Err(format!(
            "name {n:?} must be [a-z0-9._-], start alphanumeric, at most {MAX_SINK_NAME_LEN} bytes"
        ))
        }
        Some(n) => n.clone(),
        None => kind.as_str().to_string(),
    };
    let only = |key: &str, set: bool, kinds: &[SinkKind]| -> Result<(), String> {
        if set && !kinds.contains(&kind) {
            return Err(format!(
                "`{key}` does not apply to a {} output",
                kind.as_str()
            ));
        }
        Ok(())
    };
    only("path", c.path.is_some(), &[SinkKind::File])?;
    only("fsync", c.fsync.is_some(), &[SinkKind::File])?;
    only("address", c.address.is_some(), &[SinkKind::Syslog])?;
    only("facility", c.facility.is_some(), &[SinkKind::Syslog])?;
    only("app_name", c.app_name.is_some(), &[SinkKind::Syslog])?;
    only("server_name", c.server_name.is_some(), &[SinkKind::Syslog])?;
    only("url", c.url.is_some(), &[SinkKind::Webhook])?;
    only("secret", c.secret.is_some(), &[SinkKind::Webhook])?;
    only("headers", c.headers.is_some(), &[SinkKind::Webhook])?;
    only("template", c.template.is_some(), &[SinkKind::Webhook])?;
    only("timeout", c.timeout.is_some(), &[SinkKind::Webhook])?;
    only(
        "ca_file",
        c.ca_file.is_some(),
        &[SinkKind::Syslog, SinkKind::Webhook],
    )?;

    let format = match (kind, c.format.as_deref()) {
        (SinkKind::Webhook, None) if c.template.is_some() => Format::Template,
        (_, None) => Format::Poolwatch,
        (SinkKind::File, Some(f)) => match f {
            "poolwatch" => Format::Poolwatch,
            "ecs" => Format::Ecs,
            "eve" => Format::Eve,
            _ => return Err(format!("file format {f:?} must be poolwatch, ecs or eve")),
        },
        (SinkKind::Webhook, Some(f)) => match f {
            "poolwatch" => Format::Poolwatch,
            "ecs" => Format::Ecs,
            "eve" => Format::Eve,
            "slack" => Format::Slack,
            "template" => Format::Template,
            _ => {
                return Err(format!(
                    "webhook format {f:?} must be poolwatch, ecs, eve, slack or template"
                ))
            }
        },
        (SinkKind::Syslog, Some(f)) => match f {
            "json" => Format::Poolwatch,
            "cef" => Format::Cef,
            "leef" => Format::Leef,
            _ => return Err(format!("syslog format {f:?} must be json, cef or leef")),
        },
    };
    if format == Format::Template {
        match &c.template {
            None => return Err("format \"template\" needs a `template`".into()),
            Some(t) if t.len() > MAX_TEMPLATE_LEN => {
                return Err(format!("template longer than {MAX_TEMPLATE_LEN} bytes"))
            }
            Some(t) => super::webhook::check_template(t)?,
        }
    } else if c.template.is_some() {
        return Err("`template` needs format = \"template\" (or no format)".into());
    }

    let mut policy = Policy::default();
    if let Some(s) = &c.min_stage {
        policy.min_stage = Stage::parse(s).ok_or_else(|| {
            format!(
                "min_stage {s:?} must be one of {}",
                Stage::ALL.map(|s| s.as_str()).join(", ")
            )
        })?;
    }
    if let Some(r) = c.min_risk {
        if r > 100 {
            return Err("min_risk must be 0 to 100".into());
        }
        policy.min_risk = r;
    }
    policy.include_suppressed = c.include_suppressed.unwrap_or(false);
    if let Some(on) = &c.on {
        if on.is_empty() {
            return Err("`on` needs at least one of new, upgrade, update".into());
        }
        policy.on_new = false;
        policy.on_upgrade = false;
        policy.on_update = false;
        for k in on {
            match k.as_str() {
                "new" => policy.on_new = true,
                "upgrade" => policy.on_upgrade = true,
                "update" => policy.on_update = true,
                other => {
                    return Err(format!(
                        "`on` value {other:?} must be new, upgrade or update"
                    ))
                }
            }
        }
    }
    let rate_limit = match c.rate_limit {
        None | Some(0) if c.rate_limit_window.is_some() => {
            return Err("`rate_limit_window` needs a `rate_limit`".into())
        }
        None | Some(0) => None,
        Some(limit) => {
            let window = match &c.rate_limit_window {
                Some(DurationSpec::Secs(n)) => Duration::from_secs(*n),
                Some(DurationSpec::Text(t)) => Duration::from_secs(parse_duration_secs(t)?),
                None => DEFAULT_RATE_WINDOW,
            };
            if window.is_zero() || window.as_secs() > 86_400 {
                return Err("rate_limit_window must be 1 s to 1 day".into());
            }
            Some(RateLimit { limit, window })
        }
    };
    let max_records = c.max_backlog.unwrap_or(DEFAULT_MAX_BACKLOG);
    if max_records == 0 || max_records > MAX_MAX_BACKLOG {
        return Err(format!("max_backlog must be 1 to {MAX_MAX_BACKLOG}"));
    }
    let max_bytes = c.max_backlog_bytes.unwrap_or(DEFAULT_MAX_BACKLOG_BYTES);
    if !(MIN_MAX_BACKLOG_BYTES..=MAX_MAX_BACKLOG_BYTES).contains(&max_bytes) {
        return Err(format!(
            "max_backlog_bytes must be {MIN_MAX_BACKLOG_BYTES} to {MAX_MAX_BACKLOG_BYTES}"
        ));
    }
    let max_retries = c.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
    if max_retries > MAX_MAX_RETRIES {
        return Err(format!("max_retries must be 0 to {MAX_MAX_RETRIES}"));
    }
    if let Some(o) = &c.observer_name {
        if o.is_empty() || o.len() > 255 || o.chars().any(char::is_control) {
            return Err("observer_name must be 1 to 255 printable characters".into());
        }
    }
    if let Some(p) = &c.ca_file {
        if !p.is_file() {
            return Err(format!("ca_file {} is not a readable file", p.display()));
        }
    }

    let target = match kind {
        SinkKind::File => {
            let path = c
                .path
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or("a file output needs a `path`")?;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(d) = dir {
                if !d.is_dir() {
                    return Err(format!("directory {} does not exist", d.display()));
                }
            }
            let fsync = match c.fsync.as_deref() {
                None | Some("batch") => Fsync::Batch,
                Some("never") => Fsync::Never,
                Some(o) => return Err(format!("fsync {o:?} must be batch or never")),
            };
            Target::File { path, fsync }
        }
        SinkKind::Syslog => {
            let addr = c
                .address
                .as_deref()
                .ok_or("a syslog output needs an `address` (udp://, tcp:// or tls://HOST:PORT)")?;
            let (transport, host, port) = parse_syslog_address(addr)?;
            let facility = match &c.facility {
                Some(f) => parse_facility(f)?,
                None => DEFAULT_FACILITY,
            };
            let app_name = c.app_name.clone().unwrap_or_else(|| "poolwatch".into());
            if app_name.is_empty()
                || app_name.len() > MAX_APP_NAME_LEN
                || !app_name.bytes().all(|b| (33..=126).contains(&b))
            {
                return Err(format!(
                    "app_name must be 1 to {MAX_APP_NAME_LEN} printable ASCII characters without spaces"
                ));
            }
            if (c.ca_file.is_some() || c.server_name.is_some()) && transport != SyslogTransport::Tls
            {
                return Err("ca_file/server_name need a tls:// address".into());
            }
            Target::Syslog(SyslogTarget {
                transport,
                host,
                port,
                facility,
                app_name,
                ca_file: c.ca_file.clone(),
                server_name: c.server_name.clone(),
            })
        }
        SinkKind::Webhook => {
            let url = c.url.clone().ok_or("a webhook output needs a `url`")?;
            validate_url(url.expose())?;
            if let Some(s) = &c.secret {
                let n = s.expose().len();
                if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&n) {
                    return Err(format!(
                        "secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes"
                    ));
                }
            }
            let mut headers = Vec::new();
            for (k, v) in c.headers.iter().flatten() {
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(v.expose()).is_err()
                {
                    return Err(format!("header {k:?} is not a valid HTTP header"));
                }
                headers.push((k.clone(), v.clone()));
            }
            if headers.len() > MAX_HEADERS {
                return Err(format!("at most {MAX_HEADERS} headers"));
            }
            let timeout = match &c.timeout {
                Some(DurationSpec::Secs(n)) => *n,
                Some(DurationSpec::Text(t)) => parse_duration_secs(t)?,
                None => DEFAULT_WEBHOOK_TIMEOUT.as_secs(),
            };
            if timeout == 0 || timeout > MAX_WEBHOOK_TIMEOUT_SECS {
                return Err(format!(
                    "timeout must be 1 to {MAX_WEBHOOK_TIMEOUT_SECS} seconds"
                ));
            }
            Target::Webhook(WebhookTarget {
                url,
                secret: c.secret.clone(),
                headers,
                template: c.template.clone(),
                timeout: Duration::from_secs(timeout),
                ca_file: c.ca_file.clone(),
            })
        }
    };
    Ok(OutputSettings {
        name,
        format,
        policy,
        rate_limit,
        limits: OutboxLimits {
            max_records,
            max_bytes,
        },
        observer_name: c.observer_name.clone(),
        max_retries,
        target,
    })
}

#[cfg(test)]
mod tests;
