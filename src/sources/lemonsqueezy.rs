//! `lemonsqueezy`: orders and subscriptions, signed with `X-Signature` (hex HMAC-SHA256 of the
//! raw body, keyed by the webhook's signing secret). The topic is the signed
//! `meta.event_name`; the unsigned `X-Event-Name` header must agree with it. No timestamp and
//! no delivery id: dedupe on `meta.event_name` + `data.id`.

use serde_json::Value;

use super::util::body::parse_json_object;
use super::util::signature::TagEncoding;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Product, Submission, text_at};

pub(super) const SIGNATURE_HEADER: &str = "X-Signature";
pub(super) const TOPIC_HEADER: &str = "x-event-name";

pub(super) const DEFAULT_TOPICS: &[&str] = &["order_created", "subscription_created"];

/// The `lemonsqueezy` sender.
pub(super) const SPEC: SenderSpec = SenderSpec::new(
    "lemonsqueezy",
    Auth::BodyHmac {
        header: SIGNATURE_HEADER,
        encoding: TagEncoding::Hex,
        prefix: "",
    },
    Parse::Whole(parse),
)
.topics(DEFAULT_TOPICS);

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    // The header is not signed: a topic taken from it could be anyone's.
    let topic = text_at(&payload, "meta.event_name")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or(ParseError::MissingTopic("\"meta.event_name\""))?;
    if let Some(header) = req.header(TOPIC_HEADER).map(str::trim)
        && !header.is_empty()
        && header != topic
    {
        return Err(ParseError::Contradiction(format!(
            "the X-Event-Name header ({header}) disagrees with the signed meta.event_name ({topic})"
        )));
    }
    let delivery_id = text_at(&payload, "data.id").map(|id| format!("{topic}:{id}"));
    let attributes = payload.pointer("/data/attributes").unwrap_or(&Value::Null);
    let contact = ContactFields {
        email: text_at(attributes, "user_email"),
        // One string ("Ada Lovelace"): the mapping stage splits it.
        full_name: text_at(attributes, "user_name"),
        ..ContactFields::default()
    };
    let products = products(attributes);
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id,
        contact,
        products,
        // Lemon Squeezy carries no marketing consent.
        consent: None,
        payload,
        from_browser_form: false,
        lookup: None,
    })))
}

/// Orders name their product in `first_order_item`; subscriptions carry it at the top level.
/// The variant id stands in for a SKU (Lemon Squeezy has none).
fn products(attributes: &Value) -> Vec<Product> {
    let item = attributes.get("first_order_item").unwrap_or(attributes);
    let product = Product {
        sku: text_at(item, "variant_id"),
        title: text_at(item, "product_name"),
    };
    if product.sku.is_none() && product.title.is_none() {
        Vec::new()
    } else {
        vec![product]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::{request, secrets, submission};
    use crate::sources::{AuthError, AuthSettings};

    const SECRET: &str = "ls-signing-secret";
    // Shaped like the order example of docs.lemonsqueezy.com/help/webhooks (reference section 14).
    const ORDER: &str = r#"{"meta":{"event_name":"order_created","custom_data":{"customer_id":25},"test_mode":true,"webhook_id":"7c2b7d2e"},"data":{"type":"orders","id":"1","attributes":{"store_id":1,"customer_id":1,"identifier":"104e18a2-d755-4d4b-80c4-a6c1dcbe1c10","order_number":1,"user_name":"Darlene Cole","user_email":"Darlene@Example.com","currency":"USD","subtotal":999,"total":999,"status":"paid","first_order_item":{"id":1,"order_id":1,"product_id":1,"variant_id":7,"price_id":1,"product_name":"Test Limited License for 2 years","variant_name":"Default","price":1199,"quantity":1},"test_mode":true}}}"#;
    const SUBSCRIPTION: &str = r#"{"meta":{"event_name":"subscription_created"},"data":{"type":"subscriptions","id":"42","attributes":{"store_id":1,"order_id":2,"product_id":3,"variant_id":9,"product_name":"Pro plan","variant_name":"Monthly","user_name":"Ed Lee","user_email":"ed@example.com","status":"active"}}}"#;

    fn signed(body: &str, secret: &str, topic: &str) -> InboundRequest {
        let tag = hex::encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
        request(
            "/webhooks/lemonsqueezy",
            &[
                ("content-type", "application/json"),
                (SIGNATURE_HEADER, &tag),
                (TOPIC_HEADER, topic),
            ],
            body,
        )
    }

    #[test]
    fn missing_and_malformed_headers() {
        let unsigned = request(
            "/webhooks/lemonsqueezy",
            &[(TOPIC_HEADER, "order_created")],
            ORDER,
        );
        assert_eq!(
            SPEC.authenticate(&unsigned, &secrets(&[SECRET]), &AuthSettings::default()),
            Err(AuthError::MissingSignature("X-Signature"))
        );
        let garbage = request("/", &[(SIGNATURE_HEADER, "sha256=zz")], ORDER);
        assert_eq!(
            SPEC.authenticate(&garbage, &secrets(&[SECRET]), &AuthSettings::default()),
            Err(AuthError::MalformedSignature)
        );
    }

    #[test]
    fn order_defaults() {
        let s = submission(parse(&signed(ORDER, SECRET, "order_created")));
        assert_eq!(s.topic.as_deref(), Some("order_created"));
        assert_eq!(s.delivery_id.as_deref(), Some("order_created:1"));
        assert_eq!(s.contact.email.as_deref(), Some("Darlene@Example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Darlene Cole"));
        assert_eq!(s.consent, None);
        assert_eq!(
            s.products,
            vec![Product {
                sku: Some("7".into()),
                title: Some("Test Limited License for 2 years".into()),
            }]
        );
    }

    #[test]
    fn subscription_defaults_and_topic_from_the_body() {
        let mut req = signed(SUBSCRIPTION, SECRET, "subscription_created");
        req.headers.remove(TOPIC_HEADER);
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("subscription_created"));
        assert_eq!(s.delivery_id.as_deref(), Some("subscription_created:42"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Ed Lee"));
        assert_eq!(s.products[0].title.as_deref(), Some("Pro plan"));
        assert_eq!(s.products[0].sku.as_deref(), Some("9"));
    }

    #[test]
    fn an_unsigned_topic_that_disagrees_with_the_signed_one_is_refused() {
        // Signed as an order, relabelled in the header to reach another route's topic.
        let relabelled = signed(ORDER, SECRET, "subscription_created");
        assert!(
            SPEC.authenticate(&relabelled, &secrets(&[SECRET]), &AuthSettings::default())
                .is_ok()
        );
        let Err(ParseError::Contradiction(message)) = parse(&relabelled) else {
            panic!("a relabelled topic is refused");
        };
        assert!(message.contains("X-Event-Name"), "{message}");
    }

    #[test]
    fn no_email_no_topic_and_malformed() {
        let body = r#"{"meta":{"event_name":"order_created"},"data":{"id":"5","attributes":{"user_email":null,"user_name":"Anon"}}}"#;
        let s = submission(parse(&signed(body, SECRET, "order_created")));
        assert_eq!(s.contact.email, None);
        assert!(s.products.is_empty());
        let bare = request("/", &[], r#"{"data":{}}"#);
        assert!(matches!(parse(&bare), Err(ParseError::MissingTopic(_))));
        // Only the header names the topic: it is not signed, so it is not taken.
        let header_only = signed(r#"{"data":{"id":"5"}}"#, SECRET, "order_created");
        assert!(matches!(
            parse(&header_only),
            Err(ParseError::MissingTopic(_))
        ));
        assert!(matches!(
            parse(&signed("{\"meta\":", SECRET, "order_created")),
            Err(ParseError::Json(_))
        ));
    }
}
