//! Settings read from the environment at start-up, with errors that name the variable.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::activecampaign::ClientSettings;
use crate::secret::DEFAULT_SECRET_TTL;

pub const ENV_SECRET_ID: &str = "SECRET_ID";
pub const ENV_SECRET_FILE: &str = "SECRET_FILE";
pub const ENV_SECRET_TTL_SECS: &str = "SECRET_TTL_SECS";
pub const ENV_MAPPING_FILE: &str = "MAPPING_FILE";
pub const ENV_MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
pub const ENV_AC_TIMEOUT_MS: &str = "AC_TIMEOUT_MS";
pub const ENV_AC_RATE_PER_SEC: &str = "AC_REQUESTS_PER_SECOND";
pub const ENV_AC_IMPORTS_PER_MIN: &str = "AC_IMPORTS_PER_MINUTE";
/// How many containers share the account's limits (the sync-worker's `MaximumConcurrency`):
/// each paces itself at that share of 5 requests/s and 100 imports/min.
pub const ENV_AC_SHARED_BY: &str = "AC_SHARED_BY";
pub const ENV_INVOCATION_BUDGET_MS: &str = "INVOCATION_BUDGET_MS";
pub const ENV_DELIVERY: &str = "DELIVERY";
pub const ENV_QUEUE_URL: &str = "QUEUE_URL";
pub const ENV_DLQ_URL: &str = "DLQ_URL";
pub const ENV_MAX_RECEIVE_COUNT: &str = "MAX_RECEIVE_COUNT";
pub const ENV_CALLBACK_URL: &str = "CALLBACK_URL";
pub const ENV_IMPORTS_TABLE: &str = "IMPORTS_TABLE";
/// The DynamoDB table of delivery claims (deduplication); without it, each process keeps its
/// own in memory.
pub const ENV_IDEMPOTENCY_TABLE: &str = "IDEMPOTENCY_TABLE";
pub const ENV_RETRY_BASE_SECS: &str = "WORKER_RETRY_BASE_SECS";
pub const ENV_RECONCILE_MIN_AGE_SECS: &str = "RECONCILE_MIN_AGE_SECS";
pub const ENV_RETRY_MAX_SECS: &str = "WORKER_RETRY_MAX_SECS";
/// Replaces every captcha provider's `siteverify` endpoint (local runs and tests).
pub const ENV_CAPTCHA_SITEVERIFY_URL: &str = "CAPTCHA_SITEVERIFY_URL";
/// Replaces the base URL of every sender API looked up (local runs and tests).
pub const ENV_SENDER_API_URL: &str = "SENDER_API_URL";

/// Receives after which the sync-worker moves a failing message to the dead-letter queue.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 10;

/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Budget when the runtime's deadline is unusable (local emulators), and the cap otherwise.
pub const DEFAULT_INVOCATION_BUDGET: Duration = Duration::from_secs(25);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("set {ENV_SECRET_ID} (Secrets Manager) or {ENV_SECRET_FILE} (a local JSON file)")]
    NoSecret,
    #[error("{ENV_DELIVERY}=queue needs {ENV_QUEUE_URL}")]
    NoQueue,
    #[error(
        "bulk imports are recorded ({ENV_IMPORTS_TABLE}) but {ENV_CALLBACK_URL} is not set: set it to the import-callback function's URL, or their outcomes are never settled"
    )]
    NoCallbackUrl,
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// How the webhook function delivers contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryMode {
    /// `contact_sync` within the invocation.
    Inline,
    /// Send to the SQS queue at this URL; the sync-worker drains it.
    Queue(String),
}

/// Where the secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretLocation {
    SecretsManager(String),
    File(PathBuf),
}

/// Imports younger than this are left to their callback by the import reconciler.
pub const DEFAULT_RECONCILE_MIN_AGE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct Settings {
    pub secret: SecretLocation,
    pub secret_ttl: Duration,
    pub mapping_file: Option<PathBuf>,
    pub max_body_bytes: usize,
    pub client: ClientSettings,
    pub invocation_budget: Duration,
    pub delivery: DeliveryMode,
    /// The sync-worker's dead-letter queue, for messages it gives up on (with a reason).
    pub dead_letter_queue: Option<String>,
    pub max_receive_count: u32,
    /// The import-callback function's URL, for bulk imports.
    pub callback_url: Option<String>,
    /// The DynamoDB table where bulk imports are recorded for their callback.
    pub imports_table: Option<String>,
    pub idempotency_table: Option<String>,
    /// The contact queue (`QUEUE_URL`): where the webhook sends, and the sync-worker hides
    /// messages it hands back.
    pub queue_url: Option<String>,
    /// The sync-worker's retry backoff, first step and cap (`None`: the worker's defaults).
    pub retry_base: Option<Duration>,
    pub retry_max: Option<Duration>,
    /// Imports younger than this are left to their callback by the reconciler.
    pub reconcile_min_age: Duration,
    pub captcha_siteverify_url: Option<String>,
    pub sender_api_url: Option<String>,
}

impl Settings {
    /// For the functions that submit bulk imports (webhook, sync-worker): recorded imports
    /// must ask for their callback.
    pub fn check_imports_callback(&self) -> Result<(), ConfigError> {
        if self.imports_table.is_some() && self.callback_url.is_none() {
            return Err(ConfigError::NoCallbackUrl);
        }
        Ok(())
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // A file wins, so a local run never reaches for AWS by accident.
        let secret = match (get(ENV_SECRET_FILE), get(ENV_SECRET_ID)) {
            (Some(file), _) => SecretLocation::File(PathBuf::from(file)),
            (None, Some(id)) => SecretLocation::SecretsManager(id),
            (None, None) => return Err(ConfigError::NoSecret),
        };
        let number =
            |name: &'static str, expected: &'static str| -> Result<Option<u64>, ConfigError> {
                get(name)
                    .map(|v| {
                        v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or(
                            ConfigError::Invalid {
                                name,
                                value: v,
                                expected,
                            },
                        )
                    })
                    .transpose()
            };
        // Read again where the clients are built (`https::TlsRoots::configured`); refused here
        // so a typo stops the start-up instead of quietly trusting the default.
        crate::https::TlsRoots::parse(get(crate::https::ENV_TLS_ROOTS).as_deref()).map_err(
            |value| ConfigError::Invalid {
                name: crate::https::ENV_TLS_ROOTS,
                value,
                expected: "webpki (the compiled-in roots, the default) or system",
            },
        )?;
        let mut client = ClientSettings::default();
        if let Some(ms) = number(ENV_AC_TIMEOUT_MS, "milliseconds, above 0")? {
            client.call_timeout = Duration::from_millis(ms);
        }
        let rate =
            |name: &'static str, expected: &'static str| -> Result<Option<f64>, ConfigError> {
                get(name)
                    .map(|raw| {
                        raw.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|r| r.is_finite() && *r > 0.0)
                            .ok_or(ConfigError::Invalid {
                                name,
                                value: raw,
                                expected,
                            })
                    })
                    .transpose()
            };
        // The account's limits split between the containers that share them; an explicit
        // pace wins.
        if let Some(shared_by) = number(ENV_AC_SHARED_BY, "a number of containers, above 0")? {
            let shared_by = shared_by.max(1) as f64;
            client.requests_per_second /= shared_by;
            client.imports_per_second /= shared_by;
        }
        if let Some(per_second) = rate(ENV_AC_RATE_PER_SEC, "requests per second, above 0")? {
            client.requests_per_second = per_second;
        }
        if let Some(per_minute) = rate(ENV_AC_IMPORTS_PER_MIN, "imports per minute, above 0")? {
            client.imports_per_second = per_minute / 60.0;
        }
        let delivery = match get(ENV_DELIVERY).as_deref().map(str::trim) {
            None | Some("inline") => DeliveryMode::Inline,
            Some("queue") => DeliveryMode::Queue(get(ENV_QUEUE_URL).ok_or(ConfigError::NoQueue)?),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: ENV_DELIVERY,
                    value: other.to_string(),
                    expected: "inline or queue",
                });
            }
        };
        // An endpoint that receives secrets: https://, or http:// only on this machine.
        let endpoint = |name: &'static str| -> Result<Option<String>, ConfigError> {
            get(name)
                .map(|raw| {
                    let usable = reqwest::Url::parse(raw.trim()).is_ok_and(|url| {
                        url.scheme() == "https"
                            || (url.scheme() == "http" && crate::secret::is_loopback(&url))
                    });
                    if usable {
                        Ok(raw.trim().to_string())
                    } else {
                        Err(ConfigError::Invalid {
                            name,
                            value: raw,
                            expected: "an https:// URL (http:// only on loopback)",
                        })
                    }
                })
                .transpose()
        };
        Ok(Self {
            captcha_siteverify_url: endpoint(ENV_CAPTCHA_SITEVERIFY_URL)?,
            sender_api_url: endpoint(ENV_SENDER_API_URL)?,
            delivery,
            queue_url: get(ENV_QUEUE_URL),
            retry_base: number(ENV_RETRY_BASE_SECS, "seconds, above 0")?.map(Duration::from_secs),
            retry_max: number(ENV_RETRY_MAX_SECS, "seconds, above 0")?.map(Duration::from_secs),
            reconcile_min_age: number(ENV_RECONCILE_MIN_AGE_SECS, "seconds, above 0")?
                .map_or(DEFAULT_RECONCILE_MIN_AGE, Duration::from_secs),
            dead_letter_queue: get(ENV_DLQ_URL),
            callback_url: get(ENV_CALLBACK_URL),
            imports_table: get(ENV_IMPORTS_TABLE),
            idempotency_table: get(ENV_IDEMPOTENCY_TABLE),
            max_receive_count: number(ENV_MAX_RECEIVE_COUNT, "a count, above 0")?
                .map_or(DEFAULT_MAX_RECEIVE_COUNT, |n| n.min(u32::MAX as u64) as u32),
            secret,
            secret_ttl: number(ENV_SECRET_TTL_SECS, "seconds, above 0")?
                .map_or(DEFAULT_SECRET_TTL, Duration::from_secs),
            mapping_file: get(ENV_MAPPING_FILE).map(PathBuf::from),
            max_body_bytes: number(ENV_MAX_BODY_BYTES, "bytes, above 0")?
                .map_or(DEFAULT_MAX_BODY_BYTES, |n| n as usize),
            client,
            invocation_budget: number(ENV_INVOCATION_BUDGET_MS, "milliseconds, above 0")?
                .map_or(DEFAULT_INVOCATION_BUDGET, Duration::from_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn secret_location_and_defaults() {
        assert_eq!(settings(&[]).unwrap_err(), ConfigError::NoSecret);
        let s = settings(&[(ENV_SECRET_ID, "arn:aws:secretsmanager:x")]).unwrap();
        assert_eq!(
            s.secret,
            SecretLocation::SecretsManager("arn:aws:secretsmanager:x".into())
        );
        assert_eq!(s.secret_ttl, DEFAULT_SECRET_TTL);
        assert_eq!(s.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        let s = settings(&[
            (ENV_SECRET_ID, "id"),
            (ENV_SECRET_FILE, "local/secret.json"),
        ])
        .unwrap();
        assert_eq!(s.secret, SecretLocation::File("local/secret.json".into()));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = settings(&[(ENV_SECRET_ID, "id"), (ENV_MAX_BODY_BYTES, "lots")]).unwrap_err();
        assert!(
            err.to_string().starts_with("MAX_BODY_BYTES=\"lots\""),
            "{err}"
        );
        assert!(settings(&[(ENV_SECRET_ID, "id"), (ENV_AC_RATE_PER_SEC, "0")]).is_err());
        let s = settings(&[
            (ENV_SECRET_ID, "id"),
            (ENV_AC_RATE_PER_SEC, "2.5"),
            (ENV_AC_TIMEOUT_MS, "1500"),
        ])
        .unwrap();
        assert_eq!(s.client.requests_per_second, 2.5);
        assert_eq!(s.client.call_timeout, Duration::from_millis(1500));
        let shared = settings(&[(ENV_SECRET_ID, "id"), (ENV_AC_SHARED_BY, "2")]).unwrap();
        assert_eq!(shared.client.requests_per_second, 2.5);
        assert!((shared.client.imports_per_second * 60.0 - 50.0).abs() < 1e-9);
        let explicit = settings(&[
            (ENV_SECRET_ID, "id"),
            (ENV_AC_SHARED_BY, "4"),
            (ENV_AC_IMPORTS_PER_MIN, "30"),
        ])
        .unwrap();
        assert_eq!(explicit.client.requests_per_second, 1.25);
        assert!((explicit.client.imports_per_second * 60.0 - 30.0).abs() < 1e-9);
        assert!(settings(&[(ENV_SECRET_ID, "id"), (ENV_AC_SHARED_BY, "0")]).is_err());
        let roots = settings(&[(ENV_SECRET_ID, "id"), ("TLS_ROOTS", "native")]).unwrap_err();
        assert!(
            roots.to_string().starts_with("TLS_ROOTS=\"native\""),
            "{roots}"
        );
        assert!(settings(&[(ENV_SECRET_ID, "id"), ("TLS_ROOTS", "system")]).is_ok());
    }

    #[test]
    fn recorded_imports_need_their_callback_url() {
        let s = settings(&[(ENV_SECRET_ID, "id"), (ENV_IMPORTS_TABLE, "imports")]).unwrap();
        let error = s.check_imports_callback().unwrap_err().to_string();
        assert!(error.contains("CALLBACK_URL"), "{error}");
        let s = settings(&[
            (ENV_SECRET_ID, "id"),
            (ENV_IMPORTS_TABLE, "imports"),
            (ENV_CALLBACK_URL, "https://cb.example/"),
        ])
        .unwrap();
        assert!(s.check_imports_callback().is_ok());
    }

    #[test]
    fn delivery_mode() {
        assert_eq!(
            settings(&[(ENV_SECRET_ID, "id")]).unwrap().delivery,
            DeliveryMode::Inline
        );
        assert_eq!(
            settings(&[(ENV_SECRET_ID, "id"), (ENV_DELIVERY, "queue")]).unwrap_err(),
            ConfigError::NoQueue
        );
        let s = settings(&[
            (ENV_SECRET_ID, "id"),
            (ENV_DELIVERY, "queue"),
            (ENV_QUEUE_URL, "http://q"),
        ])
        .unwrap();
        assert_eq!(s.delivery, DeliveryMode::Queue("http://q".into()));
        assert!(settings(&[(ENV_SECRET_ID, "id"), (ENV_DELIVERY, "carrier-pigeon")]).is_err());
    }
}
