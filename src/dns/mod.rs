//! Stage `dns` (being built; see ARCHITECTURE.md).
