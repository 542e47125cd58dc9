//! `poolwatch inspect` (being built).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {}

pub fn run(_args: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`inspect` is not available in this build yet")
}
