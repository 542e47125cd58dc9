//! Test support for the cluster tests: a real `nats-server -js` on a free loopback port (killed
//! by its PID), poolwatch nodes (the real binary; the bound address read from `listening on`),
//! and the detections and metrics they serve over real HTTP.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a node may take to report its address.
pub const START_WAIT: Duration = Duration::from_secs(30);
pub const NATS_BIN: &str = "/usr/sbin/nats-server";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_poolwatch")
}

/// The nats-server binary, or `None` (the caller skips with a message).
pub fn nats_server() -> Option<PathBuf> {
    if Path::new(NATS_BIN).exists() {
        return Some(PathBuf::from(NATS_BIN));
    }
    let out = Command::new("sh")
        .args(["-c", "command -v nats-server"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// The lab data set (`../shared/data/lab`), when present.
pub fn lab() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lab");
    p.join("pcaps/mixed.pcap").exists().then_some(p)
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sample")
        .join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A JetStream server with its store in a temporary directory.
pub struct Nats {
    bin: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    /// A config file (`-c`) instead of `-sd DIR`.
    config: Option<PathBuf>,
    child: Option<Child>,
}

impl Nats {
    pub fn start(bin: PathBuf) -> Nats {
        let mut n = Nats {
            bin,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            config: None,
            child: None,
        };
        n.spawn();
        n
    }

    /// A JetStream server limited to `max_file_store` (nats-server's syntax, e.g. `1GB`) by
    /// its config file `jetstream { max_file_store: …, store_dir: … }`.
    pub fn start_with_max_file_store(bin: PathBuf, max_file_store: &str) -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("nats.conf");
        let store = dir.path().join("store");
        std::fs::write(
            &config,
            format!(
                "jetstream {{ max_file_store: {max_file_store}, store_dir: {:?} }}\n",
                store.to_string_lossy()
            ),
        )
        .unwrap();
        let mut n = Nats {
            bin,
            port: free_port(),
            dir,
            config: Some(config),
            child: None,
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()]);
        match &self.config {
            Some(c) => cmd.arg("-c").arg(c),
            None => cmd.arg("-sd").arg(self.dir.path()),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t.elapsed() < START_WAIT, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `kill -9`, then the same port and store again.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running poolwatch process.
pub struct Node {
    pub name: String,
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Node {
    pub fn start(name: &str, args: &[String]) -> Node {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::support::proc::without_poolwatch_env(&mut cmd);
        cmd.env("POOLWATCH_LOG", "info").env("NO_COLOR", "1");
        let (child, base, log) =
            crate::support::service::spawn_reporting_address(&mut cmd, START_WAIT, name);
        Node {
            name: name.to_string(),
            child,
            base,
            log,
        }
    }

    /// `serve --cluster URL --role ROLE --node NAME --listen 127.0.0.1:0 --db DIR/NAME extra…`
    pub fn cluster(url: &str, role: &str, name: &str, dir: &Path, extra: &[String]) -> Node {
        let mut args: Vec<String> = [
            "serve",
            "--cluster",
            url,
            "--role",
            role,
            "--node",
            name,
            "--listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--db".into());
        args.push(dir.join(name).to_string_lossy().into_owned());
        args.extend_from_slice(extra);
        Node::start(name, &args)
    }

    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "{} did not stop:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A metric's value summed over its label sets (0 when absent).
    pub fn metric(&self, name: &str) -> f64 {
        let Ok(r) = http().get(format!("{}/metrics", self.base)).send() else {
            return f64::NAN;
        };
        let text = r.text().unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Every detection served (all pages).
    pub fn detections(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/api/v1/detections?limit=1000", self.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Ok(r) = http().get(url).send() else {
                return out;
            };
            let Ok(v) = r.json::<Value>() else {
                return out;
            };
            if let Some(items) = v["items"].as_array() {
                out.extend(items.iter().cloned());
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

// Whether verdicts include the evidence counters. With one input the counters are
// deterministic; with a pcap and logs of the same queries they depend on how the two
// sources interleave (the engine's cross-source de-duplication), on the single box as in the
// cluster, so the multi-source comparison is the "same clients, stages, pools".
// Per test thread: the tests share one process, and the lab test's choice must not change
// what a fault test running beside it compares.
thread_local! {
    static WITH_COUNTS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

pub fn compare_counts(on: bool) {
    WITH_COUNTS.with(|c| c.set(on));
}

/// What must be equal between the cluster and the single box: client, stage and pool of
/// every detection, and (see [`compare_counts`]) its evidence counters.
pub fn verdicts(dets: &[Value]) -> BTreeSet<String> {
    let counts = WITH_COUNTS.with(std::cell::Cell::get);
    dets.iter()
        .map(|d| {
            let mut v = format!(
                "{} {} {}",
                d["client_ip"].as_str().unwrap_or("?"),
                d["stage"].as_str().unwrap_or("?"),
                d["pool_domain"].as_str().unwrap_or("?"),
            );
            if counts {
                v.push_str(&format!(
                    " lookups={} blocked={} flows={} stratum={}",
                    d["counts"]["lookups"],
                    d["counts"]["blocked_lookups"],
                    d["counts"]["flows"],
                    d["counts"]["stratum_flows"],
                ));
            }
            v
        })
        .collect()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until a node's verdicts are non-empty and unchanged for `quiet`.
pub fn settled(n: &Node, quiet: Duration, limit: Duration) -> BTreeSet<String> {
    let t = Instant::now();
    let mut last = BTreeSet::new();
    let mut since = Instant::now();
    loop {
        let v = verdicts(&n.detections());
        if v != last {
            last = v;
            since = Instant::now();
        } else if !last.is_empty() && since.elapsed() >= quiet {
            return last;
        }
        assert!(
            t.elapsed() < limit,
            "{} never settled; last: {last:#?}\n{}",
            n.name,
            n.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The single box on the same input: `serve --import … --follow … extra…` until settled.
pub fn single_box(dir: &Path, inputs: &[String]) -> BTreeSet<String> {
    let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--db"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(dir.join("single").to_string_lossy().into_owned());
    args.extend_from_slice(inputs);
    let mut n = Node::start("single", &args);
    let v = settled(&n, Duration::from_secs(4), Duration::from_secs(60));
    n.stop();
    v
}

pub fn s(x: &str) -> String {
    x.to_string()
}

/// `--resolver` for each of the lab's resolvers and its authoritative server (the lab
/// README's `infrastructure`): in a cluster the forwarding exemption sees one partition only
/// (docs/cluster.md), so resolvers are configured, as on the single box.
pub fn lab_resolvers() -> Vec<String> {
    let mut v = Vec::new();
    for ip in [
        "127.53.0.1",
        "127.53.1.1",
        "127.53.1.2",
        "127.53.1.3",
        "127.53.1.4",
        "127.53.1.5",
    ] {
        v.push(s("--resolver"));
        v.push(s(ip));
    }
    v
}

/// The lab's resolver logs of the `mixed` run that the follower reads.
pub fn lab_logs(lab: &Path) -> Vec<PathBuf> {
    [
        "logs/unbound/mixed/unbound.log",
        "logs/dnsmasq/mixed/dnsmasq.log",
        "logs/bind/mixed/query.log",
    ]
    .iter()
    .map(|p| lab.join(p))
    .collect()
}

pub fn flag_list(flag: &str, paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|p| [s(flag), p.to_string_lossy().into_owned()])
        .collect()
}

/// Waits until `n` serves exactly `want`; on timeout, panics with both sides' differences.
pub fn wait_for_verdicts(n: &Node, want: &BTreeSet<String>, limit: Duration) -> BTreeSet<String> {
    let t = Instant::now();
    loop {
        let v = verdicts(&n.detections());
        if &v == want {
            return v;
        }
        if t.elapsed() >= limit {
            let missing: Vec<_> = want.difference(&v).collect();
            let extra: Vec<_> = v.difference(want).collect();
            panic!(
                "{} never served the single box's verdicts\nmissing: {missing:#?}\nextra: {extra:#?}",
                n.name
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
