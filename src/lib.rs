//! ac-webhook-sync: verified webhooks in, ActiveCampaign contacts out.
//!
//! The pipeline, one module per stage:
//! [`sources`] (authenticate + parse, one module per sender) →
//! [`mapping`] (route configuration → `contact_sync` parameters) →
//! [`delivery`] (inline sync through the [`activecampaign`] client) →
//! [`edge`] (status codes, and the thin Lambda adapter).

pub mod activecampaign;
pub mod aws;
pub mod crypto;
pub mod deadline;
pub mod delivery;
pub mod edge;
pub mod email;
/// Entry points of the fuzz targets (`fuzz/`) and their regression tests; not an API, and
/// not in the production build.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod imports;
pub mod inbound;
pub mod logging;
pub mod mapping;
pub mod preview;
pub mod redact;
pub mod secrets;
pub mod settings;
pub mod sources;
pub mod submission;
pub mod worker;
