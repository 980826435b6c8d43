//! Quest, reward and ledger routes (F-006).
