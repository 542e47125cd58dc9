//! Stage `correlate`: joins a client's pool lookups to its later flows and grades each
//! (client, pool entry) incident as one [`crate::model::Detection`].
//!
//! * [`Engine`] — pure logic over bounded in-memory tables (no I/O): `observe` an
//!   [`crate::model::Observation`], get [`Changes`] (detection updates, bindings, pool flows).
//! * [`Pipeline`] — owns an engine and (optionally) a [`DetectionStore`] (sled `Store` or
//!   in-memory `MemoryStore`): persists updates write-behind in coalesced [`Batch`]es, flushes
//!   before acknowledging, publishes [`crate::query::DetectionEvent`]s.
//! * [`risk`] — the documented risk-score scale.
//! * `replay` — exactly-once counting of re-read log lines (per-detection source marks).
//! * [`infra`] — the resolver rule (learned/configured resolvers, forwarded lookups);
//!   [`attribution`] — how a flow is attributed and the shared-address rule.
//!
//! The JSON contract of detections is `docs/detections.md`; the design notes are
//! `docs/arch/correlate.md`.

pub mod attribution;
mod bounded;
mod engine;
mod evidence;
mod incidents;
pub mod infra;
mod names;
mod pipeline;
mod replay;
pub mod risk;

/// The persistence port and the pool-flow record, re-exported where the pipeline's users
/// looked for them before they moved to `ports` / `model`.
pub use crate::model::PoolFlow;
pub use crate::ports::{Batch, DetectionStore, FlowId, History, PersistenceError};
/// The one detection change event (`query`), as the engine reports it.
pub use crate::query::{ChangeKind, DetectionEvent};
pub use bounded::BoundedMap;
pub use engine::{
    detection_id, Changes, Engine, EngineConfig, EngineLimits, EngineStats, TableSizes,
    DEFAULT_TTL, EVIDENCE_KEEP_FIRST, MAX_AGENTS, MAX_BINDINGS, MAX_DEDUPE, MAX_EVIDENCE,
    MAX_FLOWS, MAX_HOSTS, MAX_INCIDENTS, MAX_INFRA, MAX_IP_INDEX, MAX_POOL_IPS, MAX_PORTS,
    MAX_QUERY_NAMES, MAX_RECENT_FLOWS, MAX_SOURCES, MAX_TTL,
};
pub use pipeline::{Pipeline, PipelineConfig, PipelineError, PipelineSummary, MAX_BATCH_ROWS};
pub use replay::MAX_SOURCE_MARKS;
