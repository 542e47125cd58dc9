//! Small value types shared by several layers, at the bottom of the dependency order (like
//! `model`): they depend on nothing else in the crate, so the API, the output sinks and the
//! configuration can all use them without importing each other.
//!
//! * [`secret`] — [`Secret`], a token or URL that never prints.
//! * [`decimal`] — numbers and IPv4 addresses as `Display` writes them, without `core::fmt`.
//! * [`duration`] — [`DurationSpec`] and [`parse_duration_secs`]: `90`, `30m`, `6h`, `2d`.
//! * [`malloc`] — the allocator policy of a one-shot `scan` (freed memory kept, not re-faulted).

pub mod decimal;
pub mod duration;
pub mod malloc;
pub mod secret;

pub use duration::{duration_secs, parse_duration_secs, DurationSpec};
pub use secret::Secret;
