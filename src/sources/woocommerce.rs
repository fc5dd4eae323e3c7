//! `woocommerce`: orders and customers, signed with `X-WC-Webhook-Signature`
//! (base64 HMAC-SHA256 of the raw body). Its unsigned creation ping is answered 200.

use super::util::body::parse_json_object_reading;
use super::util::projection::Projection;
use super::util::signature::TagEncoding;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, first_text, products_at, text_at};

pub(super) const SIGNATURE_HEADER: &str = "X-WC-Webhook-Signature";
pub(super) const TOPIC_HEADER: &str = "x-wc-webhook-topic";

pub(super) const DEFAULT_TOPICS: &[&str] = &["order.created", "order.updated", "customer.created"];

/// WooCommerce's `deliver_ping()`: the form body `webhook_id=<digits>` with no signature.
/// It must get exactly 200 or the admin shows an error.
/// The `woocommerce` sender.
pub(super) const SPEC: SenderSpec = SenderSpec::new(
    "woocommerce",
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
.topics(DEFAULT_TOPICS)
.handshake(handshake);

/// Everything `parse` reads: of an order's line items (with their meta data, taxes and images,
/// most of its bytes), only the SKUs and names.
const READS: &[&str] = &[
    "$.id",
    "$.date_modified_gmt",
    "$.email",
    "$.first_name",
    "$.last_name",
    "$.billing",
    "$.shipping",
    "$.customer_ip_address",
    "$.line_items[*].sku",
    "$.line_items[*].name",
];

pub(super) fn handshake(req: &InboundRequest) -> Option<&'static str> {
    if req.header(SIGNATURE_HEADER).is_some() {
        return None;
    }
    let digits = req.body.strip_prefix(b"webhook_id=")?;
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
        .then_some("WooCommerce webhook creation ping")
}

pub(super) fn parse(req: &InboundRequest, reads: &Projection) -> Result<Parsed, ParseError> {
    let topic = req
        .header(TOPIC_HEADER)
        .ok_or(ParseError::MissingTopic("X-WC-Webhook-Topic header"))?
        .to_string();
    let p = parse_json_object_reading(&req.body, reads)?;
    // The delivery id header changes on every attempt; this identifies the resource version.
    let delivery_id = text_at(&p, "id").map(|id| {
        let modified = text_at(&p, "date_modified_gmt").unwrap_or_default();
        format!("{topic}:{id}:{modified}")
    });
    let contact = if topic.starts_with("customer.") {
        ContactFields {
            email: first_text(&p, &["email", "billing.email"]),
            first_name: first_text(&p, &["first_name", "billing.first_name"]),
            last_name: first_text(&p, &["last_name", "billing.last_name"]),
            full_name: None,
            phone: text_at(&p, "billing.phone"),
            organization: text_at(&p, "billing.company"),
            ip4: None,
        }
    } else {
        ContactFields {
            email: text_at(&p, "billing.email"),
            first_name: first_text(&p, &["billing.first_name", "shipping.first_name"]),
            last_name: first_text(&p, &["billing.last_name", "shipping.last_name"]),
            full_name: None,
            phone: first_text(&p, &["billing.phone", "shipping.phone"]),
            organization: first_text(&p, &["billing.company", "shipping.company"]),
            ip4: text_at(&p, "customer_ip_address"),
        }
    };
    let products = products_at(p.get("line_items"), &["sku"], &["name"]);
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id,
        contact,
        products,
        // WooCommerce has no standard consent field; a route can select one from meta_data.
        consent: None,
        payload: p,
        from_browser_form: false,
        lookup: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::AuthSettings;
    use crate::sources::test_support::{assert_reads_suffice, request, secrets};
    use base64::prelude::*;

    #[test]
    fn ping_is_recognised_only_unsigned_and_exact() {
        assert!(handshake(&request("/", &[], "webhook_id=42")).is_some());
        assert!(handshake(&request("/", &[], "webhook_id=")).is_none());
        assert!(handshake(&request("/", &[], "webhook_id=42&x=1")).is_none());
        assert!(handshake(&request("/", &[(SIGNATURE_HEADER, "x")], "webhook_id=42")).is_none());
    }

    #[test]
    fn order_signed_and_parsed() {
        // PHP-style JSON: escaped slashes and \u escapes are signed as sent.
        let body = r#"{"id":727,"date_modified_gmt":"2026-01-01T10:00:00","billing":{"first_name":"Ren\u00e9e","last_name":"O","company":"","email":"renee@example.com","phone":"555"},"line_items":[{"name":"Mug","sku":"MUG-1"}],"_links":{"self":[{"href":"https:\/\/shop.example\/wp-json"}]}}"#;
        let tag = BASE64_STANDARD.encode(hmac_sha256(b"wc-secret", &[body.as_bytes()]));
        let req = request(
            "/webhooks/woocommerce",
            &[(SIGNATURE_HEADER, &tag), (TOPIC_HEADER, "order.created")],
            body,
        );
        assert!(
            SPEC.authenticate(&req, &secrets(&["wc-secret"]), &AuthSettings::default())
                .is_ok()
        );
        let Parsed::Submission(s) = SPEC.parse(&req).unwrap() else {
            panic!("not a submission")
        };
        assert_eq!(s.contact.email.as_deref(), Some("renee@example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Renée"));
        assert_eq!(s.contact.organization, None);
        assert_eq!(
            s.delivery_id.as_deref(),
            Some("order.created:727:2026-01-01T10:00:00")
        );
        assert_eq!(s.products[0].sku.as_deref(), Some("MUG-1"));
    }

    #[test]
    fn reading_only_its_own_paths_parses_the_same_submission() {
        let order = r#"{"id":9,"date_modified_gmt":"2026-01-01T10:00:00","customer_ip_address":"203.0.113.4","billing":{"first_name":"A","email":"a@b.co","phone":"1"},"shipping":{"company":"Co"},"line_items":[{"name":"Mug","sku":"MUG-1","meta_data":[{"key":"k","value":"v"}],"taxes":[]}],"meta_data":[{"id":1}]}"#;
        let customer = r#"{"id":3,"email":"c@d.co","first_name":"C","last_name":"D","billing":{"company":"Org"},"avatar_url":"https://x"}"#;
        let requests = [(order, "order.created"), (customer, "customer.created")]
            .map(|(body, topic)| request("/webhooks/woocommerce", &[(TOPIC_HEADER, topic)], body));
        assert_reads_suffice(&SPEC, &requests);
    }
}
