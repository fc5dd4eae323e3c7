//! `shopify`: orders, customers and checkouts, signed with `X-Shopify-Hmac-Sha256`
//! (base64 HMAC-SHA256 of the raw body, keyed by the app's client secret). No timestamp.

use serde_json::Value;

use super::util::body::parse_json_object_reading;
use super::util::projection::Projection;
use super::util::signature::TagEncoding;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{
    ContactFields, Parsed, Product, Submission, first_text, is_affirmative, products_at, text_at,
};

pub(super) const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";
pub(super) const TOPIC_HEADER: &str = "x-shopify-topic";
/// Shared by every delivery of one merchant action: Shopify's recommended de-duplication key.
pub(super) const EVENT_ID_HEADER: &str = "x-shopify-event-id";
pub(super) const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";

pub(super) const DEFAULT_TOPICS: &[&str] = &[
    "orders/create",
    "orders/paid",
    "customers/create",
    "checkouts/create",
];

/// The `shopify` sender.
pub(super) const SPEC: SenderSpec = SenderSpec::new(
    "shopify",
    Auth::BodyHmac {
        header: SIGNATURE_HEADER,
        encoding: TagEncoding::Base64,
        prefix: "",
    },
    Parse::Reading {
        reads: READS,
        parse,
    },
)
.topics(DEFAULT_TOPICS);

/// Everything `order_fields` and `customer_fields` read: an order's line items are most of its
/// bytes, and only their SKUs and titles are used.
const READS: &[&str] = &[
    "$.email",
    "$.contact_email",
    "$.customer.email",
    "$.customer.first_name",
    "$.customer.last_name",
    "$.customer.phone",
    "$.billing_address.first_name",
    "$.billing_address.last_name",
    "$.billing_address.phone",
    "$.billing_address.company",
    "$.shipping_address.company",
    "$.phone",
    "$.sms_marketing_phone",
    "$.browser_ip",
    "$.buyer_accepts_marketing",
    "$.line_items[*].sku",
    "$.line_items[*].title",
    "$.line_items[*].name",
    "$.first_name",
    "$.last_name",
    "$.default_address.first_name",
    "$.default_address.last_name",
    "$.default_address.phone",
    "$.default_address.company",
    "$.addresses[*].company",
    "$.email_marketing_consent.state",
    "$.accepts_marketing",
];

pub(super) fn parse(req: &InboundRequest, reads: &Projection) -> Result<Parsed, ParseError> {
    let topic = req
        .header(TOPIC_HEADER)
        .ok_or(ParseError::MissingTopic("X-Shopify-Topic header"))?
        .to_string();
    let payload = parse_json_object_reading(&req.body, reads)?;
    let delivery_id = req
        .header(EVENT_ID_HEADER)
        .or_else(|| req.header(WEBHOOK_ID_HEADER))
        .map(str::to_string);
    let (contact, consent, products) = if topic.starts_with("customers/") {
        customer_fields(&payload)
    } else {
        order_fields(&payload)
    };
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id,
        contact,
        products,
        consent,
        payload,
        from_browser_form: false,
        lookup: None,
    })))
}

/// Orders and checkouts: the customer first, then the billing address.
fn order_fields(p: &Value) -> (ContactFields, Option<bool>, Vec<Product>) {
    let contact = ContactFields {
        email: first_text(p, &["email", "contact_email", "customer.email"]),
        first_name: first_text(p, &["customer.first_name", "billing_address.first_name"]),
        last_name: first_text(p, &["customer.last_name", "billing_address.last_name"]),
        full_name: None,
        phone: first_text(
            p,
            &[
                "customer.phone",
                "billing_address.phone",
                "phone",
                "sms_marketing_phone",
            ],
        ),
        organization: first_text(p, &["billing_address.company", "shipping_address.company"]),
        ip4: text_at(p, "browser_ip"),
    };
    let consent = p.get("buyer_accepts_marketing").map(is_affirmative);
    let products = products_at(p.get("line_items"), &["sku"], &["title", "name"]);
    (contact, consent, products)
}

fn customer_fields(p: &Value) -> (ContactFields, Option<bool>, Vec<Product>) {
    let first_address_company = p
        .get("addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find_map(|addr| text_at(addr, "company")));
    let contact = ContactFields {
        email: text_at(p, "email"),
        first_name: first_text(p, &["first_name", "default_address.first_name"]),
        last_name: first_text(p, &["last_name", "default_address.last_name"]),
        full_name: None,
        phone: first_text(p, &["phone", "default_address.phone"]),
        organization: text_at(p, "default_address.company").or(first_address_company),
        ip4: None,
    };
    // Newer API versions: email_marketing_consent.state; older: accepts_marketing.
    let consent = match text_at(p, "email_marketing_consent.state") {
        Some(state) => Some(state == "subscribed"),
        None => p.get("accepts_marketing").map(is_affirmative),
    };
    (contact, consent, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::{assert_reads_suffice, request};

    use base64::prelude::*;

    const ORDER: &str = r#"{"id":1,"email":"jon@example.com","buyer_accepts_marketing":true,"browser_ip":"203.0.113.9","customer":{"first_name":"Jon","last_name":"Snow","phone":null},"billing_address":{"company":"Night's Watch","phone":"+1 555 0100"},"line_items":[{"sku":"SKU-1","title":"Cloak"},{"sku":"","title":"Sword"}]}"#;

    fn signed(body: &str, secret: &str, topic: &str) -> InboundRequest {
        let tag = BASE64_STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
        request(
            "/webhooks/shopify",
            &[
                (SIGNATURE_HEADER, &tag),
                (TOPIC_HEADER, topic),
                (EVENT_ID_HEADER, "evt-9"),
            ],
            body,
        )
    }

    #[test]
    fn order_defaults() {
        let Parsed::Submission(s) = SPEC.parse(&signed(ORDER, "k", "orders/paid")).unwrap() else {
            panic!("not a submission");
        };
        assert_eq!(s.topic.as_deref(), Some("orders/paid"));
        assert_eq!(s.delivery_id.as_deref(), Some("evt-9"));
        assert_eq!(s.contact.email.as_deref(), Some("jon@example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Jon"));
        assert_eq!(s.contact.phone.as_deref(), Some("+1 555 0100"));
        assert_eq!(s.contact.organization.as_deref(), Some("Night's Watch"));
        assert_eq!(s.contact.ip4.as_deref(), Some("203.0.113.9"));
        assert_eq!(s.consent, Some(true));
        assert_eq!(s.products.len(), 2);
        assert_eq!(s.products[0].sku.as_deref(), Some("SKU-1"));
        assert_eq!(s.products[1].sku, None);
    }

    #[test]
    fn customer_consent_from_marketing_state() {
        let body = r#"{"email":"a@b.co","first_name":"A","email_marketing_consent":{"state":"not_subscribed"},"default_address":{"company":"Co"}}"#;
        let Parsed::Submission(s) = SPEC.parse(&signed(body, "k", "customers/create")).unwrap()
        else {
            panic!("not a submission");
        };
        assert_eq!(s.consent, Some(false));
        assert_eq!(s.contact.organization.as_deref(), Some("Co"));
    }

    #[test]
    fn missing_topic_is_a_parse_error() {
        let req = request("/webhooks/shopify", &[], ORDER);
        assert!(matches!(SPEC.parse(&req), Err(ParseError::MissingTopic(_))));
    }

    #[test]
    fn reading_only_its_own_paths_parses_the_same_submission() {
        let customer = r#"{"email":"a@b.co","first_name":"A","last_name":"B","phone":"1","accepts_marketing":"yes","addresses":[{"company":"Co","city":"X"}],"orders_count":3}"#;
        let requests = [(ORDER, "orders/paid"), (customer, "customers/create")]
            .map(|(body, topic)| signed(body, "k", topic));
        assert_reads_suffice(&SPEC, &requests);
    }
}
