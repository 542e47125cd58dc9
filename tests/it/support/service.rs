//! Test support for the service tests: starts the real `poolwatch` binary, reads the bound
//! address from its stderr (`listening on http://ADDR`), and talks to it over real HTTP.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const READ: &str = "read-token-0123456789abcdef";
/// Longest a test waits for the service to start or data to show up.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_poolwatch")
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sample")
        .join(name)
}

pub fn expected_sample() -> Value {
    serde_json::from_str(&std::fs::read_to_string(sample("expected.json")).unwrap()).unwrap()
}

/// A running `poolwatch` process.
pub struct Svc {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Svc {
    /// `poolwatch <args…>` (no POOLWATCH_* variables inherited), waits for the address.
    pub fn start(args: &[&str], cwd: Option<&Path>) -> Svc {
        Svc::start_with_env(args, cwd, &[])
    }

    /// Like [`Svc::start`], with extra variables for this child only (tests share one process:
    /// never `std::env::set_var` for a child's sake).
    pub fn start_with_env(
        args: &[&str],
        cwd: Option<&Path>,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Svc {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::support::proc::without_poolwatch_env(&mut cmd);
        cmd.env("POOLWATCH_LOG", "info").env_remove("NOTIFY_SOCKET");
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let (child, base, log) = spawn_reporting_address(&mut cmd, WAIT, "service");
        Svc { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Waits for the exit; the exit code (None: killed by a signal). Panics after `WAIT`.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(
                t.elapsed() < WAIT,
                "service did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Every detection (all pages) with `token` (None: no header).
pub fn all_detections(c: &Client, s: &Svc, token: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cur) => s.url(&format!("/api/v1/detections?limit=100&cursor={cur}")),
            None => s.url("/api/v1/detections?limit=100"),
        };
        let mut rq = c.get(url);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        let resp = rq.send().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().unwrap();
        out.extend(v["items"].as_array().unwrap().iter().cloned());
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return out,
        }
    }
}

/// Polls until `done(detections)` holds; returns them. Panics (with the service log) after `WAIT`.
pub fn wait_for(
    c: &Client,
    s: &Svc,
    token: Option<&str>,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let d = all_detections(c, s, token);
        if done(&d) {
            return d;
        }
        assert!(
            t.elapsed() < WAIT,
            "timed out waiting for {what}; have {:?}\nstderr:\n{}",
            d.iter()
                .map(|x| (x["client_ip"].clone(), x["stage"].clone()))
                .collect::<Vec<_>>(),
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (client, strongest stage) per client of the sample's expected verdicts (capture + log).
pub fn expected_stages(exp: &Value, key: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = exp["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| Some((h["ip"].as_str()?.to_string(), h[key].as_str()?.to_string())))
        .collect();
    v.sort();
    v
}

/// (client, strongest stage) per client of served detections.
pub fn served_stages(dets: &[Value]) -> Vec<(String, String)> {
    let order = [
        "lookup",
        "blocked_lookup",
        "connection_attempt",
        "connection",
        "direct_ip",
        "stratum",
    ];
    let rank = |s: &str| order.iter().position(|x| *x == s).unwrap_or(0);
    let mut best: std::collections::BTreeMap<String, String> = Default::default();
    for d in dets {
        let ip = d["client_ip"].as_str().unwrap().to_string();
        let st = d["stage"].as_str().unwrap().to_string();
        let e = best.entry(ip).or_insert_with(|| st.clone());
        if rank(&st) > rank(e) {
            *e = st;
        }
    }
    best.into_iter().collect()
}

pub fn ids(dets: &[Value]) -> HashSet<String> {
    dets.iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// A dnsmasq `log-queries=extra` transaction: `client` resolves `name` to `ip`.
pub fn dnsmasq_lookup(serial: u32, client: &str, name: &str, ip: &str, time: &str) -> String {
    format!(
        "Nov 26 {time} dnsmasq[4242]: {serial} {client}/40{serial:03} query[A] {name} from {client}\n\
         Nov 26 {time} dnsmasq[4242]: {serial} {client}/40{serial:03} forwarded {name} to 198.51.100.53\n\
         Nov 26 {time} dnsmasq[4242]: {serial} {client}/40{serial:03} reply {name} is {ip}\n"
    )
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// Waits until `/readyz` answers 200 (store open, every input started).
pub fn wait_ready(c: &Client, s: &Svc) {
    let t = Instant::now();
    while c
        .get(s.url("/readyz"))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(t.elapsed() < WAIT, "never ready; stderr:\n{}", s.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns `cmd` (stderr piped), keeps its stderr in a shared log and waits up to `wait` for
/// the address it reports: `listening on http://ADDR`, or with `--log-json` the `listening`
/// log line's `addr` field. Kills the child and panics with its stderr when none comes.
pub fn spawn_reporting_address(
    cmd: &mut Command,
    wait: Duration,
    what: &str,
) -> (Child, String, Arc<Mutex<String>>) {
    let mut child = cmd.spawn().expect("spawn poolwatch");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            // Text: `listening on http://ADDR`; with --log-json (no plain lines) the
            // `listening` log line's `addr` field.
            let found = line
                .strip_prefix("listening on ")
                .map(|a| a.trim().to_string())
                .or_else(|| {
                    let v: Value = serde_json::from_str(&line).ok()?;
                    let addr = v["fields"]["addr"].as_str()?;
                    (v["fields"]["message"] == "listening").then(|| format!("http://{addr}"))
                });
            if let Some(a) = found {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(a);
                }
            }
            let mut l = log2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let base = match rx.recv_timeout(wait) {
        Ok(b) => b,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "{what} did not report its address; stderr:\n{}",
                log.lock().unwrap()
            );
        }
    };
    (child, base, log)
}
