//! The functions, each an app that holds what it keeps across invocations and handles one
//! event at a time, Lambda-free: the webhook, the sync-worker, the import callback and the
//! import reconciler. Here, too, what they all build the same way from their settings.

pub mod import_callback;
pub mod import_reconciler;
pub mod sync_worker;
pub mod webhook;

use serde_json::json;
use thiserror::Error;

use crate::mapping::MappingError;
use crate::response::HttpResponse;
use crate::settings::ConfigError;

pub const HEALTH_PATH: &str = "/health";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the function could not start.
#[derive(Debug, Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("cannot read the mapping file {path}: {source} (check MAPPING_FILE)")]
    MappingFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] crate::https::ClientBuildError),
}

/// The health answer: the build version, no secret, no network.
pub fn health() -> HttpResponse {
    HttpResponse::json(
        http::StatusCode::OK,
        &json!({ "status": "ok", "version": VERSION }),
    )
}
