//! Phase two: `Settings::resolve` merges flags/env over the file over the defaults and
//! checks every value.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

impl Settings {
    /// Loads the file named by `--config` (if any) and merges it with the flags.
    pub fn load(cli: &CliOptions) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        Settings::resolve(cli, file)
    }

    /// Merges flags/env (already combined by clap) over the file over the defaults, and
    /// validates every value.
    pub fn resolve(cli: &CliOptions, file: FileConfig) -> Result<Settings, ConfigError> {
        let listen = match pick(
            cli.listen.clone(),
            file.listen,
            ("listen", "POOLWATCH_LISTEN", "listen"),
        ) {
            Some((s, o)) => parse_listen(&s).map_err(|m| o.err(m))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };

        let db = match pick(cli.db.clone(), file.db, ("db", "POOLWATCH_DB", "db")) {
            Some((p, o)) => nonempty_path(p, o)?,
            None => PathBuf::from(DEFAULT_DB),
        };

        let (interfaces, o) = pick_list(
            cli.interfaces.clone(),
            file.interfaces,
            ("interface", "POOLWATCH_INTERFACE", "interfaces"),
        );
        for i in &interfaces {
            validate_interface(i).map_err(|m| o.err(m))?;
        }

        let bpf = match pick(cli.bpf.clone(), file.bpf, ("bpf", "POOLWATCH_BPF", "bpf")) {
            Some((b, o)) => {
                let b = b.trim().to_string();
                if b.is_empty() || b.len() > MAX_BPF_LEN {
                    return Err(o.err(format!(
                        "a BPF filter must be 1 to {MAX_BPF_LEN} characters"
                    )));
                }
                Some(b)
            }
            None => None,
        };

        let (follow, o) = pick_list(
            cli.follow.clone(),
            file.follow,
            ("follow", "POOLWATCH_FOLLOW", "follow"),
        );
        for f in &follow {
            if f.is_empty() {
                return Err(o.err("empty path"));
            }
            glob::Pattern::new(f).map_err(|e| o.err(format!("bad glob {f:?}: {e}")))?;
        }

        let (import, o) = pick_list(
            cli.import.clone(),
            file.import,
            ("import", "POOLWATCH_IMPORT", "import"),
        );
        for p in &import {
            if !p.is_file() {
                return Err(o.err(format!("{} is not a readable file", p.display())));
            }
        }

        let (dnstap, o) = pick_list(
            cli.dnstap.clone(),
            file.dnstap,
            ("dnstap", "POOLWATCH_DNSTAP", "dnstap"),
        );
        for d in &dnstap {
            validate_dnstap(d).map_err(|m| o.err(m))?;
        }

        let (blocklists, o) = pick_list(
            cli.blocklists.clone(),
            file.blocklists,
            ("blocklist", "POOLWATCH_BLOCKLIST", "blocklists"),
        );
        for p in &blocklists {
            if !p.exists() {
                return Err(o.err(format!("{} does not exist", p.display())));
            }
        }

        let user_lists = match pick(
            cli.user_lists.clone(),
            file.user_lists,
            ("user-lists", "POOLWATCH_USER_LISTS", "user_lists"),
        ) {
            Some((p, o)) => nonempty_path(p, o)?,
            None => db.join(DEFAULT_USER_LISTS_SUBDIR),
        };

        let (file_feeds, feed_table) = file.feeds.map(FeedsSection::into_parts).unwrap_or_default();
        let feed_allow_private =
            cli.feeds_allow_private || feed_table.allow_private.unwrap_or(false);
        let (feed_file_roots, o) = pick_list(
            cli.feeds_file_roots.clone(),
            feed_table.file_roots,
            (
                "feeds-file-root",
                "POOLWATCH_FEEDS_FILE_ROOT",
                "feeds.file_roots",
            ),
        );
        if feed_file_roots.len() > crate::matcher::MAX_FEED_POLICY_ENTRIES {
            return Err(o.err(format!(
                "at most {} directories",
                crate::matcher::MAX_FEED_POLICY_ENTRIES
            )));
        }
        for p in &feed_file_roots {
            if !p.is_absolute() || !p.is_dir() {
                return Err(o.err(format!(
                    "{} is not an existing absolute directory",
                    p.display()
                )));
            }
        }
        let (feed_allow_hosts, o) = pick_list(
            cli.feeds_allow_hosts.clone(),
            feed_table.allow_hosts,
            (
                "feeds-allow-host",
                "POOLWATCH_FEEDS_ALLOW_HOST",
                "feeds.allow_hosts",
            ),
        );
        if feed_allow_hosts.len() > crate::matcher::MAX_FEED_POLICY_ENTRIES
            || feed_allow_hosts.iter().any(|h| {
                h.is_empty() || h.len() > 255 || h.contains(['/', ' ', ':']) && !h.starts_with('[')
            })
        {
            return Err(o.err(format!(
                "at most {} host names or literal addresses (IPv6 in brackets), no ports",
                crate::matcher::MAX_FEED_POLICY_ENTRIES
            )));
        }
        let mut feeds = Vec::new();
        if !cli.feeds.is_empty() {
            let o = Origin::Cli {
                flag: "feed",
                env: "POOLWATCH_FEED",
            };
            for spec in &cli.feeds {
                let (url, interval) = match spec.split_once(',') {
                    Some((u, i)) => (u, Some(DurationSpec::Text(i.to_string()))),
                    None => (spec.as_str(), None),
                };
                let fc = FeedConfig {
                    url: url.to_string(),
                    interval,
                    ..FeedConfig::default()
                };
                feeds.push(validate_feed(&fc).map_err(|m| o.err(m))?);
            }
        } else {
            let o = Origin::File { key: "feeds" };
            for fc in file_feeds {
                feeds.push(validate_feed(&fc).map_err(|m| o.err(m))?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for f in &feeds {
            if !seen.insert(f.name.clone()) {
                return Err(ConfigError::Invalid {
                    key: "feeds".into(),
                    message: format!("two feeds share the list name {:?}", f.name),
                });
            }
        }

        let admin_token = token(
            cli.admin_token.clone(),
            cli.admin_token_file.clone(),
            file.admin_token,
            file.admin_token_file,
            ("admin-token", "POOLWATCH_ADMIN_TOKEN", "admin_token"),
        )?;
        let read_token = token(
            cli.read_token.clone(),
            cli.read_token_file.clone(),
            file.read_token,
            file.read_token_file,
            ("read-token", "POOLWATCH_READ_TOKEN", "read_token"),
        )?;
        if let (Some(a), Some(r)) = (&admin_token, &read_token) {
            if a == r {
                return Err(ConfigError::Invalid {
                    key: "read-token".into(),
                    message: "the read token must differ from the admin token".into(),
                });
            }
        }

        let (resolvers, o) = pick_list(
            cli.resolvers.clone(),
            file.resolvers,
            ("resolver", "POOLWATCH_RESOLVER", "resolvers"),
        );
        let resolvers = parse_ips(&resolvers).map_err(|m| o.err(m))?;
        let (sinkholes, o) = pick_list(
            cli.sinkholes.clone(),
            file.sinkholes,
            ("sinkhole", "POOLWATCH_SINKHOLE", "sinkholes"),
        );
        let sinkholes = parse_ips(&sinkholes).map_err(|m| o.err(m))?;

        let grace = match pick(
            cli.grace.clone().map(DurationSpec::Text),
            file.grace,
            ("grace", "POOLWATCH_GRACE", "grace"),
        ) {
            Some((d, o)) => {
                let secs = duration_secs(&d).map_err(|m| o.err(m))?;
                if secs > MAX_GRACE_SECS {
                    return Err(o.err(format!("at most {MAX_GRACE_SECS} seconds (30 days)")));
                }
                Some(Duration::from_secs(secs))
            }
            None => None,
        };

        let lookback_days = match pick(
            cli.lookback_days,
            file.lookback_days,
            ("lookback-days", "POOLWATCH_LOOKBACK_DAYS", "lookback_days"),
        ) {
            Some((d, o)) if d == 0 || d > MAX_DAYS => {
                return Err(o.err(format!("must be 1 to {MAX_DAYS} days")));
            }
            Some((d, _)) => d,
            None => DEFAULT_LOOKBACK_DAYS,
        };
        let retention_days = match pick(
            cli.retention_days,
            file.retention_days,
            (
                "retention-days",
                "POOLWATCH_RETENTION_DAYS",
                "retention_days",
            ),
        ) {
            Some((d, o)) if d > MAX_DAYS => {
                return Err(o.err(format!("must be 0 (keep all) to {MAX_DAYS} days")));
            }
            Some((d, _)) => d,
            None => DEFAULT_RETENTION_DAYS,
        };

        let max_body = match pick(
            cli.max_body,
            file.max_body,
            ("max-body", "POOLWATCH_MAX_BODY", "max_body"),
        ) {
            Some((b, o)) => {
                if b < MIN_MAX_BODY as u64 || b > MAX_MAX_BODY as u64 {
                    return Err(o.err(format!("must be {MIN_MAX_BODY} to {MAX_MAX_BODY} bytes")));
                }
                usize::try_from(b).map_err(|_| o.err("too large for this platform"))?
            }
            None => DEFAULT_MAX_BODY,
        };

        let request_timeout = match pick(
            cli.request_timeout.clone().map(DurationSpec::Text),
            file.request_timeout,
            (
                "request-timeout",
                "POOLWATCH_REQUEST_TIMEOUT",
                "request_timeout",
            ),
        ) {
            Some((d, o)) => {
                let secs = duration_secs(&d).map_err(|m| o.err(m))?;
                if secs == 0 || secs > MAX_REQUEST_TIMEOUT_SECS {
                    return Err(o.err(format!("must be 1 to {MAX_REQUEST_TIMEOUT_SECS} seconds")));
                }
                Duration::from_secs(secs)
            }
            None => Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
        };

        let api = resolve_api(cli, file.api)?;

        let log_level = match file.log_level {
            Some(l) => {
                if tracing_subscriber::EnvFilter::try_new(&l).is_err() {
                    return Err(Origin::File { key: "log_level" }
                        .err(format!("{l:?} is not a log filter (try `info`)")));
                }
                Some(l)
            }
            None => None,
        };

        let outputs = if !cli.outputs.is_empty() {
            let o = Origin::Cli {
                flag: "output",
                env: "POOLWATCH_OUTPUT",
            };
            let mut cfgs = Vec::with_capacity(cli.outputs.len());
            for spec in &cli.outputs {
                cfgs.push(crate::output::config::parse_flag(spec).map_err(|m| o.err(m))?);
            }
            crate::output::config::validate_all(&cfgs).map_err(|(i, m)| {
                o.err(format!(
                    "{:?}: {m}",
                    cli.outputs.get(i).map_or("", |s| s.as_str())
                ))
            })?
        } else {
            let cfgs = file.output.unwrap_or_default();
            crate::output::config::validate_all(&cfgs).map_err(|(i, m)| ConfigError::Invalid {
                key: format!("[[output]] #{} in the config file", i + 1),
                message: m,
            })?
        };

        Ok(Settings {
            history: resolve_history(file.history.clone())?,
            cluster: resolve_cluster(cli, file.cluster.clone())?,
            outputs,
            listen,
            db,
            interfaces,
            bpf,
            follow,
            import,
            dnstap,
            blocklists,
            user_lists,
            feeds,
            feed_allow_private,
            feed_file_roots,
            feed_allow_hosts,
            admin_token,
            read_token,
            resolvers,
            sinkholes,
            grace,
            lookback_days,
            retention_days,
            max_body,
            request_timeout,
            api,
            log_json: file.log_json.unwrap_or(false),
            log_level,
        })
    }
}

/// `[history]` validated: `None` when disabled.
fn resolve_history(
    file: Option<super::file::HistoryFileConfig>,
) -> Result<Option<crate::hunt::HistoryConfig>, ConfigError> {
    let f = file.unwrap_or_default();
    if f.enabled == Some(false) {
        return Ok(None);
    }
    let d = crate::hunt::HistoryConfig::default();
    let retention_days = f.retention_days.unwrap_or(d.retention_days);
    if retention_days == 0 || retention_days > 3_650 {
        return Err(ConfigError::Invalid {
            key: "history.retention_days".into(),
            message: format!("{retention_days} is not between 1 and 3650 days"),
        });
    }
    let max_bytes = f.max_bytes.unwrap_or(d.max_bytes);
    if max_bytes < 1 << 20 {
        return Err(ConfigError::Invalid {
            key: "history.max_bytes".into(),
            message: format!("{max_bytes} is below the 1 MiB minimum"),
        });
    }
    Ok(Some(crate::hunt::HistoryConfig {
        retention_days,
        max_bytes,
    }))
}
