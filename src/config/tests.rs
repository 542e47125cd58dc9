//! Unit tests of the configuration (file, flags, merge, errors).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn cli() -> CliOptions {
    CliOptions::default()
}

#[test]
fn defaults() {
    let s = Settings::resolve(&cli(), FileConfig::default()).unwrap();
    assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(s.db, PathBuf::from(DEFAULT_DB));
    assert_eq!(s.user_lists, Path::new(DEFAULT_DB).join("lists"));
    assert_eq!(s.lookback_days, 30);
    assert_eq!(s.max_body, DEFAULT_MAX_BODY);
    assert!(s.admin_token.is_none());
    assert_eq!(Settings::default(), s);
}

#[test]
fn flags_beat_file() {
    let file = FileConfig::parse(
        r#"
listen = "0.0.0.0:9000"
db = "/var/lib/poolwatch"
resolvers = ["192.0.2.53"]
grace = "2h"
lookback_days = 7
[[feeds]]
url = "https://example.org/lists/pools.txt"
interval = 3600
"#,
    )
    .unwrap();
    let mut c = cli();
    c.listen = Some("127.0.0.1:9999".into());
    c.resolvers = vec!["198.51.100.53".into(), "2001:db8::53".into()];
    let s = Settings::resolve(&c, file).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(s.db, PathBuf::from("/var/lib/poolwatch"));
    assert_eq!(s.user_lists, PathBuf::from("/var/lib/poolwatch/lists"));
    assert_eq!(s.resolvers.len(), 2);
    assert_eq!(s.grace, Some(Duration::from_secs(7200)));
    assert_eq!(s.lookback_days, 7);
    assert_eq!(s.feeds.len(), 1);
    assert_eq!(s.feeds[0].name, "feed-example.org-pools");
    assert_eq!(s.feeds[0].interval, Duration::from_secs(3600));
}

#[test]
fn errors_name_the_key() {
    let file = FileConfig::parse("listen = \"nope\"\n").unwrap();
    let e = Settings::resolve(&cli(), file).unwrap_err().to_string();
    assert!(e.contains("`listen` in the config file"), "{e}");

    let mut c = cli();
    c.max_body = Some(5);
    let e = Settings::resolve(&c, FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--max-body"), "{e}");

    let e = FileConfig::load(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than"), "{e}");

    let e = FileConfig::parse("lisen = \"127.0.0.1:1\"\n").unwrap_err();
    assert!(e.contains("lisen"), "{e}");

    let mut c = cli();
    c.feeds = vec!["ftp://example.org/x,1h".into()];
    let e = Settings::resolve(&c, FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--feed"), "{e}");

    let mut c = cli();
    c.feeds = vec!["https://example.org/x,5s".into()];
    assert!(Settings::resolve(&c, FileConfig::default()).is_err());
}

#[test]
fn api_and_feeds_tables() {
    let dir = std::env::temp_dir();
    let text = format!(
        "[api]\nwrite_timeout = \"5s\"\nmax_connections_per_client = 0\nmax_uri_len = 4096\n\
         [feeds]\nallow_private = true\nfile_roots = [{:?}]\nallow_hosts = [\"lists.lan\"]\n\
         [[feeds.list]]\nurl = \"https://example.org/pools.txt\"\n",
        dir.display().to_string()
    );
    let f = FileConfig::parse(&text).unwrap();
    let s = Settings::resolve(&cli(), f).unwrap();
    assert_eq!(s.api.write_timeout, Duration::from_secs(5));
    assert_eq!(s.api.max_connections_per_client, 0);
    assert_eq!(s.api.max_uri_len, 4096);
    assert_eq!(s.api.idle_timeout, crate::api::DEFAULT_IDLE_TIMEOUT);
    assert!(s.feed_allow_private);
    assert_eq!(s.feed_file_roots, vec![dir.clone()]);
    assert_eq!(s.feed_allow_hosts, vec!["lists.lan".to_string()]);
    assert_eq!(s.feeds.len(), 1);
    // The array form still works and keeps the strict defaults.
    let f = FileConfig::parse("[[feeds]]\nurl = \"https://example.org/a.txt\"\n").unwrap();
    let s = Settings::resolve(&cli(), f).unwrap();
    assert_eq!(s.feeds.len(), 1);
    assert!(!s.feed_allow_private && s.feed_file_roots.is_empty());
    for (bad, key) in [
        ("[api]\nwrite_timeout = 0\n", "api.write_timeout"),
        ("[api]\nmax_uri_len = 10\n", "api.max_uri_len"),
        ("[api]\nmax_connections = 0\n", "api.max_connections"),
        ("[feeds]\nfile_roots = [\"relative\"]\n", "feeds.file_roots"),
    ] {
        let f = FileConfig::parse(bad).unwrap();
        let e = Settings::resolve(&cli(), f).unwrap_err().to_string();
        assert!(e.contains(key), "{bad}: {e}");
    }
    assert!(FileConfig::parse("[api]\nwrite_timeot = 5\n").is_err());
    assert!(FileConfig::parse("[feeds]\nallow_privat = true\n").is_err());
}

#[test]
fn tokens_validated_and_redacted() {
    let mut c = cli();
    c.admin_token = Some(Secret::new("short"));
    assert!(Settings::resolve(&c, FileConfig::default()).is_err());
    c.admin_token = Some(Secret::new("a-very-long-admin-token-123"));
    c.read_token = Some(Secret::new("a-very-long-admin-token-123"));
    assert!(Settings::resolve(&c, FileConfig::default()).is_err());
    c.read_token = Some(Secret::new("another-long-read-token-456"));
    let s = Settings::resolve(&c, FileConfig::default()).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("a-very-long-admin-token"), "{dbg}");
    let json = serde_json::to_string(&s).unwrap();
    assert!(!json.contains("another-long-read-token"), "{json}");
    assert!(json.contains("<redacted>"));
}

#[test]
fn dnstap_addresses() {
    let mut c = cli();
    c.dnstap = vec![
        "unix:/run/poolwatch/dnstap.sock".into(),
        "tcp:127.0.0.1:6000".into(),
    ];
    let s = Settings::resolve(&c, FileConfig::default()).unwrap();
    assert_eq!(s.dnstap.len(), 2);
    for bad in [
        "",
        "unix:",
        "tcp:localhost",
        "/run/x.sock",
        &format!("unix:/{}", "a".repeat(200)),
    ] {
        c.dnstap = vec![bad.to_string()];
        let e = Settings::resolve(&c, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--dnstap"), "{bad:?}: {e}");
    }
    let file = FileConfig::parse("dnstap = [\"tcp:[::1]:6000\"]\n").unwrap();
    let s = Settings::resolve(&cli(), file).unwrap();
    assert_eq!(s.dnstap, vec!["tcp:[::1]:6000".to_string()]);
}

#[test]
fn cluster_stream_sizes() {
    use crate::cluster::nats::{StreamSizes, MIN_STREAM_MAX_BYTES};
    // Defaults: today's sizes.
    let s = Settings::resolve(&cli(), FileConfig::default()).unwrap();
    assert_eq!(s.cluster, StreamSizes::default());
    assert_eq!(s.cluster.obs_max_bytes, 8 << 30);
    assert_eq!(s.cluster.detections_max_bytes, 4 << 30);

    let file = |t: &str| FileConfig::parse(t).unwrap();
    let s = Settings::resolve(
        &cli(),
        file("[cluster]\nobs_max_bytes = 67108864\ndetections_max_bytes = 134217728\n"),
    )
    .unwrap();
    assert_eq!(s.cluster.obs_max_bytes, MIN_STREAM_MAX_BYTES);
    assert_eq!(s.cluster.detections_max_bytes, 2 * MIN_STREAM_MAX_BYTES);

    // The flag beats the file; the other key keeps its default.
    let mut c = cli();
    c.obs_max_bytes = Some(1 << 30);
    let s = Settings::resolve(&c, file("[cluster]\nobs_max_bytes = 67108864\n")).unwrap();
    assert_eq!(s.cluster.obs_max_bytes, 1 << 30);
    assert_eq!(s.cluster.detections_max_bytes, 4 << 30);

    // Below the minimum: refused, naming the key and the minimum.
    let e = Settings::resolve(&cli(), file("[cluster]\ndetections_max_bytes = 67108863\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`cluster.detections_max_bytes` in the config file"),
        "{e}"
    );
    assert!(e.contains("67108864 (64 MiB)"), "{e}");
    let mut c = cli();
    c.obs_max_bytes = Some(0);
    let e = Settings::resolve(&c, FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--obs-max-bytes (or POOLWATCH_OBS_MAX_BYTES)"),
        "{e}"
    );
    // Beyond JetStream's signed 64-bit sizes.
    let mut c = cli();
    c.detections_max_bytes = Some(u64::MAX);
    let e = Settings::resolve(&c, FileConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than JetStream accepts"), "{e}");
    // A typo is an error, a negative size a parse error.
    assert!(FileConfig::parse("[cluster]\nobs_max_byte = 67108864\n").is_err());
    assert!(FileConfig::parse("[cluster]\nobs_max_bytes = -1\n").is_err());
}
