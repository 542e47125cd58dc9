//! The list-change port (`ports::ListChangeSink`): every way an entry gets into the running set
//! — an API-style edit, a feed refresh, a `--blocklist` file reload — reports exactly the added
//! entries, in order, on a bounded channel; a rejected update reports nothing.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use poolwatch::matcher::{FeedPolicy, FeedRequest, ListManager, ListManagerConfig};
use poolwatch::ports::ListChange;

fn entries(c: &ListChange) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c
        .added
        .iter()
        .map(|e| (e.list.clone(), e.entry.clone()))
        .collect();
    v.sort();
    v
}

fn next(rx: &Receiver<ListChange>) -> ListChange {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a list change within 10 s")
}

fn pair(list: &str, entry: &str) -> (String, String) {
    (list.to_string(), entry.to_string())
}

#[test]
fn edits_feeds_and_file_reloads_report_what_they_added() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("site-pools.txt");
    std::fs::write(&file, "file-pool.example\n").unwrap();
    let upstream = tmp.path().join("upstream.txt");
    std::fs::write(&upstream, "feed-pool.example\n198.51.100.0/24\n").unwrap();

    let mut cfg = ListManagerConfig::new(tmp.path().join("lists"));
    cfg.blocklists = vec![file.clone()];
    cfg.feed_policy = FeedPolicy::permissive(vec![tmp.path().to_path_buf()]);
    let (m, _shared) = ListManager::open(cfg).unwrap();
    let (tx, rx) = sync_channel::<ListChange>(8);
    m.set_change_sink(Some(Arc::new(tx)));

    // API-style edit: only the new entries, not the list's old ones.
    m.add_entries("mine", &["a-pool.example".into()], None)
        .unwrap();
    let c1 = next(&rx);
    assert_eq!(entries(&c1), vec![pair("mine", "a-pool.example")]);
    m.add_entries(
        "mine",
        &["a-pool.example".into(), "203.0.113.7".into()],
        None,
    )
    .unwrap();
    let c2 = next(&rx);
    assert_eq!(entries(&c2), vec![pair("mine", "203.0.113.7")]);
    assert_eq!(c2.version, c1.version + 1);

    // A rejected upload changes nothing and says nothing; a removal adds nothing.
    assert!(m.put_user_list("bad", "bad..name\n", None, None).is_err());
    m.remove_entries("mine", &["203.0.113.7".into()]).unwrap();
    assert!(rx.try_recv().is_err());

    // Feed refresh (file:// feed): its entries arrive as added to the feed's list.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    m.add_feed(FeedRequest {
        name: "upstream".into(),
        url: format!("file://{}", upstream.display()),
        interval_secs: Some(3600),
        category: None,
        max_bytes: None,
    })
    .unwrap();
    let st = rt.block_on(m.refresh_feed("upstream")).unwrap();
    assert!(st.active, "{st:?}");
    let c3 = next(&rx);
    assert_eq!(
        entries(&c3),
        vec![
            pair("upstream", "198.51.100.0/24"),
            pair("upstream", "feed-pool.example")
        ]
    );

    // `--blocklist` file edited by hand, then reloaded.
    std::fs::write(&file, "file-pool.example\nnew-file-pool.example\n").unwrap();
    m.reload().unwrap();
    let c4 = next(&rx);
    assert_eq!(
        entries(&c4),
        vec![pair("site-pools", "new-file-pool.example")]
    );
    assert!(c4.version > c3.version && c4.truncated == 0);

    // Without a sink nothing is reported (and nothing is computed).
    m.set_change_sink(None);
    m.add_entries("mine", &["b-pool.example".into()], None)
        .unwrap();
    assert!(rx.try_recv().is_err());
}
