//! The shared output conventions of every subcommand: `--output text|json` (with `table` an
//! alias of `text`), `-o`/`--out FILE` (written to a temporary file beside it and renamed into
//! place when complete, so a reader never sees half a file), and a closed pipe (`| head`) that
//! is the reader's choice, not an error.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// `--output` of the commands that print results: `text` (readable; `table` is an alias) or
/// `json` (one object a line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    /// Readable text (alias: `table`).
    #[value(alias = "table")]
    Text,
    /// JSON, one object a line.
    Json,
}

/// Bare words refused as `--out` file names: they are `--output` values given to `-o` by habit.
const FORMAT_WORDS: &[&str] = &[
    "text", "table", "json", "ecs", "eve", "bash", "zsh", "fish", "rpz", "hosts",
];

/// clap value parser of `-o`/`--out FILE`: a path, never a bare format name.
pub fn parse_out_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("an empty file name".into());
    }
    if FORMAT_WORDS.contains(&s) {
        return Err(format!(
            "`-o`/`--out` names the output FILE; for the format use `--output {s}` \
             (or `./{s}` for a file of that name)"
        ));
    }
    Ok(PathBuf::from(s))
}

/// Bytes buffered before a write to standard output or the `--out` file (a flood's JSON result
/// is ≈ 180 MB: 8 KB writes, `BufWriter`'s default, were ≈ 22 000 system calls).
const OUT_BUFFER: usize = 1 << 16;

/// Where a command writes its results: standard output, or a file that appears complete.
pub enum OutTarget {
    Stdout(BufWriter<io::StdoutLock<'static>>),
    File {
        tmp: PathBuf,
        path: PathBuf,
        w: BufWriter<File>,
    },
}

impl OutTarget {
    /// Standard output, or (with `--out`) a temporary file next to `path`.
    pub fn open(out: Option<&Path>) -> io::Result<OutTarget> {
        match out {
            None => Ok(OutTarget::Stdout(BufWriter::with_capacity(
                OUT_BUFFER,
                io::stdout().lock(),
            ))),
            Some(path) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "out".into());
                let tmp = path.with_file_name(format!(".{name}.poolwatch-tmp"));
                let f = File::create(&tmp)?;
                Ok(OutTarget::File {
                    tmp,
                    path: path.to_path_buf(),
                    w: BufWriter::with_capacity(OUT_BUFFER, f),
                })
            }
        }
    }

    /// Flushes and, for a file, syncs and renames it into place.
    pub fn finish(self) -> io::Result<()> {
        match self {
            OutTarget::Stdout(mut w) => w.flush(),
            OutTarget::File { tmp, path, w } => {
                let done = w
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .and_then(|_| std::fs::rename(&tmp, &path));
                if done.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                done
            }
        }
    }

    /// Drops a half-written file (the command failed).
    pub fn abandon(self) {
        if let OutTarget::File { tmp, w, .. } = self {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

impl Write for OutTarget {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            OutTarget::Stdout(w) => w.write(buf),
            OutTarget::File { w, .. } => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            OutTarget::Stdout(w) => w.write_all(buf),
            OutTarget::File { w, .. } => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            OutTarget::Stdout(w) => w.flush(),
            OutTarget::File { w, .. } => w.flush(),
        }
    }
}

/// Finishes `out` after a write result: a closed pipe is the reader's choice (success), any
/// other error fails the command (and drops a half-written file).
pub fn finish(out: OutTarget, written: io::Result<()>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    match written {
        Ok(()) => match out.finish() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r.context("writing the output"),
        },
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            out.abandon();
            Ok(())
        }
        Err(e) => {
            out.abandon();
            Err(anyhow::Error::new(e).context("writing the output"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_words_are_not_file_names() {
        assert!(parse_out_path("json").is_err());
        assert!(parse_out_path("").is_err());
        assert_eq!(parse_out_path("./json").unwrap(), PathBuf::from("./json"));
        assert_eq!(parse_out_path("a.json").unwrap(), PathBuf::from("a.json"));
    }

    #[test]
    fn file_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.txt");
        let mut o = OutTarget::open(Some(&p)).unwrap();
        o.write_all(b"hello\n").unwrap();
        assert!(!p.exists());
        o.finish().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello\n");
        let mut o = OutTarget::open(Some(&p)).unwrap();
        o.write_all(b"half").unwrap();
        o.abandon();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
