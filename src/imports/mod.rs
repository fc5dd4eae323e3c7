//! Bulk import tracking: the record written when an import is submitted, and the
//! import-callback function that settles it.

pub mod callback;
pub mod metrics;
pub mod reconcile;
pub mod store;

pub use store::{Claim, ImportRecord, ImportStore, StoreError};
