//! `poolwatch blocklist` (being built).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct BlocklistArgs {}

pub fn run(_args: BlocklistArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`blocklist` is not available in this build yet")
}
