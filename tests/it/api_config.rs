//! `poolwatch serve` configuration through the real binary: file + env + flags precedence,
//! errors that name the key, tokens never printed, and the shipped example config.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use poolwatch::config::{FileConfig, Settings};
use serde_json::Value;

fn poolwatch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolwatch"));
    cmd.arg("serve").args(args);
    // Start from a clean slate: the developer's own POOLWATCH_* must not leak into the test.
    crate::support::proc::without_poolwatch_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn settings(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = poolwatch(args, env);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "poolwatch.toml",
        r#"
listen = "127.0.0.1:7001"
db = "data"
lookback_days = 10
retention_days = 5
resolvers = ["192.0.2.53"]
admin_token = "file-admin-token-0123456789"
[[feeds]]
url = "file:///srv/lists/pools.txt"
interval = "1h"
"#,
    );
    let cfg = cfg.to_str().unwrap();

    // File over defaults; relative paths are relative to the file.
    let v = settings(&["--config", cfg, "--check-config"], &[]);
    assert_eq!(v["listen"], "127.0.0.1:7001");
    assert_eq!(v["db"], dir.path().join("data").to_str().unwrap());
    assert_eq!(
        v["user_lists"],
        dir.path().join("data/lists").to_str().unwrap()
    );
    assert_eq!(v["lookback_days"], 10);
    assert_eq!(v["max_body"], 4194304);
    assert_eq!(v["feeds"][0]["interval"], 3600);
    assert_eq!(v["admin_token"], "<redacted>");

    // Env over file.
    let env = [
        ("POOLWATCH_LISTEN", "127.0.0.1:7002"),
        ("POOLWATCH_LOOKBACK_DAYS", "20"),
        ("POOLWATCH_RESOLVER", "198.51.100.1,198.51.100.2"),
    ];
    let v = settings(&["--config", cfg, "--check-config"], &env);
    assert_eq!(v["listen"], "127.0.0.1:7002");
    assert_eq!(v["lookback_days"], 20);
    assert_eq!(
        v["resolvers"],
        serde_json::json!(["198.51.100.1", "198.51.100.2"])
    );
    assert_eq!(v["retention_days"], 5);

    // Flags over env; the config file itself may come from the environment.
    let env2 = [
        ("POOLWATCH_CONFIG", cfg),
        ("POOLWATCH_LISTEN", "127.0.0.1:7002"),
        ("POOLWATCH_LOOKBACK_DAYS", "20"),
    ];
    let v = settings(
        &[
            "--check-config",
            "--listen",
            "127.0.0.1:7003",
            "--resolver",
            "203.0.113.9",
        ],
        &env2,
    );
    assert_eq!(v["listen"], "127.0.0.1:7003");
    assert_eq!(v["lookback_days"], 20);
    assert_eq!(v["resolvers"], serde_json::json!(["203.0.113.9"]));
}

#[test]
fn errors_name_the_key_and_tokens_stay_secret() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        "listen = \"127.0.0.1:80\"\nlookbak_days = 3\n",
    );
    let out = poolwatch(&["--config", bad.to_str().unwrap(), "--check-config"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lookbak_days"), "{err}");

    let out = poolwatch(&["--check-config"], &[("POOLWATCH_MAX_BODY", "12")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--max-body (or POOLWATCH_MAX_BODY)"), "{err}");

    let out = poolwatch(&["--check-config", "--import", "/nonexistent/x.pcap"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--import") && err.contains("/nonexistent/x.pcap"),
        "{err}"
    );

    let secret = "env-secret-token-value-42424242";
    let out = poolwatch(&["--check-config"], &[("POOLWATCH_ADMIN_TOKEN", secret)]);
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(secret), "token printed");
    let help = poolwatch(&["--help"], &[("POOLWATCH_ADMIN_TOKEN", secret)]);
    assert!(
        !String::from_utf8_lossy(&help.stdout).contains(secret),
        "token in --help"
    );

    // A token file works and is trimmed of its newline.
    let tf = write(dir.path(), "read-token", "file-read-token-abcdefgh\n");
    let v = settings(
        &["--check-config", "--read-token-file", tf.to_str().unwrap()],
        &[],
    );
    assert_eq!(v["read_token"], "<redacted>");
    let short = write(dir.path(), "short-token", "abc\n");
    let out = poolwatch(
        &[
            "--check-config",
            "--read-token-file",
            short.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--read-token-file"));
}

#[test]
fn shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("poolwatch.example.toml");
    let file = FileConfig::load(&path).unwrap();
    let s = Settings::resolve(&Default::default(), file).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.lookback_days, 30);
    // Every documented key in the example's table parses when uncommented.
    let text = std::fs::read_to_string(&path).unwrap();
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.contains(" = ")
                    || rest == "[feeds]"
                    || rest == "[[feeds.list]]"
                    || rest == "[[output]]" =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let full = FileConfig::parse(&uncommented).unwrap();
    assert!(full.feeds.is_some() && full.follow.is_some() && full.sinkholes.is_some());
    assert!(full.api.is_some(), "the [api] table is shown");
    // The example's values are the defaults.
    assert_eq!(s.api, poolwatch::config::ApiSettings::default());
    assert_eq!(full.output.as_ref().map(Vec::len), Some(3));
}
