//! The `poolwatch` binary: everything lives in the library; see `poolwatch::cli`.

fn main() -> std::process::ExitCode {
    poolwatch::cli::main()
}
