//! What this binary is: version, git commit and build date (stamped by `build.rs`).
//!
//! A leaf module: `cli` prints it (`--version`), `metrics` exports it (`poolwatch_build_info`).

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git commit the binary was built from, or `unknown` (a tarball build without
/// `POOLWATCH_GIT_COMMIT`).
pub const GIT_COMMIT: &str = env!("POOLWATCH_GIT_COMMIT");
/// Build date, `YYYY-MM-DD` (UTC; `SOURCE_DATE_EPOCH` when set).
pub const BUILD_DATE: &str = env!("POOLWATCH_BUILD_DATE");

/// `0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-02)`: the `--version` text after the name.
pub fn long() -> String {
    format!("{VERSION} (commit {GIT_COMMIT}, built {BUILD_DATE})")
}
