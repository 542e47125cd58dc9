//! Shutdown: the signals that start it and the order it runs in.
//!
//! One mechanism, [`StopToken`] (the producer port's stop signal, in the style of mini-redis's
//! `Shutdown`): every part of the service that must stop holds a clone of the token of its
//! *phase*, and the phases are stopped in order, each after the previous one has finished:
//!
//! 1. `inputs` — producers stop reading; the follower flushes its parsers and queues its last
//!    offsets. Their threads are joined.
//! 2. the queue closes (every sender dropped), so the pipeline thread drains it, `finish()`es
//!    (held incidents, final flush, last offsets) and ends.
//! 3. `outputs` — alert sinks deliver what they can within `output::SHUTDOWN_DRAIN`.
//! 4. `api` — the API answered until the data was durable; now it closes.
//! 5. `lists` — the list watcher and feed refreshes stop. Then the store is flushed.

use tokio::sync::watch;

use crate::ports::StopToken;

/// The stop token of each shutdown phase (stopped in field order).
#[derive(Clone, Default)]
pub(super) struct Phases {
    pub inputs: StopToken,
    pub outputs: StopToken,
    pub api: StopToken,
    pub lists: StopToken,
}

/// A `watch` receiver that turns `true` when `token` stops (for the output stage, whose
/// delivery tasks take a `watch::Receiver<bool>`).
pub(super) fn watch_of(token: &StopToken) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let token = token.clone();
    tokio::spawn(async move {
        token.stopped().await;
        let _ = tx.send(true);
    });
    rx
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C). A second one ends the process at once
/// (exit 130), for when a drain takes too long.
pub async fn shutdown_signal() {
    let name = wait_signal().await;
    tracing::info!(
        signal = name,
        "shutting down (send it again to exit at once)"
    );
    eprintln!("poolwatch: {name}: shutting down (again to exit at once)");
    tokio::spawn(async {
        let name = wait_signal().await;
        eprintln!("poolwatch: second {name}: exiting now");
        std::process::exit(130);
    });
}

async fn wait_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
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
