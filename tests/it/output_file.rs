//! File sinks of the real service: every detection of the sample data and of the lab captures
//! arrives in each shape (poolwatch, ECS, EVE) with the documented fields; ECS records have
//! ECS field types; the policy keys filter; the file is reopened after rotation and SIGHUP;
//! `scan --output ecs|eve` prints the same shapes offline.

use crate::support;
use crate::support::output as output_support;
use crate::support::service as service_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use output_support::*;
use serde_json::Value;
use service_support::{self as ss, Svc};

fn serve(dir: &Path, extra: &[&str]) -> Svc {
    let db = dir.join("db");
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Svc::start(&args, Some(dir))
}

fn check_shapes(pw: &[Value], ecs: &[Value], eve: &[Value], served: &[Value]) {
    // Every served detection arrived, in its final stage; nothing else arrived.
    let latest = latest_detections(pw);
    let got: BTreeSet<(String, String)> = latest
        .iter()
        .map(|d| (d.id.clone(), d.stage.as_str().to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = served
        .iter()
        .filter(|d| d["suppressed"] == false)
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want, "poolwatch records vs served detections");
    // Event ids are unique and the three shapes carry the same events.
    let ids = event_ids(pw);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "duplicate event ids"
    );
    assert_eq!(event_ids(ecs), ids, "ecs events");
    assert_eq!(event_ids(eve), ids, "eve events");
    for r in pw {
        let kind = r["event"]["kind"].as_str().unwrap();
        assert!(matches!(kind, "new" | "upgrade"), "{kind}");
        assert!(r["event"]["id"]
            .as_str()
            .unwrap()
            .starts_with(r["id"].as_str().unwrap()));
    }
    for r in ecs {
        let p = ecs_problems(r);
        assert!(p.is_empty(), "{p:#?}\n{r}");
        assert_eq!(r["event"]["kind"], "alert");
        assert_eq!(
            r["event"]["category"],
            serde_json::json!(["network", "intrusion_detection"])
        );
        assert_eq!(r["threat"]["technique"]["id"][0], "T1496");
        assert_eq!(r["threat"]["tactic"]["id"][0], "TA0040");
        assert_eq!(r["source"]["ip"], r["poolwatch"]["client_ip"]);
        assert!(r["rule"]["name"].is_string() && r["observer"]["hostname"].is_string());
        assert_eq!(
            r["event"]["risk_score"].as_f64(),
            r["poolwatch"]["risk_score"].as_f64()
        );
        if let Some(ip) = r["poolwatch"]["pool_ips"][0].as_str() {
            assert_eq!(r["destination"]["ip"], ip);
        }
        if let Some(p) = r["poolwatch"]["dst_ports"][0].as_u64() {
            assert_eq!(r["destination"]["port"], p);
        }
        if let Some(q) = r["poolwatch"]["query_names"][0].as_str() {
            assert_eq!(r["dns"]["question"]["name"], q);
        }
    }
    for r in eve {
        assert_eq!(r["event_type"], "alert");
        assert_eq!(r["src_ip"], r["poolwatch"]["client_ip"]);
        assert!(r["alert"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("POOLWATCH"));
        let sev = r["alert"]["severity"].as_u64().unwrap();
        assert!((1..=3).contains(&sev));
        assert_eq!(r["alert"]["metadata"]["mitre_technique_id"][0], "T1496");
        if let Some(ip) = r["poolwatch"]["pool_ips"][0].as_str() {
            assert_eq!(r["dest_ip"], ip);
        }
        // Suricata's timestamp form.
        let ts = r["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S%.6f%z").is_ok(),
            "{ts}"
        );
    }
}

#[test]
fn sample_data_arrives_in_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("poolwatch.toml");
    // One sink from the config file, with a policy: new incidents of connections and stronger.
    std::fs::write(
        &cfg,
        r#"
[[output]]
type = "file"
name = "strong"
path = "strong.json"
format = "poolwatch"
min_stage = "connection"
min_risk = 85
on = ["new"]
"#,
    )
    .unwrap();
    let pcap = ss::sample("sample.pcap");
    let log = ss::sample("sample-dnsmasq.log");
    let file_cfg = format!("--config={}", cfg.display());
    let s = serve(
        dir.path(),
        &[
            &file_cfg,
            "--import",
            pcap.to_str().unwrap(),
            "--import",
            log.to_str().unwrap(),
        ],
    );
    let c = ss::client();
    // The config file's sink only: flags would replace it. Check it alone here.
    let served = settle(&c, &s, &["strong"]);
    let strong = read_jsonl(&dir.path().join("strong.json"));
    assert!(!strong.is_empty());
    let mut kinds = BTreeSet::new();
    for r in &strong {
        let st = r["stage"].as_str().unwrap();
        assert!(
            matches!(st, "connection" | "direct_ip" | "stratum"),
            "{st} passed min_stage"
        );
        assert!(r["risk_score"].as_u64().unwrap() >= 85);
        kinds.insert(r["event"]["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds, BTreeSet::from(["new".to_string()]));
    let strong_ids: BTreeSet<String> = served
        .iter()
        .filter(|d| {
            matches!(
                d["stage"].as_str(),
                Some("connection" | "direct_ip" | "stratum")
            )
        })
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let got: BTreeSet<String> = latest_detections(&strong)
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(got.is_subset(&strong_ids), "{got:?} {strong_ids:?}");
    // The sample's miner is new as a connection, the direct-IP hosts as direct_ip, the TLS
    // host as a connection: four incidents pass; the lookups and blocked lookups do not.
    assert_eq!(got.len(), 4, "{strong:#?}");
    drop(s);

    // Now the flags: three shapes of the same events.
    let dir = tempfile::tempdir().unwrap();
    let s = serve(
        dir.path(),
        &[
            "--import",
            pcap.to_str().unwrap(),
            "--import",
            log.to_str().unwrap(),
            "--output",
            "file:pw.json",
            "--output",
            "file:ecs.json,format=ecs,name=elastic",
            "--output",
            "file:eve.json,format=eve,name=suricata,fsync=never",
        ],
    );
    let served = settle(&c, &s, &["file", "elastic", "suricata"]);
    let outs = outputs(&c, &s);
    let pw = read_jsonl(&dir.path().join("pw.json"));
    let ecs = read_jsonl(&dir.path().join("ecs.json"));
    let eve = read_jsonl(&dir.path().join("eve.json"));
    for (n, f) in [
        ("file", "poolwatch"),
        ("elastic", "ecs"),
        ("suricata", "eve"),
    ] {
        let o = &outs[n];
        assert_eq!(o["type"], "file");
        assert_eq!(o["format"], f);
        assert_eq!(o["state"], "ok");
        assert_eq!(o["delivered"].as_u64().unwrap() as usize, pw.len(), "{o}");
        assert_eq!(o["dropped"], 0);
        assert!(o["last_success"].is_string() && o["last_error"].is_null());
    }
    check_shapes(&pw, &ecs, &eve, &served);
    // Every host of the sample's expectations is there, at its stage.
    let exp = ss::expected_sample();
    let latest: Vec<Value> = latest_detections(&pw)
        .iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    assert_eq!(
        ss::served_stages(&latest),
        ss::expected_stages(&exp, "stage")
    );
    // The metrics carry the same counts, labelled by sink name.
    let m = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        m.contains(&format!(
            "poolwatch_output_delivered_total{{sink=\"elastic\"}} {}",
            pw.len()
        )),
        "{m}"
    );
    assert!(m.contains("poolwatch_output_backlog_records{sink=\"suricata\"} 0"));
}

#[test]
fn lab_captures_arrive_with_ground_truth_verdicts() {
    let Some((shared, gt)) = lab() else { return };
    let list = shared.join("lab/pool-domains.txt");
    for run in gt["runs"].as_array().unwrap() {
        let pcap = shared.join("lab").join(run["pcap"].as_str().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let s = serve(
            dir.path(),
            &[
                "--blocklist",
                list.to_str().unwrap(),
                "--import",
                pcap.to_str().unwrap(),
                "--output",
                "file:pw.json",
                "--output",
                "file:ecs.json,format=ecs",
                "--output",
                "file:eve.json,format=eve",
            ],
        );
        let c = ss::client();
        let served = settle(&c, &s, &["file", "file-2", "file-3"]);
        let pw = read_jsonl(&dir.path().join("pw.json"));
        let ecs = read_jsonl(&dir.path().join("ecs.json"));
        let eve = read_jsonl(&dir.path().join("eve.json"));
        check_shapes(&pw, &ecs, &eve, &served);
        // What the sink received alone gives the ground-truth verdicts.
        let dets = latest_detections(&pw);
        let problems = support::check_verdicts(&gt, run, &dets);
        assert!(problems.is_empty(), "{}: {problems:#?}", pcap.display());
    }
}

#[test]
fn scan_prints_the_sink_shapes() {
    let pcap = ss::sample("sample.pcap");
    let run = |fmt: &str| -> Vec<Value> {
        let out = Command::new(ss::bin())
            .args(["scan", "--no-progress", "--output", fmt])
            .arg(&pcap)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let json = run("json");
    let ecs = run("ecs");
    let eve = run("eve");
    assert_eq!(ecs.len(), json.len());
    assert_eq!(eve.len(), json.len());
    for ((d, e), v) in json.iter().zip(&ecs).zip(&eve) {
        let p = ecs_problems(e);
        assert!(p.is_empty(), "{p:#?}");
        let id = format!("{}-0", d["id"].as_str().unwrap());
        assert_eq!(e["event"]["id"], id);
        assert_eq!(v["alert"]["metadata"]["poolwatch_event_id"][0], id);
        // The record under `poolwatch` is the scan's Detection plus `event`.
        let mut inner = e["poolwatch"].clone();
        inner.as_object_mut().unwrap().remove("event");
        assert_eq!(&inner, d);
        assert_eq!(e["source"]["ip"], d["client_ip"]);
        assert_eq!(v["src_ip"], d["client_ip"]);
    }
    // Same input, same bytes: the offline shapes depend on the input only.
    assert_eq!(run("ecs"), ecs);
}

#[test]
fn file_sink_follows_rotation_and_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dnsmasq.log");
    ss::append(&log, "");
    let s = serve(
        dir.path(),
        &[
            "--follow",
            log.to_str().unwrap(),
            "--output",
            "file:alerts.json",
            "--output",
            "file:updates.json,on=update,name=updates",
        ],
    );
    let c = ss::client();
    ss::wait_ready(&c, &s);
    let out = dir.path().join("alerts.json");
    let lookup = |serial: u32, client: &str| {
        ss::append(
            &log,
            &ss::dnsmasq_lookup(
                serial,
                client,
                "pool.supportxmr.com",
                "203.0.113.10",
                "20:00:01",
            ),
        );
    };
    let clients = |p: &Path| -> Vec<String> {
        read_jsonl(p)
            .iter()
            .map(|r| r["client_ip"].as_str().unwrap().to_string())
            .collect()
    };
    lookup(1, "192.0.2.101");
    eventually("first record", || {
        (clients(&out) == ["192.0.2.101"]).then_some(())
    });
    // logrotate without copytruncate: the file is moved away; the next record goes to a new file.
    let rotated = dir.path().join("alerts.json.1");
    std::fs::rename(&out, &rotated).unwrap();
    lookup(2, "192.0.2.102");
    eventually("record in the new file", || {
        (clients(&out) == ["192.0.2.102"]).then_some(())
    });
    assert_eq!(clients(&rotated), ["192.0.2.101"]);
    // postrotate `kill -HUP`: the file is reopened (created) at once, even with nothing to send.
    std::fs::rename(&out, dir.path().join("alerts.json.2")).unwrap();
    s.signal(libc::SIGHUP);
    eventually("file recreated on SIGHUP", || out.exists().then_some(()));
    std::thread::sleep(Duration::from_millis(200));
    assert!(clients(&out).is_empty());
    lookup(3, "192.0.2.103");
    eventually("record after SIGHUP", || {
        (clients(&out) == ["192.0.2.103"]).then_some(())
    });
    // `on = update`: the same incident seen again (one more lookup) is an update record.
    ss::append(
        &log,
        &ss::dnsmasq_lookup(
            4,
            "192.0.2.103",
            "pool.supportxmr.com",
            "203.0.113.10",
            "20:00:09",
        ),
    );
    let updates = dir.path().join("updates.json");
    eventually("update record", || {
        read_jsonl(&updates)
            .iter()
            .any(|r| r["event"]["kind"] == "update" && r["client_ip"] == "192.0.2.103")
            .then_some(())
    });
    assert!(read_jsonl(&updates)
        .iter()
        .all(|r| r["event"]["kind"] == "update"));
    // The service is still fine after the HUP (it did not die of the signal).
    assert_eq!(
        c.get(s.url("/healthz")).send().unwrap().status().as_u16(),
        200
    );
}
