//! The trivial parser of the follower tests: one observation per line, the qname carrying the
//! line (lossy UTF-8). These tests are about line delivery, not log formats.
#![allow(dead_code)]

use std::path::Path;

use poolwatch::ingest::follow::ParserFactory;
use poolwatch::ingest::LogParser;
use poolwatch::model::{DnsObservation, Observation, RrType, Source, Timestamp, Transport};

pub struct LineParser {
    pub source: Source,
}

impl LineParser {
    /// The parser for a followed path (`-` for stdin).
    pub fn for_path(path: &Path) -> Self {
        LineParser {
            source: Source::log("lines", &path.display().to_string()),
        }
    }
}

impl LogParser for LineParser {
    fn parse_line(&mut self, line: &[u8], out: &mut Vec<Observation>) {
        out.push(Observation::Dns(DnsObservation {
            ts: Timestamp::from_secs(0),
            client: "192.0.2.1".parse().unwrap(),
            client_port: None,
            server: None,
            server_port: None,
            transport: Transport::Unknown,
            id: None,
            qname: String::from_utf8_lossy(line).into_owned(),
            qtype: RrType::A,
            rcode: None,
            answers: Vec::new(),
            answers_known: false,
            query_seen: true,
            rtt_us: None,
            truncated: false,
            salvaged: None,
            source: self.source.clone(),
        }));
    }
    fn flush(&mut self, _out: &mut Vec<Observation>) {}
}

/// A factory that gives every path a [`LineParser`].
pub fn factory() -> ParserFactory {
    Box::new(|path: &Path, _head: &[u8]| {
        Some(Box::new(LineParser::for_path(path)) as Box<dyn LogParser>)
    })
}
