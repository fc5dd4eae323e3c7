//! ac-webhook-sync: verified webhooks in, ActiveCampaign contacts out.
//!
//! The core, one module per stage, each importing only those below it:
//! [`pipeline`] (route → handshake → authenticate → parse → map, over [`sources`] and
//! [`mapping`]) → [`delivery`] (inline, or the queue; the batch split) → [`activecampaign`]
//! (the paced and retrying client). [`functions`] are the four Lambda functions as plain
//! apps; [`aws`] is everything that knows AWS: Secrets Manager, SQS and DynamoDB behind the
//! core's seams, the Lambda adapters and each function's setup.

// `pub(crate)` by default: a `pub` item must be reachable from the crate root.
#![warn(unreachable_pub)]

pub mod activecampaign;
pub mod aws;
pub mod backfill;
pub mod captcha;
pub mod check;
pub mod crypto;
mod deadline;
pub mod delivery;
pub mod email;
pub mod functions;
/// Entry points of the fuzz targets (`fuzz/`) and their regression tests; not an API, and
/// not in the production build.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod https;
pub mod inbound;
pub mod lookup;
pub mod mapping;
mod metrics;
pub mod pipeline;
pub mod preview;
pub mod redact;
pub mod response;
pub mod secret;
pub mod settings;
pub mod sources;
pub mod submission;
