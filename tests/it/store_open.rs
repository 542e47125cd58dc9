//! Opening a database never panics (issue #11): a real sled database with a truncated file, and
//! a directory of unrelated files, give a clear error and exit status 2 from `serve --db` and
//! `scan --db`; `Store::open` returns an error instead of unwinding.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use poolwatch::query::NewSuppression;
use poolwatch::store::{Store, StoreError};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_poolwatch"))
}

/// A real database with enough writes to span several sled pages.
fn make_db(dir: &Path) -> PathBuf {
    let db = dir.join("db");
    let s = Store::open(&db).unwrap();
    for i in 0..2000u32 {
        s.add_suppression(NewSuppression {
            client: Some(format!("192.0.2.{}/32", i % 250).parse().unwrap()),
            pool: Some(format!("pool-{i}.example")),
            expires: None,
            reason: "x".repeat(200),
        })
        .unwrap();
    }
    s.flush().unwrap();
    drop(s);
    db
}

/// Damage number `frac` of `CUTS`: the odd ones cut the file there, the even ones overwrite
/// 4 KiB there with garbage (sled notices either only at some points, depending on layout).
fn damage(path: &Path, original: &[u8], frac: u64) {
    let full = original.len() as u64;
    let at = (full * frac / CUT_DENOM) as usize;
    if frac % 2 == 1 {
        std::fs::write(path, original).unwrap();
        truncate(path, at as u64);
    } else {
        let mut bytes = original.to_vec();
        let end = (at + 4096).min(bytes.len());
        bytes[at..end].fill(0xAB);
        std::fs::write(path, bytes).unwrap();
    }
}

fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `serve --db` and `scan --db` on `db`: exit 2, the message, no panic text.
fn assert_cli_refuses(db: &Path, expect: &str) {
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample/sample.pcap");
    let runs: Vec<Vec<String>> = vec![
        vec![
            "serve".into(),
            "--db".into(),
            db.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ],
        vec![
            "scan".into(),
            "--db".into(),
            db.display().to_string(),
            pcap.display().to_string(),
        ],
    ];
    for args in runs {
        let o = bin().args(&args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("RUST_BACKTRACE"), "{args:?}: {err}");
    }
}

/// Where the database file is cut, in 1/`CUT_DENOM` of its length: many points, because which
/// cuts sled notices (it panics on some, reopens a consistent prefix on others) depends on the
/// layout of the trees in the file.
const CUT_DENOM: u64 = 60;
const CUTS: std::ops::Range<u64> = 1..CUT_DENOM;

#[test]
fn truncated_sled_database_is_reported_damaged_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let db = make_db(tmp.path());
    let data = db.join("db");
    let full = std::fs::metadata(&data).unwrap().len();
    assert!(full > 4096, "database file is {full} bytes");
    // Cut at many points: each open returns (an error or, when the cut left a consistent
    // prefix, a database), never a panic.
    let original = std::fs::read(&data).unwrap();
    let mut damaged = 0;
    for frac in CUTS.clone() {
        damage(&data, &original, frac);
        match Store::open(&db) {
            Err(e @ StoreError::Damaged { .. }) => {
                eprintln!("cut at {frac}/{CUT_DENOM}: {e}");
                damaged += 1
            }
            Err(e) => panic!("cut at {frac}/{CUT_DENOM}: unexpected error {e}"),
            Ok(_) => {}
        }
    }
    eprintln!("{damaged} of {} cuts reported damaged", CUTS.count());
    assert!(damaged > 0, "no cut was detected as damage");
    // Find a damaging cut again and check the CLI's answer.
    for frac in CUTS.clone() {
        damage(&data, &original, frac);
        if matches!(Store::open(&db), Err(StoreError::Damaged { .. })) {
            let e = Store::open(&db).unwrap_err().to_string();
            assert!(e.contains("damaged") && e.contains("Move it aside"), "{e}");
            assert_cli_refuses(&db, "is damaged");
            return;
        }
    }
    unreachable!();
}

#[test]
fn directory_of_other_files_is_not_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("home");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "not a database\n").unwrap();
    let e = Store::open(&other).unwrap_err();
    assert!(matches!(e, StoreError::NotOurs { .. }), "{e}");
    assert!(e.to_string().contains("other files"), "{e}");
    assert_cli_refuses(&other, "not a poolwatch database");
    // Nothing was created beside the files.
    let names: Vec<_> = std::fs::read_dir(&other)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);

    // A plain file is refused too; an empty directory and poolwatch's own `lists/` are fine.
    assert!(matches!(
        Store::open(&other.join("notes.txt")),
        Err(StoreError::NotOurs { .. })
    ));
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("lists")).unwrap();
    Store::open(&empty).unwrap();
}

/// A database still held when it is opened again — dropped a moment later, as a restart in
/// place drops the old handle while sled's background thread still holds the directory lock —
/// is opened once the lock is free, not refused (`store::LOCK_WAIT`). Fails without the wait:
/// the second open meets the held lock at once.
#[test]
fn reopening_waits_for_a_lock_released_after_the_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let first = Store::open(&db).unwrap();
    first.flush().unwrap();
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(first);
    });
    let second = Store::open(&db).expect("opened once the first handle let go");
    dropper.join().unwrap();
    assert_eq!(second.all_detections().unwrap().len(), 0);
}
