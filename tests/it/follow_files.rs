//! Following real files in a temporary directory: appends, rename-and-create rotation,
//! copytruncate, files appearing later under a glob, restart from persisted offsets, partial
//! lines, and hostile content. The parser here is a trivial "one observation per line" parser:
//! these tests are about line delivery (nothing lost, nothing duplicated), not log formats.

use crate::support::follow as follow_support;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poolwatch::ingest::follow::{
    channel_sink, FollowConfig, Follower, JsonOffsetFile, OffsetStore, ParserFactory, StartAt,
};
use poolwatch::ingest::LogParser;
use poolwatch::model::{Observation, Source};

use follow_support::{factory, LineParser};

fn cfg() -> FollowConfig {
    FollowConfig {
        poll_interval: Duration::from_millis(10),
        rescan_interval: Duration::ZERO,
        save_interval: Duration::ZERO,
        save_every_lines: 1,
        ..FollowConfig::default()
    }
}

type Got = Arc<Mutex<Vec<String>>>;

fn collector() -> (Got, impl FnMut(Observation) -> bool) {
    let got: Got = Arc::default();
    let g = got.clone();
    (got, move |o: Observation| {
        if let Observation::Dns(d) = o {
            g.lock().unwrap().push(d.qname);
        }
        true
    })
}

fn lines(range: std::ops::Range<u32>, tag: &str) -> Vec<String> {
    range.map(|i| format!("{tag}-{i}")).collect()
}

fn append(path: &Path, ls: &[String]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in ls {
        writeln!(f, "{l}").unwrap();
    }
}

fn poll(f: &mut Follower, sink: &mut impl FnMut(Observation) -> bool, n: usize) {
    let stop = AtomicBool::new(false);
    for _ in 0..n {
        f.poll_once(sink, &stop);
    }
}

fn follower(inputs: &[&Path], store: Option<Arc<dyn OffsetStore>>) -> Follower {
    let inputs: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    Follower::new(&inputs, cfg(), factory(), store).unwrap()
}

/// One run of a "process": opens the offset file from disk, follows `p` for `polls` polls, and
/// shuts down (saving offsets), as a service restart would.
fn run_process(p: &Path, offsets: &Path, sink: &mut impl FnMut(Observation) -> bool, polls: usize) {
    let store: Arc<dyn OffsetStore> = Arc::new(JsonOffsetFile::open(offsets).unwrap());
    let mut f = follower(&[p], Some(store));
    poll(&mut f, sink, polls);
    f.shutdown(sink);
}

#[test]
fn appends_are_delivered_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.log");
    append(&p, &lines(0..100, "a"));
    let (got, mut sink) = collector();
    let mut f = follower(&[&p], None);
    poll(&mut f, &mut sink, 2);
    for chunk in 1..10u32 {
        append(&p, &lines(chunk * 100..chunk * 100 + 100, "a"));
        poll(&mut f, &mut sink, 1);
    }
    poll(&mut f, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), lines(0..1000, "a"));
    assert_eq!(f.stats().lines, 1000);
}

#[test]
fn partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.log");
    std::fs::write(&p, "first\nsec").unwrap();
    let (got, mut sink) = collector();
    let mut f = follower(&[&p], None);
    poll(&mut f, &mut sink, 3);
    assert_eq!(*got.lock().unwrap(), vec!["first"]);
    let mut h = OpenOptions::new().append(true).open(&p).unwrap();
    h.write_all(b"ond\r\nthird\n").unwrap();
    poll(&mut f, &mut sink, 1);
    assert_eq!(*got.lock().unwrap(), vec!["first", "second", "third"]);
}

#[test]
fn rename_and_create_rotation_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("query.log");
    // The writer keeps its descriptor across the rename, like a daemon before its HUP.
    let mut writer = File::create(&p).unwrap();
    for l in lines(0..50, "r") {
        writeln!(writer, "{l}").unwrap();
    }
    let (got, mut sink) = collector();
    let mut f = follower(&[&p], None);
    poll(&mut f, &mut sink, 1);
    for l in lines(50..60, "r") {
        writeln!(writer, "{l}").unwrap();
    }
    std::fs::rename(&p, dir.path().join("query.log.1")).unwrap();
    // Written to the old file after the rename, before the daemon reopens.
    for l in lines(60..70, "r") {
        writeln!(writer, "{l}").unwrap();
    }
    write!(writer, "r-70").unwrap(); // unterminated last line of the old file
    poll(&mut f, &mut sink, 1);
    drop(writer);
    append(&p, &lines(71..100, "r"));
    poll(&mut f, &mut sink, 4);
    assert_eq!(*got.lock().unwrap(), lines(0..100, "r"));
    assert_eq!(f.stats().rotations, 1);
    // A second rotation, new file created before the follower notices.
    std::fs::rename(&p, dir.path().join("query.log.1")).unwrap();
    append(&p, &lines(100..110, "r"));
    poll(&mut f, &mut sink, 4);
    assert_eq!(*got.lock().unwrap(), lines(0..110, "r"));
}

#[test]
fn copytruncate_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.log");
    append(&p, &lines(0..50, "c"));
    let (got, mut sink) = collector();
    let mut f = follower(&[&p], None);
    poll(&mut f, &mut sink, 1);
    // copytruncate: copy, then truncate in place; the writer appends (O_APPEND) from 0.
    std::fs::copy(&p, dir.path().join("q.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&p, &lines(50..55, "c"));
    poll(&mut f, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), lines(0..55, "c"));
    // Truncated and rewritten past our position between two polls: the fingerprint tells.
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&p, &lines(1000..1100, "c"));
    poll(&mut f, &mut sink, 2);
    let mut want = lines(0..55, "c");
    want.extend(lines(1000..1100, "c"));
    assert_eq!(*got.lock().unwrap(), want);
    assert_eq!(f.stats().truncations, 2);
}

#[test]
fn glob_picks_up_files_that_appear_later() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("*.log");
    let (got, mut sink) = collector();
    let inputs = vec![pattern.display().to_string()];
    let mut f = Follower::new(
        &inputs,
        FollowConfig {
            start_at: StartAt::End,
            ..cfg()
        },
        factory(),
        None,
    )
    .unwrap();
    poll(&mut f, &mut sink, 2);
    assert!(got.lock().unwrap().is_empty());
    // Appears later: read from its beginning even though start_at is End.
    append(&dir.path().join("b.log"), &lines(0..20, "g"));
    append(&dir.path().join("ignored.txt"), &lines(0..5, "x"));
    poll(&mut f, &mut sink, 3);
    assert_eq!(*got.lock().unwrap(), lines(0..20, "g"));
    assert_eq!(f.files().len(), 1);
}

#[test]
fn start_at_end_skips_existing_content() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.log");
    append(&p, &lines(0..10, "old"));
    let (got, mut sink) = collector();
    let mut f = Follower::new(
        &[p.display().to_string()],
        FollowConfig {
            start_at: StartAt::End,
            ..cfg()
        },
        factory(),
        None,
    )
    .unwrap();
    poll(&mut f, &mut sink, 2);
    append(&p, &lines(0..3, "new"));
    poll(&mut f, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), lines(0..3, "new"));
}

#[test]
fn restart_resumes_exactly_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.log");
    let offsets = dir.path().join("offsets.json");
    append(&p, &lines(0..50, "s"));
    let (got, mut sink) = collector();
    run_process(&p, &offsets, &mut sink, 2);
    append(&p, &lines(50..80, "s"));
    // A new process: the offset file is read back from disk.
    run_process(&p, &offsets, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), lines(0..80, "s"));

    // Rotated while stopped: the rest of the old file (found by inode beside the path), then
    // the new file.
    append(&p, &lines(80..90, "s"));
    std::fs::rename(&p, dir.path().join("q.log.1")).unwrap();
    append(&p, &lines(90..100, "s"));
    run_process(&p, &offsets, &mut sink, 4);
    assert_eq!(*got.lock().unwrap(), lines(0..100, "s"));

    // Replaced by an unrelated file while stopped (old one gone): all of the new one.
    std::fs::remove_file(dir.path().join("q.log.1")).unwrap();
    std::fs::remove_file(&p).unwrap();
    append(&p, &lines(100..105, "s"));
    run_process(&p, &offsets, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), lines(0..105, "s"));
}

#[test]
fn file_appearing_after_start_and_empty_file_wait() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("later.log");
    let (got, mut sink) = collector();
    let mut f = follower(&[&p], None);
    poll(&mut f, &mut sink, 2);
    File::create(&p).unwrap();
    poll(&mut f, &mut sink, 2);
    append(&p, &lines(0..5, "l"));
    poll(&mut f, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), lines(0..5, "l"));
}

#[test]
fn detection_waits_for_content() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.log");
    File::create(&p).unwrap();
    let seen_heads: Arc<Mutex<Vec<usize>>> = Arc::default();
    let sh = seen_heads.clone();
    let fac: ParserFactory = Box::new(move |path: &Path, head: &[u8]| {
        sh.lock().unwrap().push(head.len());
        // Recognised only once a header line is there.
        head.starts_with(b"#fmt lines\n")
            .then(|| Box::new(LineParser::for_path(path)) as Box<dyn LogParser>)
    });
    let (got, mut sink) = collector();
    let mut f = Follower::new(&[p.display().to_string()], cfg(), fac, None).unwrap();
    poll(&mut f, &mut sink, 2);
    append(&p, &["#fmt lines".to_string(), "x".to_string()]);
    poll(&mut f, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), vec!["#fmt lines", "x"]);
    assert!(seen_heads.lock().unwrap().iter().all(|n| *n > 0));
}

#[test]
fn hostile_content_does_not_crash_or_buffer_unbounded() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.log");
    let mut f0 = File::create(&p).unwrap();
    f0.write_all(b"before\n").unwrap();
    // A 10 MB line, then invalid UTF-8, NULs, a lone CR.
    f0.write_all(&vec![b'x'; 10 * 1024 * 1024]).unwrap();
    f0.write_all(b"\n\xff\xfe\x00bad\n\rcr\nafter\n").unwrap();
    // Binary noise with newlines.
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    f0.write_all(&noise).unwrap();
    f0.write_all(b"\nend\n").unwrap();
    drop(f0);
    let (got, mut sink) = collector();
    let mut f = follower(&[&p], None);
    let start = Instant::now();
    poll(&mut f, &mut sink, 3);
    assert!(start.elapsed() < Duration::from_secs(30));
    let got = got.lock().unwrap();
    assert_eq!(got.first().map(String::as_str), Some("before"));
    assert_eq!(
        got.get(1).map(String::as_str),
        Some("\u{fffd}\u{fffd}\u{0}bad")
    );
    assert_eq!(got.get(2).map(String::as_str), Some("\rcr"));
    assert_eq!(got.get(3).map(String::as_str), Some("after"));
    assert_eq!(got.last().map(String::as_str), Some("end"));
    assert_eq!(f.stats().long_lines_skipped, 1);
    assert!(got
        .iter()
        .all(|l| l.len() <= poolwatch::ingest::follow::MAX_LINE_LEN * 3));
}

#[test]
fn run_on_a_thread_with_channel_and_stop_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.log");
    let offsets = dir.path().join("offsets.json");
    append(&p, &lines(0..10, "t"));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Observation>(4);
    let stop = Arc::new(AtomicBool::new(false));
    let store: Arc<dyn OffsetStore> = Arc::new(JsonOffsetFile::open(&offsets).unwrap());
    let mut f = follower(&[&p], Some(store));
    let stop2 = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut sink = channel_sink(tx);
        f.run(&mut sink, &stop2)
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut appended = false;
    while got.len() < 30 && Instant::now() < deadline {
        if let Ok(Observation::Dns(d)) = rx.try_recv() {
            got.push(d.qname);
            if got.len() == 10 && !appended {
                append(&p, &lines(10..30, "t"));
                appended = true;
            }
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stats = handle.join().unwrap();
    assert_eq!(got, lines(0..30, "t"));
    assert_eq!(stats.lines, 30);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&offsets).unwrap()).unwrap();
    let rec = saved.as_object().unwrap().values().next().unwrap();
    assert_eq!(rec["offset"], std::fs::metadata(&p).unwrap().len());
}

#[test]
fn bad_glob_is_an_error() {
    let r = Follower::new(&["/tmp/[".to_string()], cfg(), factory(), None);
    assert!(r.is_err());
    let _unused: Option<PathBuf> = None;
}

#[test]
fn named_file_absent_at_start_is_read_from_its_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("late.log");
    let (got, mut sink) = collector();
    let mut f = Follower::new(
        &[p.display().to_string()],
        FollowConfig {
            start_at: StartAt::End,
            ..cfg()
        },
        factory(),
        None,
    )
    .unwrap();
    poll(&mut f, &mut sink, 2);
    append(&p, &lines(0..7, "late"));
    poll(&mut f, &mut sink, 2);
    assert_eq!(*got.lock().unwrap(), lines(0..7, "late"));
}

#[test]
fn glob_matching_the_rotated_name_does_not_duplicate() {
    // logrotate `dateext` + `extension .log`: query.log → query-20261126.log, both match *.log.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("query.log");
    let rotated = dir.path().join("query-20261126.log");
    let pattern = dir.path().join("*.log").display().to_string();
    let offsets = dir.path().join("offsets.json");
    let mut writer = File::create(&p).unwrap();
    for l in lines(0..20, "d") {
        writeln!(writer, "{l}").unwrap();
    }
    let (got, mut sink) = collector();
    let store: Arc<dyn OffsetStore> = Arc::new(JsonOffsetFile::open(&offsets).unwrap());
    let mut f = Follower::new(
        std::slice::from_ref(&pattern),
        cfg(),
        factory(),
        Some(store),
    )
    .unwrap();
    poll(&mut f, &mut sink, 2);
    std::fs::rename(&p, &rotated).unwrap();
    for l in lines(20..25, "d") {
        writeln!(writer, "{l}").unwrap();
    }
    drop(writer);
    append(&p, &lines(25..30, "d"));
    poll(&mut f, &mut sink, 5);
    append(&rotated, &lines(30..32, "late-to-old"));
    poll(&mut f, &mut sink, 3);
    f.shutdown(&mut sink);
    let mut want = lines(0..30, "d");
    want.extend(lines(30..32, "late-to-old"));
    let mut have = got.lock().unwrap().clone();
    assert_eq!(have.len(), want.len(), "{have:?}");
    have.sort();
    want.sort();
    assert_eq!(have, want);

    // Restart after another rotation under the same scheme while stopped: the renamed file
    // resumes at the offset stored under its old name, the new file is read from 0.
    got.lock().unwrap().clear();
    append(&p, &lines(40..45, "e"));
    let rotated2 = dir.path().join("query-20261127.log");
    std::fs::rename(&p, &rotated2).unwrap();
    append(&p, &lines(45..50, "e"));
    let store: Arc<dyn OffsetStore> = Arc::new(JsonOffsetFile::open(&offsets).unwrap());
    let mut f = Follower::new(&[pattern], cfg(), factory(), Some(store)).unwrap();
    poll(&mut f, &mut sink, 3);
    f.shutdown(&mut sink);
    let mut have = got.lock().unwrap().clone();
    have.sort();
    let mut want = lines(40..50, "e");
    want.sort();
    assert_eq!(have, want);
}

/// Joins "Q n" with a later "R n" (like dnsmasq's reply lines); `flush` emits waiting queries.
struct JoinParser {
    pending: Vec<String>,
}

impl LogParser for JoinParser {
    fn parse_line(&mut self, line: &[u8], out: &mut Vec<Observation>) {
        let l = String::from_utf8_lossy(line).into_owned();
        let mut emit = |s: String| {
            let mut lp = LineParser {
                source: Source::new("log:join:test"),
            };
            lp.parse_line(s.as_bytes(), out);
        };
        if let Some(n) = l.strip_prefix("Q ") {
            self.pending.push(n.to_string());
        } else if let Some(n) = l.strip_prefix("R ") {
            if let Some(i) = self.pending.iter().position(|p| p == n) {
                self.pending.remove(i);
                emit(format!("{n}:answered"));
            }
        }
    }
    fn flush(&mut self, out: &mut Vec<Observation>) {
        for n in std::mem::take(&mut self.pending) {
            let mut lp = LineParser {
                source: Source::new("log:join:test"),
            };
            lp.parse_line(format!("{n}:unanswered").as_bytes(), out);
        }
    }
}

#[test]
fn stateful_parser_is_flushed_when_quiet_and_before_offsets_are_saved() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("j.log");
    let offsets = dir.path().join("offsets.json");
    let fac = || -> ParserFactory {
        Box::new(|_: &Path, _: &[u8]| {
            Some(Box::new(JoinParser {
                pending: Vec::new(),
            }) as Box<dyn LogParser>)
        })
    };
    let quiet = FollowConfig {
        flush_after_quiet: Duration::from_millis(50),
        ..cfg()
    };
    append(&p, &["Q 1".into(), "Q 2".into(), "R 1".into()]);
    let (got, mut sink) = collector();
    let store: Arc<dyn OffsetStore> = Arc::new(JsonOffsetFile::open(&offsets).unwrap());
    let mut f = Follower::new(
        &[p.display().to_string()],
        quiet.clone(),
        fac(),
        Some(store),
    )
    .unwrap();
    poll(&mut f, &mut sink, 1);
    assert_eq!(*got.lock().unwrap(), vec!["1:answered"]);
    std::thread::sleep(Duration::from_millis(60));
    poll(&mut f, &mut sink, 1);
    assert_eq!(*got.lock().unwrap(), vec!["1:answered", "2:unanswered"]);
    // Shutdown flushes a still-waiting query, then saves: nothing re-read after the restart.
    append(&p, &["Q 3".into()]);
    poll(&mut f, &mut sink, 1);
    f.shutdown(&mut sink);
    drop(f);
    append(&p, &["Q 4".into(), "R 4".into()]);
    let store: Arc<dyn OffsetStore> = Arc::new(JsonOffsetFile::open(&offsets).unwrap());
    let mut f = Follower::new(&[p.display().to_string()], quiet, fac(), Some(store)).unwrap();
    poll(&mut f, &mut sink, 1);
    assert_eq!(
        *got.lock().unwrap(),
        vec!["1:answered", "2:unanswered", "3:unanswered", "4:answered"]
    );
}
