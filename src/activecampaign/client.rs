//! The ActiveCampaign HTTP client: v1 calls with the key in the `API-TOKEN` header, paced,
//! retried with backoff on 429, 5xx, 3xx, timeouts, connection errors and unreadable or
//! oversized answers, always within the invocation's deadline, with an explicit timeout on
//! every call. Redirects are never followed: a 301/302 turns the POST into a bodyless GET and
//! would carry the `API-TOKEN` header to whatever host it names.
//!
//! v1 answers a wrong or revoked key with HTTP 200 and `result_code` 0, the same shape as a
//! refusal of the data. So a `result_code` 0 is only taken for a data refusal once the key is
//! known good: one v3 `GET /api/3/users/me` (200 = good, 401/403 = refused), whose "good"
//! verdict is trusted for [`KEY_CONFIRMATION_TTL`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tokio::time::Instant;

use super::contact_sync::ContactSync;
use super::pacer::Pacer;
use super::response::{SubscriberStatus, V1Answer, list_statuses, parse_v1, subscriber_id};

pub const V1_PATH: &str = "/admin/api.php";
/// The cheapest authenticated v3 call: who the key belongs to.
pub const USERS_ME_PATH: &str = "/api/3/users/me";
pub const API_TOKEN_HEADER: &str = "API-TOKEN";
/// How long a key confirmed good is trusted before a `result_code` 0 confirms it again: a
/// stream of genuine refusals costs one extra call a minute, and a key revoked mid-stream is
/// noticed within that minute.
pub const KEY_CONFIRMATION_TTL: Duration = Duration::from_secs(60);
/// The largest answer read; a larger (or endless) one is an unknown outcome, not a reason to
/// run out of memory. ActiveCampaign's answers here are a few KB.
pub const MAX_ANSWER_BYTES: usize = 512 * 1024;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Where and as whom to call.
#[derive(Clone, Copy)]
pub struct Account<'a> {
    pub api_url: &'a str,
    pub api_key: &'a SecretString,
}

/// The Bulk Contact Importer's documented pace: 100 imports a minute.
pub const DEFAULT_IMPORTS_PER_SECOND: f64 = 100.0 / 60.0;

#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Upper bound of one HTTP call (connect, send, read).
    pub call_timeout: Duration,
    pub requests_per_second: f64,
    /// Pace of bulk imports (ActiveCampaign allows 100 per minute).
    pub imports_per_second: f64,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            requests_per_second: super::pacer::DEFAULT_REQUESTS_PER_SECOND,
            imports_per_second: DEFAULT_IMPORTS_PER_SECOND,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
        }
    }
}

/// The answer to one `contact_sync`.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncAnswer {
    Synced {
        subscriber_id: Option<u64>,
    },
    /// `result_code` 0 with a key confirmed good: the data was refused (invalid email, ...).
    Refused {
        message: String,
    },
}

/// A contact's current list statuses.
#[derive(Debug, Clone, PartialEq)]
pub enum ListLookup {
    NotFound,
    Found(std::collections::BTreeMap<u64, SubscriberStatus>),
}

/// Why a call did not get an answer that settles the contact.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AcError {
    #[error("ActiveCampaign refused the API key (HTTP {status})")]
    Unauthorized { status: u16 },
    #[error("ActiveCampaign unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
}

pub use crate::https::ClientBuildError;

#[derive(Debug, Clone)]
pub struct ActiveCampaignClient {
    http: reqwest::Client,
    pacer: Arc<Pacer>,
    /// The bulk importer has its own, separate limit (100 requests per minute).
    bulk_pacer: Arc<Pacer>,
    settings: ClientSettings,
    /// The account and key last confirmed good, when, and the refusal messages it was
    /// confirmed for (see [`KEY_CONFIRMATION_TTL`]).
    confirmed_key: Arc<Mutex<Option<ConfirmedKey>>>,
}

/// A digest of an account's URL and key: which key was confirmed, without keeping a copy.
type KeyFingerprint = [u8; 32];

/// A key confirmed good, and the `result_message`s that confirmation covers. A refusal with
/// another message is confirmed again even within the minute: a key revoked mid-stream
/// answers with a message of its own ("not authorized", in whatever language), so it is
/// caught at once while a stream of one genuine refusal still costs one check a minute.
/// Messages are only compared for equality, never read.
#[derive(Debug, Clone)]
struct ConfirmedKey {
    key: KeyFingerprint,
    at: Instant,
    messages: Vec<String>,
}

/// The most distinct refusal messages one confirmation covers.
const MAX_CONFIRMED_MESSAGES: usize = 8;

fn fingerprint(account: Account<'_>) -> KeyFingerprint {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(account.api_url.trim_end_matches('/').as_bytes());
    digest.update([0]);
    digest.update(account.api_key.expose_secret().as_bytes());
    digest.finalize().into()
}

impl ActiveCampaignClient {
    pub fn new(settings: ClientSettings) -> Result<Self, ClientBuildError> {
        let http = crate::https::client(settings.call_timeout.min(Duration::from_secs(3)))?;
        Ok(Self {
            http,
            pacer: Arc::new(Pacer::new(settings.requests_per_second)),
            bulk_pacer: Arc::new(Pacer::new(settings.imports_per_second)),
            settings,
            confirmed_key: Arc::new(Mutex::new(None)),
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    pub(crate) fn bulk_pacer(&self) -> &Pacer {
        &self.bulk_pacer
    }

    /// `contact_sync`: adds or updates the contact matched by email. A `result_code` 0 is a
    /// [`SyncAnswer::Refused`] only once the key is confirmed good; a refused key is
    /// [`AcError::Unauthorized`].
    pub async fn contact_sync(
        &self,
        account: Account<'_>,
        contact: &ContactSync,
        deadline: Instant,
    ) -> Result<SyncAnswer, AcError> {
        let url = v1_url(account.api_url, "contact_sync");
        let body = contact.encode();
        let mut asked = false;
        loop {
            let answer = self
                .call_v1(
                    deadline,
                    || {
                        self.http
                            .post(&url)
                            .header(API_TOKEN_HEADER, account.api_key.expose_secret())
                            .header(http::header::CONTENT_TYPE, FORM_CONTENT_TYPE)
                            .body(body.clone())
                    },
                    |answer| match answer {
                        V1Answer::Success { body } => Some(SyncAnswer::Synced {
                            subscriber_id: subscriber_id(&body),
                        }),
                        V1Answer::Refused { message } => Some(SyncAnswer::Refused { message }),
                        V1Answer::Unknown => None,
                    },
                )
                .await?;
            let SyncAnswer::Refused { message } = &answer else {
                return Ok(answer);
            };
            if !self.confirm_key(account, message, deadline).await? || asked {
                return Ok(answer);
            }
            // Confirmed just now: the key is good, but it may not have been a moment ago (a
            // key refused for a while, then accepted again). The refusal stands once it comes
            // again with the verdict in hand.
            asked = true;
        }
    }

    /// `contact_view_email`: the contact's list statuses, to avoid re-subscribing someone.
    pub async fn list_statuses(
        &self,
        account: Account<'_>,
        email: &str,
        deadline: Instant,
    ) -> Result<ListLookup, AcError> {
        let mut url = v1_url(account.api_url, "contact_view_email");
        url.push_str("&email=");
        url.extend(form_urlencoded::byte_serialize(email.as_bytes()));
        let mut asked = false;
        loop {
            let lookup = self
                .call_v1(
                    deadline,
                    || {
                        self.http
                            .get(&url)
                            .header(API_TOKEN_HEADER, account.api_key.expose_secret())
                    },
                    |answer| match answer {
                        V1Answer::Success { body } => {
                            Some((ListLookup::Found(list_statuses(&body)), None))
                        }
                        // With a good key, `result_code` 0 here means "nothing is returned": no
                        // such contact. With a bad key it looks the same, hence the check below.
                        V1Answer::Refused { message } => {
                            Some((ListLookup::NotFound, Some(message)))
                        }
                        V1Answer::Unknown => None,
                    },
                )
                .await?;
            let (ListLookup::NotFound, Some(message)) = &lookup else {
                return Ok(lookup.0);
            };
            // As for `contact_sync`: a "not found" confirmed just now is asked once more.
            if !self.confirm_key(account, message, deadline).await? || asked {
                return Ok(lookup.0);
            }
            asked = true;
        }
    }

    /// Confirms that ActiveCampaign accepts the key (v3 `GET /api/3/users/me`) behind a
    /// refusal with `message`, unless it was confirmed within [`KEY_CONFIRMATION_TTL`] for a
    /// refusal with the same message. 401/403 is [`AcError::Unauthorized`]; no answer within
    /// the deadline is [`AcError::Unavailable`] (the caller cannot tell a data refusal from a
    /// key problem, so nothing is settled). `Ok(true)` when ActiveCampaign was asked now,
    /// `Ok(false)` when an earlier verdict covers the message.
    pub async fn confirm_key(
        &self,
        account: Account<'_>,
        message: &str,
        deadline: Instant,
    ) -> Result<bool, AcError> {
        let key = fingerprint(account);
        let fresh = self
            .confirmed_key
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|c| c.key == key && c.at.elapsed() < KEY_CONFIRMATION_TTL);
        if fresh
            .as_ref()
            .is_some_and(|c| c.messages.iter().any(|m| m == message))
        {
            return Ok(false);
        }
        let url = format!("{}{USERS_ME_PATH}", account.api_url.trim_end_matches('/'));
        self.call(
            &self.pacer,
            deadline,
            || {
                self.http
                    .get(&url)
                    .header("Api-Token", account.api_key.expose_secret())
            },
            |status, headers, _| classify_status(status, headers).unwrap_or(Attempt::Done(())),
        )
        .await?;
        if let Ok(mut confirmed) = self.confirmed_key.lock() {
            // Within the minute, the messages confirmed so far stay covered.
            let mut messages = fresh.map(|c| c.messages).unwrap_or_default();
            if messages.len() == MAX_CONFIRMED_MESSAGES {
                messages.remove(0);
            }
            messages.push(message.to_string());
            *confirmed = Some(ConfirmedKey {
                key,
                at: Instant::now(),
                messages,
            });
        }
        Ok(true)
    }

    async fn call_v1<T>(
        &self,
        deadline: Instant,
        request: impl Fn() -> reqwest::RequestBuilder,
        interpret: impl Fn(V1Answer) -> Option<T>,
    ) -> Result<T, AcError> {
        self.call(
            &self.pacer,
            deadline,
            request,
            |status, headers, body| match classify_status(status, headers) {
                Some(attempt) => attempt,
                None => match interpret(parse_v1(body)) {
                    Some(done) => Attempt::Done(done),
                    None => Attempt::Retry {
                        reason: "empty or non-JSON answer (outcome unknown)".into(),
                        after: None,
                    },
                },
            },
        )
        .await
    }

    /// Sends a request until `classify` settles it or the deadline leaves no room: paced by
    /// `pacer`, with an explicit timeout per call, backing off between attempts.
    pub(crate) async fn call<T>(
        &self,
        pacer: &Pacer,
        deadline: Instant,
        request: impl Fn() -> reqwest::RequestBuilder,
        classify: impl Fn(reqwest::StatusCode, &HeaderMap, &[u8]) -> Attempt<T>,
    ) -> Result<T, AcError> {
        let mut attempt: u32 = 0;
        let mut reason = String::from("no time left before the deadline");
        loop {
            attempt += 1;
            if let Err(wait) = pacer.acquire(deadline).await {
                // The pacer is held back past the deadline (a long `Retry-After`): the real
                // wait is what the sender or the queue should be told.
                return Err(AcError::Unavailable {
                    reason,
                    retry_after: Some(wait),
                });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(AcError::Unavailable {
                    reason,
                    retry_after: None,
                });
            }
            let mut retry_after = None;
            let sent = request()
                .timeout(self.settings.call_timeout.min(remaining))
                .send()
                .await;
            match sent {
                // A call cut short by the deadline says less than the answer before it
                // (`HTTP 429`), so that answer stays the reason.
                Err(error)
                    if attempt > 1
                        && error.is_timeout()
                        && remaining < self.settings.call_timeout =>
                {
                    reason = format!("{reason}, then no answer before the deadline");
                }
                Err(error) => reason = describe_transport_error(&error),
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match read_capped(response).await {
                        Err(why) => reason = why,
                        Ok(body) => match classify(status, &headers, &body) {
                            Attempt::Done(done) => return Ok(done),
                            Attempt::Fail(error) => return Err(error),
                            Attempt::Retry { reason: why, after } => {
                                reason = why;
                                retry_after = after;
                                if let Some(wait) = after {
                                    // Everyone waits, not only this request.
                                    pacer.pause_until(Instant::now() + wait).await;
                                }
                            }
                        },
                    }
                }
            }
            let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
            let wake = Instant::now() + wait;
            if wake >= deadline {
                return Err(AcError::Unavailable {
                    reason,
                    retry_after: Some(wait),
                });
            }
            tracing::warn!(attempt, reason = %reason, wait_ms = wait.as_millis() as u64, "Retrying ActiveCampaign call.");
            tokio::time::sleep_until(wake).await;
        }
    }

    /// Exponential backoff with jitter (50–100 % of the step), capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .settings
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.settings.max_backoff);
        step.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// What one answer means for the call.
pub(crate) enum Attempt<T> {
    Done(T),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fail(AcError),
}

/// The statuses every endpoint treats alike: 429 and 5xx are retried (honouring
/// `Retry-After`), 3xx too (a redirect is not followed, so the outcome is unknown), 401/403
/// mean the key is refused, other 4xx will not change on a retry. `None` for 2xx: the body
/// decides.
pub(crate) fn classify_status<T>(
    status: reqwest::StatusCode,
    headers: &HeaderMap,
) -> Option<Attempt<T>> {
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Some(Attempt::Retry {
            reason: format!("HTTP {}", status.as_u16()),
            after: parse_retry_after(headers),
        });
    }
    if status.is_redirection() {
        return Some(Attempt::Retry {
            reason: format!(
                "HTTP {} redirect, not followed (outcome unknown)",
                status.as_u16()
            ),
            after: None,
        });
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Some(Attempt::Fail(AcError::Unauthorized {
            status: status.as_u16(),
        }));
    }
    if !status.is_success() {
        // Other 4xx will not change on a retry: the URL or account is wrong.
        return Some(Attempt::Fail(AcError::Unavailable {
            reason: format!("unexpected HTTP {}", status.as_u16()),
            retry_after: None,
        }));
    }
    None
}

fn v1_url(api_url: &str, action: &str) -> String {
    format!(
        "{}{V1_PATH}?api_action={action}&api_output=json",
        api_url.trim_end_matches('/')
    )
}

/// `Retry-After` in seconds (the HTTP-date form is rare here and falls back to backoff).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The answer's body, up to [`MAX_ANSWER_BYTES`]; a larger one is a reason to retry.
async fn read_capped(mut response: reqwest::Response) -> Result<bytes::Bytes, String> {
    let too_large = || format!("answer larger than {MAX_ANSWER_BYTES} bytes (outcome unknown)");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| describe_transport_error(&e))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A transport error without its URL (which may carry an email in a query).
fn describe_transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        format!(
            "transport error: {}",
            std::error::Error::source(error)
                .map_or_else(|| "request failed".to_string(), |s| s.to_string())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, "-1".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn url_shape() {
        assert_eq!(
            v1_url("https://acct.api-us1.com/", "contact_sync"),
            "https://acct.api-us1.com/admin/api.php?api_action=contact_sync&api_output=json"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let client = ActiveCampaignClient::new(ClientSettings::default()).unwrap();
        assert!(client.backoff(1) <= Duration::from_millis(250));
        assert!(client.backoff(1) >= Duration::from_millis(125));
        assert!(client.backoff(30) <= Duration::from_secs(4));
        assert!(client.backoff(30) >= Duration::from_secs(2));
    }
}
