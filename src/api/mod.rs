//! Stage `api` (being built; see ARCHITECTURE.md).
