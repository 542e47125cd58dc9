//! The one bounded line splitter of `ingest`: whole-file reading ([`super::LineReader`]) and the
//! follower (`follow`) both feed it bytes as they are read and take complete lines out.
//!
//! A line longer than the cap is never buffered whole: once the buffered part passes the cap,
//! the splitter drops bytes up to the next newline and reports the line as [`Piece::TooLong`]
//! (once). So a newline-free input costs one line's worth of memory, never the input's size.
//! The splitter tracks the byte offset of the first unconsumed byte (always a line start), which
//! the follower persists, and hands every line its own start offset.

/// One piece of input handed to the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete line without its `\n` / `\r\n`.
    Line(&'a [u8]),
    /// A line over the cap, skipped (reported once, when its end or the cap is reached).
    TooLong,
}

/// Splits a byte stream into lines of at most `max_line_len` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Stream offset of the first byte not yet handed over (a line start).
    offset: u64,
    /// Stream offset of the next byte to be fed.
    read_pos: u64,
    /// Inside an over-long line: discard until its newline.
    skipping: bool,
    max_line_len: usize,
}

impl LineSplitter {
    pub fn new(max_line_len: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            offset: 0,
            read_pos: 0,
            skipping: false,
            max_line_len: max_line_len.max(1),
        }
    }

    /// Forgets buffered bytes and continues at stream offset `pos`.
    pub fn reset(&mut self, pos: u64) {
        self.buf.clear();
        self.offset = pos;
        self.read_pos = pos;
        self.skipping = false;
    }

    /// Offset of the first byte not yet handed over (where reading resumes after a restart).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset of the next byte to be fed.
    pub fn read_pos(&self) -> u64 {
        self.read_pos
    }

    /// Bytes buffered (an incomplete last line).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Moves past `n` bytes that are not split (an ignored file keeps its position moving).
    pub fn skip(&mut self, n: u64) {
        self.buf.clear();
        self.skipping = false;
        self.read_pos += n;
        self.offset = self.read_pos;
    }

    /// Feeds bytes; `on` gets each piece with the stream offset of its first byte and returns
    /// `false` to stop. Returns `false` when `on` stopped: the refused line stays unconsumed
    /// (the offset points at it), the rest of `data` is kept buffered.
    ///
    /// Lines are handed out of `data` itself: only an incomplete last line is copied into the
    /// buffer (and completed from the next feed), so the bytes of a stream are not copied once
    /// more on their way to the parser.
    pub fn feed(&mut self, mut data: &[u8], on: &mut dyn FnMut(Piece<'_>, u64) -> bool) -> bool {
        self.read_pos += data.len() as u64;
        if self.skipping {
            let Some(i) = memchr::memchr(b'\n', data) else {
                return true;
            };
            let rest = data.get(i + 1..).unwrap_or(&[]);
            self.offset = self.read_pos - rest.len() as u64;
            self.skipping = false;
            data = rest;
        }
        if !self.buf.is_empty() {
            // Complete the buffered line with `data` up to its first newline, and hand out what
            // the buffer then holds (more than one line only after a refusal).
            let take = memchr::memchr(b'\n', data).map_or(data.len(), |i| i + 1);
            let (head, rest) = data.split_at(take.min(data.len()));
            self.buf.extend_from_slice(head);
            data = rest;
            let buf = std::mem::take(&mut self.buf);
            let (used, open) = self.split(&buf, on);
            self.buf = buf;
            self.buf.drain(..used.min(self.buf.len()));
            if !open {
                self.buf.extend_from_slice(data);
                return false;
            }
            if !self.buf.is_empty() {
                // No newline in `data`: all of it was buffered.
                return self.check_long(on);
            }
        }
        let (used, open) = self.split(data, on);
        self.buf
            .extend_from_slice(data.get(used.min(data.len())..).unwrap_or(&[]));
        if !open {
            return false;
        }
        self.check_long(on)
    }

    /// Hands out every complete line of `data` (whose first byte is at `self.offset`), moving
    /// the offset past each; returns the bytes consumed and whether `on` kept going.
    fn split(&mut self, data: &[u8], on: &mut dyn FnMut(Piece<'_>, u64) -> bool) -> (usize, bool) {
        let mut start = 0usize;
        while let Some(i) = data
            .get(start..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
        {
            let line = data.get(start..start + i).unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let piece = if i > self.max_line_len {
                Piece::TooLong
            } else {
                Piece::Line(line)
            };
            if !on(piece, self.offset) {
                return (start, false);
            }
            start += i + 1;
            self.offset += i as u64 + 1;
        }
        (start, true)
    }

    /// A buffered (incomplete) line past the cap is dropped and reported now; the rest of it is
    /// skipped up to its newline.
    fn check_long(&mut self, on: &mut dyn FnMut(Piece<'_>, u64) -> bool) -> bool {
        if self.buf.len() <= self.max_line_len {
            return true;
        }
        let at = self.offset;
        self.buf.clear();
        self.buf.shrink_to(self.max_line_len.min(64 * 1024));
        self.skipping = true;
        on(Piece::TooLong, at)
    }

    /// End of the stream: the unterminated last line, if any (with its offset), consumed.
    pub fn finish(&mut self) -> Option<(Vec<u8>, u64)> {
        if self.skipping || self.buf.is_empty() {
            return None;
        }
        let at = self.offset;
        self.offset += self.buf.len() as u64;
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some((line, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(s: &mut LineSplitter, data: &[u8], got: &mut Vec<(Option<Vec<u8>>, u64)>) {
        s.feed(data, &mut |p, at| {
            got.push((
                match p {
                    Piece::Line(l) => Some(l.to_vec()),
                    Piece::TooLong => None,
                },
                at,
            ));
            true
        });
    }

    #[test]
    fn splits_tracks_offsets_and_bounds() {
        let mut s = LineSplitter::new(8);
        let mut got = Vec::new();
        collect(&mut s, b"a\r\nbb\nc", &mut got);
        assert_eq!(s.offset(), 6);
        collect(&mut s, b"c\n", &mut got);
        assert_eq!(s.offset(), 9);
        collect(&mut s, &[b'x'; 20], &mut got);
        assert_eq!(s.buffered(), 0);
        collect(&mut s, b"yy\nok\nend", &mut got);
        assert_eq!(s.offset(), s.read_pos() - 3);
        assert_eq!(s.finish(), Some((b"end".to_vec(), 35)));
        assert_eq!(
            got,
            vec![
                (Some(b"a".to_vec()), 0),
                (Some(b"bb".to_vec()), 3),
                (Some(b"cc".to_vec()), 6),
                (None, 9),
                (Some(b"ok".to_vec()), 32),
            ]
        );
    }

    #[test]
    fn a_refused_line_stays_unconsumed() {
        let mut s = LineSplitter::new(100);
        let mut n = 0;
        assert!(!s.feed(b"one\ntwo\nthree\n", &mut |_, _| {
            n += 1;
            n < 2
        }));
        assert_eq!(s.offset(), 4);
    }

    #[test]
    fn complete_lines_are_handed_out_of_the_fed_bytes_uncopied() {
        // Issue #12's cost: every byte copied into the splitter's buffer before being split.
        let mut s = LineSplitter::new(100);
        s.feed(b"par", &mut |_, _| true);
        let data = b"tial\none\ntwo\r\nthr".to_vec();
        let range = data.as_ptr_range();
        let mut got = Vec::new();
        s.feed(&data, &mut |p, at| {
            if let Piece::Line(l) = p {
                got.push((l.to_vec(), at, range.contains(&l.as_ptr())));
            }
            true
        });
        assert_eq!(
            got,
            vec![
                // Completes the buffered part: from the buffer.
                (b"partial".to_vec(), 0, false),
                (b"one".to_vec(), 8, true),
                (b"two".to_vec(), 12, true),
            ]
        );
        assert_eq!(s.buffered(), 3);
        assert_eq!(s.offset(), 17);
    }

    #[test]
    fn any_chunking_gives_the_same_pieces_and_offsets() {
        let mut data = b"a\r\n\nexactly8\n".to_vec();
        data.extend_from_slice(b"over-long-line-here\nok\r\n");
        data.extend_from_slice(b"1234567\r\n12345678\r\nlong-unterminated-tail");
        data.extend_from_slice(b"\nshort-tail");
        let run = |chunk: usize| {
            let mut s = LineSplitter::new(8);
            let mut got = Vec::new();
            for c in data.chunks(chunk) {
                collect(&mut s, c, &mut got);
            }
            (got, s.finish(), s.offset(), s.read_pos())
        };
        let whole = run(data.len());
        assert_eq!(whole.0.len(), 9, "{:?}", whole.0);
        assert_eq!(whole.1, None, "the tail is over the cap");
        for chunk in 1..data.len() {
            assert_eq!(run(chunk), whole, "chunks of {chunk}");
        }
        // A tail within the cap is handed out by `finish`, whatever the chunking.
        let mut s = LineSplitter::new(8);
        let mut got = Vec::new();
        for c in b"x\nyz".chunks(1) {
            collect(&mut s, c, &mut got);
        }
        assert_eq!(s.finish(), Some((b"yz".to_vec(), 2)));
    }

    #[test]
    fn a_refused_line_is_handed_out_again_by_the_next_feed() {
        let mut s = LineSplitter::new(100);
        s.feed(b"zero\non", &mut |_, _| true);
        let mut n = 0;
        assert!(!s.feed(b"e\ntwo\nthr", &mut |_, _| {
            n += 1;
            n < 2
        }));
        assert_eq!(s.offset(), 9);
        let mut got = Vec::new();
        collect(&mut s, b"ee\n", &mut got);
        assert_eq!(
            got,
            vec![(Some(b"two".to_vec()), 9), (Some(b"three".to_vec()), 13)]
        );
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn a_long_line_ending_in_one_chunk_is_reported_once() {
        let mut s = LineSplitter::new(4);
        let mut got = Vec::new();
        collect(&mut s, b"0123456789\nok\n", &mut got);
        assert_eq!(got, vec![(None, 0), (Some(b"ok".to_vec()), 11)]);
    }
}
