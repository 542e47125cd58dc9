//! `serve --import`: files read once in the background, merged by time, as a [`Producer`].
//!
//! Every file is opened when the import is built, so that a bad one is a start-up error; the
//! reading happens in [`Producer::run`] on the producer's own thread.

use std::path::PathBuf;
use std::time::Instant;

use super::{merge_by_time, open, InputError, InputFormat, Observations};
use crate::capture::CaptureConfig;
use crate::ingest::IngestConfig;
use crate::ports::{ObservationSink, Producer, ProducerReport, QueueSink, StopToken};

/// Most files one `--import` set merges at once (each holds an open reader).
pub const MAX_IMPORTS: usize = 4_096;
/// The stop token is looked at this often (in observations).
const IMPORT_STOP_EVERY: u64 = 1_024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("too many imports ({count}; at most {MAX_IMPORTS})")]
    TooMany { count: usize },
    #[error("import {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: InputError,
    },
}

/// Opened import files, read when run.
pub struct Import {
    readers: Vec<Observations>,
    files: usize,
}

impl Import {
    /// Opens every path (auto-detected formats, default settings).
    pub fn open(paths: &[PathBuf]) -> Result<Self, ImportError> {
        if paths.len() > MAX_IMPORTS {
            return Err(ImportError::TooMany { count: paths.len() });
        }
        let (ccfg, icfg) = (CaptureConfig::default(), IngestConfig::default());
        let mut readers = Vec::with_capacity(paths.len());
        for p in paths {
            let r =
                open(p, InputFormat::Auto, &ccfg, &icfg).map_err(|source| ImportError::Open {
                    path: p.clone(),
                    source,
                })?;
            readers.push(r);
        }
        Ok(Import {
            readers,
            files: paths.len(),
        })
    }
}

impl Producer for Import {
    fn name(&self) -> String {
        "import".into()
    }

    fn run(self: Box<Self>, mut sink: QueueSink, stop: StopToken) -> ProducerReport {
        let started = Instant::now();
        let files = self.files;
        let mut n = 0u64;
        let mut complete = true;
        for o in merge_by_time(self.readers) {
            if n % IMPORT_STOP_EVERY == 0 && stop.is_stopped() {
                complete = false;
                break;
            }
            if !sink.send(o) {
                complete = false;
                break;
            }
            n += 1;
        }
        if complete {
            tracing::info!(
                files,
                observations = n,
                secs = started.elapsed().as_secs_f64(),
                "import finished"
            );
        } else {
            tracing::warn!(files, observations = n, "import interrupted by shutdown");
        }
        ProducerReport {
            observations: n,
            finished: complete,
            error: None,
        }
    }
}
