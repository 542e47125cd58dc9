//! Support for the output (alert sink) tests: run the real service over captures until every
//! sink has delivered, read what the receivers got, and check ECS field types.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use poolwatch::model::Detection;
use reqwest::blocking::Client;
use serde_json::Value;

use crate::support::service::{self as ss, Svc};

/// Longest a test waits for deliveries.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// A free loopback TCP port (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free loopback UDP port.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /api/v1/outputs` items by name.
pub fn outputs(c: &Client, s: &Svc) -> BTreeMap<String, Value> {
    let v: Value = c
        .get(s.url("/api/v1/outputs"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

/// Waits until the import finished, the held incidents were released and the detections and
/// the named sinks' counters stopped moving with empty backlogs. Returns the detections.
pub fn settle(c: &Client, s: &Svc, sinks: &[&str]) -> Vec<Value> {
    let t = Instant::now();
    while !s.stderr().contains("import finished") {
        assert!(
            t.elapsed() < DELIVERY_WAIT,
            "import never finished:\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut last: Option<(usize, Vec<(u64, u64)>)> = None;
    let mut stable = 0;
    loop {
        let dets = ss::all_detections(c, s, None);
        let outs = outputs(c, s);
        let counts: Vec<(u64, u64)> = sinks
            .iter()
            .map(|n| {
                let o = &outs[*n];
                (
                    o["delivered"].as_u64().unwrap(),
                    o["backlog"].as_u64().unwrap(),
                )
            })
            .collect();
        let now = (dets.len(), counts.clone());
        if counts.iter().all(|(_, b)| *b == 0) && last.as_ref() == Some(&now) {
            stable += 1;
            // The engine releases held incidents after 1 s idle; 2 s unchanged is settled.
            if stable >= 8 {
                return dets;
            }
        } else {
            stable = 0;
        }
        last = Some(now);
        assert!(
            t.elapsed() < DELIVERY_WAIT,
            "sinks never settled: {outs:#?}\nstderr:\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Polls `f` until it returns Some, or panics with `what` after [`DELIVERY_WAIT`].
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < DELIVERY_WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// JSON lines of a file (empty when it does not exist). Every line must parse.
pub fn read_jsonl(p: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(p) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", p.display())))
        .collect()
}

/// The latest state of every detection in a stream of `poolwatch` records (highest
/// `event.sequence` per id), as Detections.
pub fn latest_detections(records: &[Value]) -> Vec<Detection> {
    let mut by: BTreeMap<String, &Value> = BTreeMap::new();
    for r in records {
        let id = r["id"].as_str().unwrap().to_string();
        let seq = r["event"]["sequence"].as_u64().unwrap();
        match by.get(&id) {
            Some(o) if o["event"]["sequence"].as_u64().unwrap() > seq => {}
            _ => {
                by.insert(id, r);
            }
        }
    }
    by.values()
        .map(|v| serde_json::from_value((*v).clone()).unwrap())
        .collect()
}

/// The event ids of records (`event.id` for poolwatch/ECS, EVE's metadata).
pub fn event_ids(records: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| {
            r["event"]["id"]
                .as_str()
                .or_else(|| r["alert"]["metadata"]["poolwatch_event_id"][0].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// ECS field types (Elastic Common Schema 8.11 field reference, the fields poolwatch writes)
// ---------------------------------------------------------------------------------------------

/// ECS 8.x type of every field the `ecs` shape uses (from the ECS field reference).
pub const ECS_TYPES: &[(&str, &str)] = &[
    ("@timestamp", "date"),
    ("message", "match_only_text"),
    ("tags", "keyword"),
    ("ecs.version", "keyword"),
    ("event.kind", "keyword"),
    ("event.category", "keyword"),
    ("event.type", "keyword"),
    ("event.action", "keyword"),
    ("event.id", "keyword"),
    ("event.sequence", "long"),
    ("event.created", "date"),
    ("event.start", "date"),
    ("event.end", "date"),
    ("event.module", "keyword"),
    ("event.dataset", "keyword"),
    ("event.provider", "keyword"),
    ("event.risk_score", "float"),
    ("event.risk_score_norm", "float"),
    ("event.severity", "long"),
    ("event.reason", "keyword"),
    ("source.ip", "ip"),
    ("destination.ip", "ip"),
    ("destination.port", "long"),
    ("destination.domain", "keyword"),
    ("dns.question.name", "keyword"),
    ("network.protocol", "keyword"),
    ("threat.framework", "keyword"),
    ("threat.technique.id", "keyword"),
    ("threat.technique.name", "keyword"),
    ("threat.technique.reference", "keyword"),
    ("threat.tactic.id", "keyword"),
    ("threat.tactic.name", "keyword"),
    ("threat.tactic.reference", "keyword"),
    ("rule.id", "keyword"),
    ("rule.name", "keyword"),
    ("rule.category", "keyword"),
    ("rule.ruleset", "keyword"),
    ("rule.description", "keyword"),
    ("rule.reference", "keyword"),
    ("observer.type", "keyword"),
    ("observer.vendor", "keyword"),
    ("observer.product", "keyword"),
    ("observer.version", "keyword"),
    ("observer.hostname", "keyword"),
    ("observer.name", "keyword"),
    ("related.ip", "ip"),
    ("related.hosts", "keyword"),
    ("user_agent.original", "keyword"),
];

/// ECS allowed values of the categorisation fields used.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "event.kind",
        &[
            "alert",
            "event",
            "metric",
            "state",
            "pipeline_error",
            "signal",
            "enrichment",
            "asset",
        ],
    ),
    (
        "event.category",
        &["network", "intrusion_detection", "threat"],
    ),
    (
        "event.type",
        &[
            "info",
            "allowed",
            "denied",
            "connection",
            "start",
            "end",
            "indicator",
        ],
    ),
];

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                // `poolwatch.*` is the custom namespace (the record itself), not ECS.
                if p == "poolwatch" {
                    continue;
                }
                flatten(&p, x, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "keyword" | "match_only_text" => v.is_string(),
        "long" => v.is_i64() || v.is_u64(),
        "float" => v.is_number(),
        "ip" => v
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "date" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        _ => false,
    }
}

/// Problems of one ECS record: fields that are not in the table (unknown to ECS or not
/// expected), values of the wrong type, categorisation values outside ECS's allowed lists.
pub fn ecs_problems(rec: &Value) -> Vec<String> {
    let mut flat = Vec::new();
    flatten("", rec, &mut flat);
    let mut out = Vec::new();
    for (k, v) in flat {
        let Some((_, ty)) = ECS_TYPES.iter().find(|(n, _)| *n == k) else {
            out.push(format!("{k}: not an ECS field of the table"));
            continue;
        };
        // Every ECS field may hold an array of its type.
        let vals: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            x => vec![x],
        };
        for x in vals {
            if !type_ok(ty, x) {
                out.push(format!("{k}: {x} is not of ECS type {ty}"));
            }
            if let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| *n == k) {
                if !x.as_str().is_some_and(|s| allowed.contains(&s)) {
                    out.push(format!("{k}: {x} is not an allowed value"));
                }
            }
        }
    }
    if rec.get("poolwatch").is_none() {
        out.push("poolwatch: missing".into());
    }
    out
}

/// Lab runs (pcap path, run) with the lab's pool list, or None after printing why.
pub fn lab() -> Option<(std::path::PathBuf, Value)> {
    let shared = crate::support::shared_data()?;
    let gt = crate::support::load_ground_truth(&shared);
    Some((shared, gt))
}

// ---------------------------------------------------------------------------------------------
// rsyslog as a real receiver
// ---------------------------------------------------------------------------------------------

/// Field separator of the test's rsyslog template (never in a poolwatch message).
pub const SEP: &str = "|~|";

/// One message as rsyslog parsed it.
#[derive(Clone, Debug)]
pub struct SyslogLine {
    pub pri: u16,
    pub app: String,
    pub msgid: String,
    pub host: String,
    pub time: String,
    pub msg: String,
}

/// A running `rsyslogd -n` with imudp/imtcp (and optionally a gtls imtcp) on loopback, writing
/// every message to one file with its parsed RFC 5424 fields.
pub struct Rsyslog {
    child: std::process::Child,
    pub out: std::path::PathBuf,
    pub tcp_port: u16,
    pub udp_port: u16,
    dir: std::path::PathBuf,
}

/// TLS material for the gtls listener.
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

pub fn rsyslogd() -> Option<&'static str> {
    let p = "/usr/sbin/rsyslogd";
    if Path::new(p).exists() {
        Some(p)
    } else {
        println!("skipping: rsyslogd not installed (bash .ci/deps installs it)");
        None
    }
}

impl Rsyslog {
    /// Starts rsyslog in `dir` listening on `tcp_port` (TLS when `tls`) and `udp_port`.
    pub fn start(dir: &Path, tcp_port: u16, udp_port: u16, tls: Option<&TlsFiles>) -> Rsyslog {
        let bin = rsyslogd().expect("rsyslogd");
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let out = dir.join("rsyslog-out.log");
        let mut conf = format!(
            "global(workDirectory=\"{}\" maxMessageSize=\"256k\" parser.escapeControlCharactersOnReceive=\"off\"",
            work.display()
        );
        if let Some(t) = tls {
            conf.push_str(&format!(
                " defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
        }
        conf.push_str(")\n");
        conf.push_str("module(load=\"imudp\")\n");
        if tls.is_some() {
            conf.push_str("module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n");
        } else {
            conf.push_str("module(load=\"imtcp\")\n");
        }
        conf.push_str(&format!(
            "template(name=\"pw\" type=\"string\" string=\"%pri%{SEP}%app-name%{SEP}%msgid%{SEP}%hostname%{SEP}%timereported:::date-rfc3339%{SEP}%msg%\\n\")\n\
             ruleset(name=\"r\") {{ action(type=\"omfile\" file=\"{}\" template=\"pw\") }}\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp_port}\" ruleset=\"r\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp_port}\" ruleset=\"r\")\n",
            out.display()
        ));
        let cfg = dir.join("rsyslog.conf");
        std::fs::write(&cfg, conf).unwrap();
        let child = std::process::Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&cfg)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslog.stderr")).unwrap())
            .spawn()
            .expect("spawn rsyslogd");
        let r = Rsyslog {
            child,
            out,
            tcp_port,
            udp_port,
            dir: dir.to_path_buf(),
        };
        eventually("rsyslog listening", || {
            std::net::TcpStream::connect(("127.0.0.1", tcp_port))
                .ok()
                .map(|_| ())
        });
        r
    }

    /// Messages received so far.
    pub fn lines(&self) -> Vec<SyslogLine> {
        let Ok(text) = std::fs::read_to_string(&self.out) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| {
                let p: Vec<&str> = l.splitn(6, SEP).collect();
                if p.len() != 6 {
                    return None;
                }
                Some(SyslogLine {
                    pri: p[0].parse().ok()?,
                    app: p[1].to_string(),
                    msgid: p[2].to_string(),
                    host: p[3].to_string(),
                    time: p[4].to_string(),
                    msg: p[5].to_string(),
                })
            })
            .collect()
    }

    /// Messages of one APP-NAME, once at least `n` arrived.
    pub fn wait_app(&self, app: &str, n: usize) -> Vec<SyslogLine> {
        let t = Instant::now();
        loop {
            let got: Vec<SyslogLine> = self.lines().into_iter().filter(|l| l.app == app).collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                t.elapsed() < DELIVERY_WAIT,
                "rsyslog got {} of {n} messages from {app}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, written as PEM files into `dir`.
pub fn make_tls(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "poolwatch test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.ca, ca.pem()).unwrap();
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}
