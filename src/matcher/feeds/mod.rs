//! Remote list feeds: subscription settings, per-feed state, and the download itself
//! (`http`, `https` with conditional requests, `file`), bounded in size and time.
//!
//! What to do with a download (validate, compile, keep the last good copy) is the list
//! manager's job; this module knows nothing of it and only checks subscriptions and fetches.
//! It also owns the feed limits (interval, size) that the configuration and the API read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod policy;

pub(crate) use policy::{check_file_target, check_http_target, GuardedResolver};
pub use policy::{is_private_address, FeedPolicy};

use super::names::is_usable_list_name;
use super::MatcherError;
use crate::model::{Category, Timestamp};

/// Feed refresh interval when none is given.
pub const DEFAULT_FEED_INTERVAL_SECS: u64 = 6 * 3600;
/// Shortest feed interval: list publishers should not be polled more often than this.
pub const MIN_FEED_INTERVAL_SECS: u64 = 60;
/// Longest feed interval: one week.
pub const MAX_FEED_INTERVAL_SECS: u64 = 7 * 24 * 3600;
/// Default size limit of one feed download.
pub const DEFAULT_FEED_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest configurable feed size limit.
pub const MAX_FEED_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Deadline for one feed download (connect + headers + body): a list publisher that cannot
/// deliver a few MiB in this time is treated as unreachable and the last good copy stays.
pub const FEED_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline for the TCP/TLS connect alone, so a black-holed host fails fast.
pub const FEED_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most feeds one service subscribes to: each is a list in every rebuild and a file on disk.
pub const MAX_FEEDS: usize = 64;
/// Longest feed URL accepted (same bound as the configuration's).
pub const MAX_FEED_URL_LEN: usize = 2048;
/// Redirects followed per download: enough for a CDN hop or two, not a loop.
const MAX_REDIRECTS: usize = 5;
/// Longest error text kept in a feed's state (a hostile server cannot bloat it).
const MAX_ERROR_LEN: usize = 300;
/// Longest ETag / Last-Modified value kept and echoed back.
const MAX_VALIDATOR_LEN: usize = 256;
/// Most `feeds.file_roots` / `feeds.allow_hosts` entries (each is checked per download).
pub const MAX_FEED_POLICY_ENTRIES: usize = 64;

/// Where a subscription was made: in the configuration (read-only through the API) or through
/// the API (persisted in the user-lists directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedOrigin {
    Config,
    Api,
}

/// A subscription request (`POST /api/v1/feeds`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRequest {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub interval_secs: Option<u64>,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// A feed's subscription and its refresh history; persisted as `feeds/<name>.meta.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedState {
    pub name: String,
    pub url: String,
    pub interval_secs: u64,
    pub max_bytes: u64,
    pub category: Category,
    pub origin: FeedOrigin,
    /// Last download attempt (success or not).
    #[serde(default)]
    pub last_attempt: Option<Timestamp>,
    /// Last attempt that produced a usable answer (new content or "not modified").
    #[serde(default)]
    pub last_success: Option<Timestamp>,
    /// When the content last changed (the copy in use was downloaded).
    #[serde(default)]
    pub last_change: Option<Timestamp>,
    /// Why the last attempt failed; `None` after a success.
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Entries in the copy in use.
    #[serde(default)]
    pub entries: u64,
    /// Invalid lines dropped from the copy in use.
    #[serde(default)]
    pub invalid: u64,
    /// Size of the copy in use.
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    /// A good copy exists and is part of the running set.
    #[serde(default)]
    pub active: bool,
    /// The copy in use is older than the last attempt (the feed is failing).
    #[serde(default)]
    pub stale: bool,
    /// When the background task refreshes next.
    #[serde(default)]
    pub next_refresh: Option<Timestamp>,
}

impl FeedState {
    /// A feed from the configuration file (read-only through the API); its category comes from
    /// its name (`allow`/`white` → allow, `browser` → browser miner, `proxy` → miner proxy,
    /// else pool).
    pub fn new_configured(name: &str, url: &str, interval_secs: u64, max_bytes: u64) -> FeedState {
        FeedState::new(
            name.to_string(),
            url.to_string(),
            interval_secs,
            max_bytes,
            super::category_from_name(std::path::Path::new(name)),
            FeedOrigin::Config,
        )
    }

    pub(crate) fn new(
        name: String,
        url: String,
        interval_secs: u64,
        max_bytes: u64,
        category: Category,
        origin: FeedOrigin,
    ) -> Self {
        FeedState {
            name,
            url,
            interval_secs,
            max_bytes,
            category,
            origin,
            last_attempt: None,
            last_success: None,
            last_change: None,
            last_error: None,
            consecutive_failures: 0,
            entries: 0,
            invalid: 0,
            bytes: 0,
            etag: None,
            last_modified: None,
            active: false,
            stale: false,
            next_refresh: None,
        }
    }

    /// Records a failed attempt; the copy in use (if any) stays.
    pub(crate) fn failed(&mut self, now: Timestamp, error: &str) {
        self.last_attempt = Some(now);
        self.last_error = Some(clip_error(error));
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.stale = self.active;
        self.next_refresh = Some(now.plus_secs(retry_secs(self)));
    }

    /// Records a usable answer.
    pub(crate) fn succeeded(&mut self, now: Timestamp) {
        self.last_attempt = Some(now);
        self.last_success = Some(now);
        self.last_error = None;
        self.consecutive_failures = 0;
        self.stale = false;
        self.next_refresh = Some(now.plus_secs(i64::try_from(self.interval_secs).unwrap_or(0)));
    }
}

/// After a failure, retry sooner than the interval (a short outage should not cost a whole
/// interval), doubling from 5 minutes per consecutive failure, never later than the interval.
fn retry_secs(s: &FeedState) -> i64 {
    const FIRST_RETRY_SECS: u64 = 300;
    let shift = s.consecutive_failures.saturating_sub(1).min(10);
    let backoff = FIRST_RETRY_SECS.saturating_mul(1u64 << shift);
    i64::try_from(backoff.min(s.interval_secs)).unwrap_or(i64::MAX)
}

fn clip_error(e: &str) -> String {
    let mut out: String = e
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ERROR_LEN)
        .collect();
    if out.len() < e.len() && e.chars().count() > MAX_ERROR_LEN {
        out.push('…');
    }
    out
}

/// A checked subscription: what the configuration (`[[feeds]]`, `--feed`) and the API
/// (`POST /api/v1/feeds`) both reduce to, through [`check_subscription`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedSubscription {
    /// A usable list name (given, or derived from the URL).
    pub name: String,
    /// The URL, trimmed.
    pub url: String,
    pub interval_secs: u64,
    pub max_bytes: u64,
}

/// The one validation of a feed subscription, with the one set of limits: URL
/// ([`check_url`]), name (given, or [`default_feed_name`] of the URL), refresh interval
/// (`MIN_FEED_INTERVAL_SECS..=MAX_FEED_INTERVAL_SECS`, default
/// [`DEFAULT_FEED_INTERVAL_SECS`]) and size limit (`1..=MAX_FEED_MAX_BYTES`, default
/// [`DEFAULT_FEED_MAX_BYTES`]). The fetch policy is checked separately ([`FeedPolicy`]): at
/// subscription time through the API, at every download for all feeds.
pub fn check_subscription(
    url: &str,
    name: Option<&str>,
    interval_secs: Option<u64>,
    max_bytes: Option<u64>,
) -> Result<FeedSubscription, MatcherError> {
    let name = match name {
        Some(n) if is_usable_list_name(n) => n.to_string(),
        Some(n) => return Err(MatcherError::InvalidName(super::normalize::clip(n))),
        None => default_feed_name(url.trim()),
    };
    let url = url.trim().to_string();
    check_url(&url)?;
    let interval = interval_secs.unwrap_or(DEFAULT_FEED_INTERVAL_SECS);
    if !(MIN_FEED_INTERVAL_SECS..=MAX_FEED_INTERVAL_SECS).contains(&interval) {
        return Err(MatcherError::BadFeed(format!(
            "interval_secs must be {MIN_FEED_INTERVAL_SECS} to {MAX_FEED_INTERVAL_SECS} (got {interval})"
        )));
    }
    let max_bytes = max_bytes.unwrap_or(DEFAULT_FEED_MAX_BYTES);
    if max_bytes == 0 || max_bytes > MAX_FEED_MAX_BYTES {
        return Err(MatcherError::BadFeed(format!(
            "max_bytes must be 1 to {MAX_FEED_MAX_BYTES}"
        )));
    }
    Ok(FeedSubscription {
        name,
        url,
        interval_secs: interval,
        max_bytes,
    })
}

/// The list name of a feed that was given none: `https://example.org/lists/pools.txt` →
/// `feed-example.org-pools` (always a valid name; `feed` when nothing usable is left).
pub fn default_feed_name(url: &str) -> String {
    let rest = ["http://", "https://", "file://"]
        .iter()
        .find_map(|p| {
            url.get(..p.len())
                .filter(|h| h.eq_ignore_ascii_case(p))
                .and_then(|_| url.get(p.len()..))
        })
        .unwrap_or(url);
    let host = rest.split('/').next().unwrap_or("");
    let last = rest
        .rsplit('/')
        .next()
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let stem = last.split('.').next().unwrap_or("");
    let raw = format!("feed-{host}-{stem}").to_ascii_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(super::names::MAX_LIST_NAME_LEN);
    let trimmed = name.trim_end_matches(['-', '.']).to_string();
    if trimmed.is_empty() {
        "feed".into()
    } else {
        trimmed
    }
}

/// Checks a subscription request ([`check_subscription`], then the policy) and fills in
/// defaults.
pub(crate) fn validate_request(
    req: FeedRequest,
    origin: FeedOrigin,
    policy: &FeedPolicy,
) -> Result<FeedState, MatcherError> {
    if !is_usable_list_name(&req.name) {
        return Err(MatcherError::InvalidName(req.name));
    }
    let sub = check_subscription(&req.url, Some(&req.name), req.interval_secs, req.max_bytes)?;
    check_policy(&sub.url, policy)?;
    let category = req.category.unwrap_or(Category::Pool);
    Ok(FeedState::new(
        sub.name,
        sub.url,
        sub.interval_secs,
        sub.max_bytes,
        category,
        origin,
    ))
}

/// `http://`, `https://` or `file://` with something after it, no whitespace or control
/// characters, bounded length.
pub(crate) fn check_url(url: &str) -> Result<(), MatcherError> {
    let bad =
        |m: &str| MatcherError::BadFeed(format!("feed URL {:?}: {m}", super::normalize::clip(url)));
    if url.len() > MAX_FEED_URL_LEN {
        return Err(bad("too long"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    match scheme(url) {
        Some(Scheme::File) => file_path(url).map(|_| ()).map_err(|m| bad(&m)),
        Some(Scheme::Http) => reqwest::Url::parse(url)
            .ok()
            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
            .map(|_| ())
            .ok_or_else(|| bad("not a valid http(s) URL")),
        None => Err(bad("must start with http://, https:// or file://")),
    }
}

/// The policy's verdict on a URL at subscription time (a literal private address or a file
/// outside the roots is refused before it is ever stored); names are checked again, after
/// resolution, at every download.
pub(crate) fn check_policy(url: &str, policy: &FeedPolicy) -> Result<(), MatcherError> {
    let bad = |m: String| {
        MatcherError::BadFeed(format!("feed URL {:?}: {m}", super::normalize::clip(url)))
    };
    match scheme(url) {
        Some(Scheme::File) => check_file_target(url, policy).map(|_| ()).map_err(bad),
        Some(Scheme::Http) => {
            let u = reqwest::Url::parse(url).map_err(|_| bad("not a valid http(s) URL".into()))?;
            check_http_target(&u, policy).map_err(bad)
        }
        None => Err(bad("must start with http://, https:// or file://".into())),
    }
}

enum Scheme {
    Http,
    File,
}

fn scheme(url: &str) -> Option<Scheme> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Some(Scheme::Http)
    } else if lower.starts_with("file://") {
        Some(Scheme::File)
    } else {
        None
    }
}

/// The local path of a `file://` URL: `file:///abs/path` or `file://localhost/abs/path`.
fn file_path(url: &str) -> Result<PathBuf, String> {
    let rest = url.get("file://".len()..).unwrap_or("");
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') || rest.len() < 2 {
        return Err("a file URL needs an absolute path (file:///path/to/list.txt)".into());
    }
    Ok(PathBuf::from(rest))
}

/// What a download produced.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// The server (or file) says nothing changed since our validators.
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// Builds the HTTP client feeds are downloaded with: names resolve through
/// [`GuardedResolver`], every redirect target is checked like the first URL, and no proxy is
/// used (a proxy would resolve names itself, past the checks).
pub(crate) fn http_client(
    timeout: Duration,
    policy: &FeedPolicy,
) -> Result<reqwest::Client, MatcherError> {
    let policy = Arc::new(policy.clone());
    let redirect_policy = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        match check_http_target(attempt.url(), &redirect_policy) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(format!("redirect {e}")),
        }
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(FEED_CONNECT_TIMEOUT.min(timeout))
        .redirect(redirects)
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .no_proxy()
        .user_agent(concat!("poolwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| MatcherError::BadFeed(format!("cannot build the HTTP client: {e}")))
}

/// Downloads `state.url`, conditionally on the validators of the copy in use, at most
/// `state.max_bytes`.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    state: &FeedState,
    policy: &FeedPolicy,
) -> Result<Fetched, String> {
    match scheme(&state.url) {
        Some(Scheme::File) => fetch_file(state, policy).await,
        Some(Scheme::Http) => fetch_http(client, state, policy).await,
        None => Err("unsupported URL scheme".into()),
    }
}

async fn fetch_http(
    client: &reqwest::Client,
    state: &FeedState,
    policy: &FeedPolicy,
) -> Result<Fetched, String> {
    use reqwest::header::{CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
    let url = reqwest::Url::parse(&state.url).map_err(|_| "not a valid http(s) URL".to_string())?;
    check_http_target(&url, policy)?;
    let mut req = client.get(url);
    // Validators only make sense while we hold the copy they describe.
    if state.active {
        if let Some(e) = &state.etag {
            req = req.header(IF_NONE_MATCH, e.as_str());
        }
        if let Some(lm) = &state.last_modified {
            req = req.header(IF_MODIFIED_SINCE, lm.as_str());
        }
    }
    let mut resp = req.send().await.map_err(|e| describe(&e))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .filter(|v| v.len() <= MAX_VALIDATOR_LEN)
            .map(str::to_string)
    };
    let etag = header(ETAG);
    let last_modified = header(LAST_MODIFIED);
    let declared = header(CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_bytes) {
        return Err(too_large(state.max_bytes));
    }
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if bytes.len() as u64 + chunk.len() as u64 > state.max_bytes {
            return Err(too_large(state.max_bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body {
        bytes,
        etag,
        last_modified,
    })
}

async fn fetch_file(state: &FeedState, policy: &FeedPolicy) -> Result<Fetched, String> {
    // Checked at every download: a root or a symlink may have changed since subscribing.
    let policy = policy.clone();
    let url = state.url.clone();
    let path = tokio::task::spawn_blocking(move || check_file_target(&url, &policy))
        .await
        .map_err(|_| "file check failed".to_string())??;
    let md = tokio::fs::metadata(&path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !md.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if md.len() > state.max_bytes {
        return Err(too_large(state.max_bytes));
    }
    // The file's modification time and size play the part of Last-Modified.
    let stamp = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| format!("{}.{:09}+{}", d.as_secs(), d.subsec_nanos(), md.len()));
    if state.active && stamp.is_some() && stamp == state.last_modified {
        return Ok(Fetched::NotModified);
    }
    // Bounded by reading too: the file may have grown since `metadata`.
    let mut bytes = Vec::new();
    let read = async {
        use tokio::io::AsyncReadExt as _;
        let f = tokio::fs::File::open(&path).await?;
        f.take(state.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
    };
    read.await.map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > state.max_bytes {
        return Err(too_large(state.max_bytes));
    }
    Ok(Fetched::Body {
        bytes,
        etag: None,
        last_modified: stamp,
    })
}

fn too_large(limit: u64) -> String {
    format!("the feed is larger than its limit of {limit} bytes")
}

/// A reqwest error as one line, without the URL's query string repeated.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "redirect not followed"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "http://127.0.0.1:8080/x.txt",
            "https://lists.example.org/pools.txt?v=1",
            "file:///var/lib/x.txt",
            "file://localhost/var/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ftp://x/y",
            "file://relative/x",
            "file://",
            "http://",
            "http://a b/",
            "javascript:alert(1)",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_subscription_rule() {
        let s =
            check_subscription(" https://example.org/lists/pools.txt ", None, None, None).unwrap();
        assert_eq!(s.name, "feed-example.org-pools");
        assert_eq!(s.url, "https://example.org/lists/pools.txt");
        assert_eq!(s.interval_secs, DEFAULT_FEED_INTERVAL_SECS);
        assert_eq!(s.max_bytes, DEFAULT_FEED_MAX_BYTES);
        let named = check_subscription("file:///srv/l.txt", Some("mine"), Some(60), Some(1));
        assert_eq!(named.unwrap().name, "mine");
        for (url, name, iv, mb) in [
            ("ftp://example.org/x", None, None, None),
            ("https://example.org/x", Some("reload"), None, None),
            ("https://example.org/x", Some("Bad/Name"), None, None),
            ("https://example.org/x", None, Some(59), None),
            (
                "https://example.org/x",
                None,
                Some(MAX_FEED_INTERVAL_SECS + 1),
                None,
            ),
            ("https://example.org/x", None, None, Some(0)),
            (
                "https://example.org/x",
                None,
                None,
                Some(MAX_FEED_MAX_BYTES + 1),
            ),
            ("http://", None, None, None),
        ] {
            assert!(
                check_subscription(url, name, iv, mb).is_err(),
                "{url} {name:?}"
            );
        }
        assert_eq!(default_feed_name("https://%%%/"), "feed");
        let long = format!("https://{}.example/x.txt", "a".repeat(200));
        assert!(super::super::is_valid_list_name(&default_feed_name(&long)));
    }

    #[test]
    fn backoff_is_bounded() {
        let mut s = FeedState::new(
            "f".into(),
            "http://x/".into(),
            3600,
            10,
            Category::Pool,
            FeedOrigin::Api,
        );
        let now = Timestamp::from_secs(1_000_000);
        for _ in 0..100 {
            s.failed(now, "down");
        }
        let next = s.next_refresh.unwrap().as_secs() - now.as_secs();
        assert_eq!(next, 3600);
        s.consecutive_failures = 1;
        assert_eq!(retry_secs(&s), 300);
    }
}
