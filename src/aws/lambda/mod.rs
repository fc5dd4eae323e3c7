//! The Lambda adapters: runtime events in, the functions' answers out. They hold no logic
//! beyond converting types.

pub mod http;
pub mod scheduled;
pub mod sqs_event;
