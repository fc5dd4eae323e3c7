//! The deployment's secret: ActiveCampaign URL and key, per-route webhook secrets and the
//! callback secret. Fetched lazily, cached per container with a TTL, refreshed once when
//! ActiveCampaign refuses the key, and never logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use thiserror::Error;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Default time a fetched secret is trusted before it is read again.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);
/// How long a stale secret keeps serving while its source is unreachable.
const STALE_GRACE: Duration = Duration::from_secs(30);

/// The `SecretString` JSON of the secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSecret {
    pub api_url: String,
    pub api_key: SecretString,
    /// Route name → secret, or a list of secrets during a rotation.
    #[serde(default, deserialize_with = "one_or_many")]
    pub webhook_secrets: HashMap<String, Vec<SecretString>>,
    pub callback_secret: Option<SecretString>,
    /// Route name → its captcha provider's secret key (routes with `captcha`).
    #[serde(default)]
    pub captcha_secrets: HashMap<String, SecretString>,
    /// Route name → the credentials its sender's API takes (senders whose webhooks carry
    /// only ids: `{"access_token": "…"}` for BigCommerce). Never logged (see `Debug`).
    #[serde(default)]
    pub sender_api: HashMap<String, serde_json::Value>,
}

impl std::fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecret")
            .field("api_url", &self.api_url)
            .field("routes", &self.webhook_secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AppSecret {
    /// Parses and checks the JSON: a usable URL and a non-empty key.
    pub fn from_json(json: &str) -> Result<Self, SecretError> {
        let mut secret: AppSecret =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
                .map_err(|e| SecretError::Malformed(describe_without_values(&e)))?;
        check_api_url(&secret.api_url)?;
        if secret.api_key.expose_secret().trim().is_empty() {
            return Err(SecretError::Malformed("api_key is empty".into()));
        }
        check_sender_api(&mut secret.sender_api)?;
        Ok(secret)
    }

    /// The secrets that authenticate a route (empty when none is configured).
    /// Whether `other` names the same account with the same key (compared in constant time,
    /// like every comparison of a secret here).
    pub fn same_account(&self, other: &AppSecret) -> bool {
        crate::crypto::constant_time_eq(
            self.api_key.expose_secret().as_bytes(),
            other.api_key.expose_secret().as_bytes(),
        ) && self.api_url == other.api_url
    }

    pub fn route_secrets(&self, route: &str) -> &[SecretString] {
        self.webhook_secrets.get(route).map_or(&[], Vec::as_slice)
    }
}

/// Each `sender_api` entry is an object of strings (its keys are checked per API at lookup,
/// where a missing one is named). A number or a boolean is read as its text (a `portal_id` of
/// 62515); an entry of another shape fails the whole secret, naming the route and key but
/// never a value.
fn check_sender_api(entries: &mut HashMap<String, serde_json::Value>) -> Result<(), SecretError> {
    for (route, entry) in entries {
        let Some(fields) = entry.as_object_mut() else {
            return Err(SecretError::Malformed(format!(
                "sender_api.{route} must be an object, e.g. {{\"access_token\": \"…\"}}"
            )));
        };
        for (key, value) in fields.iter_mut() {
            match value {
                serde_json::Value::String(_) => {}
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                    *value = serde_json::Value::String(value.to_string());
                }
                _ => {
                    return Err(SecretError::Malformed(format!(
                        "sender_api.{route}.{key} must be a string"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `api_url` must be `https://`: the key travels in a header of every call. Plain `http://`
/// is allowed only for loopback addresses (the local sandbox and test fakes).
fn check_api_url(api_url: &str) -> Result<(), SecretError> {
    let refuse = |why: &str| Err(SecretError::Malformed(format!("api_url {why}")));
    let Ok(url) = reqwest::Url::parse(api_url) else {
        return refuse("is not a URL (expected https://ACCOUNT.api-us1.com)");
    };
    if url.host().is_none() {
        return refuse("has no host (expected https://ACCOUNT.api-us1.com)");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => {
            refuse("must be https:// (plain http:// only for loopback addresses, for local runs)")
        }
        _ => refuse("must be an https:// URL"),
    }
}

/// Whether `url` names this machine (where plain `http://` is safe: the sandbox, test fakes).
pub fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Where the JSON is wrong, and how, without what it holds: serde's own message quotes a
/// wrong value (`invalid type: integer `123456`, expected a string`), which may be a key.
fn describe_without_values(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = error.inner();
    if inner.classify() != serde_json::error::Category::Data {
        // Syntax and end-of-input messages give a position, never a value.
        return inner.to_string();
    }
    let path = error.path().to_string();
    let message = inner.to_string();
    let names_only_keys = ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|start| message.starts_with(start));
    let how = if names_only_keys {
        message
    } else if let Some((_, expected)) = message.rsplit_once(", expected ") {
        // The last `, expected`: a quoted value may itself hold the words.
        let expected = expected.split(" at line ").next().unwrap_or(expected);
        format!("wrong type or value (expected {expected})")
    } else {
        "not a valid value".to_string()
    };
    if path == "." {
        how
    } else {
        format!("key {path}: {how}")
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<HashMap<String, Vec<SecretString>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let raw: HashMap<String, OneOrMany> = HashMap::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(route, value)| {
            let values = match value {
                OneOrMany::One(v) => vec![v],
                OneOrMany::Many(vs) => vs,
            };
            let secrets = values
                .into_iter()
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
                .collect();
            (route, secrets)
        })
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    #[error("secret not found: {0}")]
    NotFound(String),
    #[error("secret is malformed: {0}")]
    Malformed(String),
}

/// Where the secret is read from: Secrets Manager in a deployment
/// ([`crate::aws::secrets_manager::SecretsManager`]), a file in local runs ([`SecretFile`]),
/// a fixed document in tests and the preview ([`FixedSecret`]).
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync {
    async fn fetch(&self) -> Result<AppSecret, SecretError>;
}

/// A JSON file of the secret's shape, for local runs without AWS.
#[derive(Debug, Clone)]
pub struct SecretFile(pub PathBuf);

#[async_trait::async_trait]
impl SecretSource for SecretFile {
    async fn fetch(&self) -> Result<AppSecret, SecretError> {
        // A small local file (local runs only): read in place, which also keeps tests on
        // tokio's paused clock deterministic.
        let json = std::fs::read_to_string(&self.0)
            .map_err(|e| SecretError::NotFound(format!("cannot read {}: {e}", self.0.display())))?;
        AppSecret::from_json(&json)
    }
}

/// A fixed JSON document (tests, preview).
#[derive(Debug, Clone)]
pub struct FixedSecret(pub String);

#[async_trait::async_trait]
impl SecretSource for FixedSecret {
    async fn fetch(&self) -> Result<AppSecret, SecretError> {
        AppSecret::from_json(&self.0)
    }
}

/// Bounds a read of the secret by the invocation's deadline: a store that hangs must not use
/// up the time in which the sender is owed an answer.
pub async fn before_deadline<T>(
    deadline: Instant,
    read: impl std::future::Future<Output = Result<T, SecretError>>,
) -> Result<T, SecretError> {
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or_else(|_| {
            Err(SecretError::Unavailable(
                "no answer before the invocation's deadline".into(),
            ))
        })
}

struct Cached {
    secret: Arc<AppSecret>,
    fetched_at: Instant,
    /// When refreshing first failed, while it keeps failing: the stale copy serves for
    /// [`STALE_GRACE`] from then, and not a moment longer.
    failing_since: Option<Instant>,
    /// No new attempt before this while failing (one read a second, not one per request).
    retry_at: Option<Instant>,
}

/// Least time between two reads of a secret whose refresh is failing.
const FAILING_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// A per-container cache in front of a [`SecretSource`].
pub struct SecretCache {
    source: Box<dyn SecretSource>,
    ttl: Duration,
    state: Mutex<Option<Cached>>,
}

impl SecretCache {
    pub fn new(source: impl SecretSource + 'static, ttl: Duration) -> Self {
        Self {
            source: Box::new(source),
            ttl,
            state: Mutex::new(None),
        }
    }

    /// The cached secret, fetched when absent or older than the TTL. When the source fails
    /// and a stale copy exists, the stale copy serves for [`STALE_GRACE`] from the first
    /// failure; after that the error is returned (a token the operator meant to remove, or a
    /// key that was rotated away, must stop working).
    pub async fn get(&self) -> Result<Arc<AppSecret>, SecretError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(cached) = state.as_ref() {
            if cached.fetched_at.elapsed() < self.ttl {
                return Ok(cached.secret.clone());
            }
            let in_grace = cached
                .failing_since
                .is_some_and(|since| now.duration_since(since) < STALE_GRACE);
            if in_grace && cached.retry_at.is_some_and(|at| now < at) {
                return Ok(cached.secret.clone());
            }
        }
        match self.source.fetch().await {
            Ok(secret) => {
                let secret = Arc::new(secret);
                *state = Some(Cached::fresh(secret.clone()));
                Ok(secret)
            }
            Err(error) => match state.as_mut() {
                Some(cached) => {
                    let since = *cached.failing_since.get_or_insert(now);
                    if now.duration_since(since) >= STALE_GRACE {
                        tracing::error!(error = %error, "Secret refresh has failed for longer than the grace period; not serving the cached copy.");
                        return Err(error);
                    }
                    tracing::warn!(error = %error, "Secret refresh failed; serving the cached copy a little longer.");
                    cached.retry_at = Some(now + FAILING_RETRY_INTERVAL);
                    Ok(cached.secret.clone())
                }
                None => Err(error),
            },
        }
    }

    /// Re-reads the secret after ActiveCampaign refused `stale`'s key. If another request
    /// already refreshed it, that copy is returned without a second fetch.
    pub async fn refresh(&self, stale: &Arc<AppSecret>) -> Result<Arc<AppSecret>, SecretError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = state.as_ref()
            && !Arc::ptr_eq(&cached.secret, stale)
        {
            return Ok(cached.secret.clone());
        }
        let secret = Arc::new(self.source.fetch().await?);
        *state = Some(Cached::fresh(secret.clone()));
        Ok(secret)
    }
}

impl Cached {
    fn fresh(secret: Arc<AppSecret>) -> Self {
        Self {
            secret,
            fetched_at: Instant::now(),
            failing_since: None,
            retry_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"api_url":"https://acct.api-us1.com","api_key":"k-123","webhook_secrets":{"shopify":"s1","stripe":["whsec_new","whsec_old"],"empty":""},"callback_secret":"cb"}"#;

    #[test]
    fn a_sender_api_entry_of_the_wrong_shape_is_named_without_its_value() {
        let with = |entry: &str| {
            AppSecret::from_json(&JSON.replacen(
                '{',
                &format!(r#"{{"sender_api":{{"hubspot":{entry}}},"#),
                1,
            ))
        };
        assert!(with(r#"{"access_token":"pat-1"}"#).is_ok());
        let not_object = with(r#""pat-secret-1""#).unwrap_err().to_string();
        assert!(
            not_object.contains("sender_api.hubspot must be an object"),
            "{not_object}"
        );
        assert!(!not_object.contains("pat-secret-1"));
        let number = with(r#"{"access_token":"pat-1","portal_id":62515}"#).unwrap();
        assert_eq!(number.sender_api["hubspot"]["portal_id"], "62515");
        let list = with(r#"{"access_token":"pat-1","portal_id":["62515"]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            list.contains("sender_api.hubspot.portal_id must be a string"),
            "{list}"
        );
        assert!(!list.contains("62515"));
    }

    #[test]
    fn parses_one_or_many_and_hides_values() {
        let secret = AppSecret::from_json(JSON).unwrap();
        assert_eq!(secret.route_secrets("shopify").len(), 1);
        assert_eq!(secret.route_secrets("stripe").len(), 2);
        assert!(secret.route_secrets("empty").is_empty());
        assert!(secret.route_secrets("unknown").is_empty());
        let debug = format!("{secret:?}");
        assert!(
            !debug.contains("k-123") && !debug.contains("whsec_new") && !debug.contains("cb\"")
        );
    }

    #[test]
    fn malformed_secrets_name_the_key_not_the_value() {
        let missing = AppSecret::from_json(r#"{"api_url":"https://x"}"#).unwrap_err();
        assert!(missing.to_string().contains("api_key"), "{missing}");
        let bad_url =
            AppSecret::from_json(r#"{"api_url":"x","api_key":"super-secret"}"#).unwrap_err();
        assert!(
            bad_url.to_string().contains("api_url")
                && !bad_url.to_string().contains("super-secret")
        );
        assert!(matches!(
            AppSecret::from_json("not json"),
            Err(SecretError::Malformed(_))
        ));
        // serde's own messages quote a value of the wrong type: a key typed as a number,
        // a webhook secret typed as an object. Neither is repeated.
        for (json, key) in [
            (r#"{"api_url":"https://x","api_key":123456}"#, "api_key"),
            (
                r#"{"api_url":"https://x","api_key":"k","webhook_secrets":{"shop":{"v":"whsec_9"}}}"#,
                "webhook_secrets",
            ),
            (
                r#"{"api_url":"https://x","api_key":"k","captcha_secrets":{"newsletter":true}}"#,
                "captcha_secrets.newsletter",
            ),
            (
                r#"{"api_url":"https://x","api_key":"k","callback_secret":987654}"#,
                "callback_secret",
            ),
        ] {
            let message = AppSecret::from_json(json).unwrap_err().to_string();
            assert!(message.contains(key), "{message}");
            for value in ["123456", "whsec_9", "true", "987654"] {
                assert!(!message.contains(value), "{message}");
            }
        }
    }

    #[tokio::test]
    async fn cache_fetches_once_per_ttl_and_refreshes_once() {
        let dir = std::env::temp_dir().join(format!("acws-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.json");
        std::fs::write(&path, JSON).unwrap();
        let cache = SecretCache::new(SecretFile(path.clone()), Duration::from_secs(300));
        let first = cache.get().await.unwrap();
        std::fs::write(&path, JSON.replace("k-123", "k-456")).unwrap();
        let second = cache.get().await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "served from cache within the TTL"
        );
        let refreshed = cache.refresh(&first).await.unwrap();
        assert_eq!(refreshed.api_key.expose_secret(), "k-456");
        // A second refresh for the same stale copy does not fetch again.
        std::fs::remove_file(&path).unwrap();
        let again = cache.refresh(&first).await.unwrap();
        assert!(Arc::ptr_eq(&refreshed, &again));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn api_url_is_https_except_on_loopback() {
        let with_url = |url: &str| {
            AppSecret::from_json(&format!(r#"{{"api_url":"{url}","api_key":"k"}}"#))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        for good in [
            "https://acct.api-us1.com",
            "http://127.0.0.1:4599",
            "http://localhost:9000/",
            "http://[::1]:8080",
            "http://127.9.9.9",
        ] {
            assert_eq!(with_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://acct.api-us1.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "ftp://acct.api-us1.com",
            "acct.api-us1.com",
            "https://",
        ] {
            let error = with_url(bad).unwrap_err();
            assert!(error.contains("api_url"), "{bad}: {error}");
        }
    }

    /// A source that fails whenever `failing` is set.
    fn flaky_source(dir: &str) -> (PathBuf, SecretCache) {
        let dir = std::env::temp_dir().join(format!("acws-{dir}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.json");
        std::fs::write(&path, JSON).unwrap();
        let cache = SecretCache::new(SecretFile(path.clone()), Duration::from_secs(60));
        (path, cache)
    }

    #[tokio::test(start_paused = true)]
    async fn the_stale_grace_ends_thirty_seconds_after_the_first_failed_refresh() {
        let (path, cache) = flaky_source("grace");
        cache.get().await.unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        std::fs::write(&path, "{ not json").unwrap();
        // Refreshes keep failing: the cached copy serves through the grace period...
        for _ in 0..29 {
            assert!(cache.get().await.is_ok());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(
            cache.get().await.is_ok(),
            "still within 30 s of the first failure"
        );
        // ...and not after it, however often it was tried in between.
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(matches!(cache.get().await, Err(SecretError::Malformed(_))));
        assert!(cache.get().await.is_err());
        // A good secret again ends the failure.
        std::fs::write(&path, JSON).unwrap();
        assert!(cache.get().await.is_ok());
        std::fs::remove_file(&path).ok();
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let cache = SecretCache::new(
            SecretFile("/nonexistent/secret.json".into()),
            DEFAULT_SECRET_TTL,
        );
        assert!(matches!(cache.get().await, Err(SecretError::NotFound(_))));
    }
}
