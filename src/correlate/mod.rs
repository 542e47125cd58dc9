//! Stage `correlate` (being built; see ARCHITECTURE.md).
