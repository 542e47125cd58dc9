//! Verdict identity (issue #12, "Done when": lab and sample verdicts identical before and after
//! the refactor). `poolwatch scan --output json` runs on the project's sample data
//! (`tests/data/sample`, every capture in `tests/data/pcap`) and, when `../shared/data` is
//! present, on every lab capture, every resolver log and dnstap file, and each run's capture
//! joined with all its logs. Each detection is reduced to its verdict — client, stage, pool
//! entry, risk, retro — and the sorted verdicts of a case must equal
//! `tests/data/golden/<case>.json`, generated from main's behaviour (the contract).
//!
//! After an intended change, rewrite the files and review the diff:
//! `POOLWATCH_BLESS=1 cargo test --test it verdict_golden`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::support::service::bin;
use super::support::shared_data;

const GOLDEN: &str = "tests/data/golden";

/// One `scan` invocation and the golden file it is checked against.
struct Case {
    name: String,
    inputs: Vec<PathBuf>,
    blocklist: Option<PathBuf>,
    /// `inputs` and `blocklist` as written into the golden file (relative, machine-independent).
    shown: Value,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn case(name: &str, base: &Path, inputs: &[PathBuf], blocklist: Option<PathBuf>) -> Case {
    let rel = |p: &Path| {
        p.strip_prefix(base)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let shown = json!({
        "inputs": inputs.iter().map(|p| rel(p)).collect::<Vec<_>>(),
        "blocklist": blocklist.as_deref().map(rel),
    });
    Case {
        name: name.to_string(),
        inputs: inputs.to_vec(),
        blocklist,
        shown,
    }
}

/// The project's own data: always present.
fn sample_cases() -> Vec<Case> {
    let root = repo();
    let sample = root.join("tests/data/sample");
    let pcap = sample.join("sample.pcap");
    let log = sample.join("sample-dnsmasq.log");
    let mut v = vec![
        case("sample-pcap", &root, std::slice::from_ref(&pcap), None),
        case("sample-log", &root, std::slice::from_ref(&log), None),
        case("sample-joined", &root, &[pcap, log], None),
    ];
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root.join("tests/data/pcap"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    fixtures.sort();
    for p in fixtures {
        let stem = p.file_stem().unwrap().to_string_lossy().replace('_', "-");
        v.push(case(&format!("pcap-{stem}"), &root, &[p], None));
    }
    v
}

/// The lab set under `../shared/data/lab`: per run its capture, each log and dnstap file of
/// each resolver, and the capture joined with all of that run's logs; the lab's own pool list.
fn lab_cases(shared: &Path) -> Vec<Case> {
    let lab = shared.join("lab");
    let list = lab.join("pool-domains.txt");
    let mut runs: Vec<String> = std::fs::read_dir(lab.join("pcaps"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            Some(p.file_name()?.to_str()?.strip_suffix(".pcap")?.to_string())
        })
        .collect();
    runs.sort();
    let mut resolvers: Vec<String> = std::fs::read_dir(lab.join("logs"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
        .collect();
    resolvers.sort();
    let mut v = Vec::new();
    for run in &runs {
        let pcap = lab.join("pcaps").join(format!("{run}.pcap"));
        let mut logs = Vec::new();
        v.push(case(
            &format!("lab-{run}-pcap"),
            shared,
            std::slice::from_ref(&pcap),
            Some(list.clone()),
        ));
        for res in &resolvers {
            let dir = lab.join("logs").join(res).join(run);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| Some(e.ok()?.path()))
                // `dnstap.txt` is `dnstap-read`'s rendering of `dnstap.fstrm`, not an input.
                .filter(|p| p.extension().is_none_or(|x| x != "txt"))
                .collect();
            files.sort();
            for f in files {
                let kind = if f.extension().is_some_and(|x| x == "fstrm") {
                    "dnstap"
                } else {
                    "log"
                };
                v.push(case(
                    &format!("lab-{run}-{res}-{kind}"),
                    shared,
                    std::slice::from_ref(&f),
                    Some(list.clone()),
                ));
                if kind == "log" {
                    logs.push(f);
                }
            }
        }
        let mut joined = vec![pcap];
        joined.extend(logs);
        v.push(case(
            &format!("lab-{run}-joined"),
            shared,
            &joined,
            Some(list.clone()),
        ));
    }
    v
}

/// The verdicts of one scan: per detection client, stage, pool entry, risk and retro, sorted.
fn verdicts(c: &Case) -> Value {
    let mut cmd = Command::new(bin());
    cmd.args(["scan", "--output", "json", "--no-progress"]);
    if let Some(list) = &c.blocklist {
        cmd.arg("--blocklist").arg(list);
    }
    let out = cmd.args(&c.inputs).output().unwrap();
    // Exit status: 0 no unsuppressed detection, 1 at least one, 2 an error (`scan --help`).
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "{}: scan failed ({}): {}",
        c.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut set = BTreeSet::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let d: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: not a detection ({e}): {line}", c.name));
        let field = |k: &str| d.get(k).cloned().unwrap_or(Value::Null);
        // Sorted by client, then pool entry, then stage: a stable order to diff.
        set.insert((
            d["client_ip"].as_str().unwrap_or_default().to_string(),
            d["pool_domain"].as_str().unwrap_or_default().to_string(),
            d["stage"].as_str().unwrap_or_default().to_string(),
            json!({
                "client_ip": field("client_ip"),
                "stage": field("stage"),
                "pool_domain": field("pool_domain"),
                "risk_score": field("risk_score"),
                // Absent means false (`docs/detections.md`).
                "retro": d.get("retro").and_then(Value::as_bool).unwrap_or(false),
            })
            .to_string(),
        ));
    }
    let list: Vec<Value> = set
        .into_iter()
        .map(|(_, _, _, v)| serde_json::from_str(&v).unwrap())
        .collect();
    let mut doc = c.shown.clone();
    doc["exit_status"] = json!(code);
    doc["verdicts"] = Value::Array(list);
    doc
}

fn check(cases: &[Case], bless: bool) -> Vec<String> {
    let dir = repo().join(GOLDEN);
    let mut failures = Vec::new();
    for c in cases {
        let got = verdicts(c);
        let path = dir.join(format!("{}.json", c.name));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            let text = serde_json::to_string_pretty(&got).unwrap();
            std::fs::write(&path, text + "\n").unwrap();
            continue;
        }
        let want: Value = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(e) => {
                failures.push(format!(
                    "{}: {e} (create it with POOLWATCH_BLESS=1 cargo test --test it verdict_golden)",
                    path.display()
                ));
                continue;
            }
        };
        if got != want {
            let g = &got["verdicts"];
            let w = &want["verdicts"];
            let set = |v: &Value| -> BTreeSet<String> {
                v.as_array()
                    .map(|a| a.iter().map(Value::to_string).collect())
                    .unwrap_or_default()
            };
            let (gs, ws) = (set(g), set(w));
            failures.push(format!(
                "{}: verdicts differ (exit status now {}, golden {})\n  only now:    {:?}\n  only golden: {:?}\n  inputs now: {} golden: {}",
                c.name,
                got["exit_status"],
                want["exit_status"],
                gs.difference(&ws).collect::<Vec<_>>(),
                ws.difference(&gs).collect::<Vec<_>>(),
                got.get("inputs").unwrap_or(&Value::Null),
                want.get("inputs").unwrap_or(&Value::Null),
            ));
        }
    }
    failures
}

fn bless() -> bool {
    std::env::var_os("POOLWATCH_BLESS").is_some_and(|v| v != "0")
}

#[test]
fn sample_verdicts_match_golden() {
    let cases = sample_cases();
    assert!(cases.len() >= 10, "sample data missing");
    let failures = check(&cases, bless());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lab_verdicts_match_golden() {
    let Some(shared) = shared_data() else {
        println!(
            "skipping lab verdicts: ../shared/data/lab not present (sample verdicts still run)"
        );
        return;
    };
    let cases = lab_cases(&shared);
    assert!(
        cases.len() >= 20,
        "lab set incomplete: {} cases",
        cases.len()
    );
    let failures = check(&cases, bless());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A golden file no case produces any more is a verdict that silently stopped being checked.
#[test]
fn every_golden_file_has_a_case() {
    let Some(shared) = shared_data() else {
        println!("skipping: ../shared/data/lab not present (lab golden files cannot be matched)");
        return;
    };
    let names: BTreeSet<String> = sample_cases()
        .into_iter()
        .chain(lab_cases(&shared))
        .map(|c| format!("{}.json", c.name))
        .collect();
    let stale: Vec<String> = std::fs::read_dir(repo().join(GOLDEN))
        .unwrap_or_else(|e| panic!("{GOLDEN}: {e}"))
        .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
        .filter(|n| n.ends_with(".json") && !names.contains(n))
        .collect();
    assert!(stale.is_empty(), "golden files without a case: {stale:?}");
}
