//! Ports between stages: small plain traits and data that one stage calls and another
//! implements, so that the concrete types meet only in `service` (and `cli`).
//!
//! One file per port; each is re-exported here, so users write `crate::ports::DetectionSink`.
//!
//! * [`detections`] — [`DetectionSink`]: the correlation pipeline hands every flush's
//!   detection changes to the output stage before the store flush.
//! * [`lists`] — [`ListChangeSink`]: the matcher reports which list entries a reload, an API
//!   edit or a feed refresh added (for the retro-hunt).
//! * [`persistence`] — [`DetectionStore`], [`History`], [`Batch`]: what the correlation
//!   pipeline needs from a detection store (sled or memory), and what the engine reads back.
//! * [`history`] — [`HistoryKv`], [`RetroSink`], [`HuntQuery`]: the DNS and flow history of
//!   the retro-hunt (`crate::hunt`), kept by the store.
//! * [`offsets`] — [`OffsetStore`]: the log follower's read positions, kept by the store.
//! * [`producers`] — [`Producer`], [`ObservationSink`], [`QueueSink`], [`StopToken`]: the one
//!   contract of every input (live capture, imports, the follower, dnstap).

pub mod detections;
pub mod history;
pub mod lists;
pub mod offsets;
pub mod persistence;
pub mod producers;

pub use detections::*;
pub use history::*;
pub use lists::*;
pub use offsets::*;
pub use persistence::*;
pub use producers::*;
