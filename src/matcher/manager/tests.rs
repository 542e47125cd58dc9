//! Unit tests of the list manager (the HTTP-level ones are in `tests/it/api_lists.rs`).

use std::path::Path;
use std::sync::Arc;

use super::persist::{read_meta, UserMeta, MAX_META_BYTES};
use super::*;
use crate::model::Category;

#[test]
fn metadata_reads_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("l.meta.json");
    std::fs::write(&p, r#"{"category":"allow"}"#).unwrap();
    let m: UserMeta = read_meta(&p).unwrap();
    assert_eq!(m.category, Category::Allow);
    // Padded past the limit: ignored (defaults apply), not read whole.
    let big = format!(
        r#"{{"category":"allow"}}{}"#,
        " ".repeat(MAX_META_BYTES as usize)
    );
    std::fs::write(&p, big).unwrap();
    assert!(read_meta::<UserMeta>(&p).is_none());
    assert!(read_meta::<UserMeta>(&tmp.path().join("missing.meta.json")).is_none());
}

fn mgr(dir: &Path) -> Arc<ListManager> {
    ListManager::open(ListManagerConfig::new(dir)).unwrap().0
}

#[test]
fn user_lists_persist_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mgr(tmp.path());
    m.put_user_list("mine", "evil-pool.example\n", None, Some(Category::Pool))
        .unwrap();
    m.add_entries("mine", &["other-pool.example".into()], None)
        .unwrap();
    assert!(m
        .shared()
        .load()
        .match_name("x.evil-pool.example")
        .is_some());
    drop(m);
    let m = mgr(tmp.path());
    let set = m.shared().load();
    assert_eq!(set.match_name("a.other-pool.example").unwrap().list, "mine");
    let info = m.lists().into_iter().find(|l| l.name == "mine").unwrap();
    assert_eq!(info.kind, ListKind::User);
    assert_eq!(info.entries, 2);
}

#[test]
fn bad_upload_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mgr(tmp.path());
    let before = m.shared().load().len();
    let err = m
        .put_user_list("bad", "good.example\nbad..name\n", None, None)
        .unwrap_err();
    match err {
        MatcherError::Rejected { problems, .. } => assert_eq!(problems[0].line, 2),
        other => panic!("{other}"),
    }
    assert_eq!(m.shared().load().len(), before);
    assert!(!tmp.path().join("bad.txt").exists());
}

#[test]
fn names_cannot_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mgr(tmp.path());
    for bad in [
        "../x",
        "a/b",
        "/etc/passwd",
        "..",
        "x\0",
        "reload",
        "",
        "%2e%2e",
    ] {
        assert!(
            matches!(
                m.put_user_list(bad, "a.example\n", None, None),
                Err(MatcherError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        m.put_user_list("pools-monero", "a.example\n", None, None),
        Err(MatcherError::ReadOnly(_))
    ));
    assert!(matches!(
        m.delete("allowlist"),
        Err(MatcherError::ReadOnly(_))
    ));
}

#[test]
fn remove_entries_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mgr(tmp.path());
    m.add_entries(
        "l",
        &["a.example".into(), "b.example".into(), "203.0.113.9".into()],
        None,
    )
    .unwrap();
    let r = m
        .remove_entries("l", &["A.Example.".into(), "zzz.example".into()])
        .unwrap();
    assert_eq!(r.changed, vec!["a.example"]);
    assert_eq!(r.unchanged, vec!["zzz.example"]);
    let set = m.shared().load();
    assert!(set.match_name("a.example").is_none());
    assert!(set.match_name("b.example").is_some());
    drop(set);
    m.delete("l").unwrap();
    assert!(m.shared().load().match_name("b.example").is_none());
    assert!(!tmp.path().join("l.txt").exists());
    assert!(matches!(m.delete("l"), Err(MatcherError::UnknownList(_))));
}

#[test]
fn hostile_uploads_and_names_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mgr(tmp.path());
    let before = m.shared().load().len();
    let alphabet: Vec<char> = "abcxyz019.-_*|^@$/:#!; \t\r\n[]0.0.0.0éü\u{0}\u{202e}%"
        .chars()
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let len = (next() % 200) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let name: String = text.chars().take((next() % 12) as usize).collect();
        let _ = m.put_user_list(&name, &text, None, None);
        let _ = m.put_user_list("g", &text, None, None);
        let entries: Vec<String> = text.split('\n').map(str::to_string).collect();
        let _ = m.add_entries("g2", &entries, None);
        let _ = m.remove_entries("g2", &entries);
        let _ = m.list(&name, (next() % 5) as usize, 3);
        let _ = m.delete(&name);
    }
    // Whatever was accepted is on disk under a valid name and nowhere else.
    for e in std::fs::read_dir(tmp.path()).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        let stem = n
            .strip_suffix(".meta.json")
            .or(n.strip_suffix(".txt"))
            .unwrap_or(&n);
        assert!(
            stem == "feeds" || super::super::is_valid_list_name(stem),
            "{n:?}"
        );
    }
    assert!(m.shared().load().len() >= before);
}
