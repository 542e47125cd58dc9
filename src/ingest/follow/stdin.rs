//! `-` (stdin) as a followed input: a reader thread feeds a bounded queue of chunks that the
//! follower polls; the format is detected from the first complete lines.

use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, TryRecvError};

use crate::ingest::lines::LineSplitter;
use crate::ingest::LogParser;
use crate::model::Observation;

use super::{
    flush_parser, handle_piece, m, FollowStats, ObservationSink, ParserFactory, DETECT_HEAD_LEN,
    MAX_LINE_LEN, READ_CHUNK, STDIN_QUEUE,
};

pub(super) struct StdinState {
    pub(super) rx: Receiver<Vec<u8>>,
    pub(super) lines: LineSplitter,
    pub(super) parser: Option<Box<dyn LogParser>>,
    pub(super) head: Vec<u8>,
    pub(super) eof: bool,
}

impl StdinState {
    pub(super) fn spawn() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(STDIN_QUEUE);
        // Blocking reads of stdin live on their own thread; the follower polls the channel.
        std::thread::spawn(move || {
            let mut stdin = io::stdin().lock();
            loop {
                let mut buf = vec![0u8; READ_CHUNK];
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(buf).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        StdinState {
            rx,
            lines: LineSplitter::new(MAX_LINE_LEN),
            parser: None,
            head: Vec::new(),
            eof: false,
        }
    }

    pub(super) fn poll(
        &mut self,
        factory: &mut ParserFactory,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<bool, ()> {
        let mut progress = false;
        while !self.eof {
            let chunk = match self.rx.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.eof = true;
                    // End of stdin: the format must be decided with what we have.
                    if self.parser.is_none() && !self.head.is_empty() {
                        self.parser = factory(Path::new("-"), &self.head);
                    }
                    let data = std::mem::take(&mut self.head);
                    if let Err(()) = self.feed(&data, stats, out, sink) {
                        return Err(());
                    }
                    if let (Some((tail, _)), Some(p)) = (self.lines.finish(), self.parser.as_mut())
                    {
                        stats.lines += 1;
                        p.parse_line(&tail, out);
                    }
                    if !flush_parser(&mut self.parser, out, stats, sink, None) {
                        return Err(());
                    }
                    break;
                }
            };
            progress = true;
            stats.bytes += chunk.len() as u64;
            if self.parser.is_none() {
                // Hold bytes until the format can be told from complete lines.
                if self.head.len() < DETECT_HEAD_LEN {
                    self.head.extend_from_slice(&chunk);
                }
                let complete = memchr::memrchr(b'\n', &self.head).map_or(0, |i| i + 1);
                if complete > 0 {
                    self.parser = factory(Path::new("-"), self.head.get(..complete).unwrap_or(&[]));
                }
                if self.parser.is_none() && self.head.len() < DETECT_HEAD_LEN {
                    continue;
                }
                if self.parser.is_none() {
                    m().undetected.inc();
                    tracing::warn!("stdin: log format not recognised (give --format)");
                    self.eof = true;
                    break;
                }
                let data = std::mem::take(&mut self.head);
                self.feed(&data, stats, out, sink)?;
                continue;
            }
            self.feed(&chunk, stats, out, sink)?;
        }
        Ok(progress)
    }

    fn feed(
        &mut self,
        data: &[u8],
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<(), ()> {
        let Some(parser) = self.parser.as_mut() else {
            return Ok(());
        };
        if self.lines.feed(data, &mut |piece, _| {
            handle_piece(piece, &mut **parser, out, stats, sink, None)
        }) {
            Ok(())
        } else {
            Err(())
        }
    }
}
