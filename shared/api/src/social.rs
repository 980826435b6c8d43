//! Social routes (F-005).
