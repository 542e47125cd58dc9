//! `poolwatch completions SHELL` and `poolwatch manpage`: generated from the clap definitions
//! (clap_complete, clap_mangen), so they cannot drift from the flags.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::out::{self, OutTarget};

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
poolwatch completions bash > /etc/bash_completion.d/poolwatch\n  \
poolwatch completions zsh -o ~/.zfunc/_poolwatch\n  \
poolwatch completions fish > ~/.config/fish/completions/poolwatch.fish\n\n\
Exit status: 0 written, 2 error.")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
    /// Write to FILE instead of standard output.
    #[arg(long = "out", short = 'o', value_name = "FILE", value_parser = out::parse_out_path)]
    pub out: Option<PathBuf>,
}

/// Print the man page.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
poolwatch manpage | man -l -\n  \
poolwatch manpage --dir /usr/share/man/man1   # poolwatch.1 and poolwatch-SUBCOMMAND.1\n\n\
Exit status: 0 written, 2 error.")]
pub struct ManpageArgs {
    /// Write poolwatch.1 and one poolwatch-SUBCOMMAND.1 page per subcommand into DIR instead
    /// of printing poolwatch.1.
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub dir: Option<PathBuf>,
    /// Write poolwatch.1 to FILE instead of standard output.
    #[arg(long = "out", short = 'o', value_name = "FILE", value_parser = out::parse_out_path)]
    pub out: Option<PathBuf>,
}

pub fn completions(a: CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "poolwatch", &mut buf);
    let mut o = OutTarget::open(a.out.as_deref()).context("opening the output file")?;
    let written = o.write_all(&buf);
    out::finish(o, written)?;
    Ok(ExitCode::SUCCESS)
}

/// The roff text of one page.
fn render(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .section("1")
        .manual("poolwatch manual")
        .source(format!("poolwatch {}", crate::version::VERSION))
        .render(&mut buf)?;
    Ok(buf)
}

pub fn manpage(a: ManpageArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let cmd = cmd.version(crate::version::VERSION);
    match &a.dir {
        None => {
            let page = render(cmd).context("rendering the man page")?;
            let mut o = OutTarget::open(a.out.as_deref()).context("opening the output file")?;
            let written = o.write_all(&page);
            out::finish(o, written)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            write_pages(dir, cmd, "poolwatch")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `NAME.1` for `cmd` and `NAME-SUB.1` for each (non-hidden) subcommand, recursively.
fn write_pages(dir: &Path, cmd: clap::Command, name: &str) -> anyhow::Result<()> {
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .cloned()
        .collect();
    // Page title `poolwatch-scan`, synopsis `poolwatch scan …`.
    let cmd = cmd
        .display_name(name.to_string())
        .bin_name(name.replace('-', " "));
    let page = render(cmd).context("rendering the man page")?;
    let path = dir.join(format!("{name}.1"));
    let mut o =
        OutTarget::open(Some(&path)).with_context(|| format!("writing {}", path.display()))?;
    let written = o.write_all(&page);
    out::finish(o, written)?;
    for s in subs {
        let sub_name = format!("{name}-{}", s.get_name());
        write_pages(dir, s, &sub_name)?;
    }
    Ok(())
}
