//! Reading a log straight into its consumer (issue #16): `scan` of a single log hands the
//! reader its correlation stage as a [`LogSink`], and every observation is pushed before the
//! next line is parsed. So when a parser asks the sink about a transaction, the consumer has
//! seen every observation before it, and an unlisted dnsmasq transaction whose addresses it
//! holds nothing for can be handed over as skipped, in its place in the stream, instead of
//! built (`dnsmasq`'s lite reading; the engine's side is `correlate/skip.rs`).

use std::net::IpAddr;

use super::{lines, LineReader, LogReader, ReaderInner};
use crate::model::{Observation, Timestamp};

/// The consumer of one log's observations, asked in stream order (`scan` answers from its
/// correlation engine).
pub trait LogSink {
    /// The next observation.
    fn push(&mut self, obs: Observation);
    /// Whether an answer to `client` naming `ips` (its A/AAAA answers), for an unlisted name
    /// without CNAMEs and without a server address, could change the consumer's state; a "no"
    /// lets the transaction be skipped.
    fn answers_matter(&mut self, client: IpAddr, ips: &[IpAddr]) -> bool;
    /// A DNS observation at `ts` (no server address, unlisted name) that was not built: the
    /// consumer counts it in its place in the stream.
    fn skipped(&mut self, ts: Timestamp);
}

impl LogReader {
    /// Reads the rest of the log into `sink` (the same observations, in the same order, as
    /// iterating, except those the parser hands over as skipped).
    pub fn drain_into(&mut self, sink: &mut dyn LogSink) {
        match &mut self.inner {
            ReaderInner::Lines(r) => r.drain_into(sink),
            ReaderInner::Other(it) => it.for_each(|o| sink.push(o)),
        }
    }
}

impl LineReader {
    fn drain_into(&mut self, sink: &mut dyn LogSink) {
        // What an earlier `next` left parsed goes first.
        while let Some(o) = self.ready.pop_front() {
            sink.push(o);
        }
        for o in self.batch.drain(..) {
            sink.push(o);
        }
        loop {
            if self.fed < self.filled {
                let data = self.chunk.get(self.fed..self.filled).unwrap_or(&[]);
                self.fed = self.filled;
                let (parser, batch) = (&mut self.parser, &mut self.batch);
                self.lines.feed(data, &mut |piece, _| {
                    match piece {
                        lines::Piece::Line(l) => parser.parse_line_into(l, batch, sink),
                        lines::Piece::TooLong => parser.line_too_long(),
                    }
                    // Each line's observations reach the consumer before the next line (most
                    // lines have none: no drain set up for them).
                    if !batch.is_empty() {
                        for o in batch.drain(..) {
                            sink.push(o);
                        }
                    }
                    true
                });
                continue;
            }
            if self.eof {
                if let Some((line, _)) = self.lines.finish() {
                    self.parser
                        .parse_line_into(&line, &mut self.batch, &mut *sink);
                } else if !self.flushed {
                    self.flushed = true;
                    self.parser.flush_into(&mut self.batch, &mut *sink);
                }
                for o in self.batch.drain(..) {
                    sink.push(o);
                }
                if self.flushed {
                    return;
                }
                continue;
            }
            self.read_chunk();
        }
    }
}
