//! Source positions of followed lines (issue #11, exactly-once counting): a line read again —
//! by a follower that starts over without offsets, or under the name a rotation gave its file —
//! carries the position it had the first time; new content (another file, a rewrite in place)
//! gets another source id; no two observations share a position.

use crate::support::follow as follow_support;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use poolwatch::ingest::follow::{FollowConfig, Follower};
use poolwatch::model::{Observation, SourcePos};
use poolwatch::ports::ObservationSink;

use follow_support::factory;

fn cfg() -> FollowConfig {
    FollowConfig {
        poll_interval: Duration::from_millis(10),
        rescan_interval: Duration::ZERO,
        ..FollowConfig::default()
    }
}

/// Records (line text, position) of what a follower hands over.
#[derive(Default)]
struct Recorder {
    got: Vec<(String, Option<SourcePos>)>,
}

impl ObservationSink for Recorder {
    fn send(&mut self, obs: Observation) -> bool {
        if let Observation::Dns(d) = obs {
            self.got.push((d.qname, None));
        }
        true
    }
    fn send_at(&mut self, obs: Observation, pos: SourcePos) -> bool {
        if let Observation::Dns(d) = obs {
            self.got.push((d.qname, Some(pos)));
        }
        true
    }
}

fn write(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// Reads `path` from the start (no stored offsets) to its end; line → position.
fn read_all(path: &Path) -> BTreeMap<String, SourcePos> {
    let stop = AtomicBool::new(false);
    let mut f = Follower::new(&[path.display().to_string()], cfg(), factory(), None).unwrap();
    let mut rec = Recorder::default();
    for _ in 0..3 {
        f.poll_once(&mut rec, &stop);
    }
    let mut m = BTreeMap::new();
    for (line, pos) in rec.got {
        let pos = pos.unwrap_or_else(|| panic!("{line}: a followed file's line has a position"));
        assert!(m.insert(line.clone(), pos).is_none(), "{line} twice");
    }
    m
}

#[test]
fn a_line_read_again_has_the_position_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("q.log");
    write(&log, &["one 20:00:01", "two", "three"]);
    let first = read_all(&log);
    assert_eq!(first.len(), 3);
    let ids: HashSet<_> = first.values().map(|p| p.source).collect();
    assert_eq!(ids.len(), 1, "one file, one source id");
    assert_eq!(first["one 20:00:01"].offset, 0);
    assert_eq!(first["two"].offset, "one 20:00:01\n".len() as u64);
    let keys: HashSet<_> = first.values().map(|p| p.key()).collect();
    assert_eq!(keys.len(), 3, "distinct positions");

    // The file grows; a follower that starts over sees the old lines where they were.
    write(&log, &["four", "five"]);
    let again = read_all(&log);
    assert_eq!(again.len(), 5);
    for (line, pos) in &first {
        assert_eq!(again.get(line), Some(pos), "{line} moved");
    }
    assert!(again["five"].key() > again["four"].key());

    // Rotated away (renamed): same content, same identity.
    let rotated = dir.path().join("q.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    assert_eq!(read_all(&rotated), again, "a rename keeps the positions");

    // A new file under the old name: another source.
    write(&log, &["one 20:00:01", "two"]);
    let new_file = read_all(&log);
    assert_ne!(new_file["two"].source, again["two"].source, "a new file");

    // Rewritten in place with another first line (copytruncate): another source.
    std::fs::write(&rotated, "zero 21:00:00\ntwo\n").unwrap();
    let rewritten = read_all(&rotated);
    assert_ne!(rewritten["two"].source, again["two"].source, "new content");
}
