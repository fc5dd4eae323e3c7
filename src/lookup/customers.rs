//! Customers of payment platforms, for events that name a customer by id only: Stripe's
//! `GET /v1/customers/{id}` (a restricted key, `sender_api.{route}.secret_key`) and Paddle's
//! `GET /customers/{id}` (`sender_api.{route}.api_key`; a `pdl_sdbx_` key, or
//! `"environment": "sandbox"`, reads the sandbox API). Both with `Authorization: Bearer`;
//! both send `Retry-After` with a 429, which is waited out. The customer joins the webhook's
//! payload as `customer`, so a route's paths into the event keep working.

use serde_json::Value;
use tokio::time::Instant;

use super::{Api, Credentials, Lookup, LookupError, SenderApis, retry_after};
use crate::submission::{ContactFields, is_affirmative, text_at};

pub const STRIPE_BASE_URL: &str = "https://api.stripe.com";
pub const PADDLE_BASE_URL: &str = "https://api.paddle.com";
pub const PADDLE_SANDBOX_BASE_URL: &str = "https://sandbox-api.paddle.com";

/// Ids as the APIs make them (`cus_…`, `ctm_…`): nothing else goes into a URL.
fn clean_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

fn paddle_base(credentials: &Credentials) -> &'static str {
    let sandbox = credentials
        .get("environment")
        .eq_ignore_ascii_case("sandbox")
        || credentials.get("api_key").starts_with("pdl_sdbx_");
    if sandbox {
        PADDLE_SANDBOX_BASE_URL
    } else {
        PADDLE_BASE_URL
    }
}

pub(super) async fn fetch(
    apis: &SenderApis,
    lookup: &Lookup,
    route: &str,
    credentials: &Credentials,
    deadline: Instant,
) -> Result<Value, LookupError> {
    let id = clean_id(&lookup.id);
    let (url, key) = match lookup.api {
        Api::Stripe => (
            format!("{}/v1/customers/{id}", apis.base(STRIPE_BASE_URL)),
            credentials.get("secret_key"),
        ),
        _ => (
            format!("{}/customers/{id}", apis.base(paddle_base(credentials))),
            credentials.get("api_key"),
        ),
    };
    let bearer = format!("Bearer {key}");
    let found = apis
        .get(
            lookup.api,
            route,
            &url,
            &[("Authorization", &bearer)],
            deadline,
            retry_after,
        )
        .await?;
    // Paddle wraps its object in `data`; a customer Stripe deleted is `{"deleted": true}`.
    let customer = match (lookup.api, found) {
        (Api::Paddle, Some(mut answer)) => Some(answer["data"].take()).filter(Value::is_object),
        (_, found) => found.filter(|c| c.get("deleted").and_then(Value::as_bool) != Some(true)),
    };
    customer.ok_or_else(|| LookupError::NotFound {
        api: lookup.api.name(),
        object: lookup.object.clone(),
        id: lookup.id.clone(),
    })
}

/// The contact a customer object names, and its consent (Paddle's `marketing_consent`).
pub(super) fn contact(api: Api, customer: &Value) -> (ContactFields, Option<bool>) {
    let contact = ContactFields {
        email: text_at(customer, "email"),
        full_name: text_at(customer, "name"),
        phone: text_at(customer, "phone"),
        organization: text_at(customer, "metadata.company"),
        ..ContactFields::default()
    };
    let consent = match api {
        Api::Paddle => customer
            .get("marketing_consent")
            .filter(|v| !v.is_null())
            .map(is_affirmative),
        _ => None,
    };
    (contact, consent)
}

pub(super) fn describe(lookup: &Lookup) -> String {
    let id = clean_id(&lookup.id);
    match lookup.api {
        Api::Stripe => format!(
            "GET {STRIPE_BASE_URL}/v1/customers/{id} (Authorization: Bearer sender_api secret_key)"
        ),
        _ => format!(
            "GET {PADDLE_BASE_URL}/customers/{id}, or {PADDLE_SANDBOX_BASE_URL} for a sandbox key (Authorization: Bearer sender_api api_key)"
        ),
    }
}
