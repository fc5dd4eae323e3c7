//! The connection check (`ac-webhook-sync check`): the deployment's secret and mapping against
//! the live account. The key is tried with v3 `GET /api/3/users/me`; the account's lists and
//! custom fields are read page by page (`limit`/`offset` until `meta.total`: tools that read
//! only the first page miss fields) and compared with every list id, field id and
//! personalization tag the mapping uses; every route is checked for its webhook secret, the
//! captcha secret its guard needs and the sender API credentials its sender needs. Problems
//! name the route and key; nothing here prints a secret unless asked to ([`route_setups`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::activecampaign::contact_sync::FieldKey;
use crate::lookup::Credentials;
use crate::mapping::Mapping;
use crate::secret::AppSecret;
use crate::sources::Auth;

/// Page size of the v3 reads (ActiveCampaign's largest).
pub const PAGE_LIMIT: usize = 100;
/// How long one v3 call is waited for.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a 429 or 503 is waited out before the check gives up.
const MAX_WAITS: u32 = 5;

/// Why the account could not be read.
#[derive(Debug, Error)]
pub enum AccountError {
    #[error(
        "ActiveCampaign refused the key (HTTP {0}): copy the key again from Settings > Developer into api_key"
    )]
    BadKey(u16),
    #[error("ActiveCampaign could not be reached at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("ActiveCampaign answered {path} with {what}")]
    Unexpected { path: String, what: String },
    #[error(transparent)]
    Client(#[from] crate::https::ClientBuildError),
}

/// What the account holds that a mapping refers to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccountItems {
    /// The user the key belongs to (`users/me`'s username or email).
    pub user: String,
    /// List id → name.
    pub lists: BTreeMap<u64, String>,
    /// Field id → (personalization tag without `%`, upper case; title).
    pub fields: BTreeMap<u64, (String, String)>,
    /// How many v3 requests the reads took.
    pub requests: usize,
}

/// Reads the key's user, every list and every custom field of the account.
pub async fn read_account(secret: &AppSecret) -> Result<AccountItems, AccountError> {
    let http = crate::https::client(Duration::from_secs(5))?;
    let base = secret.api_url.trim_end_matches('/');
    let key = secret.api_key.expose_secret();
    let mut requests = 0;
    let me = get(&http, base, "/api/3/users/me", key, &mut requests).await?;
    let user = ["username", "email"]
        .iter()
        .find_map(|k| me["user"][k].as_str())
        .unwrap_or_default()
        .to_string();
    let lists = read_all(&http, base, "/api/3/lists", "lists", key, &mut requests)
        .await?
        .iter()
        .filter_map(|l| {
            Some((
                id_of(l)?,
                l["name"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let fields = read_all(&http, base, "/api/3/fields", "fields", key, &mut requests)
        .await?
        .iter()
        .filter_map(|f| {
            let perstag = f["perstag"].as_str().unwrap_or_default().trim_matches('%');
            let title = f["title"].as_str().unwrap_or_default();
            Some((id_of(f)?, (perstag.to_uppercase(), title.to_string())))
        })
        .collect();
    Ok(AccountItems {
        user,
        lists,
        fields,
        requests,
    })
}

/// v3 ids are strings of digits (`"12"`); a number is taken too.
fn id_of(item: &Value) -> Option<u64> {
    match &item["id"] {
        Value::String(s) => s.parse().ok(),
        other => other.as_u64(),
    }
}

/// Every page of a v3 collection.
async fn read_all(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    key_of_items: &str,
    key: &str,
    requests: &mut usize,
) -> Result<Vec<Value>, AccountError> {
    let mut items = Vec::new();
    loop {
        let page = get(
            http,
            base,
            &format!("{path}?limit={PAGE_LIMIT}&offset={}", items.len()),
            key,
            requests,
        )
        .await?;
        let Some(found) = page[key_of_items].as_array() else {
            return Err(AccountError::Unexpected {
                path: path.to_string(),
                what: format!("no \"{key_of_items}\" array"),
            });
        };
        let total = match &page["meta"]["total"] {
            Value::String(s) => s.parse().ok(),
            other => other.as_u64().map(|n| n as usize),
        };
        let got = found.len();
        items.extend(found.iter().cloned());
        // Without a total, a short page is the last.
        let done = match total {
            Some(total) => items.len() >= total,
            None => got < PAGE_LIMIT,
        };
        if done || got == 0 {
            return Ok(items);
        }
    }
}

/// One v3 GET, waiting out the rate limit (429 or 503, `Retry-After`) a few times.
async fn get(
    http: &reqwest::Client,
    base: &str,
    path_and_query: &str,
    key: &str,
    requests: &mut usize,
) -> Result<Value, AccountError> {
    let url = format!("{base}{path_and_query}");
    let path = path_and_query
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    for _ in 0..=MAX_WAITS {
        *requests += 1;
        let answer = http
            .get(&url)
            .header("Api-Token", key)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| AccountError::Unreachable {
                url: base.to_string(),
                reason: if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                },
            })?;
        let status = answer.status().as_u16();
        match status {
            200 => {
                let body = answer
                    .bytes()
                    .await
                    .map_err(|_| AccountError::Unreachable {
                        url: base.to_string(),
                        reason: "the answer was cut off".into(),
                    })?;
                return serde_json::from_slice(&body).map_err(|_| AccountError::Unexpected {
                    path,
                    what: "a body that is not JSON".into(),
                });
            }
            401 | 403 => return Err(AccountError::BadKey(status)),
            429 | 503 => {
                let wait = crate::activecampaign::client::parse_retry_after(answer.headers())
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(30));
                tokio::time::sleep(wait).await;
            }
            other => {
                return Err(AccountError::Unexpected {
                    path,
                    what: format!("HTTP {other}"),
                });
            }
        }
    }
    Err(AccountError::Unexpected {
        path,
        what: "the rate limit, again and again".into(),
    })
}

/// How much a problem matters: an error fails the check (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// The route, or none for the secret as a whole.
    pub route: Option<String>,
    /// The mapping's or the secret's key (`lists[0].id`, `webhook_secrets.shopify`).
    pub key: String,
    pub message: String,
}

fn error(route: &str, key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        severity: Severity::Error,
        route: Some(route.to_string()),
        key: key.into(),
        message: message.into(),
    }
}

/// The routes a deployment uses: those its mapping file declares, and the built-in ones it
/// gave a webhook secret. (A built-in route without one answers 401 and needs nothing.)
pub fn routes_in_use<'a>(
    mapping: &'a Mapping,
    secret: &'a AppSecret,
) -> impl Iterator<Item = &'a crate::mapping::Route> {
    mapping
        .routes()
        .filter(|r| r.configured || !secret.route_secrets(&r.name).is_empty())
}

/// What the mapping's routes in use take from the account and it lacks.
pub fn compare_with_account(
    mapping: &Mapping,
    secret: &AppSecret,
    account: &AccountItems,
) -> Vec<Problem> {
    let perstags: BTreeSet<&str> = account.fields.values().map(|(p, _)| p.as_str()).collect();
    let mut problems = Vec::new();
    for route in routes_in_use(mapping, secret) {
        for (i, list) in route.lists.iter().enumerate() {
            if !account.lists.contains_key(&list.id) {
                problems.push(error(
                    &route.name,
                    format!("lists[{i}].id"),
                    format!(
                        "list {} is not in the account (it has {}): contacts would be refused",
                        list.id,
                        names(
                            account
                                .lists
                                .iter()
                                .map(|(id, name)| format!("{id} {name}"))
                        )
                    ),
                ));
            }
        }
        for field in &route.fields {
            let missing = match &field.key {
                FieldKey::Id(id) => (!account.fields.contains_key(id))
                    .then(|| format!("custom field {id} is not in the account")),
                FieldKey::PersTag(tag) => {
                    let bare = tag.trim_matches('%').to_uppercase();
                    (!perstags.contains(bare.as_str()))
                        .then(|| format!("no custom field has the personalization tag %{bare}%"))
                }
            };
            if let Some(missing) = missing {
                problems.push(error(
                    &route.name,
                    format!("fields.{}", field_key_text(&field.key)),
                    format!(
                        "{missing} (it has {}): the value would be dropped",
                        names(
                            account
                                .fields
                                .iter()
                                .map(|(id, (tag, _))| format!("{id} %{tag}%"))
                        )
                    ),
                ));
            }
        }
    }
    problems
}

fn field_key_text(key: &FieldKey) -> String {
    match key {
        FieldKey::Id(id) => id.to_string(),
        FieldKey::PersTag(tag) => tag.clone(),
    }
}

/// At most a few names, for a message.
fn names(all: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = all.collect();
    match all.len() {
        0 => "none".into(),
        n if n <= 8 => all.join(", "),
        n => format!("{}, and {} more", all[..8].join(", "), n - 8),
    }
}

/// What each route needs from the secret: its webhook secret, the captcha secret its guard
/// names, and the credentials its sender's API takes.
pub fn compare_with_secret(mapping: &Mapping, secret: &AppSecret) -> Vec<Problem> {
    let mut problems = Vec::new();
    for route in routes_in_use(mapping, secret) {
        if secret.route_secrets(&route.name).is_empty() {
            problems.push(error(
                &route.name,
                format!("webhook_secrets.{}", route.name),
                "missing: every request to the route is answered 401",
            ));
        }
        if route.guard.captcha.is_some() && !secret.captcha_secrets.contains_key(&route.name) {
            problems.push(error(
                &route.name,
                format!("captcha_secrets.{}", route.name),
                "missing: the route's captcha cannot be verified (answered 503)",
            ));
        }
        if let Some(lookup) = route.sender.lookup
            && let Err(missing) =
                Credentials::for_route(lookup.api, &route.name, secret.sender_api.get(&route.name))
        {
            let (severity, effect) = if lookup.always {
                (Severity::Error, "every webhook is answered ignored")
            } else {
                (
                    Severity::Warning,
                    "events that name their contact by id only are answered ignored",
                )
            };
            problems.push(Problem {
                severity,
                route: Some(route.name.clone()),
                key: match &missing {
                    crate::lookup::LookupError::MissingCredentials { key, .. } => {
                        format!("sender_api.{}.{key}", route.name)
                    }
                    _ => format!("sender_api.{}", route.name),
                },
                message: format!("{missing}; until then {effect}"),
            });
        }
    }
    problems
}

/// What to paste into a sender for one route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSetup {
    pub route: String,
    pub sender: &'static str,
    /// The URL to give the sender; for a token route it carries `?token=`.
    pub url: String,
    /// The secret to paste into the sender's signing settings (signed senders), shown only
    /// when revealed; otherwise where it is in the secret.
    pub secret: String,
}

/// Each route in use: its URL under `base_url` (the Function URL), and its secret: the value when
/// `reveal`, else the key that holds it.
pub fn route_setups(
    mapping: &Mapping,
    secret: &AppSecret,
    base_url: &str,
    reveal: bool,
) -> Vec<RouteSetup> {
    let base = base_url.trim_end_matches('/');
    routes_in_use(mapping, secret)
        .map(|route| {
            let key = format!("webhook_secrets.{}", route.name);
            let value = secret
                .route_secrets(&route.name)
                .first()
                .map(|s| s.expose_secret().to_string());
            let shown = match (&value, reveal) {
                (Some(value), true) => value.clone(),
                (Some(_), false) => format!("<{key}>"),
                (None, _) => format!("<{key}: missing>"),
            };
            let mut url = format!("{base}/webhooks/{}", route.name);
            let token_route = matches!(route.sender.auth, Auth::RouteToken) && !route.auth.signed;
            if token_route {
                url.push_str(&format!("?token={shown}"));
            }
            RouteSetup {
                route: route.name.clone(),
                sender: route.sender.name,
                url,
                secret: if token_route {
                    "(in the URL)".into()
                } else {
                    shown
                },
            }
        })
        .collect()
}
