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
        self.buf.extend_from_slice(data);
        let mut start = 0usize;
        let mut open = true;
        while let Some(i) = self
            .buf
            .get(start..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
        {
            let line = self.buf.get(start..start + i).unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let piece = if i > self.max_line_len {
                Piece::TooLong
            } else {
                Piece::Line(line)
            };
            if !on(piece, self.offset) {
                open = false;
                break;
            }
            start += i + 1;
            self.offset += i as u64 + 1;
        }
        self.buf.drain(..start.min(self.buf.len()));
        if open && self.buf.len() > self.max_line_len {
            let at = self.offset;
            self.buf.clear();
            self.buf.shrink_to(self.max_line_len.min(64 * 1024));
            self.skipping = true;
            open = on(Piece::TooLong, at);
        }
        open
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
    fn a_long_line_ending_in_one_chunk_is_reported_once() {
        let mut s = LineSplitter::new(4);
        let mut got = Vec::new();
        collect(&mut s, b"0123456789\nok\n", &mut got);
        assert_eq!(got, vec![(None, 0), (Some(b"ok".to_vec()), 11)]);
    }
}
