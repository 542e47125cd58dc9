//! Webhook sink: one HTTP(S) POST per record. Bodies: the JSON shapes (`poolwatch`, `ecs`,
//! `eve`), Slack-compatible `{"text": …}`, or a user template. Headers: the configured ones,
//! `X-Poolwatch-Event-Id` / `Idempotency-Key` (the event id), and with a shared secret
//! `X-Poolwatch-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Outcomes: 2xx acknowledges; 429 and 503 wait for `Retry-After` (seconds or an HTTP date,
//! capped at `MAX_BACKOFF`); other 5xx, 408, timeouts and connection errors retry with
//! exponential backoff and jitter until delivered; 400/413/422 (the record itself is refused)
//! are retried `max_retries` times, then dropped and counted; other 4xx (401, 403, 404: a
//! configuration problem) retry like transport errors so nothing is lost while it is fixed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::config::WebhookTarget;
use super::format::{self, Format, Observer};
use super::{Delivery, OutputEvent, Sink, SinkError};

/// Signature header name.
pub const SIGNATURE_HEADER: &str = "X-Poolwatch-Signature";
/// Event id header name.
pub const EVENT_ID_HEADER: &str = "X-Poolwatch-Event-Id";
/// Connect deadline (the request deadline is the sink's `timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response body read (only for the error message).
const MAX_ERROR_BODY: usize = 512;

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const B: usize = 64;
    // The key, zero-padded to the block size (hashed first when longer than a block).
    let mut k = [0u8; B];
    let digest;
    let key = if key.len() > B {
        digest = Sha256::digest(key);
        digest.as_slice()
    } else {
        key
    };
    for (slot, byte) in k.iter_mut().zip(key) {
        *slot = *byte;
    }
    let mut ipad = [0x36u8; B];
    let mut opad = [0x5cu8; B];
    for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(k) {
        *i ^= k;
        *o ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        // Writing to a String cannot fail.
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Template placeholders. String values are inserted JSON-escaped (without quotes), the
/// record placeholders as raw JSON.
pub const PLACEHOLDERS: &[&str] = &[
    "record",
    "ecs",
    "eve",
    "text",
    "event_id",
    "kind",
    "sequence",
    "id",
    "client_ip",
    "pool_domain",
    "stage",
    "risk_score",
    "timestamp",
    "time",
    "observer",
];

/// Checks that every `{{…}}` in a template is a known placeholder.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        let after = rest.get(i + 2..).unwrap_or("");
        let j = after
            .find("}}")
            .ok_or("template: `{{` without a closing `}}`")?;
        let name = after.get(..j).unwrap_or("").trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "template: unknown placeholder {{{{{name}}}}} (known: {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = after.get(j + 2..).unwrap_or("");
    }
    Ok(())
}

fn json_escape(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q.get(1..q.len().saturating_sub(1))
        .unwrap_or("")
        .to_string()
}

/// Renders `t` for `ev` (unknown placeholders were refused when the config was read).
pub fn render_template(t: &str, ev: &OutputEvent, obs: &Observer) -> String {
    let mut out = String::with_capacity(t.len() + 1024);
    let mut rest = t;
    while let Some(i) = rest.find("{{") {
        out.push_str(rest.get(..i).unwrap_or(""));
        let after = rest.get(i + 2..).unwrap_or("");
        let Some(j) = after.find("}}") else {
            out.push_str(rest.get(i..).unwrap_or(""));
            return out;
        };
        let name = after.get(..j).unwrap_or("").trim();
        let d = ev.detection.as_ref();
        let v = match name {
            "record" => String::from_utf8_lossy(&format::render_json(Format::Poolwatch, ev, obs))
                .into_owned(),
            "ecs" => {
                String::from_utf8_lossy(&format::render_json(Format::Ecs, ev, obs)).into_owned()
            }
            "eve" => {
                String::from_utf8_lossy(&format::render_json(Format::Eve, ev, obs)).into_owned()
            }
            "text" => json_escape(&format::text::summary(ev)),
            "event_id" => json_escape(&ev.event_id()),
            "kind" => ev.kind.as_str().to_string(),
            "sequence" => ev.seq.to_string(),
            "id" => d.map(|d| json_escape(&d.id)).unwrap_or_default(),
            "client_ip" => d.map(|d| d.client_ip.to_string()).unwrap_or_default(),
            "pool_domain" => d.map(|d| json_escape(&d.pool_domain)).unwrap_or_default(),
            "stage" => d.map(|d| d.stage.as_str().to_string()).unwrap_or_default(),
            "risk_score" => d.map(|d| d.risk_score.to_string()).unwrap_or_default(),
            "timestamp" => format::event_time(ev).to_rfc3339(),
            "time" => format!("{:.6}", format::event_time(ev).as_secs_f64()),
            "observer" => json_escape(&obs.name),
            _ => String::new(),
        };
        out.push_str(&v);
        rest = after.get(j + 2..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

pub struct WebhookSink {
    cfg: WebhookTarget,
    format: Format,
    observer: Arc<Observer>,
    client: Option<Result<reqwest::Client, String>>,
}

impl WebhookSink {
    pub fn new(cfg: WebhookTarget, format: Format, observer: Arc<Observer>) -> Self {
        WebhookSink {
            cfg,
            format,
            observer,
            client: None,
        }
    }

    fn client(&mut self) -> Result<reqwest::Client, String> {
        if self.client.is_none() {
            self.client = Some(build_client(&self.cfg));
        }
        match &self.client {
            Some(Ok(c)) => Ok(c.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no client".into()),
        }
    }

    pub fn body(&self, ev: &OutputEvent) -> Vec<u8> {
        match self.format {
            Format::Slack => serde_json::to_vec(&serde_json::json!({
                "text": format::text::summary(ev),
            }))
            .unwrap_or_default(),
            Format::Template => render_template(
                self.cfg.template.as_deref().unwrap_or(""),
                ev,
                &self.observer,
            )
            .into_bytes(),
            f => format::render_json(f, ev, &self.observer),
        }
    }

    async fn post(&self, client: &reqwest::Client, ev: &OutputEvent) -> Result<(), SinkError> {
        let body = self.body(ev);
        let id = ev.event_id();
        let mut req = client
            .post(self.cfg.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, &id)
            .header("Idempotency-Key", &id);
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), v.expose());
        }
        if let Some(s) = &self.cfg.secret {
            let sig = hmac_sha256(s.expose().as_bytes(), &body);
            req = req.header(SIGNATURE_HEADER, format!("sha256={}", hex(&sig)));
        }
        let resp = req.body(body).send().await.map_err(|e| {
            // Never print the URL: chat webhooks carry their secret in it.
            SinkError::transient(format!("request failed: {}", describe(&e)))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Read at most MAX_ERROR_BODY bytes of the answer: a hostile receiver cannot make us
        // buffer an endless body.
        let mut resp = resp;
        let mut raw = Vec::new();
        while raw.len() < MAX_ERROR_BODY {
            match resp.chunk().await {
                Ok(Some(c)) => raw.extend_from_slice(&c),
                _ => break,
            }
        }
        raw.truncate(MAX_ERROR_BODY);
        let snippet: String = String::from_utf8_lossy(&raw)
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let message = format!("HTTP {}: {}", status.as_u16(), snippet.trim());
        Err(match status.as_u16() {
            400 | 413 | 422 => SinkError::Rejected { message },
            429 | 503 => SinkError::Transient {
                message,
                retry_after,
            },
            _ => SinkError::Transient {
                message,
                retry_after: None,
            },
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "error"
    };
    // The source chain without the URL (reqwest's Display includes it).
    let mut msg = kind.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(n) = v.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = t.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(secs.max(0) as u64))
}

fn build_client(cfg: &WebhookTarget) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("poolwatch/", env!("CARGO_PKG_VERSION")));
    if let Some(p) = &cfg.ca_file {
        let pem = std::fs::read(p).map_err(|e| format!("ca_file {}: {e}", p.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", p.display()))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| format!("HTTP client: {e}"))
}

impl Sink for WebhookSink {
    fn deliver<'a>(&'a mut self, events: &'a [OutputEvent]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let client = match self.client() {
                Ok(c) => c,
                Err(e) => {
                    return Delivery {
                        acked: 0,
                        error: Some(SinkError::transient(e)),
                    }
                }
            };
            for (i, ev) in events.iter().enumerate() {
                if let Err(e) = self.post(&client, ev).await {
                    return Delivery {
                        acked: i,
                        error: Some(e),
                    };
                }
            }
            Delivery::all(events.len())
        })
    }

    fn reopen(&mut self) {
        self.client = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format::tests::{observer, sample_event};

    #[test]
    fn hmac_matches_rfc4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn templates() {
        let t = r#"{"event": {{record}}, "sourcetype": "poolwatch", "time": {{time}}, "host": "{{observer}}", "x": "{{text}}"}"#;
        check_template(t).unwrap();
        let out = render_template(t, &sample_event(), &observer());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["event"]["client_ip"], "192.0.2.10");
        assert_eq!(v["time"], 1_795_723_203.0);
        assert_eq!(v["host"], "dmz");
        assert!(check_template("{{nope}}").is_err());
        assert!(check_template("{{record").is_err());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 01 Dec 1999 21:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
