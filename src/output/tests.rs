use super::*;
use crate::correlate::{Engine, EngineConfig, Pipeline};
use crate::model::*;

fn lookup_then_stratum() -> Vec<Observation> {
    let client: std::net::IpAddr = "192.0.2.10".parse().unwrap();
    let pool: std::net::IpAddr = "203.0.113.10".parse().unwrap();
    let t = Timestamp::from_secs(1_795_723_201);
    let dns = DnsObservation::test_lookup(t, client, "pool.supportxmr.com", &pool.to_string());
    let flow = FlowObservation {
        ts: t.plus_secs(10),
        last_ts: t.plus_secs(20),
        src: client,
        src_port: 51000,
        dst: pool,
        dst_port: 3333,
        proto: Proto::Tcp,
        direction: Direction::Originator,
        state: FlowState::Established,
        report: FlowReport::Final,
        bytes_out: 1000,
        bytes_in: 1000,
        packets_out: 5,
        packets_in: 5,
        payload_out: Vec::new(),
        payload_in: Vec::new(),
        app: AppInfo {
            stratum_method: Some("login".into()),
            ..Default::default()
        },
        source: Source::pcap("t.pcap"),
    };
    vec![Observation::Dns(dns), Observation::Flow(flow)]
}

fn settings(spec: &str) -> Vec<OutputSettings> {
    config::validate_all(&[config::parse_flag(spec).unwrap()]).unwrap()
}

fn run(store: &Store, outputs: &Outputs, obs: Vec<Observation>) {
    let lists = crate::matcher::shared(crate::matcher::Blocklists::builtin().unwrap());
    let engine = Engine::new(EngineConfig::default(), lists);
    let mut p = Pipeline::new(engine, Some(store.clone()))
        .unwrap()
        .with_sink(Box::new(outputs.writer(store.clone())));
    for o in obs {
        p.push(o).unwrap();
    }
    p.finish().unwrap();
}

fn events(store: &Store, name: &str) -> Vec<OutputEvent> {
    let limits = crate::store::OutboxLimits {
        max_records: 100,
        max_bytes: 1 << 20,
    };
    store
        .outbox(name, limits)
        .unwrap()
        .peek(100)
        .unwrap()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect()
}

#[test]
fn pipeline_flush_writes_new_and_upgrade_to_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    let store = Store::open_temporary().unwrap();
    let all = settings(&format!("file:{}", path.display()));
    let strong = settings(&format!(
        "file:{},name=strong,min_stage=stratum",
        path.display()
    ));
    let outputs = Outputs::open(&store, &[all[0].clone(), strong[0].clone()]).unwrap();
    run(&store, &outputs, lookup_then_stratum());
    let evs = events(&store, "file");
    let stored = store.all_detections().unwrap();
    assert_eq!(stored.len(), 1);
    // The engine may report the incident as new at its final stage (when the reorder hold
    // joined both facts) or as new + upgrade: either way the last event is the stored state.
    let last = evs.last().unwrap();
    assert_eq!(last.detection.as_ref(), stored.first());
    assert_eq!(evs[0].kind, EventKind::New);
    assert!(evs.windows(2).all(|w| w[0].seq < w[1].seq));
    let strong_evs = events(&store, "strong");
    assert!(strong_evs
        .iter()
        .all(|e| e.detection.as_ref().unwrap().stage == Stage::Stratum));
    assert_eq!(strong_evs.len(), 1);
    let st = outputs.status();
    assert_eq!(st[0].backlog, evs.len() as u64);
    assert_eq!(st[0].state, "starting");
}

/// Records what the pipeline hands over (kind, detection as handed).
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<(ChangeKind, Detection)>>>);

impl crate::ports::DetectionSink for Recorder {
    fn wants_updates(&self) -> bool {
        true
    }
    fn persist(&mut self, changes: &[DetectionChange<'_>]) -> Result<(), String> {
        let mut v = self.0.lock().map_err(|e| e.to_string())?;
        v.extend(changes.iter().map(|c| (c.kind, c.detection.clone())));
        Ok(())
    }
}

#[test]
fn deferred_updates_reach_a_sink_that_wants_them() {
    // The service's pipeline (events on: updates deferred to the flush) must still hand
    // every new/upgrade and the flush's updated state to the sink.
    let store = Store::open_temporary().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lists = crate::matcher::shared(crate::matcher::Blocklists::builtin().unwrap());
    let engine = Engine::new(EngineConfig::default(), lists);
    let (tx, _rx) = tokio::sync::broadcast::channel(16);
    let mut p = Pipeline::new(engine, Some(store.clone()))
        .unwrap()
        .with_events(tx)
        .with_sink(Box::new(Recorder(seen.clone())));
    let obs = lookup_then_stratum();
    let later = match &obs[1] {
        Observation::Flow(f) => {
            let mut f = f.clone();
            f.ts = f.ts.plus_secs(60);
            f.last_ts = f.last_ts.plus_secs(60);
            f.src_port += 1;
            Observation::Flow(f)
        }
        _ => unreachable!(),
    };
    for o in obs {
        p.push(o).unwrap();
    }
    p.tick(Timestamp::from_secs(1_795_723_300)).unwrap();
    p.flush().unwrap();
    p.push(later).unwrap();
    p.flush().unwrap();
    p.finish().unwrap();
    let seen = seen.lock().unwrap();
    let stored = store.all_detections().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(seen.first().map(|c| c.0), Some(ChangeKind::New));
    assert!(seen.iter().any(|c| c.0 == ChangeKind::Updated), "{seen:?}");
    assert_eq!(seen.last().map(|c| &c.1), stored.first());
}

#[test]
fn a_full_outbox_refuses_and_counts() {
    let store = Store::open_temporary().unwrap();
    let mut s = settings("file:/tmp/never-written.json,max_backlog=1,on=new+upgrade+update");
    s[0].policy.on_update = true;
    let outputs = Outputs::open(&store, &s).unwrap();
    let mut w = outputs.writer(store.clone());
    let d = crate::output::format::tests::sample_event()
        .detection
        .unwrap();
    let ch = [
        DetectionChange {
            kind: ChangeKind::New,
            detection: &d,
        },
        DetectionChange {
            kind: ChangeKind::Upgraded,
            detection: &d,
        },
        DetectionChange {
            kind: ChangeKind::Updated,
            detection: &d,
        },
    ];
    w.persist(&ch).unwrap();
    let st = &outputs.status()[0];
    assert_eq!((st.backlog, st.dropped), (1, 2));
}

#[test]
fn backoff_grows_with_jitter_and_caps() {
    let mut b = Backoff::new();
    let first = b.next();
    assert!(first >= INITIAL_BACKOFF / 2 && first <= INITIAL_BACKOFF);
    for _ in 0..20 {
        assert!(b.next() <= MAX_BACKOFF);
    }
    b.reset();
    assert!(b.next() <= INITIAL_BACKOFF);
}

#[test]
fn limiter_counts_and_announces_once() {
    let mut l = Limiter::new(RateLimit {
        limit: 2,
        window: Duration::from_secs(3600),
    });
    assert!(matches!(l.admit(), Admit::Yes));
    assert!(matches!(l.admit(), Admit::Yes));
    assert!(matches!(l.admit(), Admit::No(true)));
    assert!(matches!(l.admit(), Admit::No(false)));
    assert!(l.roll("x").is_none());
    l.start = Instant::now() - Duration::from_secs(3601);
    let n = l.roll("x").unwrap();
    assert_eq!(n.suppressed, 2);
    assert!(matches!(l.admit(), Admit::Yes));
}
