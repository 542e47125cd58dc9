//! A detection announced as stored survives `kill -9`: a real child process runs the pipeline
//! with the event feed, prints each id when the event arrives (events are published only after
//! the flush), and is killed with SIGKILL; the database must then hold every announced detection.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use poolwatch::capture::CaptureConfig;
use poolwatch::correlate::{Engine, EngineConfig, Pipeline};
use poolwatch::ingest::IngestConfig;
use poolwatch::input::{self, InputFormat};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::{Stage, Timestamp};
use poolwatch::store::Store;

const CHILD_ENV: &str = "POOLWATCH_TEST_KILL_CHILD_DB";
/// How long the parent waits for the child's announcements.
const WAIT: Duration = Duration::from_secs(60);

/// The child side (does nothing unless started by the parent test).
#[test]
fn kill_child_writer() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&db)).unwrap();
    let (tx, mut rx) = tokio::sync::broadcast::channel(1024);
    let engine = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::builtin().unwrap()),
    );
    let mut p = Pipeline::new(engine, Some(store)).unwrap().with_events(tx);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/observations/mini.jsonl");
    let obs = input::open(
        &path,
        InputFormat::Observations,
        &CaptureConfig::default(),
        &IngestConfig::default(),
    )
    .unwrap();
    let announce = |rx: &mut tokio::sync::broadcast::Receiver<_>| {
        while let Ok(ev) = rx.try_recv() {
            let ev: poolwatch::query::DetectionEvent = ev;
            println!("STORED {} {}", ev.detection.id, ev.detection.stage);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    };
    for o in obs {
        p.push(o).unwrap();
        announce(&mut rx);
    }
    // Stay alive like a service: tick (which flushes what is due) until killed.
    loop {
        p.tick(Timestamp::now()).unwrap();
        announce(&mut rx);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn announced_detections_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store_durability::kill_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print its own "test … " prefix on the same line.
            if let Some(i) = line.find("STORED ") {
                let _ = tx.send(line[i + "STORED ".len()..].to_string());
            }
        }
    });
    let mut announced: Vec<(String, Stage)> = Vec::new();
    let start = Instant::now();
    while announced.len() < 7 && start.elapsed() < WAIT {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let mut it = l.split(' ');
            let id = it.next().unwrap().to_string();
            let stage = Stage::parse(it.next().unwrap()).unwrap();
            announced.push((id, stage));
        }
    }
    // SIGKILL: no destructors, no final flush.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "child was killed by SIGKILL");
    assert!(announced.len() >= 7, "child announced {announced:?}");

    let store = Store::open(&db).unwrap();
    for (id, stage) in &announced {
        let d = store
            .get_detection(id)
            .unwrap()
            .unwrap_or_else(|| panic!("announced detection {id} lost after kill -9"));
        assert!(
            d.stage >= *stage,
            "{id}: stored {} < announced {stage}",
            d.stage
        );
    }
}
