//! The web UI in a real headless browser (Debian `chromium` driven through `chromedriver`),
//! against the real `poolwatch` binary on loopback: the demo's overview counts, the detections
//! table and its filters, the detail page's evidence timeline, token handling, a suppression made
//! in the UI, a detection arriving live, and an XSS payload in a log-derived query name.
//!
//! `POOLWATCH_UPDATE_SCREENSHOTS=1` writes the README screenshots to `docs/img/`.
//! Skips (printing `skipping: chromium not installed`) when chromium or chromium-driver is absent.

use crate::support::browser as browser_support;
use crate::support::service as service_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use browser_support::Browser;
use serde_json::{json, Value};
use service_support::*;

const W: u32 = 1440;
const H: u32 = 900;

fn update_screenshots() -> bool {
    std::env::var("POOLWATCH_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1")
}

fn save_png(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/img")
        .join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, png).unwrap();
    eprintln!("wrote {}", p.display());
}

fn hosts_in_table(b: &Browser) -> BTreeSet<String> {
    b.texts("#detections tbody tr[data-id] td:nth-child(2) a")
        .into_iter()
        .collect()
}

/// Emulates the OS colour-scheme preference (chromedriver's CDP passthrough).
fn set_dark(b: &Browser, dark: bool) {
    let scheme = if dark { "dark" } else { "light" };
    b.raw(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Emulation.setEmulatedMedia",
               "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]}}),
    );
}

#[test]
fn demo_overview_table_filters_and_detail_in_a_browser() {
    let Some(b) = Browser::start(W, H) else {
        return;
    };
    let s = Svc::start(&["demo", "--listen", "127.0.0.1:0"], None);
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    let dets = wait_for(&c, &s, None, "the sample verdicts", |d| {
        served_stages(d) == want
    });
    let mut per_stage: BTreeMap<String, usize> = BTreeMap::new();
    for d in &dets {
        *per_stage
            .entry(d["stage"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    // The sample has one incident per reported host: the counts follow from expected.json.
    let mut from_expected: BTreeMap<String, usize> = BTreeMap::new();
    for (_, st) in &want {
        *from_expected.entry(st.clone()).or_default() += 1;
    }
    assert_eq!(per_stage, from_expected);

    // Overview: counts per stage, total, top hosts.
    b.goto(&s.url("/"));
    b.wait("#stage-counts [data-count]");
    for st in [
        "lookup",
        "blocked_lookup",
        "connection_attempt",
        "connection",
        "direct_ip",
        "stratum",
    ] {
        let shown = b.texts(&format!("#stage-counts [data-count={st}]"));
        let n = per_stage.get(st).copied().unwrap_or(0);
        assert_eq!(shown, vec![n.to_string()], "stage {st}");
    }
    assert_eq!(
        b.texts("#kpi-total .kpi-value"),
        vec![dets.len().to_string()]
    );
    let top_hosts: BTreeSet<String> = b
        .texts("#top-hosts tbody td:first-child a")
        .into_iter()
        .collect();
    let want_hosts: BTreeSet<String> = want.iter().map(|(ip, _)| ip.clone()).collect();
    assert_eq!(top_hosts, want_hosts);
    // The timeline chart has one stacked rect per (bucket, stage) with detections.
    let bars = b.js(
        "return document.querySelectorAll('svg.chart rect.fill').length",
        json!([]),
    );
    assert!(bars.as_u64().unwrap() >= 4, "timeline bars: {bars}");
    b.wait("#live.on");
    if update_screenshots() {
        set_dark(&b, false);
        std::thread::sleep(std::time::Duration::from_millis(300));
        save_png("ui-overview.png", &b.screenshot());
        set_dark(&b, true);
        std::thread::sleep(std::time::Duration::from_millis(300));
        save_png("ui-overview-dark.png", &b.screenshot());
        set_dark(&b, false);
    }
    // prefers-color-scheme is honoured: the page background changes with the preference.
    set_dark(&b, true);
    let dark_bg = b.js(
        "return getComputedStyle(document.body).backgroundColor",
        json!([]),
    );
    set_dark(&b, false);
    let light_bg = b.js(
        "return getComputedStyle(document.body).backgroundColor",
        json!([]),
    );
    assert_ne!(dark_bg, light_bg, "no dark theme");

    // Detections: every expected host is listed.
    b.goto(&s.url("/#/detections"));
    b.wait("#detections tbody tr[data-id]");
    assert_eq!(hosts_in_table(&b), want_hosts);

    // A filter narrows it, and the state is in the URL.
    b.wait("#filters select[name=stage] option[value=stratum]")
        .click();
    b.wait("#apply").click();
    b.wait_until("the stratum filter", |b| {
        b.url().contains("stage=stratum")
            && hosts_in_table(b)
                == want
                    .iter()
                    .filter(|(_, st)| st == "stratum")
                    .map(|(ip, _)| ip.clone())
                    .collect()
    });
    let shared = b.url();
    let f = b.wait("#f-client");
    f.clear();
    f.send_keys("192.0.2.10");
    b.wait("#apply").click();
    b.wait_until("the client filter", |b| {
        hosts_in_table(b) == BTreeSet::from(["192.0.2.10".to_string()])
    });
    // The shared link reproduces the filtered table on a fresh load.
    b.goto("about:blank");
    b.goto(&shared);
    b.wait("#detections tbody tr[data-id]");
    assert_eq!(hosts_in_table(&b).len(), 2);

    // Sorting by risk (ascending) orders the page.
    b.goto(&s.url("/#/detections?sort=risk_score:asc"));
    b.wait("#detections tbody tr[data-id]");
    let risks: Vec<u32> = b
        .texts("#detections tbody tr[data-id] td:nth-child(4)")
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    let mut sorted = risks.clone();
    sorted.sort();
    assert_eq!(risks, sorted);

    // Detail of the miner: the evidence timeline runs query → answer → Stratum.
    let miner = dets
        .iter()
        .find(|d| d["client_ip"] == "192.0.2.10")
        .unwrap();
    b.goto(&s.url(&format!("/#/detections/{}", miner["id"].as_str().unwrap())));
    b.wait("#evidence li.ev");
    let kinds = b.texts("#evidence .ev-kind");
    let pos = |k: &str| kinds.iter().position(|x| x == k);
    let (q, a, st) = (pos("Query"), pos("Answer"), pos("Stratum"));
    assert!(
        q.is_some() && a.is_some() && st.is_some() && q < a && a < st,
        "{kinds:?}"
    );
    let ev_text = b.texts("#evidence").join(" ");
    assert!(ev_text.contains("pool.supportxmr.com"), "{ev_text}");
    assert!(ev_text.contains("XMRig/6.21.0"), "{ev_text}");
    let prov = b.texts("#provenance tbody td").join(" ");
    assert!(prov.contains("supportxmr.com"), "{prov}");
    let risk = b.texts("#risk-breakdown tr.total td:last-child");
    assert_eq!(risk, vec![miner["risk_score"].to_string()]);
    assert!(b.body_text().contains("T1496"));
    // The demo has no admin token: the detail is read-only.
    assert!(b.find_all("#suppress-btn").is_empty());
    if update_screenshots() {
        save_png("ui-detail.png", &b.screenshot());
    }

    // Host view: the miner's detections, bindings and first seen.
    b.wait("#open-host").click();
    b.wait("#host-detections tbody tr[data-id]");
    assert_eq!(b.texts("#host-ip"), vec!["192.0.2.10".to_string()]);
    assert!(b.texts("#host-first .kpi-value")[0].starts_with("2026-11-26"));
    let bindings = b.texts("#host-bindings-table tbody td").join(" ");
    assert!(bindings.contains("203.0.113.10"), "{bindings}");

    // Lists page and the check box.
    b.goto(&s.url("/#/lists"));
    let name = b.wait("#check-name");
    name.send_keys("pool.supportxmr.com\n");
    b.wait_until("the check result", |b| {
        b.texts("#check-result").join(" ").contains("pools-monero")
    });
    assert!(b
        .texts("#lists-table tbody td")
        .join(" ")
        .contains("pools-monero"));

    // A narrow window: nothing overflows sideways, navigation stays reachable.
    b.set_size(420, 860);
    b.goto(&s.url("/#/"));
    b.wait("#stage-counts [data-count]");
    let overflow = b.js(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        json!([]),
    );
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "horizontal overflow {overflow}"
    );

    // Keyboard: "g d" opens the detections page, "/" focuses the first filter.
    b.js(
        "document.activeElement && document.activeElement.blur(); return 1",
        json!([]),
    );
    b.keys("gd");
    b.wait("#detections");
    b.keys("/");
    b.wait_until("the filter focus", |b| {
        b.js(
            "return document.activeElement && document.activeElement.id",
            json!([]),
        ) == json!("f-client")
    });
}

fn serve_sample(dir: &Path, follow: &Path) -> Svc {
    let (pcap, log) = (sample("sample.pcap"), sample("sample-dnsmasq.log"));
    let db = dir.join("db");
    Svc::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
            "--retention-days",
            "0",
            "--import",
            pcap.to_str().unwrap(),
            "--import",
            log.to_str().unwrap(),
            "--follow",
            follow.to_str().unwrap(),
            "--admin-token",
            ADMIN,
            "--read-token",
            READ,
        ],
        None,
    )
}

fn enter_token(b: &Browser, token: &str) {
    b.wait("#auth-btn").click();
    let input = b.wait("#token-dialog[open] #token-input");
    input.send_keys(token);
    b.wait("#token-save").click();
}

#[test]
fn tokens_suppression_live_detection_and_xss_in_a_browser() {
    let Some(b) = Browser::start(W, H) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("resolver.log");
    let s = serve_sample(dir.path(), &live);
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    let dets = wait_for(&c, &s, Some(READ), "the sample verdicts", |d| {
        served_stages(d) == want
    });

    // Reads need a token: the UI asks for one.
    b.goto(&s.url("/"));
    b.wait("#locked");
    enter_token(&b, "wrong-token-0123456789");
    b.wait_until("the invalid-token message", |b| {
        b.texts("#token-error").join("").contains("not valid")
    });
    b.wait("#token-cancel").click();

    // A read token: data, but no write actions.
    enter_token(&b, READ);
    b.wait("#stage-counts [data-count]");
    assert_eq!(b.texts("#auth-btn"), vec!["Read token".to_string()]);
    let miner = dets
        .iter()
        .find(|d| d["client_ip"] == "192.0.2.10")
        .unwrap();
    let detail = s.url(&format!("/#/detections/{}", miner["id"].as_str().unwrap()));
    b.goto(&detail);
    b.wait("#evidence li.ev");
    assert!(
        b.find_all("#suppress-btn").is_empty(),
        "read token can suppress"
    );
    b.goto(&s.url("/#/lists"));
    b.wait(".readonly-note");
    assert!(b.find_all("#reload-lists").is_empty());
    // The token lives in the tab's session storage, never in the URL or a cookie.
    assert!(!b.url().contains(READ));
    assert_eq!(
        b.js(
            "return sessionStorage.getItem('poolwatch.token')",
            json!([])
        ),
        json!(READ)
    );
    assert_eq!(b.js("return document.cookie", json!([])), json!(""));

    // The admin token: suppress from the detail page; the API has the suppression.
    enter_token(&b, ADMIN);
    b.wait_until("admin mode", |b| {
        b.texts("#auth-btn") == vec!["Admin".to_string()]
    });
    b.goto(&detail);
    b.wait("#suppress-btn").click();
    b.wait("#suppress-reason")
        .send_keys("lab miner, ticket 4711");
    b.wait("#suppress-expires option[value='604800']").click();
    b.wait("#suppress-submit").click();
    b.wait_until("the suppression", |_| {
        let v: Value = c
            .get(s.url("/api/v1/suppressions"))
            .bearer_auth(READ)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["items"].as_array().unwrap().iter().any(|x| {
            x["reason"] == "lab miner, ticket 4711"
                && x["client"] == "192.0.2.10/32"
                && x["pool"] == "supportxmr.com"
                && x["expires"].is_string()
        })
    });

    // Live: a lookup appended to the followed log shows up in the open table without a reload.
    b.goto(&s.url("/#/detections"));
    b.wait("#detections tbody tr[data-id]");
    b.wait("#live.on");
    b.js("window.__noReload = 42; return 1", json!([]));
    let summary_total = || -> u64 {
        let v: Value = c
            .get(s.url("/api/v1/summary"))
            .bearer_auth(READ)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["total"].as_u64().unwrap()
    };
    // Cached now; the new detection's event must invalidate it.
    assert_eq!(summary_total(), dets.len() as u64);
    append(
        &live,
        &dnsmasq_lookup(
            901,
            "192.0.2.50",
            "xmr-eu1.nanopool.org",
            "203.0.113.20",
            "20:10:01",
        ),
    );
    b.wait_until("the live row", |b| hosts_in_table(b).contains("192.0.2.50"));
    assert_eq!(b.js("return window.__noReload", json!([])), json!(42));
    assert_eq!(b.find_all("#detections tr.fresh").len(), 1);
    assert_eq!(summary_total(), dets.len() as u64 + 1);

    // XSS: a query name carrying markup renders as text; no element, no script runs.
    let payload = "<img/src=x/onerror=alert(1)>.pool.supportxmr.com";
    append(
        &live,
        &dnsmasq_lookup(902, "192.0.2.77", payload, "203.0.113.10", "20:10:05"),
    );
    b.wait_until("the hostile row", |b| {
        hosts_in_table(b).contains("192.0.2.77")
    });
    let names = b.texts("#detections tbody td.names");
    assert!(names.iter().any(|n| n == payload), "{names:?}");
    let imgs = b.js(
        "return document.querySelectorAll('main img').length",
        json!([]),
    );
    assert_eq!(imgs, json!(0));
    assert_eq!(b.alert_text(), None, "a script ran");
    let hostile = all_detections(&c, &s, Some(READ))
        .into_iter()
        .find(|d| d["client_ip"] == "192.0.2.77")
        .unwrap();
    b.goto(&s.url(&format!(
        "/#/detections/{}",
        hostile["id"].as_str().unwrap()
    )));
    b.wait("#evidence li.ev");
    assert!(b.texts("#evidence .ev-main").iter().any(|t| t == payload));
    assert_eq!(
        b.js(
            "return document.querySelectorAll('main img').length",
            json!([])
        ),
        json!(0)
    );
    assert_eq!(b.alert_text(), None, "a script ran");
    // The toast of the live event showed it as text too.
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#toasts img').length",
            json!([])
        ),
        json!(0)
    );
}
