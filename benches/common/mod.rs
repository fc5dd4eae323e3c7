//! What `per_request` and the `per_request_instructions` example share: the fixtures, the
//! signed ~10 KB Shopify order, and the network-free work one request costs.
#![allow(dead_code)]

#[path = "../../tests/support/mod.rs"]
pub mod support;

use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::pipeline::{Arrival, Plan, arrive, verify_and_interpret};
use ac_webhook_sync::secret::AppSecret;
use ac_webhook_sync::settings::DEFAULT_MAX_BODY_BYTES;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

/// The size the target is stated for.
pub const ORDER_TARGET_BYTES: usize = 10 * 1024;
/// The route whose mapping exercises JSONPath fields, per-SKU tags and list rules.
pub const ORDER_ROUTE: &str = "shop";
pub const ORDER_TOPIC: &str = "orders/paid";
pub const ORDER_EVENT: &str = "shopify-orders-paid";

/// What the function does with a request before delivering it; returns the size of what
/// would be sent, so nothing is optimised away.
pub fn plan_and_encode(mapping: &Mapping, secret: &AppSecret, req: &InboundRequest) -> usize {
    let Ok(Arrival::Request(route)) = arrive(mapping, DEFAULT_MAX_BODY_BYTES, req) else {
        return 0;
    };
    match verify_and_interpret(route, req, secret) {
        Ok(Plan::Contact { contact, .. }) => contact.encode().len(),
        Ok(Plan::Batch { contacts, .. }) => contacts.iter().map(|c| c.encode().len()).sum(),
        Ok(Plan::Answer { .. } | Plan::Decoy { .. } | Plan::Lookup { .. }) | Err(_) => 0,
    }
}

/// One more line item shaped like Shopify's (properties, tax lines, discount allocations).
fn line_item(n: usize) -> Value {
    json!({
        "id": 866_550_311_766_439_020_u64 + n as u64,
        "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", 866_550_311_766_439_020_u64 + n as u64),
        "product_id": 632_910_392 + n,
        "variant_id": 808_950_810 + n,
        "sku": format!("SKU-{n:05}"),
        "title": format!("Product number {n}"),
        "name": format!("Product number {n} - Large / Blue"),
        "variant_title": "Large / Blue",
        "vendor": "Example Vendor",
        "quantity": 1 + n % 3,
        "price": "19.99",
        "total_discount": "0.00",
        "fulfillment_status": null,
        "requires_shipping": true,
        "taxable": true,
        "gift_card": false,
        "grams": 250,
        "properties": [{"name": "engraving", "value": "For you"}],
        "tax_lines": [{"title": "State tax", "price": "1.20", "rate": 0.06}],
        "discount_allocations": [],
    })
}

/// A Shopify `orders/paid` of about 10 KB on the `shop` route, signed with the local secret,
/// built from the committed event's headers and body.
pub fn order_request(secret: &AppSecret) -> InboundRequest {
    let mut req = support::event_request(ORDER_EVENT);
    let mut order: Value = serde_json::from_slice(&req.body).expect("the committed order is JSON");
    let mut items = order["line_items"].as_array().cloned().unwrap_or_default();
    let mut n = items.len();
    while serde_json::to_vec(&order).map_or(0, |b| b.len()) < ORDER_TARGET_BYTES {
        items.push(line_item(n));
        n += 1;
        order["line_items"] = Value::Array(items.clone());
    }
    let body = serde_json::to_vec(&order).expect("serialisable");
    let key = secret.route_secrets(ORDER_ROUTE)[0].clone();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
        secrecy::ExposeSecret::expose_secret(&key).as_bytes(),
    )
    .expect("HMAC takes any key");
    mac.update(&body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    req.path = format!("/webhooks/{ORDER_ROUTE}");
    req.headers.insert(
        "x-shopify-hmac-sha256",
        signature.parse().expect("base64 is a header value"),
    );
    req.headers
        .insert("x-shopify-topic", ORDER_TOPIC.parse().expect("ASCII"));
    req.body = body.into();
    req
}

pub fn fixtures() -> (Mapping, AppSecret) {
    let mapping = Mapping::bundled().expect("the bundled mapping loads");
    let raw = std::fs::read_to_string(support::repo_path("local/secret.json"))
        .expect("local/secret.json");
    (
        mapping,
        AppSecret::from_json(&raw).expect("the local secret"),
    )
}

/// The Function URL event that carries `req`, as Lambda would deliver it.
pub fn order_event_json(req: &InboundRequest) -> String {
    let raw = std::fs::read_to_string(support::repo_path(&format!("events/{ORDER_EVENT}.json")))
        .expect("the committed event");
    let mut event: Value = serde_json::from_str(&raw).expect("JSON");
    event["rawPath"] = json!(req.path);
    event["requestContext"]["http"]["path"] = json!(req.path);
    for (name, value) in &req.headers {
        event["headers"][name.as_str()] = json!(value.to_str().unwrap_or_default());
    }
    event["body"] = json!(String::from_utf8_lossy(&req.body));
    event.to_string()
}
