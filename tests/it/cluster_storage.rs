//! The cluster on a nats-server with little JetStream storage (`jetstream { max_file_store }`),
//! with real processes. nats-server reserves each file stream's `max_bytes` against its
//! `max_file_store` when the stream is created:
//! * with the default stream sizes (8 GiB + 4 GiB) a node's start-up fails with an error that
//!   names the stream, the size, the `[cluster]` key to lower and `max_file_store` (exit 2);
//! * with `[cluster] obs_max_bytes` / `detections_max_bytes` set small, the cluster starts and
//!   serves the single box's detections of the sample log;
//! * a later node configured with another size leaves the existing stream as it is and says so.
//!
//! 1 GB: the streams at 64 MiB each plus the KV buckets (620 MiB) fit, 12 GiB do not.
//! Needs nats-server; skips with a message otherwise.

use crate::support::cluster as cluster_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::*;

const MAX_FILE_STORE: &str = "1GB";
const SMALL: u64 = 64 * 1024 * 1024;

/// A config file in `dir` with `[cluster]` set to `obs` and `detections` bytes (none: empty).
fn config(dir: &Path, name: &str, sizes: Option<(u64, u64)>) -> PathBuf {
    let p = dir.join(name);
    let text = match sizes {
        Some((obs, det)) => {
            format!("[cluster]\nobs_max_bytes = {obs}\ndetections_max_bytes = {det}\n")
        }
        None => String::new(),
    };
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `serve --cluster URL --role ROLE …` to its exit (killed after 30 s): (code, stderr).
fn run_to_exit(url: &str, role: &str, name: &str, dir: &Path, cfg: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--cluster", url, "--role", role, "--node", name])
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join(name))
        .arg("--config")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::support::proc::without_poolwatch_env(&mut cmd);
    let mut child = cmd.env("NO_COLOR", "1").spawn().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {role} node did not exit on a server without storage");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).unwrap();
    }
    (status.code(), err)
}

fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("poolwatch: error:"))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn default_stream_sizes_on_a_small_server_fail_with_a_clear_error() {
    let Some(nats_bin) = nats_server() else {
        eprintln!("SKIP: nats-server not installed (apt-get install nats-server; see .ci/deps)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start_with_max_file_store(nats_bin, MAX_FILE_STORE);
    let url = nats.url();
    let defaults = config(dir.path(), "defaults.toml", None);

    // A sensor creates the observation stream (8 GiB by default).
    let (code, err) = run_to_exit(&url, "sensor", "s1", dir.path(), &defaults);
    let line = error_line(&err);
    assert_eq!(code, Some(2), "{err}");
    for want in [
        "POOLWATCH_OBS",
        "8589934592",
        "8 GiB",
        "[cluster] obs_max_bytes",
        "--obs-max-bytes",
        "max_file_store",
        "64 MiB",
    ] {
        assert!(line.contains(want), "{want:?} missing from {line:?}");
    }
    assert!(!err.contains("panicked"), "{err}");

    // An API node creates only the detection stream (4 GiB by default).
    let (code, err) = run_to_exit(&url, "api", "a1", dir.path(), &defaults);
    let line = error_line(&err);
    assert_eq!(code, Some(2), "{err}");
    for want in [
        "POOLWATCH_DETECTIONS",
        "4294967296",
        "[cluster] detections_max_bytes",
        "max_file_store",
    ] {
        assert!(line.contains(want), "{want:?} missing from {line:?}");
    }
}

#[test]
fn small_stream_sizes_start_and_round_trip_and_an_existing_stream_keeps_its_size() {
    let Some(nats_bin) = nats_server() else {
        eprintln!("SKIP: nats-server not installed (apt-get install nats-server; see .ci/deps)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = sample("sample-dnsmasq.log");
    let want = single_box(
        dir.path(),
        &flag_list("--import", std::slice::from_ref(&log)),
    );
    assert!(!want.is_empty());

    let nats = Nats::start_with_max_file_store(nats_bin, MAX_FILE_STORE);
    let url = nats.url();
    let small = config(dir.path(), "small.toml", Some((SMALL, SMALL)));
    let small_args = vec![s("--config"), small.to_string_lossy().into_owned()];
    let c = Node::cluster(&url, "correlator", "c1", dir.path(), &small_args);
    let api = Node::cluster(&url, "api", "a1", dir.path(), &small_args);
    wait_until(Duration::from_secs(30), "16 partitions owned", || {
        (c.metric("poolwatch_cluster_partitions_owned") == 16.0).then_some(())
    });
    let mut sensor_args = small_args.clone();
    sensor_args.extend(flag_list("--import", std::slice::from_ref(&log)));
    let sensor = Node::cluster(&url, "sensor", "s1", dir.path(), &sensor_args);
    let got = wait_for_verdicts(&api, &want, Duration::from_secs(60));
    assert_eq!(got, want);
    assert!(sensor.metric("poolwatch_cluster_published_total") > 0.0);

    // A node configured with another size joins; the stream keeps the first node's size.
    let bigger = config(dir.path(), "bigger.toml", Some((2 * SMALL, SMALL)));
    let s2 = Node::cluster(
        &url,
        "sensor",
        "s2",
        dir.path(),
        &[s("--config"), bigger.to_string_lossy().into_owned()],
    );
    wait_until(Duration::from_secs(10), "the size warning", || {
        s2.stderr()
            .lines()
            .find(|l| l.contains("keeps its size") && l.contains("POOLWATCH_OBS"))
            .map(|l| {
                assert!(
                    l.contains(&format!("configured_max_bytes={}", 2 * SMALL)),
                    "{l}"
                );
                assert!(l.contains(&format!("stream_max_bytes={SMALL}")), "{l}");
            })
    });
    // The correlator and API node saw their own sizes: no warning.
    assert!(!c.stderr().contains("keeps its size"), "{}", c.stderr());
    assert!(!api.stderr().contains("keeps its size"), "{}", api.stderr());
}
