//! Lookups: senders whose webhooks carry only ids (a BigCommerce order's `data.id`, a Paddle
//! transaction's `customer_id`). The
//! sender's parser leaves a [`Lookup`], the reference; delivery looks it up through the
//! sender's own API with the route's credentials (`sender_api.{route}` in the secret), and
//! the object found becomes the submission the route maps ([`found_submission`]). In queue
//! mode the webhook function queues the reference and the sync-worker looks it up, so the
//! sender is answered in milliseconds.

pub mod bigcommerce;
pub mod customers;
pub mod hubspot;
pub mod squarespace;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::time::Instant;

use crate::submission::Submission;

/// The APIs looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    BigCommerce,
    Squarespace,
    Stripe,
    Paddle,
    #[serde(rename = "hubspot")]
    HubSpot,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::BigCommerce => "bigcommerce",
            Api::Squarespace => "squarespace",
            Api::Stripe => "stripe",
            Api::Paddle => "paddle",
            Api::HubSpot => "hubspot",
        }
    }

    /// The credential keys a route needs under `sender_api.{route}`.
    pub fn credential_keys(self) -> &'static [&'static str] {
        match self {
            Api::BigCommerce | Api::HubSpot => &["access_token"],
            Api::Squarespace | Api::Paddle => &["api_key"],
            Api::Stripe => &["secret_key"],
        }
    }
}

/// What a webhook referred to: an object of a sender's API, by id, with what the webhook said
/// of where it lives (a BigCommerce store's hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    pub api: Api,
    /// What is looked up, for reasons and logs (`order 100`).
    pub object: String,
    pub id: String,
    /// Further objects of the same kind that the same webhook named (the several contacts of
    /// one HubSpot request), looked up in the same call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
    /// What the webhook said of each object when it named several (HubSpot's events), by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub objects: BTreeMap<String, NamedObject>,
}

/// One of several objects a webhook named: its own delivery (the identities of the events
/// about it), the topics of those events, and the account they came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NamedObject {
    pub delivery: String,
    pub topics: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl Lookup {
    /// Every id named, in order.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.id).chain(&self.more_ids)
    }

    /// One lookup per object named, each on its own (queued as its own message).
    pub fn one_per_object(&self) -> Vec<Lookup> {
        self.ids()
            .map(|id| Lookup {
                id: id.clone(),
                more_ids: Vec::new(),
                objects: self
                    .objects
                    .get(id)
                    .map(|o| BTreeMap::from([(id.clone(), o.clone())]))
                    .unwrap_or_default(),
                ..self.clone()
            })
            .collect()
    }

    /// Keeps the objects `keep` accepts; `None` when none is left.
    pub fn retain(&self, keep: impl Fn(&str, Option<&NamedObject>) -> bool) -> Option<Lookup> {
        let kept: Vec<String> = self
            .ids()
            .filter(|id| keep(id, self.objects.get(*id)))
            .cloned()
            .collect();
        let (first, more) = kept.split_first()?;
        Some(Lookup {
            id: first.clone(),
            more_ids: more.to_vec(),
            objects: self
                .objects
                .iter()
                .filter(|(id, _)| kept.contains(id))
                .map(|(id, o)| (id.clone(), o.clone()))
                .collect(),
            ..self.clone()
        })
    }

    /// The delivery of one object of several, as the webhook named it.
    pub fn delivery_of(&self, id: &str) -> Option<&str> {
        self.objects.get(id).map(|o| o.delivery.as_str())
    }
}

/// Why a lookup found nothing to map.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LookupError {
    /// The API failed or asked to wait: the lookup is tried again (503, or the queue's retry).
    #[error("the {api} API is unavailable: {reason}")]
    Unavailable {
        api: &'static str,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The object no longer exists: nothing to sync (answered `ignored`).
    #[error("{api} {object} {id} was not found (HTTP 404)")]
    NotFound {
        api: &'static str,
        object: String,
        id: String,
    },
    /// The route has no credentials for its sender's API (answered `ignored`, never guessed).
    #[error("the secret has no sender_api.{route}.{key}: add the route's {api} API credentials")]
    MissingCredentials {
        api: &'static str,
        route: String,
        key: &'static str,
    },
    /// The API refused the credentials: an operator must fix them.
    #[error("the {api} API refused the credentials of sender_api.{route} (HTTP {status})")]
    Refused {
        api: &'static str,
        route: String,
        status: u16,
    },
    /// A webhook from another store than the route's credentials are for (an app installed
    /// on several stores shares its client secret): nothing to look up with them.
    #[error(
        "the webhook is from {api} store {webhook}, and sender_api.{route} is for store {configured}: give each store its own route"
    )]
    OtherStore {
        api: &'static str,
        route: String,
        webhook: String,
        configured: String,
    },
    /// The API answered something that is not the object.
    #[error("the {api} API answered {what}")]
    Unreadable { api: &'static str, what: String },
}

impl LookupError {
    /// Whether a later try can succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, LookupError::Unavailable { .. })
    }
}

/// The credentials a route's lookups use, checked for the keys its API needs.
#[derive(Clone)]
pub struct Credentials {
    values: Map<String, Value>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// The route's `sender_api` entry, if it has every key `api` needs.
    pub fn for_route(api: Api, route: &str, entry: Option<&Value>) -> Result<Self, LookupError> {
        let values = entry
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for key in api.credential_keys() {
            let present = values
                .get(*key)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.trim().is_empty());
            if !present {
                return Err(LookupError::MissingCredentials {
                    api: api.name(),
                    route: route.to_string(),
                    key,
                });
            }
        }
        Ok(Self { values })
    }

    fn get(&self, key: &str) -> &str {
        self.values
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// The senders' APIs: one connection pool, a timeout on every call, each API's own limits.
#[derive(Clone)]
pub struct SenderApis {
    http: reqwest::Client,
    /// Replaces every API's base URL (`SENDER_API_URL`: local runs and tests).
    base_override: Option<String>,
}

/// The longest one API call is waited for.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

impl SenderApis {
    pub fn new(base_override: Option<String>) -> Result<Self, crate::https::ClientBuildError> {
        Ok(Self {
            http: crate::https::client(Duration::from_secs(3))?,
            base_override,
        })
    }

    fn base<'a>(&'a self, default: &'a str) -> &'a str {
        self.base_override
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
    }

    /// Looks `lookup` up, retrying what the API asks to retry while `deadline` allows.
    pub async fn fetch(
        &self,
        lookup: &Lookup,
        route: &str,
        credentials: &Credentials,
        deadline: Instant,
    ) -> Result<Value, LookupError> {
        match lookup.api {
            Api::BigCommerce => {
                bigcommerce::fetch(self, lookup, route, credentials, deadline).await
            }
            Api::Squarespace => {
                squarespace::fetch(self, lookup, route, credentials, deadline).await
            }
            Api::Stripe | Api::Paddle => {
                customers::fetch(self, lookup, route, credentials, deadline).await
            }
            Api::HubSpot => hubspot::fetch(self, lookup, route, credentials, deadline).await,
        }
    }

    /// One GET, retried on 429 and 5xx (waiting what the API says, within `deadline`).
    async fn get(
        &self,
        api: Api,
        route: &str,
        url: &str,
        headers: &[(&str, &str)],
        deadline: Instant,
        wait_of: fn(&reqwest::header::HeaderMap) -> Option<Duration>,
    ) -> Result<Option<Value>, LookupError> {
        self.call(api, route, url, None, headers, deadline, wait_of)
            .await
    }

    /// A GET, or a POST of `json` (a read that takes its ids in the body), retried on 429
    /// and 5xx (waiting what the API says, within `deadline`). 404 is `None`.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        api: Api,
        route: &str,
        url: &str,
        json: Option<&Value>,
        headers: &[(&str, &str)],
        deadline: Instant,
        wait_of: fn(&reqwest::header::HeaderMap) -> Option<Duration>,
    ) -> Result<Option<Value>, LookupError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(unavailable(api, "no time left for the call".into(), None));
            }
            let mut request = match json {
                Some(body) => self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string()),
                None => self.http.get(url),
            }
            .timeout(left.min(CALL_TIMEOUT))
            .header(reqwest::header::ACCEPT, "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let body = read_capped(response).await.map_err(|what| {
                            LookupError::Unreadable {
                                api: api.name(),
                                what,
                            }
                        })?;
                        // A 204 or an empty body (an order without products): nothing, found.
                        if body.iter().all(u8::is_ascii_whitespace) {
                            return Ok(Some(Value::Null));
                        }
                        return serde_json::from_slice(&body).map(Some).map_err(|_| {
                            LookupError::Unreadable {
                                api: api.name(),
                                what: "a body that is not JSON".into(),
                            }
                        });
                    }
                    match status.as_u16() {
                        404 => return Ok(None),
                        401 | 403 => {
                            return Err(LookupError::Refused {
                                api: api.name(),
                                route: route.to_string(),
                                status: status.as_u16(),
                            });
                        }
                        429 | 500..=599 => (
                            format!("HTTP {}", status.as_u16()),
                            wait_of(response.headers()),
                        ),
                        other => {
                            return Err(LookupError::Unreadable {
                                api: api.name(),
                                what: format!("HTTP {other}"),
                            });
                        }
                    }
                }
                Err(error) if error.is_timeout() => ("timed out".to_string(), None),
                Err(_) => ("connection failed".to_string(), None),
            };
            let (reason, asked) = failure;
            let wait = asked.unwrap_or_else(|| backoff(attempt));
            let left = deadline.saturating_duration_since(Instant::now());
            if attempt >= MAX_ATTEMPTS || wait >= left {
                return Err(unavailable(api, reason, asked));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

const MAX_ATTEMPTS: u32 = 4;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64 << attempt.min(5))
}

fn unavailable(api: Api, reason: String, retry_after: Option<Duration>) -> LookupError {
    LookupError::Unavailable {
        api: api.name(),
        reason,
        retry_after,
    }
}

/// `Retry-After` in seconds (HubSpot, Paddle, Stripe).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

async fn read_capped(mut response: reqwest::Response) -> Result<bytes::Bytes, String> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "an answer that was cut off".to_string())?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("an answer larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The submission a route maps once `lookup` found `found`, with the webhook's topic and
/// delivery id. An order (BigCommerce, Squarespace) is the payload, the webhook under
/// `webhook`, and gives the contact and products; a customer (Stripe, Paddle) joins the
/// webhook's payload as `customer`, gives what the event lacked (the email) and leaves the
/// event's own fields (names a checkout collected, invoice lines) where they are.
pub fn found_submission(lookup: &Lookup, found: Value, webhook: &Submission) -> Submission {
    let (contact, products, consent, payload) = match lookup.api {
        Api::BigCommerce | Api::Squarespace | Api::HubSpot => {
            let (contact, products, consent, mut order) = match lookup.api {
                Api::BigCommerce => bigcommerce::interpret(found),
                Api::HubSpot => hubspot::interpret(found),
                _ => squarespace::interpret(found),
            };
            if let Value::Object(map) = &mut order {
                map.insert("webhook".into(), webhook.payload.clone());
            }
            (contact, products, consent, order)
        }
        Api::Stripe | Api::Paddle => {
            let (customer_contact, customer_consent) = customers::contact(lookup.api, &found);
            let mut payload = webhook.payload.clone();
            if let Value::Object(map) = &mut payload {
                map.insert("customer".into(), found);
            }
            (
                webhook.contact.clone().fill_from(customer_contact),
                webhook.products.clone(),
                webhook.consent.or(customer_consent),
                payload,
            )
        }
    };
    Submission {
        topic: webhook.topic.clone(),
        delivery_id: webhook.delivery_id.clone(),
        contact,
        products,
        consent,
        payload,
        from_browser_form: false,
        lookup: None,
    }
}

/// Every submission a lookup's answer gives. HubSpot's are one per contact found, each its
/// own delivery (the identities of the events about it), so a retried request, however HubSpot
/// groups its events again, does not sync again the contacts that were synced; the other
/// APIs' answer is the one of [`found_submission`].
pub fn found_submissions(lookup: &Lookup, found: Value, webhook: &Submission) -> Vec<Submission> {
    if lookup.api != Api::HubSpot {
        return vec![found_submission(lookup, found, webhook)];
    }
    // The batch read's answer as saved (a preview's `--lookup`), or its results.
    let objects = match found {
        Value::Array(objects) => objects,
        Value::Object(mut answer) if answer.get("results").is_some_and(Value::is_array) => {
            match answer.remove("results") {
                Some(Value::Array(objects)) => objects,
                _ => Vec::new(),
            }
        }
        object => vec![object],
    };
    objects
        .into_iter()
        .map(|object| {
            let id = crate::submission::text_at(&object, "id").unwrap_or_else(|| lookup.id.clone());
            let mut submission = found_submission(lookup, object, webhook);
            submission.delivery_id = match lookup.delivery_of(&id) {
                Some(own) => Some(own.to_string()),
                None => webhook.delivery_id.as_ref().map(|d| format!("{d}/{id}")),
            };
            if let Some(topic) = lookup.objects.get(&id).and_then(|o| o.topics.first()) {
                submission.topic = Some(topic.clone());
            }
            submission
        })
        .collect()
}

/// The request a lookup makes, without credentials (the preview shows it).
pub fn describe(lookup: &Lookup) -> String {
    match lookup.api {
        Api::BigCommerce => bigcommerce::describe(lookup),
        Api::Squarespace => squarespace::describe(lookup),
        Api::Stripe | Api::Paddle => customers::describe(lookup),
        Api::HubSpot => hubspot::describe(lookup),
    }
}
