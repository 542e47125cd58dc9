//! Where the follower keeps its read positions: the [`OffsetStore`] it loads from, and how a
//! save goes out — through the sink (ordered behind the observations read before it; the
//! service commits it once they are durable) or straight to the store.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{FileOffset, FollowError, ObservationSink, OffsetStore, MAX_FOLLOWED_FILES};

/// Positions handed to the sink and not yet known to be durable are remembered (so a load in
/// between sees the newest one), at most this many; rotated names come and go, so the map is
/// reset rather than grown without bound.
const MAX_SENT: usize = 4 * MAX_FOLLOWED_FILES;

/// The follower's view of its read positions.
pub(super) struct Offsets {
    store: Option<Arc<dyn OffsetStore>>,
    /// Saved through the sink, maybe not committed yet.
    sent: HashMap<String, FileOffset>,
}

impl Offsets {
    pub(super) fn new(store: Option<Arc<dyn OffsetStore>>) -> Self {
        Offsets {
            store,
            sent: HashMap::new(),
        }
    }

    pub(super) fn store(&self) -> Option<&dyn OffsetStore> {
        self.store.as_deref()
    }

    /// Whether saves go anywhere (a follower without store and with a plain sink keeps none).
    pub(super) fn enabled(&self, sink: &dyn ObservationSink) -> bool {
        self.store.is_some() || sink.takes_offsets()
    }

    /// The newest position of `key`: one queued through the sink, else the stored one.
    pub(super) fn load(&self, key: &str) -> Option<FileOffset> {
        if let Some(o) = self.sent.get(key) {
            return Some(o.clone());
        }
        self.store.as_ref().and_then(|s| s.load_offset(key))
    }

    /// Saves `offset` for `key`: through the sink when it orders offsets behind observations
    /// (the service), else straight into the store.
    pub(super) fn save(
        &mut self,
        key: &str,
        offset: &FileOffset,
        sink: &mut dyn ObservationSink,
    ) -> Result<(), String> {
        if sink.takes_offsets() {
            if self.sent.len() >= MAX_SENT {
                self.sent.clear();
            }
            self.sent.insert(key.to_string(), offset.clone());
            return if sink.commit_offset(key, offset) {
                Ok(())
            } else {
                Err("the pipeline has stopped".into())
            };
        }
        match &self.store {
            Some(s) => s.save_offset(key, offset),
            None => Ok(()),
        }
    }
}

/// An [`OffsetStore`] in a small JSON file (`{"<path>": FileOffset, …}`), for `scan --follow`
/// without a database. Every save rewrites the file atomically (temporary file, fsync, rename),
/// so a crash leaves either the previous or the new positions, never a torn file.
pub struct JsonOffsetFile {
    path: PathBuf,
    map: Mutex<BTreeMap<String, FileOffset>>,
}

impl JsonOffsetFile {
    /// Opens (or starts) the offset file. A missing file is empty; an unreadable one is an error
    /// (silently starting over would re-read every log).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, FollowError> {
        let path = path.into();
        let map = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => BTreeMap::new(),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| FollowError::OffsetFile {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(FollowError::OffsetFile {
                    path,
                    message: e.to_string(),
                })
            }
        };
        Ok(JsonOffsetFile {
            path,
            map: Mutex::new(map),
        })
    }

    fn write(&self, map: &BTreeMap<String, FileOffset>) -> io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        let json = serde_json::to_vec_pretty(map).map_err(io::Error::other)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

impl OffsetStore for JsonOffsetFile {
    fn load_offset(&self, key: &str) -> Option<FileOffset> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    fn save_offset(&self, key: &str, offset: &FileOffset) -> Result<(), String> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.to_string(), offset.clone());
        self.write(&map).map_err(|e| e.to_string())
    }
}
