//! Feeds against a real local HTTP server (axum on 127.0.0.1:0) and real files: conditional
//! requests, size limit, timeouts, last good copy kept through garbage and outages and across
//! restarts, state visible over the API, the background refresher.

use crate::support::lists as lists_support;

use std::time::{Duration, Instant};

use lists_support::*;
use poolwatch::matcher::{FeedPolicy, FeedRequest, FeedState, ListManager, ListManagerConfig};
use poolwatch::model::Category;
use serde_json::{json, Value};

/// The list server and the `file://` sources of these tests live on loopback and in the temp
/// directory, which the default feed policy refuses: allow both.
fn loopback_cfg(dir: impl Into<std::path::PathBuf>) -> ListManagerConfig {
    let mut cfg = ListManagerConfig::new(dir);
    cfg.feed_policy = FeedPolicy::permissive(vec![std::env::temp_dir()]);
    cfg
}

fn feed_state(c: &reqwest::blocking::Client, s: &Server, name: &str) -> Value {
    let v = get_json(c, s, "/api/v1/blocklists");
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn refresh(c: &reqwest::blocking::Client, s: &Server, name: &str) -> Value {
    let r = c
        .post(s.url(&format!("/api/v1/feeds/{name}/refresh")))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

#[test]
fn http_feed_conditional_requests_and_last_good_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(Some(loopback_cfg(tmp.path())), options());
    let mut ls = ListServer::start(&s.http.rt, Mode::Serve("feed-pool-one.example\n".into()));
    let c = client();

    // Subscribe: downloaded right away.
    let r = c
        .post(s.url("/api/v1/feeds"))
        .bearer_auth(ADMIN)
        .json(
            &json!({"name": "remote", "url": ls.url(), "interval_secs": 3600, "category": "pool"}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let st: Value = r.json().unwrap();
    assert_eq!(st["active"], true, "{st}");
    assert_eq!(st["entries"], 1);
    assert!(st["etag"].is_string());
    assert_eq!(st["last_modified"], LAST_MODIFIED);
    assert_eq!(st["last_error"], Value::Null);
    assert_eq!(check(&c, &s, "x.feed-pool-one.example")["list"], "remote");
    assert_eq!(ls.requests(), 1);
    assert_eq!(ls.conditional(), 0);

    // Unchanged: a conditional request, answered 304; nothing re-downloaded.
    let st = refresh(&c, &s, "remote");
    assert_eq!(ls.requests(), 2);
    assert_eq!(ls.conditional(), 1);
    assert_eq!(ls.not_modified(), 1);
    assert_eq!(ls.if_modified_since(), 1);
    assert_eq!(st["last_error"], Value::Null);
    assert!(st["last_success"].is_string());

    // Changed content is swapped in.
    ls.set(Mode::Serve(
        "feed-pool-one.example\nfeed-pool-two.example\n".into(),
    ));
    let st = refresh(&c, &s, "remote");
    assert_eq!(st["entries"], 2);
    assert_eq!(check(&c, &s, "feed-pool-two.example")["matched"], true);

    // Garbage (no valid entry) is refused; the last good copy stays in use.
    ls.set(Mode::Garbage(
        b"<html><body>503 oops</body></html>\n".to_vec(),
    ));
    let st = refresh(&c, &s, "remote");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("no valid entry"),
        "{st}"
    );
    assert_eq!(st["stale"], true);
    assert_eq!(st["entries"], 2);
    assert_eq!(check(&c, &s, "feed-pool-two.example")["matched"], true);
    ls.set(Mode::Garbage(vec![0xff, 0xfe, 0x00, 0x81]));
    let st = refresh(&c, &s, "remote");
    assert!(st["last_error"].as_str().unwrap().contains("UTF-8"), "{st}");

    // Server errors and an unreachable server: same.
    ls.set(Mode::Down);
    let st = refresh(&c, &s, "remote");
    assert!(st["last_error"].as_str().unwrap().contains("500"), "{st}");
    ls.shut();
    std::thread::sleep(Duration::from_millis(200));
    let st = refresh(&c, &s, "remote");
    assert!(st["last_error"].is_string(), "{st}");
    assert!(st["consecutive_failures"].as_u64().unwrap() >= 4);
    let metrics = c
        .get(s.url("/metrics"))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("poolwatch_feed_refreshes_total{result=\"not_modified\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("poolwatch_feeds_failing "), "{metrics}");
    assert_eq!(check(&c, &s, "feed-pool-two.example")["matched"], true);

    // The state shows in GET /blocklists and GET /feeds.
    let l = feed_state(&c, &s, "remote");
    assert_eq!(l["kind"], "feed");
    assert_eq!(l["entries"], 2);
    assert_eq!(l["source"], ls.url());
    assert!(l["feed"]["last_error"].is_string());
    assert!(l["feed"]["last_success"].is_string());
    let feeds = get_json(&c, &s, "/api/v1/feeds");
    assert_eq!(feeds["items"][0]["name"], "remote");

    // Restart while the feed is down: the copy on disk is used.
    s.stop();
    let s = Server::start(Some(loopback_cfg(tmp.path())), options());
    let v = check(&c, &s, "feed-pool-two.example");
    assert_eq!(v["matched"], true, "{v}");
    assert_eq!(v["list"], "remote");
    let l = feed_state(&c, &s, "remote");
    assert_eq!(l["feed"]["entries"], 2);
    assert_eq!(l["feed"]["active"], true);

    // A feed's name is not a user list; a feed is deleted through either route.
    expect_error(
        c.put(s.url("/api/v1/blocklists/remote"))
            .bearer_auth(ADMIN)
            .body("x.example\n")
            .send()
            .unwrap(),
        409,
        "conflict",
    );
    assert_eq!(
        c.delete(s.url("/api/v1/feeds/remote"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(check(&c, &s, "feed-pool-two.example")["matched"], false);
    assert!(!tmp.path().join("feeds/remote.txt").exists());
    expect_error(
        c.delete(s.url("/api/v1/feeds/remote"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap(),
        404,
        "not_found",
    );
}

#[test]
fn feed_requests_are_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(Some(loopback_cfg(tmp.path())), options());
    let c = client();
    let post = |body: Value| {
        c.post(s.url("/api/v1/feeds"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .unwrap()
    };
    for (body, code) in [
        (
            json!({"name": "../x", "url": "http://127.0.0.1/x"}),
            "invalid_name",
        ),
        (
            json!({"name": "f", "url": "ftp://127.0.0.1/x"}),
            "invalid_feed",
        ),
        (
            json!({"name": "f", "url": "file://relative/x"}),
            "invalid_feed",
        ),
        (
            json!({"name": "f", "url": "http://127.0.0.1/x", "interval_secs": 5}),
            "invalid_feed",
        ),
        (
            json!({"name": "f", "url": "http://127.0.0.1/x", "max_bytes": 0}),
            "invalid_feed",
        ),
        (
            json!({"name": "f", "url": "http://127.0.0.1/x", "category": "evil"}),
            "invalid_body",
        ),
        (json!({"name": "f"}), "invalid_body"),
    ] {
        expect_error(post(body.clone()), 400, code);
    }
    expect_error(
        post(json!({"name": "pools-monero", "url": "http://127.0.0.1:9/x"})),
        409,
        "conflict",
    );
    expect_error(
        c.post(s.url("/api/v1/feeds"))
            .bearer_auth(READ)
            .json(&json!({"name": "f", "url": "http://127.0.0.1:9/x"}))
            .send()
            .unwrap(),
        403,
        "forbidden",
    );
    expect_error(
        c.post(s.url("/api/v1/feeds/nope/refresh"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap(),
        404,
        "not_found",
    );
}

#[test]
fn size_limit_and_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = loopback_cfg(tmp.path());
    cfg.feed_timeout = Duration::from_secs(1);
    let rt = runtime();
    let (m, shared) = ListManager::open(cfg).unwrap();
    let body: String = (0..100).map(|i| format!("big{i}.example\n")).collect();
    let ls = ListServer::start(&rt, Mode::Serve(body.clone()));
    m.add_feed(FeedRequest {
        name: "big".into(),
        url: ls.url(),
        interval_secs: None,
        category: Some(Category::Pool),
        max_bytes: Some(100),
    })
    .unwrap();
    let st = rt.block_on(m.refresh_feed("big")).unwrap();
    assert!(
        st.last_error.as_deref().unwrap().contains("larger than"),
        "{st:?}"
    );
    assert!(!st.active);
    assert!(shared.load().match_name("big1.example").is_none());
    // Same without a Content-Length: counted while streaming.
    ls.set(Mode::Chunked(body.clone()));
    let st = rt.block_on(m.refresh_feed("big")).unwrap();
    assert!(
        st.last_error.as_deref().unwrap().contains("larger than"),
        "{st:?}"
    );
    assert!(shared.load().match_name("big1.example").is_none());
    // Within the limit, chunked is fine.
    ls.set(Mode::Chunked("small-chunked.example\n".into()));
    let st = rt.block_on(m.refresh_feed("big")).unwrap();
    assert!(st.active, "{st:?}");
    assert!(shared.load().match_name("small-chunked.example").is_some());

    // Slower than the timeout: an error, not a hang.
    ls.set(Mode::Slow(Duration::from_secs(3), "slow.example\n".into()));
    m.add_feed(FeedRequest {
        name: "slow".into(),
        url: ls.url(),
        interval_secs: None,
        category: None,
        max_bytes: None,
    })
    .unwrap();
    let t = Instant::now();
    let st = rt.block_on(m.refresh_feed("slow")).unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        st.last_error.as_deref().unwrap().contains("timed out"),
        "{st:?}"
    );
}

#[test]
fn file_feeds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("upstream.txt");
    std::fs::write(&src, "||file-pool.example^\n").unwrap();
    let rt = runtime();
    let (m, shared) = ListManager::open(loopback_cfg(tmp.path().join("lists"))).unwrap();
    let url = format!("file://{}", src.display());
    m.add_feed(FeedRequest {
        name: "local".into(),
        url,
        interval_secs: Some(60),
        category: Some(Category::BrowserMiner),
        max_bytes: None,
    })
    .unwrap();
    let st = rt.block_on(m.refresh_feed("local")).unwrap();
    assert!(st.active, "{st:?}");
    let hit = shared
        .load()
        .match_name("a.file-pool.example")
        .cloned()
        .unwrap();
    assert_eq!(hit.list, "local");
    assert_eq!(hit.category, Category::BrowserMiner);
    let changed = st.last_change;

    // Unchanged file: "not modified", the copy is not replaced.
    let st = rt.block_on(m.refresh_feed("local")).unwrap();
    assert_eq!(st.last_change, changed);
    assert!(st.last_error.is_none());

    // Changed file: new content.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&src, "||file-pool.example^\n||second-file-pool.example^\n").unwrap();
    let st = rt.block_on(m.refresh_feed("local")).unwrap();
    assert_eq!(st.entries, 2);
    assert!(shared
        .load()
        .match_name("second-file-pool.example")
        .is_some());

    // Gone: the copy stays.
    std::fs::remove_file(&src).unwrap();
    let st = rt.block_on(m.refresh_feed("local")).unwrap();
    assert!(st.last_error.is_some());
    assert!(st.stale);
    assert!(shared
        .load()
        .match_name("second-file-pool.example")
        .is_some());
}

#[test]
fn background_task_refreshes_due_feeds_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let ls = ListServer::start(&rt, Mode::Serve("bg-pool.example\n".into()));
    let mut cfg = loopback_cfg(tmp.path());
    // A configured feed: downloaded by the background task without any API call.
    cfg.feeds
        .push(poolwatch::matcher::FeedState::new_configured(
            "cfg-feed",
            &ls.url(),
            3600,
            1 << 20,
        ));
    let (m, shared) = ListManager::open(cfg).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let _g = rt.enter();
        m.spawn_background(async {
            let _ = stopped.await;
        })
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while shared.load().match_name("bg-pool.example").is_none() {
        assert!(
            Instant::now() < deadline,
            "background refresh did not happen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        m.feed("cfg-feed").unwrap().origin,
        poolwatch::matcher::FeedOrigin::Config
    );
    // Configured feeds are read-only through the API.
    assert!(m.delete_feed("cfg-feed").is_err());
    let _ = stop.send(());
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
        .expect("background task did not stop")
        .unwrap();
    assert_eq!(ls.requests(), 1);
}

#[test]
fn blocklist_files_are_watched_and_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("site-pools.txt");
    std::fs::write(&file, "site-pool-one.example\n").unwrap();
    let rt = runtime();
    let mut cfg = loopback_cfg(tmp.path().join("lists"));
    cfg.blocklists = vec![file.clone()];
    cfg.watch_interval = Some(Duration::from_millis(100));
    let (m, shared) = ListManager::open(cfg).unwrap();
    assert!(shared.load().match_name("site-pool-one.example").is_some());
    // Only the given file: no shipped lists.
    assert!(shared.load().match_name("pool.supportxmr.com").is_none());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let _g = rt.enter();
        m.spawn_background(async {
            let _ = stopped.await;
        })
    };
    // A user list survives file reloads.
    m.put_user_list("mine", "user-pool.example\n", None, None)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&file, "site-pool-one.example\nsite-pool-two.example\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.load().match_name("site-pool-two.example").is_none() {
        assert!(Instant::now() < deadline, "file change not picked up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(shared.load().match_name("user-pool.example").is_some());
    // A broken file keeps the old set.
    std::fs::write(&file, "bad..entry\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(shared.load().match_name("site-pool-two.example").is_some());
    // The file's list cannot be replaced or deleted through the manager.
    assert!(m
        .put_user_list("site-pools", "x.example\n", None, None)
        .is_err());
    assert!(m.delete("site-pools").is_err());
    let info = m.lists();
    let l = info.iter().find(|l| l.name == "site-pools").unwrap();
    assert_eq!(l.kind, poolwatch::matcher::ListKind::File);
    let _ = stop.send(());
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
        .expect("background task did not stop")
        .unwrap();
}

/// Issue #11: a feed line `0.0.0.0/0` / `::/0` is counted invalid and never compiled, so it
/// cannot make benign hosts `direct_ip`.
#[test]
fn wide_cidr_feed_lines_are_counted_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("upstream.txt");
    std::fs::write(&src, "wide-pool.example\n0.0.0.0/0\n::/0\n203.0.113.0/24\n").unwrap();
    let rt = runtime();
    let (m, shared) = ListManager::open(loopback_cfg(tmp.path().join("lists"))).unwrap();
    m.add_feed(FeedRequest {
        name: "wide".into(),
        url: format!("file://{}", src.display()),
        interval_secs: Some(60),
        category: None,
        max_bytes: None,
    })
    .unwrap();
    let st = rt.block_on(m.refresh_feed("wide")).unwrap();
    assert!(st.active, "{st:?}");
    assert_eq!((st.entries, st.invalid), (2, 2), "{st:?}");
    let lists = shared.load();
    assert!(lists
        .match_ip("203.0.113.9".parse().unwrap(), None)
        .is_some());
    for benign in ["198.51.100.1", "8.8.8.8", "2001:db8::1"] {
        assert!(
            lists.match_ip(benign.parse().unwrap(), Some(443)).is_none(),
            "{benign} matched"
        );
    }
}

fn feed_req(name: &str, url: &str) -> FeedRequest {
    FeedRequest {
        name: name.into(),
        url: url.into(),
        interval_secs: Some(3600),
        category: None,
        max_bytes: None,
    }
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";

/// Issue #11: a `file://` feed's first invalid line was shown in `last_error` to read-token
/// holders (a line of `/etc/passwd`). Errors name line numbers and counts only; `file://`
/// feeds read only below `feeds.file_roots` (none by default), symlinks resolved.
#[test]
fn file_feed_errors_never_echo_content_and_stay_in_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let roots = tmp.path().join("allowed");
    std::fs::create_dir_all(&roots).unwrap();
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, PASSWD).unwrap();
    std::os::unix::fs::symlink(&secret, roots.join("link.txt")).unwrap();
    std::fs::write(roots.join("passwd-copy.txt"), PASSWD).unwrap();

    // Default policy: no file:// feed at all.
    let (m, _) = ListManager::open(ListManagerConfig::new(tmp.path().join("l0"))).unwrap();
    let e = m
        .add_feed(feed_req(
            "f",
            &format!("file://{}", roots.join("passwd-copy.txt").display()),
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("feeds.file_roots"), "{e}");

    let mut cfg = ListManagerConfig::new(tmp.path().join("lists"));
    cfg.feed_policy = FeedPolicy {
        file_roots: vec![roots.clone()],
        ..FeedPolicy::default()
    };
    let s = Server::start(Some(cfg), options());
    let c = client();
    for (url, why) in [
        (format!("file://{}", secret.display()), "outside the root"),
        ("file:///etc/passwd".to_string(), "outside the root"),
        (
            format!("file://{}/../secret.txt", roots.display()),
            "dot-dot",
        ),
        (
            format!("file://{}", roots.join("link.txt").display()),
            "symlink out",
        ),
    ] {
        let r = c
            .post(s.url("/api/v1/feeds"))
            .bearer_auth(ADMIN)
            .json(&json!({"name": "sneaky", "url": url}))
            .send()
            .unwrap();
        let v = expect_error(r, 400, "invalid_feed");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("feeds.file_roots"), "{why}: {msg}");
        assert!(!msg.contains("root:x"), "{why}: {msg}");
    }

    // Inside the roots but not a list: the error counts lines, it does not quote them.
    let url = format!("file://{}", roots.join("passwd-copy.txt").display());
    let r = c
        .post(s.url("/api/v1/feeds"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "copy", "url": url}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let st = refresh(&c, &s, "copy");
    let err = st["last_error"].as_str().unwrap();
    assert!(
        err.contains("2 invalid lines") && err.contains("line 1"),
        "{err}"
    );
    let listing = c
        .get(s.url("/api/v1/feeds"))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .text()
        .unwrap();
    for secret_bit in ["root:x", "/bin/bash", "daemon", "nologin"] {
        assert!(
            !listing.contains(secret_bit),
            "{secret_bit} shown: {listing}"
        );
    }
}

/// Issue #11: feed fetches to loopback, link-local and private addresses are refused unless
/// allowed — literal addresses in every spelling at subscription, names after resolution,
/// redirects re-checked — and the refused server never sees a request.
#[test]
fn feed_fetches_to_private_addresses_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let list = ListServer::start(&rt, Mode::Serve("private-pool.example\n".into()));
    let port = list.addr.port();
    // A configured feed (not checked at subscription) pointing at loopback.
    let mut cfg = ListManagerConfig::new(tmp.path().join("lists"));
    cfg.feeds = vec![FeedState::new_configured(
        "configured",
        &list.url(),
        3600,
        1 << 20,
    )];
    let (m, shared) = ListManager::open(cfg).unwrap();
    for host in [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::1]",
        "0.0.0.0",
        "0",
        "[::]",
    ] {
        let url = format!("http://{host}:{port}/list.txt");
        let e = m.add_feed(feed_req("lit", &url)).unwrap_err().to_string();
        assert!(e.contains("feeds.allow_private"), "{host}: {e}");
    }
    // Names pass subscription and are refused after resolution.
    m.add_feed(feed_req(
        "name",
        &format!("http://localhost:{port}/list.txt"),
    ))
    .unwrap();
    for name in ["name", "configured"] {
        let st = rt.block_on(m.refresh_feed(name)).unwrap();
        let err = st.last_error.unwrap_or_default();
        assert!(err.contains("refused"), "{name}: {err}");
        assert!(!st.active);
    }
    assert_eq!(list.requests(), 0, "the loopback server was reached");
    assert!(shared.load().match_name("private-pool.example").is_none());

    // One allowed host; its redirects to other private hosts are refused before connecting.
    let mut cfg = ListManagerConfig::new(tmp.path().join("lists2"));
    cfg.feed_policy = FeedPolicy {
        allow_hosts: vec!["127.0.0.1".into()],
        ..FeedPolicy::default()
    };
    let (m, _) = ListManager::open(cfg).unwrap();
    m.add_feed(feed_req("hop", &list.url())).unwrap();
    for target in [
        format!("http://localhost:{port}/list.txt"),
        format!("http://127.0.0.2:{port}/list.txt"),
        format!("http://2130706434:{port}/list.txt"),
        format!("http://[::1]:{port}/list.txt"),
    ] {
        list.set(Mode::Redirect(target.clone()));
        let before = list.requests();
        let st = rt.block_on(m.refresh_feed("hop")).unwrap();
        let err = st.last_error.unwrap_or_default();
        assert!(err.contains("refused"), "{target}: {err}");
        assert_eq!(list.requests(), before + 1, "{target}: followed");
    }
    // The allowed host itself works.
    list.set(Mode::Serve("private-pool.example\n".into()));
    let st = rt.block_on(m.refresh_feed("hop")).unwrap();
    assert!(st.active && st.last_error.is_none(), "{st:?}");
}

/// Issue #11: 12 parallel refreshes of one feed each downloaded it (RSS 18 → 380 MB for a
/// 64 MiB feed). Concurrent refreshes are merged into one download.
#[test]
fn concurrent_refreshes_of_one_feed_are_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime();
    let body: String = (0..5000).map(|i| format!("pool-{i}.example\n")).collect();
    let list = ListServer::start(&rt, Mode::Slow(Duration::from_millis(500), body));
    let (m, _) = ListManager::open(loopback_cfg(tmp.path().join("lists"))).unwrap();
    m.add_feed(feed_req("big", &list.url())).unwrap();
    let states = rt.block_on(async {
        let calls = (0..12).map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.refresh_feed("big").await })
        });
        futures_util::future::join_all(calls).await
    });
    assert_eq!(list.requests(), 1, "12 refreshes, one download");
    for st in states {
        let st = st.unwrap().unwrap();
        assert_eq!(st.entries, 5000);
        assert!(st.last_error.is_none());
    }
    // A later refresh downloads again (merging is only for overlapping calls).
    rt.block_on(m.refresh_feed("big")).unwrap();
    assert_eq!(list.requests(), 2);
}
