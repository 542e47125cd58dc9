//! Builds the project's own capture fixtures (`tests/data/pcap/*.pcap`): a tiny pcap writer and
//! packet/DNS-message builders. `tests/it/capture_fixtures.rs` (re)writes the files from here when
//! they are missing or `POOLWATCH_WRITE_FIXTURES=1` is set, so `files.rs` is the script that made
//! them.
//!
//! Parts: [`writer`] (pcap, pcapng), [`packet`] (link/IP/UDP/TCP frames), [`dns`] (messages),
//! [`conn`] (TLS ClientHello, TCP sessions), [`files`] (the fixture files).
#![allow(dead_code, clippy::too_many_arguments)]

mod conn;
mod dns;
mod files;
mod packet;
mod writer;

pub use conn::*;
pub use dns::*;
#[allow(unused_imports)] // examples/flood_pcap.rs includes this module and needs no fixture
pub use files::*;
pub use packet::*;
pub use writer::*;
