//! Test support shared by every integration test, one submodule per area:
//!
//! * [`lab`] (re-exported here) — `../shared/data` discovery and the lab's ground truth as the
//!   observations the input stages would produce;
//! * [`api`] — a real API server over an in-memory backend, detection builders;
//! * [`capture`] — pcap writing and packet builders; [`service`] — a real `poolwatch serve`
//!   process; [`http`] — HTTP clients and servers on loopback; [`lists`] — list fixtures and feed
//!   servers; [`obs`] — observation builders (`dns(..).a(..).build()`, `flow(..)`);
//!   [`scenario`] — a capture scenario run through `scan` and the engine; [`follow`],
//!   [`dnstap`] — log and dnstap writers; [`output`] — alert-sink receivers
//!   (rsyslog, webhooks); [`flood`] — generated floods; [`browser`] — a WebDriver client for
//!   headless Chromium; [`proc`] — one child's own CPU time and peak RSS; [`identity`] — `scan`'s pipeline and its
//!   comparable result, for the shortcut-identity tests;
//!   [`rng`] — the deterministic PRNG of the garbage tests; [`cluster`] — a real nats-server and
//!   cluster roles.
#![allow(dead_code)]

pub mod api;
pub mod browser;
pub mod capture;
pub mod cluster;
pub mod dnstap;
pub mod flood;
pub mod follow;
pub mod http;
pub mod hunt;
pub mod identity;
pub mod lab;
pub mod lists;
pub mod obs;
pub mod output;
pub mod proc;
pub mod rng;
pub mod scenario;
pub mod service;

pub use lab::*;
