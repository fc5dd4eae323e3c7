//! Parsing only what a route reads gives the same answer as parsing the whole payload: for
//! every events/ file on the bundled mapping, and for a route that reads the payload through
//! every kind of expression (contact fields, consent, list dates, tags, custom fields).

mod support;

use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::{Mapping, Route};
use ac_webhook_sync::pipeline::{Plan, interpret, resolve_route};
use ac_webhook_sync::settings::DEFAULT_MAX_BODY_BYTES;
use ac_webhook_sync::sources::util::projection::Projection;
use serde_json::json;
use support::*;

/// What a plan delivers or answers, without the payload it was read from.
fn summary(plan: Result<Plan, ac_webhook_sync::response::WebhookError>) -> String {
    match plan {
        Err(error) => format!("error {}: {error}", error.status()),
        Ok(Plan::Answer {
            outcome, redirect, ..
        }) => format!("answer {outcome:?} {redirect:?}"),
        Ok(Plan::Decoy { redirect, .. }) => format!("decoy {redirect:?}"),
        Ok(Plan::Lookup { submission, .. }) => format!("lookup {:?}", submission.lookup),
        Ok(Plan::Contact {
            contact, redirect, ..
        }) => format!(
            "contact {} {:?} {redirect:?}",
            contact.encode(),
            contact.lists
        ),
        Ok(Plan::Batch { contacts, .. }) => {
            let bodies: Vec<String> = contacts.iter().map(|c| c.encode()).collect();
            format!("batch {bodies:?}")
        }
    }
}

fn whole(route: &Route) -> Route {
    Route {
        projection: Projection::All,
        ..route.clone()
    }
}

fn assert_same(route: &Route, req: &InboundRequest, what: &str) -> String {
    let projected = summary(interpret(route, req));
    assert_eq!(projected, summary(interpret(&whole(route), req)), "{what}");
    projected
}

#[test]
fn every_event_plans_the_same_from_the_projected_payload() {
    let _logs = logs::checked();
    let mapping = Mapping::bundled().unwrap();
    let mut projected_routes = 0;
    for entry in std::fs::read_dir(repo_path("events")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(name) = name.strip_suffix(".json") else {
            continue;
        };
        let req = event_request(name);
        let Ok(route) = resolve_route(&mapping, DEFAULT_MAX_BODY_BYTES, &req) else {
            continue;
        };
        if !route.projection.is_all() {
            projected_routes += 1;
        }
        assert_same(route, &req, name);
    }
    assert!(
        projected_routes >= 5,
        "the Shopify events must be parsed with a projection ({projected_routes})"
    );
}

#[test]
fn every_expression_of_a_route_is_read() {
    let _logs = logs::checked();
    // Paths outside what the Shopify sender reads itself, in every slot that takes one.
    let mapping = Mapping::from_toml(
        r#"
        [routes.orders]
        sender = "shopify"
        topics = ["orders/paid"]
        tags = ["gateway:{$.gateway}", "{$.line_items[*].vendor}", "{$.note_attributes[?@.name == 'src'].value}"]
        [routes.orders.contact]
        email = "$.customer.note_email"
        first_name = "$['shipping_address']['first_name']"
        last_name = "$.shipping_address.last_name"
        full_name = "$.nested..full"
        phone = "$.extra[1]"
        organization = "$.line_items[0].properties[*].value"
        ip4 = "$.client_details.browser_ip"
        consent = "$.marketing.*"
        [[routes.orders.lists]]
        id = 3
        status = "consent"
        sdate = "$.processed_at"
        [routes.orders.fields]
        "2" = "{$.total_price} {$.currency}"
        "%NOTE%" = "$.note"
        "#,
    )
    .unwrap();
    let route = mapping.route("orders").unwrap();
    assert!(
        !route.projection.is_all(),
        "no path here needs the whole payload"
    );
    let body = json!({
        "email": "ignored@example.com",
        "customer": {"note_email": "Reader@Example.com", "first_name": "Not"},
        "shipping_address": {"first_name": "Ada", "last_name": "Lovelace"},
        "nested": {"deeper": {"full": "Ada L."}},
        "extra": ["+1 555 0000", "+44 20 7946 0000"],
        "line_items": [
            {"sku": "A-1", "vendor": "Acme", "properties": [{"name": "org", "value": "Analytical Engines"}]},
            {"sku": "B-2", "vendor": "Globex", "properties": []}
        ],
        "note_attributes": [{"name": "src", "value": "campaign-7"}, {"name": "x", "value": "no"}],
        "client_details": {"browser_ip": "198.51.100.7"},
        "marketing": {"email": "yes"},
        "processed_at": "2026-11-23T10:00:00Z",
        "gateway": "manual",
        "total_price": "42.00",
        "currency": "EUR",
        "note": "gift"
    });
    let mut req = event_request("shopify-orders-paid");
    req.path = "/webhooks/orders".into();
    req.body = body.to_string().into_bytes().into();
    let planned = assert_same(route, &req, "custom route");
    for expected in [
        "reader%40example.com",
        "Ada",
        "Lovelace",
        "gateway%3Amanual",
        "Acme",
        "Globex",
        "campaign-7",
        "Analytical",
        "198.51.100.7",
        "2026-11-23",
        "42.00",
        "gift",
        "20+7946",
    ] {
        assert!(
            planned.contains(expected),
            "{expected} missing from {planned}"
        );
    }
}
