//! The ActiveCampaign sink: `contact_sync` parameters, the paced and retrying client.

pub mod client;
pub mod contact_sync;
pub mod importer;
mod pacer;
pub mod response;

pub use client::{AcError, Account, ActiveCampaignClient, ClientSettings, ListLookup, SyncAnswer};
pub use contact_sync::ContactSync;
pub use response::SubscriberStatus;
