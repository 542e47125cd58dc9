//! Stage `store` (being built; see ARCHITECTURE.md).
