//! [`DetectionSink`]: the correlation pipeline hands every detection change of a flush to it
//! *before* the store flush that makes the detection durable, and tells it when that flush is
//! done. The output stage (`crate::output`) implements it with a durable outbox per sink, so
//! a detection and its outbox entries become durable together.

use crate::model::Detection;
pub use crate::query::{ChangeKind, DetectionEvent};

/// One detection change, as of the moment it happened: the borrowed form of the one output
/// event type ([`DetectionEvent`]).
pub type DetectionChange<'a> = DetectionEvent<&'a Detection>;

/// Receives the detection changes of every pipeline flush.
pub trait DetectionSink: Send {
    /// Whether [`ChangeKind::Updated`] changes are wanted at all (they are frequent; the pipeline
    /// does not collect them otherwise).
    fn wants_updates(&self) -> bool {
        false
    }
    /// Records `changes` (in the order they happened). Called before the store flush; what is
    /// written here must become durable with that flush. An error fails the flush like a store
    /// error.
    fn persist(&mut self, changes: &[DetectionChange<'_>]) -> Result<(), String>;
    /// The flush that followed [`DetectionSink::persist`] completed (the changes are durable).
    fn durable(&mut self) {}
}
