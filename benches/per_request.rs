//! Per-request CPU cost of the webhook function, without any network: route resolution,
//! signature verification, parsing, mapping and the `contact_sync` body, through the same
//! `edge::plan` seam the function and the preview use.
//!
//! * `order_10kb/*`: a ~10 KB signed Shopify `orders/paid` on the `shop` route (JSONPath
//!   contact fields, a tag per SKU, two lists), against a bare `serde_json::Value` parse of the
//!   same bytes and against decoding the Function URL event around it.
//! * `events/*`: every events/ sample, one benchmark each (shorter measurement).
//!
//! `cargo bench --bench per_request`; `scripts/perf.sh` reads the medians back from
//! target/criterion. Filter with `cargo bench --bench per_request -- order_10kb`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use ac_webhook_sync::edge::{Plan, interpret, lambda, resolve_route};
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::secrets::AppSecret;
use ac_webhook_sync::settings::DEFAULT_MAX_BODY_BYTES;
use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

/// The size the target is stated for.
const ORDER_TARGET_BYTES: usize = 10 * 1024;
/// The route whose mapping exercises JSONPath fields, per-SKU tags and list rules.
const ORDER_ROUTE: &str = "shop";
const ORDER_TOPIC: &str = "orders/paid";
const ORDER_EVENT: &str = "shopify-orders-paid";

/// What the function does with a request before delivering it; returns the size of what
/// would be sent, so nothing is optimised away.
fn plan_and_encode(mapping: &Mapping, secret: &AppSecret, req: &InboundRequest) -> usize {
    let Ok(route) = resolve_route(mapping, DEFAULT_MAX_BODY_BYTES, req) else {
        return 0;
    };
    if route.sender.handshake(req).is_some() {
        return 0;
    }
    if route
        .sender
        .authenticate(req, secret.route_secrets(&route.name), &route.auth)
        .is_err()
    {
        return 0;
    }
    match interpret(route, req) {
        Ok(Plan::Contact { contact, .. }) => contact.encode().len(),
        Ok(Plan::Batch { contacts, .. }) => contacts.iter().map(|c| c.encode().len()).sum(),
        Ok(Plan::Answer { .. }) | Err(_) => 0,
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
fn order_request(secret: &AppSecret) -> InboundRequest {
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

fn fixtures() -> (Mapping, AppSecret) {
    let mapping = Mapping::bundled().expect("the bundled mapping loads");
    let raw = std::fs::read_to_string(support::repo_path("local/secret.json"))
        .expect("local/secret.json");
    (
        mapping,
        AppSecret::from_json(&raw).expect("the local secret"),
    )
}

fn order_10kb(c: &mut Criterion) {
    let (mapping, secret) = fixtures();
    let req = order_request(&secret);
    // The plan must be a delivery, or the benchmark measures an early refusal.
    let sent = plan_and_encode(&mapping, &secret, &req);
    assert!(sent > 0, "the 10 KB order must map to a contact_sync body");
    eprintln!(
        "order_10kb: body {} bytes, contact_sync body {sent} bytes",
        req.body.len()
    );
    let event = order_event_json(&req);
    let mut group = c.benchmark_group("order_10kb");
    group.bench_function("plan_and_encode", |b| {
        b.iter(|| plan_and_encode(&mapping, &secret, black_box(&req)))
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&req.body)).map(|v| v.is_object()))
    });
    group.bench_function("function_url_event_decode", |b| {
        b.iter(|| {
            lambda_http::request::from_str(black_box(&event))
                .map(|r| lambda::to_inbound(r).body.len())
        })
    });
    group.finish();
}

/// The Function URL event that carries `req`, as Lambda would deliver it.
fn order_event_json(req: &InboundRequest) -> String {
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

fn events(c: &mut Criterion) {
    let (mapping, secret) = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(support::repo_path("events"))
        .expect("events/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    names.sort();
    let mut group = c.benchmark_group("events");
    group
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(400))
        .sample_size(20);
    for name in names {
        let req = support::event_request(&name);
        group.bench_function(name, |b| {
            b.iter(|| plan_and_encode(&mapping, &secret, black_box(&req)))
        });
    }
    group.finish();
}

criterion_group!(benches, order_10kb, events);
criterion_main!(benches);
