//! Fleet-wide lists and suppressions with real processes (nats-server, 2 correlators, 1 API
//! node): a user-list entry added through the API node is validated once, published to the
//! `poolwatch_lists` bucket and hot-swapped by every correlator (a lookup of the new name is
//! detected), every node reports the same list version in `/readyz`; a suppression added
//! through the API node reaches the correlators and marks what they detect; a change through a
//! correlator's API reaches the others too. Needs nats-server.

use crate::support::cluster as cluster_support;

use std::path::Path;
use std::time::Duration;

use cluster_support::*;
use serde_json::{json, Value};

const ADMIN: &str = "fleet-admin-token-0123456789";
const NEW_POOL: &str = "fleet-new-pool.example";
/// Two clients look the new name up; the first is suppressed.
const SUPPRESSED: &str = "192.0.2.71";
const PLAIN: &str = "192.0.2.72";

fn admin() -> Vec<String> {
    vec![s("--admin-token"), s(ADMIN), s("--lease-ttl"), s("6")]
}

fn list_version(n: &Node) -> Option<u64> {
    let v: Value = http()
        .get(format!("{}/readyz", n.base))
        .send()
        .ok()?
        .json()
        .ok()?;
    v["list_version"].as_u64()
}

fn check(n: &Node, name: &str) -> Value {
    http()
        .get(format!("{}/api/v1/check?name={name}", n.base))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn suppressions(n: &Node) -> Vec<String> {
    let v: Value = http()
        .get(format!("{}/api/v1/suppressions", n.base))
        .bearer_auth(ADMIN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// A dnsmasq log: each client looks the new pool name up and gets an address.
fn write_log(path: &Path) {
    let mut text = String::new();
    for (i, c) in [SUPPRESSED, PLAIN].iter().enumerate() {
        let port = 40_000 + i;
        text.push_str(&format!(
            "Nov 26 20:00:0{i} dnsmasq[4242]: {n} {c}/{port} query[A] {NEW_POOL} from {c}\n\
             Nov 26 20:00:0{i} dnsmasq[4242]: {n} {c}/{port} forwarded {NEW_POOL} to 198.51.100.53\n\
             Nov 26 20:00:0{i} dnsmasq[4242]: {n} {c}/{port} reply {NEW_POOL} is 203.0.113.77\n",
            n = i + 1
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn lists_and_suppressions_changed_through_any_node_reach_every_correlator() {
    let Some(nats_bin) = nats_server() else {
        eprintln!("SKIP: nats-server not installed (see .ci/deps)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(nats_bin);
    let url = nats.url();
    let cs: Vec<Node> = ["f1", "f2"]
        .iter()
        .map(|n| Node::cluster(&url, "correlator", n, dir.path(), &admin()))
        .collect();
    let api = Node::cluster(&url, "api", "fa", dir.path(), &admin());
    wait_until(Duration::from_secs(30), "16 partitions owned", || {
        let v: f64 = cs
            .iter()
            .map(|c| c.metric("poolwatch_cluster_partitions_owned"))
            .sum();
        (v == 16.0).then_some(())
    });
    let nodes: Vec<&Node> = cs.iter().chain(std::iter::once(&api)).collect();
    for n in &nodes {
        assert_eq!(list_version(n), Some(0), "{} before any change", n.name);
        assert_eq!(check(n, NEW_POOL)["matched"], false);
    }

    // Validated once, at the node that took the request: a bad entry changes nothing anywhere.
    let r = http()
        .post(format!(
            "{}/api/v1/blocklists/fleet-extra/entries",
            api.base
        ))
        .bearer_auth(ADMIN)
        .json(&json!({"entries": ["not a name!"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = http()
        .post(format!(
            "{}/api/v1/blocklists/fleet-extra/entries",
            api.base
        ))
        .bearer_auth(ADMIN)
        .json(&json!({"entries": [NEW_POOL]}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let v = wait_until(
        Duration::from_secs(20),
        "one list version everywhere",
        || {
            let vs: Vec<Option<u64>> = nodes.iter().map(|n| list_version(n)).collect();
            (vs.iter().all(|v| v.is_some_and(|v| v > 0)) && vs.windows(2).all(|w| w[0] == w[1]))
                .then(|| vs[0].unwrap())
        },
    );
    for n in &nodes {
        let c = check(n, NEW_POOL);
        assert_eq!(c["matched"], true, "{} runs the new list: {c}", n.name);
        assert_eq!(c["list"], "fleet-extra");
        assert!(
            n.metric("poolwatch_cluster_list_version") == v as f64,
            "{} metric",
            n.name
        );
    }

    // A suppression through the API node reaches both correlators' stores.
    let r = http()
        .post(format!("{}/api/v1/suppressions", api.base))
        .bearer_auth(ADMIN)
        .json(&json!({"client": SUPPRESSED, "reason": "lab test host"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let rule: Value = r.json().unwrap();
    let id = rule["id"].as_str().unwrap().to_string();
    wait_until(Duration::from_secs(20), "the rule on every node", || {
        nodes
            .iter()
            .all(|n| suppressions(n).contains(&id))
            .then_some(())
    });

    // A stored rule is in force once the correlator's pipeline has ticked (every 100 ms; it
    // reloads rules whose generation changed), as on the single box.
    std::thread::sleep(Duration::from_millis(500));

    // The correlators detect lookups of the new name, and mark the suppressed client's.
    let log = dir.path().join("fleet.log");
    write_log(&log);
    let _sensor = Node::cluster(
        &url,
        "sensor",
        "fs",
        dir.path(),
        &flag_list("--import", &[log]),
    );
    let dets = wait_until(Duration::from_secs(60), "both detections", || {
        let d: Vec<Value> = api
            .detections()
            .into_iter()
            .filter(|d| d["pool_domain"] == NEW_POOL)
            .collect();
        (d.len() == 2).then_some(d)
    });
    for d in &dets {
        let suppressed = d["client_ip"] == SUPPRESSED;
        assert_eq!(
            d["suppressed"],
            suppressed,
            "{d}\n{:?}",
            cs.iter()
                .map(|c| (
                    c.detections()
                        .iter()
                        .map(|d| format!("{} {}", d["client_ip"], d["suppressed"]))
                        .collect::<Vec<_>>(),
                    suppressions(c),
                    c.metric("poolwatch_cluster_consumed_total")
                ))
                .collect::<Vec<_>>()
        );
        if suppressed {
            assert_eq!(d["suppression_id"], id.as_str(), "{d}");
        }
    }

    // Any node takes changes: the list deleted through a correlator is gone everywhere, and
    // every node reports the newer version.
    let r = http()
        .delete(format!("{}/api/v1/blocklists/fleet-extra", cs[0].base))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    wait_until(Duration::from_secs(20), "the deletion everywhere", || {
        let vs: Vec<Option<u64>> = nodes.iter().map(|n| list_version(n)).collect();
        let same =
            vs.iter().all(|x| x.is_some_and(|x| x > v)) && vs.windows(2).all(|w| w[0] == w[1]);
        (same && nodes.iter().all(|n| check(n, NEW_POOL)["matched"] == false)).then_some(())
    });
    let r = http()
        .delete(format!("{}/api/v1/suppressions/{id}", cs[1].base))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    wait_until(Duration::from_secs(20), "the rule gone everywhere", || {
        nodes
            .iter()
            .all(|n| !suppressions(n).contains(&id))
            .then_some(())
    });
}
