//! Squarespace Commerce orders: `GET /1.0/commerce/orders/{orderId}` with
//! `Authorization: Bearer` (an API key with Orders read, `sender_api.{route}.api_key`) and a
//! `User-Agent` (Squarespace refuses requests without one; ours names the project). Contact:
//! `customerEmail`, `billingAddress.{firstName,lastName,phone}`; products: `lineItems[].{sku,
//! productName}`. The payload a route maps is the order.

use serde_json::Value;
use tokio::time::Instant;

use super::{Api, Credentials, Lookup, LookupError, SenderApis, retry_after};
use crate::submission::{ContactFields, Product, products_at, text_at};

pub const BASE_URL: &str = "https://api.squarespace.com";

fn path(id: &str) -> String {
    // Squarespace's ids are hex strings.
    let id: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("/1.0/commerce/orders/{id}")
}

pub(super) async fn fetch(
    apis: &SenderApis,
    lookup: &Lookup,
    route: &str,
    credentials: &Credentials,
    deadline: Instant,
) -> Result<Value, LookupError> {
    let url = format!("{}{}", apis.base(BASE_URL), path(&lookup.id));
    let bearer = format!("Bearer {}", credentials.get("api_key"));
    apis.get(
        Api::Squarespace,
        route,
        &url,
        &[("Authorization", &bearer)],
        deadline,
        retry_after,
    )
    .await?
    .ok_or_else(|| LookupError::NotFound {
        api: Api::Squarespace.name(),
        object: lookup.object.clone(),
        id: lookup.id.clone(),
    })
}

pub(super) fn interpret(order: Value) -> (ContactFields, Vec<Product>, Option<bool>, Value) {
    let billing = order.get("billingAddress").unwrap_or(&Value::Null);
    let contact = ContactFields {
        email: text_at(&order, "customerEmail"),
        first_name: text_at(billing, "firstName"),
        last_name: text_at(billing, "lastName"),
        phone: text_at(billing, "phone"),
        ..ContactFields::default()
    };
    let products = products_at(order.get("lineItems"), &["sku"], &["productName"])
        .into_iter()
        .filter(|p| p.sku.is_some() || p.title.is_some())
        .collect();
    // Orders carry no marketing consent.
    (contact, products, None, order)
}

pub(super) fn describe(lookup: &Lookup) -> String {
    format!(
        "GET {BASE_URL}{} (Authorization: Bearer sender_api api_key)",
        path(&lookup.id)
    )
}
