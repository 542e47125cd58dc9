//! `poolwatch demo`: the service on a fresh database, fed with the bundled sample capture and
//! resolver log (embedded in the binary, so it works from any directory and after
//! `cargo install`), with a few `curl` lines to try. Reads are open; writes (suppressions, list
//! edits, feeds) take an admin token generated at start and printed with the lines
//! (`tests/it/ops_demo.rs` runs every printed line).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::LogFlags;
use crate::config::Settings;
use crate::service;
use crate::util::Secret;

/// The bundled sample capture (see tests/data/sample/README.md).
pub const SAMPLE_PCAP: &[u8] = include_bytes!("../../tests/data/sample/sample.pcap");
/// The bundled resolver log of the same traffic (dnsmasq `log-queries=extra`).
pub const SAMPLE_LOG: &[u8] = include_bytes!("../../tests/data/sample/sample-dnsmasq.log");
/// The demo's default address (the service's default).
pub const DEMO_LISTEN: &str = crate::config::DEFAULT_LISTEN;

/// Run the service on a fresh database fed with the bundled sample data.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  poolwatch demo\n  poolwatch demo --listen 127.0.0.1:0\n  \
poolwatch demo --keep ./demo-data\n\n\
When the default port 8080 is busy, the demo listens on a free port instead and prints it.\n\
Reads need no token; writes (suppressions, list edits, feeds) need the admin token the demo\n\
generates and prints at start (a new one each run).\n\n\
Exit status: 0 stopped with Ctrl-C, 2 error."
)]
pub struct DemoArgs {
    /// API address [default: 127.0.0.1:8080; a free port when that one is busy].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Keep the sample files and the database in DIR (created if missing) instead of a temporary
    /// directory that is removed on exit.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Allow a non-loopback --listen. Reads are open: anyone who can reach the demo may read
    /// (writes still need the printed admin token).
    #[arg(long)]
    pub allow_remote: bool,
}

pub fn run(args: DemoArgs, log: LogFlags) -> anyhow::Result<ExitCode> {
    super::init_logging(
        log.level.as_deref().unwrap_or(super::DEFAULT_LOG_LEVEL),
        log.json,
    );
    let explicit = args.listen.is_some();
    let listen = match args.listen {
        Some(a) => a,
        None => DEMO_LISTEN.parse().context("default address")?,
    };
    if !listen.ip().is_loopback() && !args.allow_remote {
        anyhow::bail!(
            "the demo has no read token; refusing to listen on non-loopback {listen} \
             (use 127.0.0.1, or add --allow-remote if you really mean it)"
        );
    }
    let token = admin_token()?;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            if d.join("db").exists() {
                anyhow::bail!(
                    "{} already holds a demo database; give an empty directory",
                    d.display()
                );
            }
            WorkDir::Kept(d.clone())
        }
        None => WorkDir::temp()?,
    };
    let pcap = dir.path().join("sample.pcap");
    let log_file = dir.path().join("sample-dnsmasq.log");
    std::fs::write(&pcap, SAMPLE_PCAP).with_context(|| format!("writing {}", pcap.display()))?;
    std::fs::write(&log_file, SAMPLE_LOG)
        .with_context(|| format!("writing {}", log_file.display()))?;

    let settings = Settings {
        listen,
        db: dir.path().join("db"),
        user_lists: dir.path().join("db").join("lists"),
        import: vec![pcap, log_file],
        // Keep everything: the sample's time stamps are in the past.
        retention_days: 0,
        admin_token: Some(Secret::new(token.clone())),
        ..Settings::default()
    };
    let data = dir.path().to_path_buf();
    let kept = args.keep.is_some();
    let hooks = service::Hooks {
        on_listening: Some(Box::new(move |addr| print_intro(addr, &data, kept, &token))),
        listen_fallback: !explicit,
        ..service::Hooks::default()
    };
    let result = super::serve::run_service(settings, hooks);
    drop(dir);
    result
}

/// Bytes of randomness in the generated admin token (hex-encoded: 64 characters).
const TOKEN_BYTES: usize = 32;

/// A fresh admin token from the operating system's random source.
fn admin_token() -> anyhow::Result<String> {
    let mut buf = [0u8; TOKEN_BYTES];
    getrandom::getrandom(&mut buf)
        .map_err(|e| anyhow::anyhow!("generating the demo's admin token: {e}"))?;
    let mut hex = String::with_capacity(TOKEN_BYTES * 2);
    for b in buf {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    Ok(hex)
}

fn print_intro(addr: SocketAddr, data: &Path, kept: bool, token: &str) {
    let api = format!("http://{addr}");
    let where_ = if kept {
        format!("kept in {}", data.display())
    } else {
        format!("in {} (removed on exit)", data.display())
    };
    super::say(
        super::Level::Info,
        &format!(
        "\npoolwatch demo: importing the bundled sample capture and resolver log; data {where_}.
The API is at {api} (reads open; writes need the admin token below); the web UI at {api}/ .
Admin token for this run: {token}
Try:

  TOKEN={token}
  curl -s {api}/api/v1/detections | jq .
  curl -s '{api}/api/v1/detections?stage=stratum&min_risk=80'
  ID=$(curl -s {api}/api/v1/detections | jq -r '.items[0].id'); curl -s {api}/api/v1/detections/$ID | jq .
  curl -s {api}/api/v1/hosts/192.0.2.10 | jq .
  curl -s {api}/api/v1/pools | jq .
  curl -s '{api}/api/v1/check?name=pool.supportxmr.com'
  curl -s '{api}/api/v1/export/pool-ips?at=latest'          # bound at the capture's clock
  curl -s '{api}/api/v1/export/pool-ips?at=latest&format=nft'
  curl -s {api}/api/v1/export/suricata-rules | grep supportxmr.com
  curl -s {api}/metrics | grep poolwatch_detections
  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"pool\":\"minexmr.com\",\"reason\":\"demo: lab host\"}}' {api}/api/v1/suppressions
  curl -sN -H 'Last-Event-ID: 0-0' {api}/api/v1/detections/stream   # replay, then the live feed (SSE)

Expected: 192.0.2.10 and 192.0.2.12 stratum, .16 direct_ip, .15 connection, .14 connection_attempt,
.13 and .17 blocked_lookup, .11 lookup; nothing for the resolvers and benign hosts.
Press Ctrl-C to stop.\n"
        ),
    );
}

/// Where the demo keeps its files.
enum WorkDir {
    Temp(PathBuf),
    Kept(PathBuf),
}

impl WorkDir {
    fn temp() -> anyhow::Result<WorkDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = base.join(format!("poolwatch-demo-{}-{nanos:08x}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        Ok(WorkDir::Temp(p))
    }

    fn path(&self) -> &Path {
        match self {
            WorkDir::Temp(p) | WorkDir::Kept(p) => p,
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let WorkDir::Temp(p) = self {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}
