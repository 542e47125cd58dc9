//! `poolwatch demo` (being built).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`demo` is not available in this build yet")
}
