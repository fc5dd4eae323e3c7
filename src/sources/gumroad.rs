//! `gumroad`: Gumroad's Ping (a sale) and resource subscriptions (`resource_name`), unsigned,
//! so the route token (`?token=`) authenticates them.
//!
//! The body is `application/x-www-form-urlencoded` built by HTTParty (`%20` for spaces, nested
//! keys `card[visual]`, `variants[Tier]`, booleans `true`/`false`); resource subscriptions may
//! post JSON instead. Bracketed keys are nested back, so `$.variants.Tier` selects a variant
//! whichever encoding arrived.

use serde_json::Value;

use super::util::body::parse_form_or_json;
use super::util::fields::recognise_fields;
use super::{Auth, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{
    ContactFields, Parsed, Product, Submission, first_text, is_affirmative, text_at, value_as_text,
};

/// The Ping endpoint sends sales without `resource_name`.
pub(super) const DEFAULT_TOPIC: &str = "sale";
/// Refunds, disputes and subscription changes are ignored unless a route lists them.
pub(super) const DEFAULT_TOPICS: &[&str] = &[DEFAULT_TOPIC];

/// The `gumroad` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("gumroad", Auth::RouteToken, Parse::Whole(parse))
        .media(Media::FORM_OR_JSON)
        .topics(DEFAULT_TOPICS);

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let p = parse_form_or_json(req)?;
    let topic = text_at(&p, "resource_name").unwrap_or_else(|| DEFAULT_TOPIC.to_string());
    // Retries add `retry_count`, so the sale id, not the body, identifies a sale.
    let delivery_id = text_at(&p, "sale_id")
        .or_else(|| text_at(&p, "subscription_id").map(|id| format!("{topic}:{id}")));
    let contact = ContactFields {
        // Subscription resources carry `user_email` instead of `email`.
        email: first_text(&p, &["email", "user_email"]),
        full_name: text_at(&p, "full_name"),
        ..ContactFields::default()
    };
    // The seller's custom checkout fields (`Company`, `Phone`...) fill what the sale lacks.
    let custom = p.get("custom_fields").cloned().unwrap_or(Value::Null);
    let contact = contact.fill_from(recognise_fields(&custom).0);
    let consent = p.get("can_contact").map(is_affirmative);
    let products = product(&p).into_iter().collect();
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id,
        contact,
        products,
        consent,
        payload: p,
        from_browser_form: false,
        lookup: None,
    })))
}

/// The product bought: its permalink as SKU, its name with the chosen variants as title
/// (`Course (Premium, Lifetime)`).
fn product(p: &Value) -> Option<Product> {
    let sku = first_text(p, &["permalink", "short_product_id", "product_id"]);
    let name = text_at(p, "product_name");
    if sku.is_none() && name.is_none() {
        return None;
    }
    let variants: Vec<String> = match p.get("variants") {
        Some(Value::Object(map)) => map.values().filter_map(value_as_text).collect(),
        Some(other) => value_as_text(other).into_iter().collect(),
        None => Vec::new(),
    };
    let title = match (name, variants.is_empty()) {
        (Some(name), false) => Some(format!("{name} ({})", variants.join(", "))),
        (name, _) => name,
    };
    Some(Product { sku, title })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{assert_route_token, request, submission};

    const FORM: &str = "application/x-www-form-urlencoded";
    // As HTTParty::HashConversions.to_params writes it: %20 for spaces, brackets encoded.
    const SALE: &str = "seller_id=s1&product_id=p1&product_name=Rust%20for%20Lambdas&permalink=rustlambda\
        &email=Ada%40Example.com&price=2900&currency=usd&can_contact=true&card%5Bvisual%5D=%2A%2A%2A%2A4242\
        &card%5Btype%5D=visa&sale_id=Fq8JtHj%3D%3D&full_name=Ada%20King%20Lovelace\
        &variants%5BTier%5D=Premium&custom_fields%5BCompany%5D=Analytical%20Engines&Company=Analytical%20Engines\
        &test=true&refunded=false";

    #[test]
    fn route_token_authenticates() {
        assert_route_token(&SPEC, &[], SALE);
    }

    #[test]
    fn sale_ping_fields() {
        let req = request("/webhooks/gumroad", &[("content-type", FORM)], SALE);
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("sale"));
        assert_eq!(s.delivery_id.as_deref(), Some("Fq8JtHj=="));
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Ada King Lovelace"));
        assert_eq!(s.contact.first_name, None);
        assert_eq!(
            s.contact.organization.as_deref(),
            Some("Analytical Engines")
        );
        assert_eq!(s.consent, Some(true));
        assert_eq!(
            s.products,
            vec![Product {
                sku: Some("rustlambda".into()),
                title: Some("Rust for Lambdas (Premium)".into()),
            }]
        );
        assert_eq!(s.payload["card"]["visual"], "****4242");
        assert_eq!(s.payload["test"], "true");
        assert!(!s.from_browser_form);
    }

    #[test]
    fn resource_subscription_json_and_retry() {
        let body = r#"{"resource_name":"cancellation","subscription_id":"sub1","user_email":"b@example.com","product_name":"Club","can_contact":false,"retry_count":1}"#;
        let req = request(
            "/webhooks/gumroad",
            &[("content-type", "application/json")],
            body,
        );
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("cancellation"));
        assert_eq!(s.delivery_id.as_deref(), Some("cancellation:sub1"));
        assert_eq!(s.contact.email.as_deref(), Some("b@example.com"));
        assert_eq!(s.consent, Some(false));
        assert_eq!(s.products[0].title.as_deref(), Some("Club"));
    }

    #[test]
    fn without_email_is_a_submission_without_email() {
        let req = request(
            "/webhooks/gumroad",
            &[("content-type", FORM)],
            "sale_id=x&product_name=Thing&can_contact=false",
        );
        let s = submission(parse(&req));
        assert_eq!(s.contact.email, None);
        assert_eq!(s.consent, Some(false));
    }

    #[test]
    fn malformed_bodies_are_parse_errors() {
        let mut req = request("/webhooks/gumroad", &[("content-type", FORM)], "");
        req.body = bytes::Bytes::from_static(b"email=a%40b.co&full_name=\xff");
        assert_eq!(parse(&req), Err(ParseError::NotUtf8));
        let req = request(
            "/webhooks/gumroad",
            &[("content-type", "application/json")],
            "{\"email\":",
        );
        assert!(matches!(parse(&req), Err(ParseError::Json(_))));
        assert!(!SPEC.accepts_media_type(Some("text/plain")));
    }
}
