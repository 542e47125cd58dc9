//! File sink: one JSON object a line, appended. Reopened on SIGHUP and whenever the path no
//! longer names the open file (logrotate moved or deleted it), so both `copytruncate`-free
//! rotation styles work. A batch is acknowledged after it is written and (with `fsync =
//! "batch"`) fsynced; a failed write is cut back to the last complete line so a retry never
//! leaves half a record in front of a whole one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::config::Fsync;
use super::format::{render_json, Format, Observer};
use super::{Delivery, OutputEvent, Sink, SinkError};

/// An open output file with the (device, inode) it had when opened.
type OpenFile = (File, u64, u64);

pub struct FileSink {
    path: PathBuf,
    fsync: Fsync,
    format: Format,
    observer: Arc<Observer>,
    /// The open file and its (device, inode).
    file: Option<OpenFile>,
    reopen: bool,
}

impl FileSink {
    pub fn new(path: PathBuf, fsync: Fsync, format: Format, observer: Arc<Observer>) -> Self {
        FileSink {
            path,
            fsync,
            format,
            observer,
            file: None,
            reopen: false,
        }
    }
}

fn open(path: &PathBuf) -> std::io::Result<OpenFile> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let md = f.metadata()?;
    Ok((f, md.dev(), md.ino()))
}

/// Writes `buf` to the file at `path` (reopening when needed); returns the file for reuse.
fn write_batch(
    path: &PathBuf,
    current: Option<OpenFile>,
    force_reopen: bool,
    fsync: Fsync,
    buf: &[u8],
) -> (Option<OpenFile>, Result<(), String>) {
    let moved = match (&current, std::fs::metadata(path)) {
        (Some((_, dev, ino)), Ok(md)) => md.dev() != *dev || md.ino() != *ino,
        (Some(_), Err(_)) => true,
        (None, _) => true,
    };
    let mut cur = if moved || force_reopen {
        match open(path) {
            Ok(f) => f,
            Err(e) => return (None, Err(format!("cannot open {}: {e}", path.display()))),
        }
    } else {
        match current {
            Some(c) => c,
            None => return (None, Err("no file".into())),
        }
    };
    let before = cur.0.metadata().map(|m| m.len()).ok();
    let r = cur
        .0
        .write_all(buf)
        .and_then(|_| cur.0.flush())
        .and_then(|_| match fsync {
            Fsync::Batch => cur.0.sync_data(),
            Fsync::Never => Ok(()),
        });
    match r {
        Ok(()) => (Some(cur), Ok(())),
        Err(e) => {
            // Cut a partial write back, so the retry appends whole lines.
            if let Some(len) = before {
                let _ = cur.0.set_len(len);
            }
            (None, Err(format!("cannot write {}: {e}", path.display())))
        }
    }
}

impl Sink for FileSink {
    fn deliver<'a>(&'a mut self, events: &'a [OutputEvent]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(events.len() * 2048);
            for ev in events {
                buf.extend_from_slice(&render_json(self.format, ev, &self.observer));
                buf.push(b'\n');
            }
            let path = self.path.clone();
            let current = self.file.take();
            let (force, fsync) = (std::mem::take(&mut self.reopen), self.fsync);
            let joined = tokio::task::spawn_blocking(move || {
                write_batch(&path, current, force, fsync, &buf)
            })
            .await;
            match joined {
                Ok((file, Ok(()))) => {
                    self.file = file;
                    Delivery::all(events.len())
                }
                Ok((file, Err(e))) => {
                    self.file = file;
                    Delivery {
                        acked: 0,
                        error: Some(SinkError::transient(e)),
                    }
                }
                Err(e) => Delivery {
                    acked: 0,
                    error: Some(SinkError::transient(format!("writer task failed: {e}"))),
                },
            }
        })
    }

    fn reopen(&mut self) {
        // Close now (so a rotated file is released at once) and create the new one right away,
        // so that `logrotate`'s postrotate HUP leaves a file in place even when nothing is sent.
        self.file = None;
        self.reopen = true;
        match open(&self.path) {
            Ok(f) => {
                self.file = Some(f);
                self.reopen = false;
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "output: cannot reopen file")
            }
        }
    }
}
