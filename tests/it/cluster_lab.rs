//! The cluster against the single box on the lab's dev set, with real processes: a real
//! `nats-server -js` on loopback, 2 sensors (one replaying `mixed.pcap`, one following the
//! run's resolver logs), 3 correlators and 1 API node. The detections the API node serves must
//! equal those of one `poolwatch serve` on the same input (same clients, stages, pools).
//! Needs `nats-server` (.ci/deps) and `../shared/data/lab`; skips with a message otherwise.

use crate::support::cluster as cluster_support;

use std::time::Duration;

use cluster_support::*;

#[test]
fn two_sensors_three_correlators_one_api_equal_the_single_box() {
    let Some(nats_bin) = nats_server() else {
        eprintln!("SKIP: nats-server not installed (apt-get install nats-server; see .ci/deps)");
        return;
    };
    let Some(lab) = lab() else {
        eprintln!("SKIP: ../shared/data/lab is absent (the lab's dev set)");
        return;
    };
    // Two sources of the same queries: counters depend on their interleaving (see
    // `compare_counts`); clients, stages and pools must be equal.
    compare_counts(false);
    let dir = tempfile::tempdir().unwrap();
    let pcap = lab.join("pcaps/mixed.pcap");
    let logs = lab_logs(&lab);

    let mut single_inputs = lab_resolvers();
    single_inputs.extend(flag_list("--import", std::slice::from_ref(&pcap)));
    single_inputs.extend(flag_list("--follow", &logs));
    let want = single_box(dir.path(), &single_inputs);
    assert!(
        want.len() >= 10,
        "the single box found too little: {want:#?}"
    );

    let nats = Nats::start(nats_bin);
    let url = nats.url();
    let correlators: Vec<Node> = ["c1", "c2", "c3"]
        .iter()
        .map(|n| Node::cluster(&url, "correlator", n, dir.path(), &lab_resolvers()))
        .collect();
    let api = Node::cluster(&url, "api", "a1", dir.path(), &[]);
    // Every partition has an owner before the data arrives, split among the three.
    let owned = wait_until(Duration::from_secs(30), "16 partitions owned", || {
        let v: Vec<f64> = correlators
            .iter()
            .map(|c| c.metric("poolwatch_cluster_partitions_owned"))
            .collect();
        (v.iter().sum::<f64>() == 16.0).then_some(v)
    });
    assert!(
        owned.iter().all(|o| *o >= 1.0),
        "unbalanced leases: {owned:?}"
    );

    let s1 = Node::cluster(
        &url,
        "sensor",
        "s1",
        dir.path(),
        &flag_list("--import", &[pcap]),
    );
    let s2 = Node::cluster(
        &url,
        "sensor",
        "s2",
        dir.path(),
        &flag_list("--follow", &logs),
    );

    let got = wait_for_verdicts(&api, &want, Duration::from_secs(90));
    assert_eq!(got, want);
    // Both sensors published, every correlator worked, nothing was dropped.
    assert!(s1.metric("poolwatch_cluster_published_total") > 100.0);
    assert!(s2.metric("poolwatch_cluster_published_total") > 10.0);
    assert_eq!(s1.metric("poolwatch_cluster_dropped_total"), 0.0);
    for c in &correlators {
        assert!(
            c.metric("poolwatch_cluster_consumed_total") > 0.0,
            "{} consumed nothing",
            c.name
        );
    }
    // Settled: the view does not drift after the acks.
    let after = settled(&api, Duration::from_secs(3), Duration::from_secs(30));
    assert_eq!(after, want);
}
