//! Chat routes (F-003).
