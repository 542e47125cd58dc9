//! SIGHUP: re-read the configuration and apply what can change while running.
//!
//! Applied live: the log filter (`log_level`) and the pool lists (every `--blocklist` file and
//! directory is re-read and recompiled; the working set is kept when the new one fails). Every
//! other setting that differs from the running one is named in one log line as needing a
//! restart (`listen`, `db`, inputs, feeds, outputs, thresholds, tokens, …), so an operator
//! sees what a reload did not do. A configuration that no longer validates changes nothing.
//! systemd hears `RELOADING=1` … `READY=1` around it (`ExecReload=kill -HUP $MAINPID`).

use std::sync::{Arc, OnceLock};

use crate::config::Settings;
use crate::matcher::ListManager;

use super::notify;

/// Re-reads the configuration as at start-up (flags > env > file > defaults); given by the
/// command that started the service.
pub type LoadSettings = Arc<dyn Fn() -> Result<Settings, String> + Send + Sync>;

/// Swaps the log filter (set up by whoever installed the subscriber: `cli`).
pub type LogReloader = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static LOG_RELOADER: OnceLock<LogReloader> = OnceLock::new();

/// Registers how to change the log filter at run time (first registration wins).
pub fn set_log_reloader(f: LogReloader) {
    let _ = LOG_RELOADER.set(f);
}

/// What one reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Applied live (`log_level`, `lists`).
    pub applied: Vec<String>,
    /// Changed in the file but only taken at the next start.
    pub restart_needed: Vec<String>,
}

/// Top-level settings keys whose values differ (tokens compared directly: their JSON is
/// redacted).
pub fn changed_keys(old: &Settings, new: &Settings) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["(settings)".into()];
    };
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(k.as_str())).cloned())
        .collect();
    if old.admin_token != new.admin_token && !keys.iter().any(|k| k == "admin_token") {
        keys.push("admin_token".into());
    }
    if old.read_token != new.read_token && !keys.iter().any(|k| k == "read_token") {
        keys.push("read_token".into());
    }
    keys.sort();
    keys
}

/// Applies `new` over the running `current`; returns what changed and how.
pub fn apply(current: &Settings, new: &Settings, manager: &ListManager) -> ReloadOutcome {
    let mut out = ReloadOutcome::default();
    for key in changed_keys(current, new) {
        match key.as_str() {
            "log_level" => {
                let filter = new.log_level.as_deref().unwrap_or("info");
                match LOG_RELOADER.get().map(|f| f(filter)) {
                    Some(Ok(())) => out.applied.push(key),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "reload: log_level not changed");
                    }
                    None => out.restart_needed.push(key),
                }
            }
            _ => out.restart_needed.push(key),
        }
    }
    // The list files are re-read whether or not the settings changed: editing a list and
    // sending SIGHUP is the usual way to apply it at once.
    match manager.reload() {
        Ok(report) => {
            tracing::info!(entries = report.entries, "reload: pool lists re-read");
            out.applied.push("lists".into());
        }
        Err(e) => tracing::error!(error = %e, "reload: pool lists kept (the new set failed)"),
    }
    out
}

/// Aborts the SIGHUP task when the service returns.
pub struct ReloadTask(Option<tokio::task::JoinHandle<()>>);

impl Drop for ReloadTask {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// The service's hook once it is ready: the embedder's `on_ready`, systemd `READY=1`, and the
/// SIGHUP handler (until the returned guard drops).
pub fn on_ready(
    hooks: &mut super::Hooks,
    settings: &Settings,
    manager: &Arc<ListManager>,
) -> ReloadTask {
    if let Some(f) = hooks.on_ready.take() {
        f();
    }
    notify::ready("running");
    ReloadTask(spawn(
        hooks.reload.take(),
        settings.clone(),
        manager.clone(),
    ))
}

/// Handles SIGHUP until the runtime stops: each signal re-reads the configuration through
/// `load` and applies it. Without `load` (the demo) a SIGHUP re-reads the lists only.
pub fn spawn(
    load: Option<LoadSettings>,
    current: Settings,
    manager: Arc<ListManager>,
) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP reload unavailable");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        let mut current = current;
        while hup.recv().await.is_some() {
            notify::notify("RELOADING=1");
            tracing::info!("SIGHUP: reloading the configuration");
            let load = load.clone();
            let loaded = tokio::task::spawn_blocking(move || load.map(|f| f())).await;
            let new = match loaded {
                Ok(Some(Ok(s))) => s,
                Ok(None) => current.clone(),
                Ok(Some(Err(e))) => {
                    tracing::error!(error = %e, "reload: configuration invalid; nothing changed");
                    notify::ready("running (last reload failed)");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reload: failed");
                    notify::ready("running (last reload failed)");
                    continue;
                }
            };
            let m = manager.clone();
            let (cur, nw) = (current.clone(), new.clone());
            let outcome = tokio::task::spawn_blocking(move || apply(&cur, &nw, &m))
                .await
                .unwrap_or_default();
            if !outcome.restart_needed.is_empty() {
                tracing::warn!(
                    settings = %outcome.restart_needed.join(", "),
                    "reload: changed settings that cannot change live; restart to apply them"
                );
            }
            tracing::info!(applied = %outcome.applied.join(", "), "reload finished");
            // What was applied is now the running state; the rest keeps its old value.
            if outcome.applied.iter().any(|k| k == "log_level") {
                current.log_level = new.log_level.clone();
            }
            notify::ready("running");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_names_what_differs() {
        let a = Settings::default();
        let mut b = a.clone();
        assert!(changed_keys(&a, &b).is_empty());
        b.listen = "127.0.0.1:9".parse().unwrap();
        b.log_level = Some("debug".into());
        b.retention_days = a.retention_days + 1;
        assert_eq!(
            changed_keys(&a, &b),
            vec!["listen", "log_level", "retention_days"]
        );
    }
}
