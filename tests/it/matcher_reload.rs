//! Hot reload: a bad or empty list never replaces the working set; a good change is picked up
//! by the watcher; metrics count both. Plus garbage and truncations thrown at the parser.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use poolwatch::matcher::{
    self, parse_list, Blocklists, ListFormat, ListSource, MatcherError, Reloader,
};
use poolwatch::model::Category;

fn reloads(result: &str) -> u64 {
    poolwatch::metrics::counter_value("poolwatch_blocklist_reloads_total", &[("result", result)])
        .unwrap_or(0)
}

#[test]
fn reload_keeps_the_old_set_on_errors_and_swaps_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("user-pools.txt");
    std::fs::write(&list, "first-pool.example\n").unwrap();
    let paths = vec![list.clone()];
    let shared = matcher::shared(Blocklists::load(&paths).unwrap());
    let r = Reloader::new(shared.clone(), paths);

    // Every entry invalid: a parse error naming file and line; the old set stays.
    std::fs::write(&list, "# header\nbad..example\n").unwrap();
    let (ok0, err0) = (reloads("ok"), reloads("error"));
    let e = r.reload_now().unwrap_err();
    match &e {
        MatcherError::Parse { path, line, .. } => {
            assert_eq!(path, &list);
            assert_eq!(*line, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().contains("user-pools.txt:2:"), "{e}");
    assert!(shared.load().match_name("first-pool.example").is_some());
    // Empty list: refused too.
    std::fs::write(&list, "# nothing left\n").unwrap();
    assert!(matches!(r.reload_now(), Err(MatcherError::Empty)));
    // Missing file: refused.
    std::fs::remove_file(&list).unwrap();
    assert!(matches!(r.reload_now(), Err(MatcherError::Io { .. })));
    assert!(shared.load().match_name("first-pool.example").is_some());
    // A good list swaps in.
    std::fs::write(&list, "second-pool.example\n").unwrap();
    let rep = r.reload_now().unwrap();
    assert_eq!(rep.entries, 1);
    assert!(shared.load().match_name("first-pool.example").is_none());
    assert!(shared.load().match_name("x.second-pool.example").is_some());
    assert!(reloads("error") >= err0 + 3);
    assert!(reloads("ok") > ok0);
    let entries = poolwatch::metrics::render();
    assert!(entries.contains("poolwatch_blocklist_entries"));
}

#[test]
fn user_lists_in_memory_and_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("p.txt");
    std::fs::write(&list, "file-pool.example\n").unwrap();
    let shared = matcher::shared(Blocklists::empty());
    let r = Reloader::new(shared.clone(), vec![list]);
    r.set_user_lists(vec![ListSource::memory(
        "api-upload",
        Category::Pool,
        Some(ListFormat::Plain),
        "api-pool.example\n",
    )])
    .unwrap();
    assert_eq!(
        shared.load().match_name("api-pool.example").unwrap().list,
        "api-upload"
    );
    // A bad upload is refused and the previous user list stays in force for later reloads.
    assert!(r
        .set_user_lists(vec![ListSource::memory(
            "bad",
            Category::Pool,
            None,
            "a..b\n"
        )])
        .is_err());
    r.reload_now().unwrap();
    assert!(shared.load().match_name("api-pool.example").is_some());
}

#[test]
fn watcher_picks_up_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("watched.txt");
    std::fs::write(&list, "before.example\n").unwrap();
    let shared = matcher::shared(Blocklists::load(std::slice::from_ref(&list)).unwrap());
    let r = Reloader::new(shared.clone(), vec![dir.path().to_path_buf()]);
    let handle = r.watch(Duration::from_millis(100)).unwrap();
    std::thread::sleep(Duration::from_millis(250));
    // Different size, so the change is visible even with coarse mtimes.
    std::fs::write(&list, "after-the-change.example\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared
        .load()
        .match_name("after-the-change.example")
        .is_none()
    {
        assert!(Instant::now() < deadline, "watcher did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken edit is ignored by the watcher: the working set stays.
    std::fs::write(&list, "broken..entry\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(shared
        .load()
        .match_name("after-the-change.example")
        .is_some());
    drop(handle);
}

#[test]
fn parser_survives_garbage_and_truncations() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let base = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/blocklists/plain.txt")).unwrap()
        + "||a.example^$third-party\n@@||b.example^\nserver=/c.example/1.1.1.1\n0.0.0.0 d.example e.example\n";
    let alphabet = b"abc.-_*|^@$#!;/:[]=0123456789 \t\r\n\xc3\xbc";
    for i in 0..3000 {
        let text: String = if i % 2 == 0 {
            // Truncations at every char boundary, in every format.
            let mut cut = (next() as usize) % (base.len() + 1);
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            base[..cut].to_string()
        } else {
            let len = (next() % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        for f in [
            None,
            Some(ListFormat::Plain),
            Some(ListFormat::Hosts),
            Some(ListFormat::Adblock),
            Some(ListFormat::Dnsmasq),
        ] {
            let p = parse_list(&text, f);
            for e in &p.entries {
                if let poolwatch::matcher::Target::Domain(d) = &e.target {
                    assert!(d.len() <= poolwatch::matcher::MAX_NAME_LEN);
                    assert!(poolwatch::matcher::normalize::validate_ascii_name(d).is_ok());
                }
            }
            if let Ok((b, _)) =
                Blocklists::build(vec![ListSource::memory("g", Category::Pool, f, &text)])
            {
                let _ = b.match_name(&text);
                for fmt in poolwatch::matcher::ExportFormat::ALL {
                    let _ = b.export(fmt);
                }
            }
        }
    }
    // A hostile long line is refused, not parsed.
    let long = "a".repeat(100_000);
    assert_eq!(parse_list(&long, None).invalid, 1);
}
