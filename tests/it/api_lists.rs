//! Blocklist management and export routes over real HTTP: a real server on 127.0.0.1:0, a real
//! `ListManager` over a temporary directory, a real client.

use crate::support::lists as lists_support;

use lists_support::*;
use poolwatch::api::ApiOptions;
use poolwatch::matcher::{ExportFormat, ListManagerConfig};
use serde_json::{json, Value};

fn server(dir: &std::path::Path) -> Server {
    Server::start(Some(ListManagerConfig::new(dir)), options())
}

fn put(
    c: &reqwest::blocking::Client,
    s: &Server,
    path: &str,
    body: &str,
) -> reqwest::blocking::Response {
    c.put(s.url(path))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .unwrap()
}

/// One HTTP/1.1 request written by hand (the path goes on the wire exactly as given).
fn raw(s: &Server, method: &str, path: &str, ctype: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = s.http.base.trim_start_matches("http://");
    let mut t = std::net::TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        t,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    t.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

#[test]
fn put_list_then_check_sees_it_and_it_persists() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(tmp.path());
    let c = client();
    assert_eq!(check(&c, &s, "xmr.evil-pool.example")["matched"], false);

    // A hosts-format upload with the format forced and a category.
    let r = put(
        &c,
        &s,
        "/api/v1/blocklists/lab-pools?format=hosts&category=pool",
        "# lab\r\n0.0.0.0 evil-pool.example other-pool.example\r\n",
    );
    assert_eq!(r.status(), 200);
    let rep: Value = r.json().unwrap();
    assert_eq!(rep["list"]["name"], "lab-pools");
    assert_eq!(rep["list"]["kind"], "user");
    assert_eq!(rep["list"]["format"], "hosts");
    assert_eq!(rep["list"]["entries"], 2);

    let v = check(&c, &s, "xmr.evil-pool.example");
    assert_eq!(v["matched"], true, "{v}");
    assert_eq!(v["list"], "lab-pools");
    assert_eq!(v["entry"], "evil-pool.example");

    // Listed with its kind; shipped lists are there too.
    let all = get_json(&c, &s, "/api/v1/blocklists");
    let items = all["items"].as_array().unwrap();
    let mine = items.iter().find(|l| l["name"] == "lab-pools").unwrap();
    assert_eq!(mine["kind"], "user");
    assert!(mine["refreshed"].is_string());
    let shipped = items.iter().find(|l| l["name"] == "pools-monero").unwrap();
    assert_eq!(shipped["kind"], "shipped");
    assert!(shipped["license"].is_string());

    // Detail: paginated entries, and the full text.
    let d = get_json(&c, &s, "/api/v1/blocklists/lab-pools?limit=1");
    assert_eq!(d["total"], 2);
    assert_eq!(d["items"][0]["entry"], "evil-pool.example");
    assert_eq!(d["items"][0]["line"], 2);
    assert_eq!(d["next_offset"], 1);
    let text = c
        .get(s.url("/api/v1/blocklists/lab-pools?format=text"))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("0.0.0.0 evil-pool.example"));
    // Shipped lists have entries too.
    let d = get_json(&c, &s, "/api/v1/blocklists/pools-monero?limit=5");
    assert_eq!(d["items"].as_array().unwrap().len(), 5);
    expect_error(
        c.get(s.url("/api/v1/blocklists/no-such-list"))
            .bearer_auth(READ)
            .send()
            .unwrap(),
        404,
        "not_found",
    );

    // Restart over the same directory: the list is still there and still matches.
    s.stop();
    let s = server(tmp.path());
    let v = check(&c, &s, "a.other-pool.example");
    assert_eq!(v["matched"], true, "{v}");
    assert_eq!(v["list"], "lab-pools");
}

#[test]
fn bad_list_is_rejected_with_line_numbers_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(tmp.path());
    let c = client();
    assert_eq!(
        put(&c, &s, "/api/v1/blocklists/mine", "first-pool.example\n").status(),
        200
    );

    let r = put(
        &c,
        &s,
        "/api/v1/blocklists/mine",
        "# replacement\nsecond-pool.example\nbad..name.example\nok.example\n*.x*y.example\n",
    );
    let v = expect_error(r, 422, "invalid_list");
    let problems = v["error"]["problems"].as_array().unwrap();
    let lines: Vec<u64> = problems
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 5], "{v}");
    assert!(problems[0]["message"].as_str().unwrap().len() > 3);

    // The running set and the stored list are as before.
    assert_eq!(check(&c, &s, "second-pool.example")["matched"], false);
    assert_eq!(check(&c, &s, "first-pool.example")["matched"], true);
    let stored = std::fs::read_to_string(tmp.path().join("mine.txt")).unwrap();
    assert_eq!(stored, "first-pool.example\n");

    // Non-UTF-8 and empty bodies are list problems too, never 500.
    let r = c
        .put(s.url("/api/v1/blocklists/mine"))
        .bearer_auth(ADMIN)
        .body(b"ok.example\n\xff\xfe\n".to_vec())
        .send()
        .unwrap();
    let v = expect_error(r, 422, "invalid_list");
    assert_eq!(v["error"]["problems"][0]["line"], 2);
    expect_error(
        put(&c, &s, "/api/v1/blocklists/mine", ""),
        422,
        "invalid_list",
    );
    expect_error(
        put(
            &c,
            &s,
            "/api/v1/blocklists/mine?format=bogus",
            "a.example\n",
        ),
        400,
        "invalid_parameter",
    );
    expect_error(
        put(
            &c,
            &s,
            "/api/v1/blocklists/mine?category=evil",
            "a.example\n",
        ),
        400,
        "invalid_parameter",
    );
    assert_eq!(check(&c, &s, "first-pool.example")["matched"], true);
}

#[test]
fn entries_add_and_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(tmp.path());
    let c = client();
    let url = s.url("/api/v1/blocklists/quick/entries");
    // Created on first add.
    let r = c
        .post(&url)
        .bearer_auth(ADMIN)
        .json(&json!({"entries": ["Pool-A.example.", "203.0.113.0/24", "pool-a.example"], "category": "miner_proxy"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["changed"], json!(["pool-a.example", "203.0.113.0/24"]));
    assert_eq!(v["unchanged"], json!(["pool-a.example"]));
    assert_eq!(v["list"]["category"], "miner_proxy");
    let hit = check(&c, &s, "eu.pool-a.example");
    assert_eq!(hit["list"], "quick");
    assert_eq!(hit["category"], "miner_proxy");

    // A bad entry rejects the whole request; its position is the "line".
    let v = expect_error(
        c.post(&url)
            .bearer_auth(ADMIN)
            .json(&json!({"entries": ["good.example", "two words.example", "x\nnewline.example"]}))
            .send()
            .unwrap(),
        422,
        "invalid_list",
    );
    let lines: Vec<u64> = v["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 3]);
    assert_eq!(check(&c, &s, "good.example")["matched"], false);
    expect_error(
        c.post(&url)
            .bearer_auth(ADMIN)
            .json(&json!({"entries": []}))
            .send()
            .unwrap(),
        422,
        "invalid_list",
    );
    expect_error(
        c.post(&url)
            .bearer_auth(ADMIN)
            .json(&json!({"entries": ["a.example"], "extra": 1}))
            .send()
            .unwrap(),
        400,
        "invalid_body",
    );

    let r = c
        .delete(&url)
        .bearer_auth(ADMIN)
        .json(&json!({"entries": ["pool-a.example", "never-there.example"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["changed"], json!(["pool-a.example"]));
    assert_eq!(v["unchanged"], json!(["never-there.example"]));
    assert_eq!(check(&c, &s, "eu.pool-a.example")["matched"], false);
    let stored = std::fs::read_to_string(tmp.path().join("quick.txt")).unwrap();
    assert_eq!(stored, "203.0.113.0/24\n");

    // Entry edits on a hosts-format list would rewrite its lines: refused with a clear 409.
    assert_eq!(
        put(&c, &s, "/api/v1/blocklists/hosty", "0.0.0.0 h.example\n").status(),
        200
    );
    expect_error(
        c.post(s.url("/api/v1/blocklists/hosty/entries"))
            .bearer_auth(ADMIN)
            .json(&json!({"entries": ["i.example"]}))
            .send()
            .unwrap(),
        409,
        "conflict",
    );

    // Delete the user list.
    assert_eq!(
        c.delete(s.url("/api/v1/blocklists/quick"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .status(),
        204
    );
    assert!(!tmp.path().join("quick.txt").exists());
    expect_error(
        c.delete(s.url("/api/v1/blocklists/quick"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap(),
        404,
        "not_found",
    );
    expect_error(
        c.delete(&url)
            .bearer_auth(ADMIN)
            .json(&json!({"entries": ["a.example"]}))
            .send()
            .unwrap(),
        404,
        "not_found",
    );
}

#[test]
fn names_cannot_escape_and_shipped_lists_are_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let lists = tmp.path().join("lists");
    let s = server(&lists);
    let c = client();
    // Raw requests: an HTTP client library would normalise `%2e%2e` away before sending.
    for (path, status) in [
        ("/api/v1/blocklists/..%2Fx", 400),
        ("/api/v1/blocklists/%2e%2e", 400),
        ("/api/v1/blocklists/%2E%2E%2Fescape", 400),
        ("/api/v1/blocklists/..", 400),
        ("/api/v1/blocklists/a%2Fb", 400),
        ("/api/v1/blocklists/a/b", 404),
        ("/api/v1/blocklists/UPPER", 400),
        ("/api/v1/blocklists/.hidden", 400),
        ("/api/v1/blocklists/x%00y", 400),
        ("/api/v1/blocklists/%2Fetc%2Fpasswd", 400),
        ("/api/v1/blocklists/%ff%fe", 400),
        (&format!("/api/v1/blocklists/{}", "a".repeat(65)), 400),
    ] {
        let (code, body) = raw(&s, "PUT", path, "text/plain", "escape.example\n");
        assert_eq!(code, status, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"]["code"].is_string(), "{path}: {v}");
        let (code, _) = raw(
            &s,
            "POST",
            &format!("{path}/entries"),
            "application/json",
            r#"{"entries":["escape.example"]}"#,
        );
        assert!((400..500).contains(&code), "{path}: {code}");
    }
    // `reload` is a route, not a list.
    assert!(put(&c, &s, "/api/v1/blocklists/reload", "escape.example\n")
        .status()
        .is_client_error());
    assert_eq!(check(&c, &s, "escape.example")["matched"], false);
    // Nothing was written anywhere but the lists directory, and nothing in it.
    let mut outside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    outside.sort();
    assert_eq!(outside, vec![std::ffi::OsString::from("lists")]);
    let inside: Vec<_> = std::fs::read_dir(&lists)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(inside, vec![std::ffi::OsString::from("feeds")]);

    // Shipped lists cannot be replaced or deleted.
    let v = expect_error(
        put(&c, &s, "/api/v1/blocklists/pools-monero", "x.example\n"),
        409,
        "read_only",
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("shipped"));
    expect_error(
        c.delete(s.url("/api/v1/blocklists/allowlist"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap(),
        409,
        "read_only",
    );
    assert!(check(&c, &s, "pool.supportxmr.com")["matched"] == true);
}

#[test]
fn auth_limits_and_no_manager() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        Some(ListManagerConfig::new(tmp.path())),
        ApiOptions {
            tokens: tokens(),
            max_body: 2048,
            ..ApiOptions::default()
        },
    );
    let c = client();
    let url = s.url("/api/v1/blocklists/mine");
    expect_error(
        c.put(&url).body("a.example\n").send().unwrap(),
        401,
        "unauthorized",
    );
    expect_error(
        c.put(&url)
            .bearer_auth(READ)
            .body("a.example\n")
            .send()
            .unwrap(),
        403,
        "forbidden",
    );
    expect_error(
        c.get(s.url("/api/v1/blocklists")).send().unwrap(),
        401,
        "unauthorized",
    );
    // Over the body limit: 413 for text and JSON bodies.
    let big = "a.example\n".repeat(300);
    expect_error(
        c.put(&url).bearer_auth(ADMIN).body(big).send().unwrap(),
        413,
        "payload_too_large",
    );
    let many: Vec<String> = (0..300).map(|i| format!("p{i}.example")).collect();
    expect_error(
        c.post(s.url("/api/v1/blocklists/mine/entries"))
            .bearer_auth(ADMIN)
            .json(&json!({ "entries": many }))
            .send()
            .unwrap(),
        413,
        "payload_too_large",
    );
    assert!(!tmp.path().join("mine.txt").exists());
    s.stop();

    // Without a manager: reads of the running set work, writes are 503.
    let s = Server::start(None, options());
    let v = get_json(&c, &s, "/api/v1/blocklists");
    assert!(v["items"].as_array().unwrap().len() >= 5);
    expect_error(
        put(&c, &s, "/api/v1/blocklists/mine", "a.example\n"),
        503,
        "lists_unavailable",
    );
    expect_error(
        c.post(s.url("/api/v1/blocklists/reload"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap(),
        503,
        "lists_unavailable",
    );
    let r = c
        .get(s.url("/api/v1/export/hosts"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn exports_every_format_with_etag() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(tmp.path());
    let c = client();
    let mut tags = Vec::new();
    for f in ExportFormat::ALL {
        let url = s.url(&format!("/api/v1/export/{}", f.as_str()));
        let r = c.get(&url).bearer_auth(READ).send().unwrap();
        assert_eq!(r.status(), 200, "{f}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let want = if f == ExportFormat::Rpz {
            "text/dns"
        } else {
            "text/plain"
        };
        assert!(ct.starts_with(want), "{f}: {ct}");
        assert!(r.headers().contains_key("content-disposition"));
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let body = r.text().unwrap();
        // Same content as the library export of the running set.
        let lib = poolwatch::matcher::Blocklists::builtin().unwrap().export(f);
        assert_eq!(body, lib, "{f}");
        let r = c
            .get(&url)
            .bearer_auth(READ)
            .header("if-none-match", &etag)
            .send()
            .unwrap();
        assert_eq!(r.status(), 304, "{f}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
        tags.push((url, etag));
    }
    // A list change changes every export's ETag.
    assert_eq!(
        put(
            &c,
            &s,
            "/api/v1/blocklists/more",
            "new-pool.example\n198.51.100.7\n"
        )
        .status(),
        200
    );
    for (url, old) in &tags {
        let r = c
            .get(url)
            .bearer_auth(READ)
            .header("if-none-match", old)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_ne!(r.headers()["etag"].to_str().unwrap(), old);
    }
    let hosts = c
        .get(s.url("/api/v1/export/hosts"))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(hosts.contains("0.0.0.0 new-pool.example"));
    // pool-ips is still its own route.
    assert_eq!(
        c.get(s.url("/api/v1/export/pool-ips"))
            .bearer_auth(READ)
            .send()
            .unwrap()
            .status(),
        200
    );
    let v = expect_error(
        c.get(s.url("/api/v1/export/bind9"))
            .bearer_auth(READ)
            .send()
            .unwrap(),
        404,
        "unknown_format",
    );
    let msg = v["error"]["message"].as_str().unwrap();
    for f in ExportFormat::ALL {
        assert!(msg.contains(f.as_str()), "{msg}");
    }
}

#[test]
fn reload_rereads_the_user_lists_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(tmp.path());
    let c = client();
    std::fs::write(tmp.path().join("handmade.txt"), "hand-pool.example\n").unwrap();
    assert_eq!(check(&c, &s, "hand-pool.example")["matched"], false);
    let r = c
        .post(s.url("/api/v1/blocklists/reload"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert!(v["entries"].as_u64().unwrap() > 100);
    assert_eq!(check(&c, &s, "hand-pool.example")["list"], "handmade");
}

/// Issue #11: `0.0.0.0/0` and `::/0` (and any block wider than the documented minimum) made
/// benign hosts `direct_ip`. They are refused as entries — by `PUT`, by `POST …/entries` —
/// with the line named, and nothing changes.
#[test]
fn wide_cidr_pool_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(tmp.path());
    let c = client();
    let shared = s.manager.as_ref().unwrap().shared().clone();
    let check_ip = |ip: &str| -> bool {
        shared
            .load()
            .match_ip(ip.parse().unwrap(), Some(3333))
            .is_some()
    };
    let r = put(
        &c,
        &s,
        "/api/v1/blocklists/wide",
        "pool.example\n0.0.0.0/0\n::/0\n10.0.0.0/7\n2001::/15\n::ffff:0.0.0.0/96\n10.0.0.0/8\n2001:db8::/32\n",
    );
    let v = expect_error(r, 422, "invalid_list");
    let lines: Vec<u64> = v["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 6], "{v}");
    let msg = v["error"]["problems"][0]["message"].as_str().unwrap();
    assert!(msg.contains("/8"), "the minimum is named: {msg}");
    assert!(!check_ip("198.51.100.77"));

    for wide in ["0.0.0.0/0", "::/0", "128.0.0.0/1", "::ffff:0:0/100"] {
        let r = c
            .post(s.url("/api/v1/blocklists/wide/entries"))
            .bearer_auth(ADMIN)
            .json(&json!({ "entries": [wide] }))
            .send()
            .unwrap();
        expect_error(r, 422, "invalid_list");
    }
    assert!(!tmp.path().join("wide.txt").exists(), "nothing stored");
    assert!(!check_ip("198.51.100.77"));
    assert!(!check_ip("2001:db9::1"));

    // The minimum itself is a valid entry.
    let r = put(
        &c,
        &s,
        "/api/v1/blocklists/wide",
        "10.0.0.0/8\n2001:db8::/32\n",
    );
    assert_eq!(r.status(), 200);
    assert!(check_ip("10.200.0.1"));
    assert!(!check_ip("198.51.100.77"));
}
