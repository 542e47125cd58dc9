//! Page weight and load time of the web UI's overview with 10 000 stored detections.
//!
//! `cargo bench --bench ui_load` (release build of the real binary):
//! 1. writes a dnsmasq log in which 2 500 clients each look up 4 listed pools (10 000
//!    detections), and imports it with `poolwatch serve --import` into a fresh sled store;
//! 2. loads the overview in headless chromium (cache disabled, so every run transfers
//!    everything) N times and reports, as medians, the time from navigation start to the first
//!    rendered page (`performance.mark("poolwatch-rendered")`, set by ui/app.js after the data
//!    is on screen) and the bytes transferred (navigation + every resource + API call);
//! 3. the same against an empty store in the same run (the baseline: the page's fixed cost),
//!    and the plain HTTP cost of each request the overview makes.
//!
//! Needs chromium + chromium-driver (prints `skipping: …` otherwise). Results: docs/ui.md.

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/it/support/browser.rs"]
mod browser_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// 4 lookups each: 10 000 detections.
const CLIENTS: u32 = 2500;
/// The store must hold at least this many detections before measuring.
const WANT: u64 = 10_000;
const POOLS: [&str; 4] = [
    "pool.supportxmr.com",
    "xmr-eu1.nanopool.org",
    "gulf.moneroocean.stream",
    "pool.hashvault.pro",
];
const RUNS: usize = 15;

struct Svc {
    child: Child,
    base: String,
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path, import: Option<&std::path::Path>) -> Svc {
    let db = dir.join("db");
    let mut args = vec![
        "serve".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--db".into(),
        db.display().to_string(),
        "--retention-days".into(),
        "0".into(),
    ];
    if let Some(p) = import {
        args.push("--import".into());
        args.push(p.display().to_string());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(&args)
        .env("POOLWATCH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start poolwatch");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("service address");
    Svc { child, base }
}

fn write_log(path: &std::path::Path) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut serial = 1u32;
    for c in 0..CLIENTS {
        let client = format!("10.{}.{}.{}", 20 + c / 62_500, (c / 250) % 250, c % 250 + 1);
        for (i, name) in POOLS.iter().enumerate() {
            let secs = (c * 4 + i as u32) % 86_400;
            let t = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            let ip = format!("203.0.113.{}", 10 + i * 10);
            let port = 10_000 + serial % 50_000;
            for line in [
                format!("Nov 26 {t} dnsmasq[4242]: {serial} {client}/{port} query[A] {name} from {client}"),
                format!("Nov 26 {t} dnsmasq[4242]: {serial} {client}/{port} forwarded {name} to 198.51.100.53"),
                format!("Nov 26 {t} dnsmasq[4242]: {serial} {client}/{port} reply {name} is {ip}"),
            ] {
                writeln!(f, "{line}").unwrap();
            }
            serial += 1;
        }
    }
    f.flush().unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// (median ms to rendered, median bytes transferred, requests) over RUNS cold loads.
fn browser_loads(b: &browser_support::Browser, base: &str) -> (f64, f64, usize) {
    b.raw(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Network.enable", "params": {}}),
    );
    b.raw(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Network.setCacheDisabled", "params": {"cacheDisabled": true}}),
    );
    let mut times = Vec::new();
    let mut bytes = Vec::new();
    let mut requests = 0;
    for run in 0..=RUNS {
        b.goto("about:blank");
        b.goto(&format!("{base}/"));
        let t = Instant::now();
        while b.js(
            "return performance.getEntriesByName('poolwatch-rendered').length",
            json!([]),
        ) != json!(1)
            || b.find_all("#stage-counts").len() != 1
        {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "run {run}: overview not rendered; requests: {}",
                b.js(
                    "return performance.getEntriesByType('resource').map(e => e.name + ' ' + e.responseStatus + ' ' + e.duration).join(' | ')",
                    json!([])
                )
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let v: Value = b.js(
            "const n = performance.getEntriesByType('navigation')[0];
             const r = performance.getEntriesByType('resource').filter(e => !e.name.includes('/detections/stream'));
             return {ms: performance.getEntriesByName('poolwatch-rendered')[0].startTime,
                     bytes: n.transferSize + r.reduce((a, e) => a + e.transferSize, 0),
                     requests: 1 + r.length};",
            json!([]),
        );
        if run == 0 {
            continue; // warm-up (process start, first sled reads)
        }
        times.push(v["ms"].as_f64().unwrap());
        bytes.push(v["bytes"].as_f64().unwrap());
        requests = v["requests"].as_u64().unwrap() as usize;
    }
    (median(times), median(bytes), requests)
}

/// Median ms and body bytes of one plain GET.
fn http_cost(c: &reqwest::blocking::Client, url: &str) -> (f64, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let body = c.get(url).send().unwrap().bytes().unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        size = body.len();
    }
    (median(times), size)
}

fn main() {
    // `cargo test --benches` runs benches with `--test`-like args; only run when benchmarking.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(b) = browser_support::Browser::start(1440, 900) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dnsmasq.log");
    write_log(&log);
    let s = start(&dir.path().join("full"), Some(&log));
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let t = Instant::now();
    // Wait until the import is done: at least WANT detections and no change for 3 s.
    let (mut last, mut since_change) = (0u64, Instant::now());
    let want = loop {
        let total = c
            .get(format!("{}/api/v1/summary", s.base))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0);
        if total != last {
            (last, since_change) = (total, Instant::now());
        } else if total >= WANT && since_change.elapsed() > Duration::from_secs(3) {
            break total;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "import stalled at {total}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "stored {want} detections from {} lookups in {:.1} s",
        u64::from(CLIENTS) * POOLS.len() as u64,
        t.elapsed().as_secs_f64()
    );

    let empty = start(&dir.path().join("empty"), None);
    let (ms0, bytes0, req0) = browser_loads(&b, &empty.base);
    let (ms, bytes, req) = browser_loads(&b, &s.base);
    println!("ui_load: overview, headless chromium, cache disabled, median of {RUNS} loads");
    println!("  empty store (baseline): {ms0:7.1} ms to rendered, {bytes0:8.0} B transferred, {req0} requests");
    println!("  {want} detections:      {ms:7.1} ms to rendered, {bytes:8.0} B transferred, {req} requests");
    println!(
        "  ratio: {:.2}x time, {:.2}x bytes",
        ms / ms0,
        bytes / bytes0
    );
    println!("  per request (plain HTTP GET, median of {RUNS}):");
    for path in [
        "/",
        "/ui/app.css",
        "/ui/app.js",
        "/ui/lib.js",
        "/ui/pages.js",
        "/ui/chart.js",
        "/ui/favicon.svg",
        "/api/v1/session",
        "/api/v1/summary",
        "/api/v1/detections?limit=8",
    ] {
        let (ms, size) = http_cost(&c, &format!("{}{path}", s.base));
        println!("    {path:32} {ms:7.2} ms {size:8} B");
    }
    // The summary without its 2 s cache: a different `top` each time is a different question.
    let mut times = Vec::new();
    for i in 0..RUNS {
        let t = Instant::now();
        let r = c
            .get(format!("{}/api/v1/summary?top={}", s.base, i + 1))
            .send()
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "    {:32} {:7.2} ms (computed over {want} detections)",
        "/api/v1/summary (uncached)",
        median(times)
    );
    drop(empty);
}
