//! Your data (GDPR Art. 17 and 20, PIPA, App Store 5.1.1(v)): export everything the account
//! holds as one JSON document, and erase the account with everything it owns.
//!
//! - [`export`]: `POST /v1/me/exports` records a pending export and queues it; the export worker
//!   builds the document ([`document`]), stores it encrypted under an unguessable key that
//!   expires after a day, and the owner downloads it through a presigned link.
//! - [`erase`]: `DELETE /v1/me` shuts the account at once (every token refused, share pages
//!   gone, the identity detached so a new sign-in makes a new account) and queues the erase
//!   worker, which removes every row, object and item the account owns, crash-safe and
//!   resumable.
//! - [`marks`]: the DynamoDB marks an erase leaves for as long as tokens live, and the erasure
//!   journal a database restore is re-applied from.
//!
//! What the account owns, and what an erase leaves for how long, is `docs/privacy.md`.

pub mod config;
pub mod document;
pub mod erase;
pub mod export;
pub mod marks;

pub use config::{EraseConfig, ExportConfig};
pub use erase::{EraseFault, EraseJob, EraseWorker, Erasures};
pub use export::{ExportError, ExportJob, ExportState, ExportView, ExportWorker, Exports};
pub use marks::ErasureMarks;
