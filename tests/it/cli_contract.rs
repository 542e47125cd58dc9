//! The command-line contract every subcommand keeps (issue #17, README "Exit codes"): exit
//! codes and examples in each `--help`, `--output text|json` with `table` an alias,
//! `-o`/`--out FILE`, errors that name the thing once and never print Rust `Debug` text, and
//! `--log-json` making every stderr line JSON. The real binary over the sample data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn poolwatch(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poolwatch"));
    crate::support::proc::without_poolwatch_env(&mut c);
    c.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run poolwatch")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Output with the one varying part (`stats`: "compiled in N ms") cut off.
fn stable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.split(" compiled in ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
        .display()
        .to_string()
}

const SUBCOMMANDS: &[&[&str]] = &[
    &["scan"],
    &["inspect"],
    &["blocklist"],
    &["blocklist", "match"],
    &["blocklist", "lint"],
    &["blocklist", "stats"],
    &["blocklist", "export"],
    &["serve"],
    &["demo"],
    &["completions"],
    &["manpage"],
];

#[test]
fn every_help_states_exit_codes_and_examples() {
    let top = poolwatch(&["--help"]);
    assert_eq!(code(&top), 0);
    assert!(stdout(&top).contains("Exit status"), "{}", stdout(&top));
    for sub in SUBCOMMANDS {
        let mut args = sub.to_vec();
        args.push("--help");
        let o = poolwatch(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("Exit status"), "{args:?} --help: {text}");
        assert!(text.contains("Example"), "{args:?} --help: {text}");
    }
}

#[test]
fn version_names_commit_and_build_date() {
    let o = poolwatch(&["--version"]);
    assert_eq!(code(&o), 0);
    let v = stdout(&o);
    assert!(
        v.starts_with(&format!("poolwatch {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("commit "), "{v}");
    let date = v
        .split("built ")
        .nth(1)
        .unwrap_or("")
        .trim()
        .trim_end_matches(')');
    assert_eq!(date.len(), 10, "{v}");
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{v}"
    );
}

#[test]
fn scan_exit_codes() {
    // 1: the sample capture holds detections.
    let o = poolwatch(&["scan", &data("sample/sample.pcap")]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // 0: a capture of an ordinary lookup and its answer.
    let o = poolwatch(&["scan", &data("pcap/udp_query_response.pcap")]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("no detections"), "{}", stdout(&o));
    // 2: a missing input, a bad flag, a truncated capture.
    assert_eq!(code(&poolwatch(&["scan", "/nonexistent/x.pcap"])), 2);
    assert_eq!(code(&poolwatch(&["scan", "--bogus", "x"])), 2);
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let bytes = std::fs::read(data("sample/sample.pcap")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let o = poolwatch(&["scan", cut.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn blocklist_match_exit_codes_like_grep() {
    assert_eq!(
        code(&poolwatch(&["blocklist", "match", "pool.supportxmr.com"])),
        0
    );
    assert_eq!(
        code(&poolwatch(&["blocklist", "match", "www.example.com"])),
        1
    );
    let o = poolwatch(&["blocklist", "match", "-b", "/nonexistent/list.txt", "x.com"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    // lint: 0 clean, 1 problems, 2 unreadable.
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(&good, "supportxmr.com\n").unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "supportxmr.com\nnot a name!!\n").unwrap();
    assert_eq!(
        code(&poolwatch(&["blocklist", "lint", good.to_str().unwrap()])),
        0
    );
    assert_eq!(
        code(&poolwatch(&["blocklist", "lint", bad.to_str().unwrap()])),
        1
    );
    assert_eq!(
        code(&poolwatch(&["blocklist", "lint", "/nonexistent/l.txt"])),
        2
    );
}

#[test]
fn output_values_are_the_same_everywhere() {
    let pcap = data("sample/sample.pcap");
    // `text` and its alias `table` print the same.
    for (base, extra) in [
        (vec!["scan"], vec![pcap.as_str()]),
        (vec!["inspect"], vec![pcap.as_str()]),
        (vec!["blocklist", "match"], vec!["pool.supportxmr.com"]),
        (vec!["blocklist", "stats"], vec![]),
    ] {
        let run = |v: &str| {
            let mut a = base.clone();
            a.extend(["--output", v]);
            a.extend(extra.iter().copied());
            poolwatch(&a)
        };
        let (text, table, json) = (run("text"), run("table"), run("json"));
        assert!(code(&text) < 2, "{base:?} text: {}", stderr(&text));
        assert_eq!(
            stable(&text.stdout),
            stable(&table.stdout),
            "{base:?}: table is not text"
        );
        assert_eq!(code(&text), code(&table));
        assert!(code(&json) < 2, "{base:?} json: {}", stderr(&json));
        // `stats --output json` is one pretty object; the others one object a line.
        let out = stdout(&json);
        if base == ["blocklist", "stats"] {
            serde_json::from_str::<serde_json::Value>(&out).expect("json");
        } else {
            for l in out.lines() {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("{base:?}: {e}: {l}"));
            }
        }
    }
}

#[test]
fn out_file_is_the_same_flag_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = data("sample/sample.pcap");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["scan", "--output", "json", pcap.as_str()], "scan.json"),
        (vec!["inspect", pcap.as_str()], "obs.jsonl"),
        (vec!["blocklist", "match", "pool.supportxmr.com"], "m.txt"),
        (vec!["blocklist", "stats"], "s.txt"),
        (vec!["blocklist", "export", "--format", "hosts"], "hosts"),
        (vec!["completions", "bash"], "pw.bash"),
        (vec!["manpage"], "poolwatch.1"),
    ];
    for (args, name) in cases {
        let target: PathBuf = dir.path().join(name);
        let t = target.to_str().unwrap();
        let plain = poolwatch(&args);
        for flag in ["-o", "--out"] {
            let _ = std::fs::remove_file(&target);
            let mut a = args.clone();
            a.extend([flag, t]);
            let o = poolwatch(&a);
            assert_eq!(code(&o), code(&plain), "{a:?}: {}", stderr(&o));
            assert!(o.stdout.is_empty(), "{a:?} still printed to stdout");
            let written = std::fs::read(&target).unwrap_or_else(|e| panic!("{a:?}: {e}"));
            assert_eq!(
                stable(&written),
                stable(&plain.stdout),
                "{a:?}: file differs from stdout"
            );
        }
    }
    // Only the result file is left (temporary files renamed or removed).
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("poolwatch-tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // A format word given to -o by habit is refused with a hint, never written to ./json.
    let o = poolwatch(&["blocklist", "match", "-o", "json", "x.com"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--output json"), "{}", stderr(&o));
}

#[test]
fn errors_name_the_thing_once_without_debug_text() {
    let o = poolwatch(&["scan", "/nonexistent/capture.pcap"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2);
    assert_eq!(err.matches("/nonexistent/capture.pcap").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let o = poolwatch(&["inspect", "/nonexistent/capture.pcap"]);
    let err = stderr(&o);
    assert_eq!(err.matches("/nonexistent/capture.pcap").count(), 1, "{err}");

    // A database another process holds: the message says so in words, not `Os { … }`.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let pcap = data("sample/sample.pcap");
    let first = poolwatch(&["scan", "--db", db.to_str().unwrap(), &pcap]);
    assert_eq!(code(&first), 1, "{}", stderr(&first));
    let holder = poolwatch_spawn_serve(&db);
    let o = poolwatch(&["scan", "--db", db.to_str().unwrap(), &pcap]);
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(!err.contains("Os {") && !err.contains("kind:"), "{err}");
    assert!(err.contains(db.to_str().unwrap()), "{err}");
}

/// `serve` holding `db` (its lock), started and ready.
fn poolwatch_spawn_serve(db: &Path) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut c = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ])
        .env("POOLWATCH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = c.stderr.take().unwrap();
    for line in BufReader::new(err).lines() {
        let line = line.unwrap();
        if line.contains("ready") {
            break;
        }
    }
    c
}

#[test]
fn scan_db_that_cannot_be_made_is_not_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = poolwatch(&[
        "scan",
        "--db",
        file.to_str().unwrap(),
        &data("sample/sample.pcap"),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn serve_failed_start_leaves_no_database() {
    // The port is taken: the service opens a fresh database, then cannot listen.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh-db");
    let o = poolwatch(&["serve", "--listen", &addr, "--db", db.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains(&addr), "{}", stderr(&o));
    assert!(
        !db.exists(),
        "a half-made database was left at {}",
        db.display()
    );
    // An existing database is never removed.
    std::fs::create_dir(&db).unwrap();
    let o = poolwatch(&["serve", "--listen", &addr, "--db", db.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(db.exists());
}

#[test]
fn log_json_makes_every_stderr_line_json() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let bytes = std::fs::read(data("sample/sample.pcap")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    let sample = data("sample/sample.pcap");
    let cases: Vec<Vec<&str>> = vec![
        vec!["--log-json", "--log-level", "debug", "scan", &sample],
        vec!["--log-json", "scan", cut.to_str().unwrap()],
        vec!["--log-json", "scan", "/nonexistent.pcap"],
        vec!["--log-json", "scan", "--no-such-flag"],
        vec!["--log-json", "inspect", "/nonexistent.pcap"],
        vec!["--log-json", "serve", "--listen", "not-an-address"],
    ];
    for args in cases {
        let o = poolwatch(&args);
        let err = stderr(&o);
        assert!(!err.trim().is_empty(), "{args:?}: nothing on stderr");
        assert!(!err.contains('\u{1b}'), "{args:?}: ANSI escapes: {err}");
        for line in err.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"));
            assert!(
                v["level"].is_string() && v["fields"]["message"].is_string(),
                "{line}"
            );
        }
    }
    // Without a terminal the text logs carry no colour codes either.
    let o = poolwatch(&["--log-level", "debug", "scan", &data("sample/sample.pcap")]);
    assert!(!stderr(&o).contains('\u{1b}'), "{}", stderr(&o));
}
