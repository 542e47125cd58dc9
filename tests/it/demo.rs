//! `poolwatch demo` from an unrelated working directory (the sample data is embedded in the
//! binary): serves exactly the sample's expected verdicts, prints how to query it, ends with
//! exit 0 on SIGINT and removes its temporary directory.

use crate::support::service as service_support;

use service_support::*;

#[test]
fn demo_serves_the_sample_verdicts_from_anywhere_and_stops_on_sigint() {
    let cwd = tempfile::tempdir().unwrap();
    let mut s = Svc::start(&["demo", "--listen", "127.0.0.1:0"], Some(cwd.path()));
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    let dets = wait_for(&c, &s, None, "the sample verdicts", |d| {
        served_stages(d) == want
    });
    assert_eq!(dets.len(), want.len());
    let miner = dets
        .iter()
        .find(|d| d["client_ip"] == "192.0.2.10")
        .unwrap();
    assert_eq!(miner["pool_domain"], "supportxmr.com");
    assert!(miner["agents"][0]
        .as_str()
        .unwrap()
        .starts_with("XMRig/6.21.0"));

    let log = s.stderr();
    assert!(
        log.contains(&format!("curl -s {}/api/v1/detections", s.base)),
        "{log}"
    );
    assert!(log.contains("/api/v1/hosts/192.0.2.10"), "{log}");
    assert!(log.contains("/api/v1/detections/stream"), "{log}");
    // Nothing was written to the working directory.
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
    let data_dir = log
        .split("data in ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(std::path::PathBuf::from)
        .expect("the demo names its data directory");
    assert!(data_dir.is_dir());

    s.signal(libc::SIGINT);
    assert_eq!(s.wait_exit(), Some(0), "stderr:\n{}", s.stderr());
    assert!(!data_dir.exists(), "temporary data left behind");
}

#[test]
fn demo_refuses_remote_listen_and_keeps_data_on_request() {
    let out = std::process::Command::new(bin())
        .args(["demo", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));

    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().join("demo");
    let mut s = Svc::start(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--keep",
            dir.to_str().unwrap(),
        ],
        None,
    );
    let c = client();
    wait_for(&c, &s, None, "a detection", |d| !d.is_empty());
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0));
    assert!(dir.join("db").is_dir() && dir.join("sample.pcap").is_file());
}
