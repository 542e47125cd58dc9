//! `poolwatch serve`: flags (all also `POOLWATCH_*` env vars and config-file keys) and the runner
//! (`crate::service`).

use std::process::ExitCode;

use anyhow::Context as _;

use super::LogFlags;
use crate::cluster;
use crate::config::{CliOptions, Settings};
use crate::service;

/// Run the detector as a service: capture, follow logs, correlate, store, serve the REST API.
///
/// Precedence: flags > environment (POOLWATCH_*) > config file > defaults. Every flag that takes
/// a list may be repeated; a list given on the command line replaces the file's list.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  poolwatch serve --config /etc/poolwatch/poolwatch.toml\n  \
poolwatch serve --interface eth0 --db /var/lib/poolwatch --listen 127.0.0.1:8080\n  \
poolwatch serve --follow '/var/log/named/query.log*' --output file:/var/log/poolwatch/alerts.json\n  \
poolwatch serve --config poolwatch.toml --check-config\n\n\
Note: serve's --output adds an alert sink (TYPE:TARGET[,key=value]; docs/outputs.md), not a\n\
print format.\n\
SIGTERM or Ctrl-C stops it cleanly (inputs stopped, queue drained, database flushed); a second\n\
signal exits at once. Under systemd (dist/poolwatch.service) it reports READY once the API\n\
listens and the lists are loaded, and sends WATCHDOG keep-alives from the pipeline thread.\n\n\
Exit status: 0 stopped cleanly (or --check-config: valid), 2 error (bad configuration, database\n\
unusable, address in use, an input that cannot start; a database this start created is removed).\n\
Documentation: poolwatch.example.toml (every key), docs/service.md, docs/api.md (REST API)."
)]
pub struct ServeArgs {
    #[command(flatten)]
    pub options: Box<CliOptions>,
    /// Validate the configuration, print the effective settings (tokens redacted) and exit.
    #[arg(long)]
    pub check_config: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Scale-out on NATS JetStream (docs/cluster.md). Without `--cluster`: the single box.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Run as one node of a cluster on this NATS server (nats://HOST:PORT); needs --role.
    #[arg(long, value_name = "URL", env = "POOLWATCH_CLUSTER", requires = "role")]
    pub cluster: Option<String>,
    /// What this node does: sensor (inputs → NATS), correlator (partitions → detections) or
    /// api (the fleet's detections over REST/SSE).
    #[arg(long, value_enum, env = "POOLWATCH_ROLE", requires = "cluster")]
    pub role: Option<cluster::Role>,
    /// Unique node name (leases, durable consumers, follower offsets) [default: HOST-PID].
    #[arg(long, value_name = "NAME", env = "POOLWATCH_NODE")]
    pub node: Option<String>,
    /// Partitions of the observation stream; the same on every node.
    #[arg(long, value_name = "N", default_value_t = cluster::DEFAULT_PARTITIONS)]
    pub partitions: u16,
    /// Partition lease TTL in seconds (takeover after a correlator dies within TTL + TTL/3).
    #[arg(long, value_name = "SECS", default_value_t = cluster::DEFAULT_LEASE_TTL.as_secs())]
    pub lease_ttl: u64,
    /// Observations a sensor buffers while NATS is unreachable (then live inputs drop, counted).
    #[arg(long, value_name = "N", default_value_t = cluster::DEFAULT_PUBLISH_BUFFER)]
    pub publish_buffer: usize,
}

/// Log filter of the service when neither the flag nor the config file sets one.
pub const DEFAULT_SERVICE_LOG_LEVEL: &str = "info";

pub fn run(args: ServeArgs, log: LogFlags) -> anyhow::Result<ExitCode> {
    let settings = match Settings::load(&args.options) {
        Ok(s) => s,
        Err(e) => {
            super::init_logging(
                log.level.as_deref().unwrap_or(super::DEFAULT_LOG_LEVEL),
                log.json,
            );
            return Err(anyhow::Error::new(e).context("configuration"));
        }
    };
    if args.check_config {
        super::init_logging(
            log.level.as_deref().unwrap_or(super::DEFAULT_LOG_LEVEL),
            log.json,
        );
        println!("{}", serde_json::to_string_pretty(&settings)?);
        return Ok(ExitCode::SUCCESS);
    }
    init_service_logging(&log, &settings);
    if let (Some(url), Some(role)) = (args.cluster.cluster.clone(), args.cluster.role) {
        return run_cluster(cluster_options(&settings, &args.cluster, url, role));
    }
    let options = args.options.clone();
    let hooks = service::Hooks {
        reload: Some(std::sync::Arc::new(move || {
            Settings::load(&options).map_err(|e| super::error_line(&anyhow::Error::new(e)))
        })),
        ..service::Hooks::default()
    };
    run_service(settings, hooks)
}

/// A cluster node's options from the validated settings and the cluster flags.
fn cluster_options(
    s: &Settings,
    a: &ClusterArgs,
    url: String,
    role: cluster::Role,
) -> cluster::ClusterOptions {
    let d = crate::correlate::EngineConfig::default();
    let engine = crate::correlate::EngineConfig {
        binding_grace_secs: s.grace.map_or(d.binding_grace_secs, |g| {
            i64::try_from(g.as_secs()).unwrap_or(i64::MAX)
        }),
        lookback_secs: i64::from(s.lookback_days).saturating_mul(86_400),
        resolvers: s.resolvers.clone(),
        sinkholes: s.sinkholes.clone(),
        ..d
    };
    cluster::ClusterOptions {
        url,
        role,
        node: a.node.clone().unwrap_or_else(cluster::default_node_name),
        partitions: a.partitions,
        lease_ttl: std::time::Duration::from_secs(a.lease_ttl),
        publish_buffer: a.publish_buffer,
        inputs: cluster::SensorInputs {
            interfaces: s.interfaces.clone(),
            bpf: s.bpf.clone(),
            follow: s.follow.clone(),
            dnstap: s.dnstap.clone(),
            import: s.import.clone(),
        },
        db: s.db.clone(),
        listen: s.listen,
        api: crate::api::ApiOptions::from_settings(s),
        engine,
        lists: crate::matcher::ListManagerConfig::from_settings(s),
        streams: s.cluster,
    }
}

fn run_cluster(opts: cluster::ClusterOptions) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("poolwatch-rt")
        .build()
        .context("starting the async runtime")?;
    let shutdown = {
        let _in_runtime = rt.enter();
        shutdown_signal()
    };
    rt.block_on(cluster::run(opts, shutdown))?;
    rt.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

/// Flag/env beat the config file for the log filter and JSON switch.
pub(crate) fn init_service_logging(log: &LogFlags, settings: &Settings) {
    let level = log
        .level
        .clone()
        .or_else(|| settings.log_level.clone())
        .unwrap_or_else(|| DEFAULT_SERVICE_LOG_LEVEL.to_string());
    super::init_logging(&level, log.json || settings.log_json);
}

/// Builds the runtime and runs the service until SIGTERM/SIGINT. A start-up that fails before
/// the service is ready removes the database directory it created (nothing half-made is left).
pub(crate) fn run_service(
    settings: Settings,
    mut hooks: service::Hooks,
) -> anyhow::Result<ExitCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("poolwatch-rt")
        .build()
        .context("starting the async runtime")?;
    // From here on SIGHUP never kills the process (its default action): one that arrives
    // before the service is ready is ignored; from READY on `service::reload` handles it.
    {
        let _rt = rt.enter();
        if let Err(e) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tracing::warn!(error = %e, "cannot handle SIGHUP");
        }
    }
    let fresh_db = (!settings.db.exists()).then(|| settings.db.clone());
    let started = Arc::new(AtomicBool::new(false));
    let inner = hooks.on_ready.take();
    let flag = started.clone();
    hooks.on_ready = Some(Box::new(move || {
        flag.store(true, Ordering::SeqCst);
        if let Some(f) = inner {
            f();
        }
    }));
    hooks.json_stderr = super::log_json();
    let shutdown = {
        let _in_runtime = rt.enter();
        shutdown_signal()
    };
    let result = rt.block_on(service::run(settings, shutdown, hooks));
    if let Err(e) = result {
        if let Some(db) = fresh_db.filter(|_| !started.load(Ordering::SeqCst)) {
            rt.shutdown_timeout(std::time::Duration::from_secs(5));
            if std::fs::remove_dir_all(&db).is_ok() {
                tracing::info!(db = %db.display(), "start-up failed: removed the new database");
            }
        }
        return Err(e.into());
    }
    // Everything that matters is joined and flushed by now; idle runtime threads (and the
    // second-signal watcher) must not hold up the exit.
    rt.shutdown_background();
    Ok(ExitCode::SUCCESS)
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C); a second one ends the process at once
/// (exit 130), for when a drain takes too long. Messages go through `say` (JSON with
/// `--log-json`). The handlers are installed when this is called (inside the runtime), not
/// when the future is first polled: the service polls it only once it is up, and a SIGTERM in
/// between would otherwise end the process with the default action, undrained.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    let streams = signal_streams();
    async move {
        let name = wait_on(streams).await;
        tracing::info!(signal = name, "shutting down");
        super::say(
            super::Level::Info,
            &format!("poolwatch: {name}: shutting down (again to exit at once)"),
        );
        tokio::spawn(async {
            let name = wait_on(signal_streams()).await;
            super::say(
                super::Level::Info,
                &format!("poolwatch: second {name}: exiting now"),
            );
            std::process::exit(130);
        });
    }
}

type SignalStreams = (
    std::io::Result<tokio::signal::unix::Signal>,
    std::io::Result<tokio::signal::unix::Signal>,
);

fn signal_streams() -> SignalStreams {
    use tokio::signal::unix::{signal, SignalKind};
    (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    )
}

async fn wait_on(streams: SignalStreams) -> &'static str {
    match streams {
        (Ok(mut t), Ok(mut i)) => tokio::select! {
            _ = t.recv() => "SIGTERM",
            _ = i.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
