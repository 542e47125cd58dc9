//! Ground-truth check: every lab run's observations (generated from `ground-truth.json` by
//! `tests/support`) must give each host its verdict, and no infrastructure address a detection.

use crate::support;

use poolwatch::correlate::{Engine, EngineConfig, Pipeline};
use poolwatch::matcher;
use poolwatch::model::Stage;
use poolwatch::store::Store;

#[test]
fn lab_runs_match_ground_truth_engine_and_store() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    let mut problems = Vec::new();
    let runs = gt["runs"].as_array().cloned().unwrap_or_default();
    assert!(!runs.is_empty());
    for run in &runs {
        let obs = support::run_observations(&gt, run);
        let lists = matcher::shared(support::lab_lists(&shared));
        let engine = Engine::new(EngineConfig::default(), lists);
        let store = Store::open_temporary().unwrap();
        let mut p = Pipeline::new(engine, Some(store.clone())).unwrap();
        for o in obs {
            p.push(o).unwrap();
        }
        let summary = p.finish().unwrap();
        let dets = store.all_detections().unwrap();
        problems.extend(support::check_verdicts(&gt, run, &dets));
        // Dedupe: the log copy of each query adds a source, not a count.
        let h11 = dets
            .iter()
            .find(|d| d.client_ip.to_string() == "127.0.10.11")
            .expect("h11 detected");
        assert_eq!(
            h11.counts.lookups, 2,
            "A + AAAA counted once each: {h11:#?}"
        );
        assert!(h11.sources.len() >= 2, "both sources listed");
        assert_eq!(h11.counts.flows, 1, "interim report superseded");
        assert!(h11.agents.iter().any(|a| a.starts_with("XMRig/")));
        assert!(summary.engine.infra_dropped_incidents > 0 || summary.engine.infra_ignored > 0);
    }
    assert!(
        problems.is_empty(),
        "verdict mismatches:\n{}",
        problems.join("\n")
    );
}

#[test]
fn lab_h16_cname_and_h13_sni() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    let run = &gt["runs"][0];
    let lists = matcher::shared(support::lab_lists(&shared));
    let mut engine = Engine::new(EngineConfig::default(), lists);
    let mut dets = std::collections::HashMap::new();
    for o in support::run_observations(&gt, run) {
        for u in engine.observe(&o).detections {
            dets.insert(u.detection.id.clone(), u.detection);
        }
    }
    for u in engine.drain().detections {
        dets.insert(u.detection.id.clone(), u.detection);
    }
    let h16 = dets
        .values()
        .find(|d| d.client_ip.to_string() == "127.0.10.16")
        .expect("h16");
    assert_eq!(h16.pool_domain, "moneroocean.stream");
    assert!(h16
        .query_names
        .contains(&"api.cloud-sync-check.net".to_string()));
    assert_eq!(h16.stage, Stage::Stratum);
    let h13 = dets
        .values()
        .find(|d| d.client_ip.to_string() == "127.0.10.13")
        .expect("h13");
    assert_eq!(h13.stage, Stage::Connection);
    assert_eq!(h13.risk_score, 88);
}

#[test]
#[ignore = "prints the detections of the first lab run"]
fn lab_dump() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    let run = &gt["runs"][0];
    let lists = matcher::shared(support::lab_lists(&shared));
    let store = Store::open_temporary().unwrap();
    let mut p = Pipeline::new(
        Engine::new(EngineConfig::default(), lists),
        Some(store.clone()),
    )
    .unwrap();
    for o in support::run_observations(&gt, run) {
        p.push(o).unwrap();
    }
    println!("{:?}", p.finish().unwrap());
    for d in store.all_detections().unwrap() {
        println!(
            "{} {} {} {} new={} lk={} blk={} fl={} est={} st={} srcs={} ev={}",
            d.client_ip,
            d.pool_domain,
            d.stage,
            d.risk_score,
            d.is_new,
            d.counts.lookups,
            d.counts.blocked_lookups,
            d.counts.flows,
            d.counts.established_flows,
            d.counts.stratum_flows,
            d.sources.len(),
            d.evidence.len()
        );
    }
}
