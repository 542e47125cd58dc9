//! Recognising what a flow carries from its first payload bytes: Stratum / XMRig / ethproxy
//! JSON-RPC, a TLS ClientHello (and its SNI), an HTTP request (and its Host).
//!
//! **The Stratum rule lives here and only here** (docs/detections.md, "Stratum rule"): the
//! correlation engine trusts `AppInfo::stratum_method` and never looks at payload bytes. A
//! client's first JSON object (raw on TCP, or the body of an HTTP request) is mining when its
//! `"method"` is
//! 1. in the `mining.` namespace (Stratum v1 and EthereumStratum: `mining.subscribe`,
//!    `mining.authorize`, `mining.configure`, `mining.extranonce.subscribe`, …), or
//! 2. one of [`CLIENT_MINING_METHODS`] (ethproxy `eth_submitLogin`/`eth_login`, the getwork
//!    family, XMRig `keepalived`): names no other software uses, or
//! 3. a CryptoNote-Stratum method whose name is ordinary JSON-RPC vocabulary, accepted only with
//!    the miner's message shape: `login` with both `"login"` and `"pass"` keys and at least one
//!    of `"agent"`, `"algo"`, `"rigid"` (XMRig, xmr-stak, SRBMiner, NiceHash CryptoNight);
//!    `submit` with `"job_id"`, `"nonce"` and `"result"`; `getjob` with an `"agent"`.
//!
//! A bare `login` (a web app, a media centre, a router API) is never Stratum. On the server side
//! a pool's push (`mining.notify`, `mining.set_difficulty`, an XMRig `job` with a `"blob"`) is.
//!
//! Everything here works on a bounded prefix and on attacker bytes: lengths are checked before
//! every read, and nothing allocates more than the extracted strings.

use memchr::memmem;

use crate::model::{normalize_name, AppInfo};

/// Longest agent/login string kept (a wallet address is ~106 characters; agents ~80).
pub const MAX_FIELD_LEN: usize = 128;

/// JSON-RPC methods that only mining clients send (matched exactly; rule 2 above).
pub const CLIENT_MINING_METHODS: &[&str] = &[
    "eth_submitLogin",
    "eth_login",
    "eth_submitWork",
    "eth_submitHashrate",
    "eth_getWork",
    "keepalived",
    // Pre-Stratum Bitcoin mining (BIP 22/23 and the original getwork), sent raw on pool ports
    // or as HTTP POST bodies; wallets never ask a node for work.
    "getwork",
    "getblocktemplate",
];

/// Server-pushed methods of mining pools.
const SERVER_MINING_METHODS: &[&str] = &["mining.notify", "mining.set_difficulty", "job"];

/// Inspects originator bytes (first payload of the flow, possibly several segments joined).
/// Returns true when something new was learnt.
pub fn classify_client(data: &[u8], app: &mut AppInfo) -> bool {
    let before = app.clone();
    if let Some(sni) = tls_client_hello(data) {
        app.tls = true;
        if let Some(s) = sni {
            app.sni.get_or_insert(s);
        }
    } else if let Some(host) = http_host(data) {
        app.http_host.get_or_insert(host);
        // getwork / eth_getWork over HTTP (pool.eth.pp.ua, bitcoind-style pools): the
        // JSON-RPC body follows the headers.
        if app.stratum_method.is_none() {
            if let Some(body) = memmem::find(data, b"\r\n\r\n").and_then(|p| data.get(p + 4..)) {
                stratum_client(body, app);
            }
        }
    } else if app.stratum_method.is_none() {
        stratum_client(data, app);
    }
    *app != before
}

/// Inspects responder bytes (a pool pushing `mining.notify` / an XMRig `job`).
pub fn classify_server(data: &[u8], app: &mut AppInfo) -> bool {
    if app.stratum_method.is_some() || app.tls {
        return false;
    }
    let Some(method) = json_string_after(data, b"\"method\"") else {
        return false;
    };
    if !SERVER_MINING_METHODS.contains(&method.as_str()) {
        return false;
    }
    // XMRig's server `job` carries a blob and a target; anything else named "job" is not mining.
    if method == "job" && memmem::find(data, b"\"blob\"").is_none() {
        return false;
    }
    app.stratum_method = Some(method);
    true
}

fn stratum_client(data: &[u8], app: &mut AppInfo) {
    // Only JSON-looking payloads: saves scanning every binary stream for a needle.
    if !matches!(data.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{')) {
        return;
    }
    let Some(method) = json_string_after(data, b"\"method\"") else {
        return;
    };
    let agent = json_string_after(data, b"\"agent\"");
    if !is_mining_method(&method, data) {
        return;
    }
    app.stratum_login = json_string_after(data, b"\"login\"").or_else(|| {
        if method == "mining.authorize" || method == "eth_submitLogin" || method == "eth_login" {
            first_param(data)
        } else {
            None
        }
    });
    if agent.is_none() && method == "mining.subscribe" {
        // cpuminer/cgminer put their agent as the first subscribe parameter.
        app.stratum_agent = first_param(data);
    } else {
        app.stratum_agent = agent;
    }
    app.stratum_method = Some(method);
}

/// Rules 1–3 of the module's Stratum rule, for a client message whose method is `method`.
fn is_mining_method(method: &str, data: &[u8]) -> bool {
    if method.starts_with("mining.") || CLIENT_MINING_METHODS.contains(&method) {
        return true;
    }
    let key = |k: &[u8]| has_key(data, k);
    match method {
        "login" => {
            key(b"\"login\"")
                && key(b"\"pass\"")
                && (key(b"\"agent\"") || key(b"\"algo\"") || key(b"\"rigid\""))
        }
        "submit" => key(b"\"job_id\"") && key(b"\"nonce\"") && key(b"\"result\""),
        "getjob" => key(b"\"agent\""),
        _ => false,
    }
}

/// Whether `key` (quoted) occurs as an object key: followed by optional whitespace and `:`.
fn has_key(data: &[u8], key: &[u8]) -> bool {
    memmem::find_iter(data, key).any(|pos| {
        data.get(pos + key.len()..)
            .is_some_and(|rest| trim_ws(rest).first() == Some(&b':'))
    })
}

/// The string value following `key` (`"key" : "value"`), unescaped minimally, capped.
/// The first occurrence used as a key wins (`"method":"login"` is not the `"login"` key).
fn json_string_after(data: &[u8], key: &[u8]) -> Option<String> {
    for pos in memmem::find_iter(data, key) {
        let Some(rest) = data.get(pos + key.len()..) else {
            continue;
        };
        let Some(rest) = trim_ws(rest).strip_prefix(b":") else {
            continue;
        };
        let rest = trim_ws(rest).strip_prefix(b"\"")?;
        return take_json_string(rest);
    }
    None
}

/// The first string in `"params": [ "…"`.
fn first_param(data: &[u8]) -> Option<String> {
    let pos = memmem::find(data, b"\"params\"")?;
    let mut rest = data.get(pos + 8..)?;
    rest = trim_ws(rest);
    rest = rest.strip_prefix(b":")?;
    rest = trim_ws(rest);
    rest = rest.strip_prefix(b"[")?;
    rest = trim_ws(rest);
    rest = rest.strip_prefix(b"\"")?;
    take_json_string(rest)
}

fn take_json_string(rest: &[u8]) -> Option<String> {
    let end = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    let raw = rest.get(..end.min(MAX_FIELD_LEN))?;
    let s = std::str::from_utf8(raw).ok()?;
    Some(s.to_string())
}

fn trim_ws(mut b: &[u8]) -> &[u8] {
    while let Some((first, rest)) = b.split_first() {
        if !first.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// `Some(sni)` when `data` starts with a TLS handshake record carrying a ClientHello
/// (`Some(None)` when it has no/unreadable SNI); `None` when it is not TLS.
pub fn tls_client_hello(data: &[u8]) -> Option<Option<String>> {
    // Record: type 22, version 3.x, length; handshake type 1 (ClientHello).
    if data.first() != Some(&22) || data.get(1) != Some(&3) || data.get(5) != Some(&1) {
        return None;
    }
    Some(sni(data))
}

fn sni(data: &[u8]) -> Option<String> {
    // record header 5 + handshake header 4 + version 2 + random 32
    let mut off = 5 + 4 + 2 + 32;
    let sid_len = usize::from(*data.get(off)?);
    off += 1 + sid_len;
    let cs_len = usize::from(u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]));
    off += 2 + cs_len;
    let comp_len = usize::from(*data.get(off)?);
    off += 1 + comp_len;
    let ext_total = usize::from(u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]));
    off += 2;
    let ext_end = off.checked_add(ext_total)?.min(data.len());
    while off + 4 <= ext_end {
        let ty = u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]);
        let len = usize::from(u16::from_be_bytes([
            *data.get(off + 2)?,
            *data.get(off + 3)?,
        ]));
        off += 4;
        if ty == 0 {
            // server_name_list length(2), name_type(1) = 0 host_name, name length(2), name
            let name_type = *data.get(off + 2)?;
            let name_len = usize::from(u16::from_be_bytes([
                *data.get(off + 3)?,
                *data.get(off + 4)?,
            ]));
            if name_type != 0 {
                return None;
            }
            let name = data.get(off + 5..off + 5 + name_len)?;
            let s = std::str::from_utf8(name).ok()?;
            if s.is_empty() || s.len() > 253 {
                return None;
            }
            return Some(normalize_name(s));
        }
        off += len;
    }
    None
}

/// HTTP request methods we recognise at the start of a flow.
const HTTP_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
];

/// The Host header of a cleartext HTTP/1 request.
pub fn http_host(data: &[u8]) -> Option<String> {
    if !HTTP_METHODS.iter().any(|m| data.starts_with(m)) {
        return None;
    }
    // Header names are case-insensitive; look at each line start.
    let mut rest = data;
    while let Some(nl) = memchr::memchr(b'\n', rest) {
        rest = rest.get(nl + 1..)?;
        if rest.len() >= 5 && rest.get(..5)?.eq_ignore_ascii_case(b"host:") {
            let line_end = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
            let v = std::str::from_utf8(rest.get(5..line_end)?).ok()?.trim();
            // Drop a port; keep IPv6 literals intact.
            let host = match v.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => v,
            };
            if host.is_empty() || host.len() > 253 {
                return None;
            }
            return Some(normalize_name(host));
        }
        if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            break;
        }
    }
    Some(String::new()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xmrig_login() {
        let p = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"48E5Y","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64)","algo":["rx/0"]}}"#;
        let mut app = AppInfo::default();
        assert!(classify_client(p, &mut app));
        assert_eq!(app.stratum_method.as_deref(), Some("login"));
        assert_eq!(
            app.stratum_agent.as_deref(),
            Some("XMRig/6.21.0 (Linux x86_64)")
        );
        assert_eq!(app.stratum_login.as_deref(), Some("48E5Y"));
        // A generic JSON-RPC login without an agent is not mining.
        let mut app = AppInfo::default();
        classify_client(br#"{"method":"login","params":{"user":"bob"}}"#, &mut app);
        assert!(app.stratum_method.is_none());
    }

    #[test]
    fn stratum_v1_and_ethproxy() {
        let mut app = AppInfo::default();
        classify_client(
            br#"{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#,
            &mut app,
        );
        assert_eq!(app.stratum_method.as_deref(), Some("mining.subscribe"));
        assert_eq!(app.stratum_agent.as_deref(), Some("cpuminer/2.5.1"));
        let mut app = AppInfo::default();
        classify_client(
            br#"{"id":1,"method":"eth_submitLogin","params":["0x4d14","x"]}"#,
            &mut app,
        );
        assert_eq!(app.stratum_login.as_deref(), Some("0x4d14"));
        let mut app = AppInfo::default();
        assert!(classify_server(
            br#"{"params":["b7ea1c"],"id":null,"method":"mining.notify"}"#,
            &mut app
        ));
    }

    #[test]
    fn getwork_raw_and_over_http() {
        let mut app = AppInfo::default();
        assert!(classify_client(
            b"{\"method\": \"getwork\", \"params\": [], \"id\":0}\n",
            &mut app
        ));
        assert_eq!(app.stratum_method.as_deref(), Some("getwork"));
        let mut app = AppInfo::default();
        let gbt = br#"{"id": 0, "method": "getblocktemplate", "params": [{"capabilities": ["coinbasetxn"]}]}"#;
        assert!(classify_client(gbt, &mut app));
        assert_eq!(app.stratum_method.as_deref(), Some("getblocktemplate"));
        let mut app = AppInfo::default();
        let http = b"POST /?miner=30@0x4b99@Rig HTTP/1.1\r\nHost: pool.eth.pp.ua\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"eth_getWork\"}";
        assert!(classify_client(http, &mut app));
        assert_eq!(app.http_host.as_deref(), Some("pool.eth.pp.ua"));
        assert_eq!(app.stratum_method.as_deref(), Some("eth_getWork"));
        // An ordinary JSON API call over HTTP is not mining.
        let mut app = AppInfo::default();
        let api = b"POST /rpc HTTP/1.1\r\nHost: api.example\r\n\r\n{\"method\":\"getbalance\",\"params\":[]}";
        classify_client(api, &mut app);
        assert_eq!(app.stratum_method, None);
    }

    #[test]
    fn http_and_garbage() {
        assert_eq!(
            http_host(b"GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST: Wiki.Corp:8080\r\n\r\n")
                .as_deref(),
            Some("wiki.corp")
        );
        assert_eq!(http_host(b"GET / HTTP/1.0\r\n\r\n"), None);
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let mut app = AppInfo::default();
            classify_client(&junk, &mut app);
            let mut j2 = vec![22, 3, 1, 0, 0, 1];
            j2.extend_from_slice(&junk);
            let _ = tls_client_hello(&j2);
        }
    }
}
