//! One followed file: open (resuming at the stored offset, or in the rotated file that still
//! holds it), detect the format, read to EOF in bounded chunks, notice rotation and
//! copytruncate, and save the read position.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::ingest::lines::LineSplitter;
use crate::ingest::LogParser;
use crate::model::{Observation, SourceId};

use super::offsets::Offsets;
use super::{
    deliver, flush_parser, handle_piece, m, At, FileOffset, FollowConfig, FollowStats,
    ObservationSink, ParserFactory, StartAt, DETECT_HEAD_LEN, DETECT_MAX_LINES, FINGERPRINT_LEN,
    MAX_LINE_LEN, MAX_READ_PER_POLL, READ_CHUNK,
};

pub(super) struct FileState {
    /// The path as followed (and the offset-store key, made absolute).
    pub(super) path: PathBuf,
    pub(super) key: String,
    pub(super) file: Option<File>,
    pub(super) dev: u64,
    pub(super) inode: u64,
    pub(super) fingerprint: u64,
    pub(super) fingerprint_len: u32,
    /// Start position when opening with no stored offset.
    pub(super) start_at: StartAt,
    /// The path now has another identity (or is gone): finish the old descriptor, then switch.
    pub(super) draining: bool,
    /// Format could not be detected: ignored until the file is replaced.
    pub(super) undetected: bool,
    pub(super) lines: LineSplitter,
    pub(super) parser: Option<Box<dyn LogParser>>,
    pub(super) unsaved_lines: u64,
    pub(super) dirty: bool,
    /// Position to resume at instead of the stored one (same file seen under another name).
    pub(super) resume: Option<FileOffset>,
    /// Another followed path holds our previous file: do not look for it beside us.
    pub(super) no_rotated_search: bool,
    /// Set when a rotated-away file is finished: its identity and final offset.
    pub(super) retired: Option<FileOffset>,
    pub(super) last_save: Instant,
    pub(super) last_data: Instant,
    pub(super) flushed: bool,
    /// Identity of the open file's content for source positions ([`source_id_of`]), once its
    /// first line is complete; cleared whenever another file or content is opened.
    pub(super) source_id: Option<SourceId>,
}

impl FileState {
    pub(super) fn new(path: PathBuf, start_at: StartAt) -> Self {
        let key = std::path::absolute(&path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string();
        let now = Instant::now();
        FileState {
            path,
            key,
            file: None,
            dev: 0,
            inode: 0,
            fingerprint: 0,
            fingerprint_len: 0,
            start_at,
            draining: false,
            undetected: false,
            lines: LineSplitter::new(MAX_LINE_LEN),
            parser: None,
            unsaved_lines: 0,
            dirty: false,
            resume: None,
            no_rotated_search: false,
            retired: None,
            last_save: now,
            last_data: now,
            flushed: true,
            source_id: None,
        }
    }

    /// The source id of the open file (cached once its first line is complete).
    pub(super) fn source_id(&mut self) -> Option<SourceId> {
        if self.source_id.is_some() {
            return self.source_id;
        }
        let (id, complete) = source_id_of(self.file.as_ref()?, self.dev, self.inode)?;
        if complete {
            self.source_id = Some(id);
        }
        Some(id)
    }

    /// Where observations released by a parser flush now are placed.
    pub(super) fn flush_at(&mut self) -> Option<At> {
        let offset = self.lines.offset();
        At::flush(self.source_id()?, offset)
    }

    pub(super) fn offset_record(&self) -> FileOffset {
        FileOffset {
            dev: self.dev,
            inode: self.inode,
            offset: self.lines.offset(),
            fingerprint: self.fingerprint,
            fingerprint_len: self.fingerprint_len,
        }
    }

    pub(super) fn save(
        &mut self,
        offsets: &mut Offsets,
        sink: &mut dyn ObservationSink,
        stats: &mut FollowStats,
    ) {
        if !offsets.enabled(sink) {
            return;
        }
        if !self.dirty || self.file.is_none() && self.inode == 0 {
            return;
        }
        match offsets.save(&self.key, &self.offset_record(), sink) {
            Ok(()) => {
                self.dirty = false;
                self.unsaved_lines = 0;
                self.last_save = Instant::now();
            }
            Err(e) => {
                stats.offset_save_errors += 1;
                m().save_errors.inc();
                tracing::warn!("cannot save read offset of {}: {e}", self.path.display());
            }
        }
    }

    /// Hash of the first bytes as they are now; (hash, length).
    pub(super) fn current_fingerprint(file: &File) -> Option<(u64, u32)> {
        let mut buf = [0u8; FINGERPRINT_LEN];
        let head = read_head(file, &mut buf)?;
        Some((fnv1a(head), head.len() as u32))
    }

    /// `len` comes from the offset store, which may be corrupt or hand-edited: a length we never
    /// write (over `FINGERPRINT_LEN`) is a mismatch, not a multi-gigabyte allocation.
    pub(super) fn fingerprint_prefix(file: &File, len: u32) -> Option<u64> {
        let mut buf = [0u8; FINGERPRINT_LEN];
        let head = buf.get_mut(..usize::try_from(len).ok()?)?;
        file.read_exact_at(head, 0).ok()?;
        Some(fnv1a(head))
    }

    /// Opens the path (or, after a restart, the rotated file that still holds our stored
    /// position). Returns false when there is nothing to open yet.
    fn open(&mut self, offsets: &Offsets, stats: &mut FollowStats, fresh: bool) -> bool {
        let Ok(file) = File::open(&self.path) else {
            return false;
        };
        let Ok(md) = file.metadata() else {
            return false;
        };
        if !md.is_file() {
            return false;
        }
        let (dev, inode) = identity(&md);
        let stored = if fresh {
            None
        } else {
            self.resume.take().or_else(|| offsets.load(&self.key))
        };
        let mut stored_pos: Option<u64> = None;
        let mut rotated: Option<(File, u64, u64, u64)> = None;
        if let Some(st) = &stored {
            if (st.dev, st.inode) == (dev, inode)
                && fingerprint_matches(&file, st)
                && md.len() >= st.offset
            {
                stored_pos = Some(st.offset);
            } else if let Some((old, odev, oino)) =
                find_rotated(&self.path, st).filter(|_| !self.no_rotated_search)
            {
                // Rotated while we were not running: finish the old file first.
                rotated = Some((old, odev, oino, st.offset));
            } else {
                // Replaced while we were not running: all of the new file is unread.
                stored_pos = Some(0);
            }
        }
        let (mut file, dev, inode, pos) = match rotated {
            Some(r) => r,
            None => {
                let pos = stored_pos.unwrap_or(match (fresh, self.start_at) {
                    (false, StartAt::End) => md.len(),
                    _ => 0,
                });
                (file, dev, inode, pos)
            }
        };
        if pos > 0 && file.seek(SeekFrom::Start(pos)).is_err() {
            return false;
        }
        let (fp, fpl) = Self::current_fingerprint(&file).unwrap_or((0, 0));
        self.file = Some(file);
        self.dev = dev;
        self.inode = inode;
        self.fingerprint = fp;
        self.fingerprint_len = fpl;
        self.lines.reset(pos);
        self.source_id = None;
        self.draining = false;
        self.undetected = false;
        self.dirty = true;
        stats.files_opened += 1;
        true
    }

    pub(super) fn poll(
        &mut self,
        cfg: &FollowConfig,
        factory: &mut ParserFactory,
        offsets: &mut Offsets,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<bool, ()> {
        if self.file.is_none() {
            // First open uses the stored offset / start position; a successor after rotation
            // (inode already known) starts at 0.
            let fresh = self.inode != 0;
            if !self.open(offsets, stats, fresh) {
                // Absent at start-up: when it appears, all of it is new.
                self.start_at = StartAt::Beginning;
                return Ok(false);
            }
        }
        // Identity of the path *before* reading, so bytes written to the old file up to the
        // rename are read below before we switch.
        let path_id = std::fs::metadata(&self.path).ok().map(|md| identity(&md));
        if path_id != Some((self.dev, self.inode)) {
            self.draining = true;
        }
        self.check_truncation(stats, out, sink)?;
        if self.parser.is_none() && !self.undetected && !self.detect(factory) {
            return Ok(false);
        }
        let read = self.read_available(stats, out, sink)?;
        let now = Instant::now();
        if read > 0 {
            self.last_data = now;
            self.flushed = false;
            self.update_fingerprint();
        }
        if self.draining && read == 0 {
            // The old descriptor is drained: its unterminated last line is complete now.
            let src = self.source_id();
            if let (Some((tail, tail_at)), Some(p)) = (self.lines.finish(), self.parser.as_mut()) {
                stats.lines += 1;
                m().lines.inc();
                p.parse_line(&tail, out);
                if !deliver(out, stats, sink, src.map(|s| At::line(s, tail_at))) {
                    return Err(());
                }
            }
            let at = src.and_then(|s| At::flush(s, self.lines.offset()));
            if !flush_parser(&mut self.parser, out, stats, sink, at) {
                return Err(());
            }
            self.dirty = true;
            self.save(offsets, sink, stats);
            stats.rotations += 1;
            m().rotations.inc();
            self.retired = Some(self.offset_record());
            self.file = None;
            self.parser = None;
            self.draining = false;
            // Successor: at offset 0 (if it exists yet).
            if self.open(offsets, stats, true) {
                self.save(offsets, sink, stats);
                return self
                    .poll(cfg, factory, offsets, stats, out, sink)
                    .map(|_| true);
            }
            return Ok(true);
        }
        if !self.flushed && now.duration_since(self.last_data) >= cfg.flush_after_quiet {
            self.flushed = true;
            let at = self.flush_at();
            if !flush_parser(&mut self.parser, out, stats, sink, at) {
                return Err(());
            }
        }
        if self.dirty
            && (self.unsaved_lines >= cfg.save_every_lines
                || now.duration_since(self.last_save) >= cfg.save_interval)
        {
            self.save(offsets, sink, stats);
        }
        Ok(read > 0)
    }

    /// copytruncate: the file got shorter than our read position, or its first bytes changed
    /// (truncated and rewritten past our position between two polls): start again at 0.
    fn check_truncation(
        &mut self,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<(), ()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let Ok(md) = file.metadata() else {
            return Ok(());
        };
        let shrunk = md.len() < self.lines.read_pos();
        let rewritten = !shrunk
            && self.fingerprint_len > 0
            && Self::fingerprint_prefix(file, self.fingerprint_len) != Some(self.fingerprint);
        if !(shrunk || rewritten) {
            return Ok(());
        }
        if file.seek(SeekFrom::Start(0)).is_err() {
            return Ok(());
        }
        stats.truncations += 1;
        m().truncations.inc();
        self.lines.reset(0);
        let (fp, fpl) = Self::current_fingerprint(file).unwrap_or((0, 0));
        self.fingerprint = fp;
        self.fingerprint_len = fpl;
        self.source_id = None;
        self.dirty = true;
        // State joined across lines of the old content must not leak into the new. (Released
        // unpositioned: the old content is gone and cannot be read again.)
        if !flush_parser(&mut self.parser, out, stats, sink, None) {
            return Err(());
        }
        Ok(())
    }

    fn update_fingerprint(&mut self) {
        if (self.fingerprint_len as usize) < FINGERPRINT_LEN {
            if let Some((fp, fpl)) = self.file.as_ref().and_then(Self::current_fingerprint) {
                self.fingerprint = fp;
                self.fingerprint_len = fpl;
            }
        }
    }

    /// Finds the parser from the file's first complete lines. False while undecided.
    fn detect(&mut self, factory: &mut ParserFactory) -> bool {
        let Some(file) = self.file.as_ref() else {
            return false;
        };
        let mut head = vec![0u8; DETECT_HEAD_LEN];
        let n = file.read_at(&mut head, 0).unwrap_or(0);
        head.truncate(n);
        let complete = match memchr::memrchr(b'\n', &head) {
            Some(i) => i + 1,
            None if n == DETECT_HEAD_LEN => n,
            None => return false,
        };
        let head = head.get(..complete).unwrap_or(&[]);
        if let Some(p) = factory(&self.path, head) {
            self.parser = Some(p);
            return true;
        }
        let lines = memchr::memchr_iter(b'\n', head).count();
        if lines >= DETECT_MAX_LINES || complete >= DETECT_HEAD_LEN {
            self.undetected = true;
            m().undetected.inc();
            tracing::warn!(
                "{}: log format not recognised; ignoring this file until it is replaced (give --format)",
                self.path.display()
            );
        }
        false
    }

    /// Reads the descriptor to EOF (bounded per poll). Returns bytes read.
    fn read_available(
        &mut self,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<u64, ()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut total = 0u64;
        while total < MAX_READ_PER_POLL {
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    m().read_errors.inc();
                    tracing::warn!("reading {}: {e}", self.path.display());
                    break;
                }
            };
            total += n as u64;
            stats.bytes += n as u64;
            let data = chunk.get(..n).unwrap_or(&[]);
            if self.undetected {
                // Ignored file: keep the position moving so a rewrite is still noticed.
                self.lines.skip(n as u64);
                continue;
            }
            // After the read, so a first line completed by this chunk is complete here too.
            let src = match self.source_id {
                Some(id) => Some(id),
                None => {
                    let r = source_id_of(file, self.dev, self.inode);
                    if let Some((id, true)) = r {
                        self.source_id = Some(id);
                    }
                    r.map(|(id, _)| id)
                }
            };
            let Some(parser) = self.parser.as_mut() else {
                break;
            };
            let before = stats.lines;
            let open = self.lines.feed(data, &mut |piece, off| {
                let at = src.map(|s| At::line(s, off));
                handle_piece(piece, &mut **parser, out, stats, sink, at)
            });
            self.unsaved_lines += stats.lines - before;
            self.dirty = true;
            if !open {
                return Err(());
            }
        }
        Ok(total)
    }
}

fn fingerprint_matches(file: &File, st: &FileOffset) -> bool {
    if st.fingerprint_len == 0 {
        return true;
    }
    FileState::fingerprint_prefix(file, st.fingerprint_len) == Some(st.fingerprint)
}

/// After a restart: the file with the stored identity, renamed beside the path by a rotation
/// (`query.log.1`, `query.log-20261126`, …), if it is still there, unchanged, and uncompressed.
fn find_rotated(path: &Path, st: &FileOffset) -> Option<(File, u64, u64)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name()?.to_str()?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Some(ename) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if ename == name || !ename.starts_with(name) {
            continue;
        }
        let Ok(md) = entry.metadata() else { continue };
        if identity(&md) != (st.dev, st.inode) || md.len() < st.offset {
            continue;
        }
        let Ok(mut f) = File::open(entry.path()) else {
            continue;
        };
        if fingerprint_matches(&f, st) && f.seek(SeekFrom::Start(st.offset)).is_ok() {
            return Some((f, st.dev, st.inode));
        }
    }
    None
}

/// FNV-1a: stable across runs and Rust versions (the fingerprint is persisted).
fn fnv1a(data: &[u8]) -> u64 {
    fnv1a_from(0xcbf2_9ce4_8422_2325, data)
}

fn fnv1a_from(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The source id of a followed file's content: a hash of its identity (device, inode) and its
/// first line (at most [`FINGERPRINT_LEN`] bytes, newline included). It is the same after a
/// restart and a rename (rotation), so a line read again carries the position it had; it
/// differs for a new file, and for content rewritten in place unless the new first line is
/// byte-identical (`docs/follow.md`, "Exactly-once counting"). Also says whether the first
/// line is complete (only then is the id final).
pub(super) fn source_id_of(file: &File, dev: u64, inode: u64) -> Option<(SourceId, bool)> {
    let mut buf = [0u8; FINGERPRINT_LEN];
    let head = read_head(file, &mut buf)?;
    let (first, complete) = match memchr::memchr(b'\n', head) {
        Some(i) => (head.get(..=i)?, true),
        None => (head, head.len() == FINGERPRINT_LEN),
    };
    if first.is_empty() {
        return None;
    }
    let mut h = fnv1a_from(fnv1a(&dev.to_be_bytes()), &inode.to_be_bytes());
    h = fnv1a_from(h, first);
    Some((SourceId(h), complete))
}

/// Reads the file's first bytes (up to `buf.len()`, fewer at its end) with positioned reads, so
/// the follower's own read position is untouched. `None` on an I/O error.
fn read_head<'a>(file: &File, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(buf.get_mut(n..)?, n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    buf.get(..n)
}

pub(super) fn identity(md: &Metadata) -> (u64, u64) {
    (md.dev(), md.ino())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::follow::FileOffset;

    #[test]
    fn stored_fingerprint_length_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.log");
        std::fs::write(&path, b"line one\nline two\n").unwrap();
        let file = File::open(&path).unwrap();
        let (fp, len) = FileState::current_fingerprint(&file).unwrap();
        assert_eq!(FileState::fingerprint_prefix(&file, len), Some(fp));
        // A corrupt offset store: lengths we never write are a mismatch, without allocating.
        for bad in [FINGERPRINT_LEN as u32 + 1, u32::MAX] {
            assert_eq!(FileState::fingerprint_prefix(&file, bad), None);
            let st = FileOffset {
                dev: 0,
                inode: 0,
                offset: 0,
                fingerprint: fp,
                fingerprint_len: bad,
            };
            assert!(!fingerprint_matches(&file, &st));
        }
    }
}
