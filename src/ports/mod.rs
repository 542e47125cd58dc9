//! Ports between stages: small plain traits and data that one stage calls and another
//! implements, so that the concrete types meet only in `service` (and `cli`).
//!
//! One file per port; each is re-exported here, so users write `crate::ports::DetectionSink`.
//!
//! * [`detections`] — [`DetectionSink`]: the correlation pipeline hands every flush's
//!   detection changes to the output stage before the store flush.
//! * [`history`] — [`HistoryKv`], [`RetroSink`], [`HuntQuery`]: the DNS and flow history of
//!   the retro-hunt (`crate::hunt`), kept by the store.
//! * [`offsets`] — [`OffsetStore`]: the log follower's read positions, kept by the store.

pub mod detections;
pub mod history;
pub mod offsets;

pub use detections::*;
pub use history::*;
pub use offsets::*;
