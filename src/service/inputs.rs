//! Starting the producers: each input is built (opened, bound, validated) on the caller's
//! thread, so that a bad one is a start-up error, and then started the same way — a
//! [`Producer`] on a thread of its own with a clone of the queue's [`QueueSink`] and the inputs'
//! [`StopToken`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::capture::live::{LiveCapture, LiveConfig};
use crate::config::Settings;
use crate::ingest::dnstap::{DnstapListener, ListenAddr};
use crate::ingest::follow::{auto_parser_factory, FollowConfig, Follower, OffsetStore};
use crate::ingest::IngestConfig;
use crate::input::Import;
use crate::ports::{Producer, ProducerReport, QueueSink, StopToken};
use crate::store::Store;

use super::ServiceError;

/// The running producers.
#[derive(Default)]
pub(super) struct Inputs {
    threads: Vec<(String, JoinHandle<ProducerReport>)>,
}

impl Inputs {
    /// Waits for every producer (stop the inputs' token first).
    pub(super) fn join(self) {
        for (name, t) in self.threads {
            match t.join() {
                Ok(r) => {
                    if let Some(e) = &r.error {
                        tracing::error!(input = %name, error = %e, "input failed");
                    }
                    tracing::debug!(input = %name, observations = r.observations, "input stopped");
                }
                Err(_) => tracing::error!(input = %name, "input thread panicked"),
            }
        }
    }

    /// Starts `producer` on a thread of its own; `done` runs on that thread when it returns.
    fn start(
        &mut self,
        producer: Box<dyn Producer>,
        sink: &QueueSink,
        stop: &StopToken,
        done: Option<Box<dyn FnOnce() + Send>>,
    ) -> Result<(), ServiceError> {
        let name = producer.name();
        let (sink, stop) = (sink.clone(), stop.clone());
        let h = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let r = producer.run(sink, stop);
                if let Some(done) = done {
                    done();
                }
                r
            })
            .map_err(|source| ServiceError::Thread {
                name: name.clone(),
                source,
            })?;
        self.threads.push((name, h));
        Ok(())
    }
}

/// Builds and starts every configured input into `inputs` (what was started before a failure
/// stays there, for the caller to stop and join).
pub(super) fn start_inputs(
    settings: &Settings,
    store: &Store,
    sink: &QueueSink,
    stop: &StopToken,
    importing: &Arc<AtomicUsize>,
    inputs: &mut Inputs,
) -> Result<(), ServiceError> {
    for iface in &settings.interfaces {
        let mut cfg = LiveConfig::new(iface.clone());
        cfg.bpf_filter = settings.bpf.clone();
        let live = LiveCapture::open(cfg).map_err(|source| ServiceError::Capture { source })?;
        inputs.start(Box::new(live), sink, stop, None)?;
    }

    if !settings.follow.is_empty() {
        // Loads come from the database; saves travel through the queue behind the
        // observations read before them and are committed by the pipeline thread.
        let offsets: Arc<dyn OffsetStore> = Arc::new(store.clone());
        let follower = Follower::new(
            &settings.follow,
            FollowConfig::default(),
            auto_parser_factory(None, IngestConfig::default()),
            Some(offsets),
        )
        .map_err(|source| ServiceError::Follow { source })?;
        tracing::info!(patterns = ?settings.follow, files = follower.files().len(), "following logs");
        inputs.start(Box::new(follower), sink, stop, None)?;
    }

    for spec in &settings.dnstap {
        let addr = ListenAddr::parse(spec)
            .ok_or_else(|| ServiceError::DnstapAddress { spec: spec.clone() })?;
        let l = DnstapListener::bind(&addr).map_err(|source| ServiceError::Dnstap { source })?;
        if let Some(a) = l.local_addr() {
            tracing::info!(addr = %a, "dnstap listening");
        } else {
            tracing::info!(addr = %spec, "dnstap listening");
        }
        inputs.start(Box::new(l), sink, stop, None)?;
    }

    if !settings.import.is_empty() {
        let import =
            Import::open(&settings.import).map_err(|source| ServiceError::Import { source })?;
        let importing = importing.clone();
        let done: Box<dyn FnOnce() + Send> =
            Box::new(move || importing.store(0, Ordering::Release));
        inputs.start(Box::new(import), sink, stop, Some(done))?;
    }
    Ok(())
}
