//! BigCommerce orders: `GET /stores/{store_hash}/v2/orders/{id}` and its
//! `/v2/orders/{id}/products`, authenticated with `X-Auth-Token` (the store's API account
//! token, `sender_api.{route}.access_token`; the store hash comes from the webhook's
//! `producer`, or `sender_api.{route}.store_hash`). Rate limits answer 429 with
//! `X-Rate-Limit-Time-Reset-Ms`, waited out. Contact: the order's `billing_address` (email,
//! names, phone, company); products: the order's products (`sku`, `name`). The payload a route
//! maps is the order, its `products` the list found.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{Api, Credentials, Lookup, LookupError, SenderApis};
use crate::submission::{ContactFields, Product, products_at, text_at};

pub const BASE_URL: &str = "https://api.bigcommerce.com";

/// The store the webhook came from.
fn webhook_store(lookup: &Lookup) -> &str {
    lookup
        .context
        .get("store_hash")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The store a lookup reads: the credentials' when they name one (their token is for it),
/// else the webhook's.
fn store_hash<'a>(lookup: &'a Lookup, credentials: Option<&'a Credentials>) -> &'a str {
    credentials
        .map(|c| c.get("store_hash"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| webhook_store(lookup))
}

/// BigCommerce's wait: milliseconds until its rate-limit window resets.
fn reset_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("x-rate-limit-time-reset-ms")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

fn path(store: &str, id: &str) -> String {
    // Ids come from a verified webhook; still, nothing but digits goes into the URL.
    let id: String = id.chars().filter(char::is_ascii_digit).collect();
    let store: String = store.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("/stores/{store}/v2/orders/{id}")
}

pub(super) async fn fetch(
    apis: &SenderApis,
    lookup: &Lookup,
    route: &str,
    credentials: &Credentials,
    deadline: Instant,
) -> Result<Value, LookupError> {
    let store = store_hash(lookup, Some(credentials));
    let from = webhook_store(lookup);
    if !from.is_empty() && !store.is_empty() && from != store {
        return Err(LookupError::OtherStore {
            api: Api::BigCommerce.name(),
            route: route.to_string(),
            webhook: from.to_string(),
            configured: store.to_string(),
        });
    }
    if store.is_empty() {
        return Err(LookupError::MissingCredentials {
            api: Api::BigCommerce.name(),
            route: route.to_string(),
            key: "store_hash",
        });
    }
    let base = apis.base(BASE_URL);
    let order_url = format!("{base}{}", path(store, &lookup.id));
    let headers = [("X-Auth-Token", credentials.get("access_token"))];
    let not_found = || LookupError::NotFound {
        api: Api::BigCommerce.name(),
        object: lookup.object.clone(),
        id: lookup.id.clone(),
    };
    let mut order = apis
        .get(
            Api::BigCommerce,
            route,
            &order_url,
            &headers,
            deadline,
            reset_wait,
        )
        .await?
        .filter(Value::is_object)
        .ok_or_else(not_found)?;
    let products = apis
        .get(
            Api::BigCommerce,
            route,
            &format!("{order_url}/products"),
            &headers,
            deadline,
            reset_wait,
        )
        .await?
        // An order without products answers 204 or an empty list; a 404 here is the same.
        .filter(Value::is_array)
        .unwrap_or(Value::Array(Vec::new()));
    if let Value::Object(map) = &mut order {
        map.insert("products".into(), products);
    }
    Ok(order)
}

pub(super) fn interpret(order: Value) -> (ContactFields, Vec<Product>, Option<bool>, Value) {
    let billing = order.get("billing_address").unwrap_or(&Value::Null);
    let contact = ContactFields {
        email: text_at(billing, "email"),
        first_name: text_at(billing, "first_name"),
        last_name: text_at(billing, "last_name"),
        full_name: None,
        phone: text_at(billing, "phone"),
        organization: text_at(billing, "company"),
        ip4: text_at(&order, "ip_address"),
    };
    let products = products_at(order.get("products"), &["sku"], &["name"])
        .into_iter()
        .filter(|p| p.sku.is_some() || p.title.is_some())
        .collect();
    // The order carries no marketing consent (the customer record's flags are another call).
    (contact, products, None, order)
}

pub(super) fn describe(lookup: &Lookup) -> String {
    let store = store_hash(lookup, None);
    let store = if store.is_empty() {
        "{store_hash}"
    } else {
        store
    };
    let order = path(store, &lookup.id);
    format!("GET {BASE_URL}{order} and {order}/products (X-Auth-Token: sender_api access_token)")
}
