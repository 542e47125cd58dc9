//! [`OffsetStore`]: where the log follower keeps its read positions ([`FileOffset`] per followed
//! path). The follower (`ingest::follow`) consumes it; the store (`store::Store`) implements it.

use serde::{Deserialize, Serialize};

/// Where reading of one followed file stopped, and how to recognise that file again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOffset {
    pub dev: u64,
    pub inode: u64,
    /// Byte offset of the first unprocessed byte (always at a line start).
    pub offset: u64,
    /// Hash of the file's first `fingerprint_len` bytes, to detect a reused inode or a truncated
    /// and rewritten file.
    pub fingerprint: u64,
    pub fingerprint_len: u32,
}

/// Persistence of follower positions (implemented by `store::Store`; keyed by the followed path).
pub trait OffsetStore: Send + Sync {
    fn load_offset(&self, key: &str) -> Option<FileOffset>;
    fn save_offset(&self, key: &str, offset: &FileOffset) -> Result<(), String>;
}
