//! Test support shared by every integration test, one submodule per area:
//!
//! * [`lab`] (re-exported here) — `../shared/data` discovery and the lab's ground truth as the
//!   observations the input stages would produce;
//! * [`capture`] — pcap writing and packet builders; [`service`] — a real `poolwatch serve`
//!   process; [`http`] — HTTP clients and servers on loopback; [`lists`] — list fixtures and feed
//!   servers; [`follow`], [`dnstap`] — log and dnstap writers; [`output`] — alert-sink receivers
//!   (rsyslog, webhooks); [`flood`] — generated floods; [`browser`] — a WebDriver client for
//!   headless Chromium; [`proc`] — one child's own CPU time and peak RSS;
//!   [`rng`] — the deterministic PRNG of the garbage tests; [`cluster`] — a real nats-server and
//!   cluster roles.
#![allow(dead_code)]

pub mod browser;
pub mod capture;
pub mod cluster;
pub mod dnstap;
pub mod flood;
pub mod follow;
pub mod http;
pub mod hunt;
pub mod lab;
pub mod lists;
pub mod output;
pub mod proc;
pub mod rng;
pub mod service;

pub use lab::*;
