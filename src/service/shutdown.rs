//! Shutdown: the order it runs in (the signals that start it are the binary's, `cli::serve`).
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
