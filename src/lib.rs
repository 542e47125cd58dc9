//! poolwatch: a DNS-focused detector of unauthorised cryptocurrency mining.
//!
//! # Pipeline
//!
//! ```text
//!  pcap files / live interface          resolver & flow logs (files, tail -F, dnstap)
//!          │                                          │
//!      [capture] ── packets ──> [dns]             [ingest]
//!          │  (flows)              │                  │
//!          └──────────── Observation (model) ─────────┘
//!                                  │
//!                              [correlate] <── [matcher] (compiled pool lists)
//!                                  │
//!                         Detection (model) ──> [store] (sled) ──> [api] (axum, REST)
//! ```
//!
//! * [`capture`] reads packets (libpcap: files and live interfaces), decodes link/IP/transport
//!   layers, reassembles fragments and TCP streams, tracks flows and hands DNS payloads to [`dns`].
//! * [`dns`] turns DNS wire messages into [`model::DnsObservation`]s (hickory-proto, with salvage).
//! * [`ingest`] turns resolver and sensor log lines into the same observations, following files.
//! * [`matcher`] compiles pool-domain and pool-IP lists and answers "which list flags this name?".
//! * [`correlate`] joins a client's pool lookups to its later flows and grades the incident.
//! * [`store`] keeps detections, bindings, flows, offsets and suppressions in sled.
//! * [`api`] serves it all over HTTP.
//!
//! The one event type that flows from inputs to correlation is [`model::Observation`]; the one
//! that flows out is [`model::Detection`]. Foreign types (hickory, pcap, sled, axum) stay inside
//! the module that uses them.

pub mod api;
pub mod capture;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod correlate;
pub mod dns;
pub mod hunt;
pub mod ingest;
pub mod input;
pub mod matcher;
pub mod metrics;
pub mod model;
pub mod output;
pub mod ports;
pub mod query;
pub mod service;
pub mod store;
pub mod util;
pub mod version;
