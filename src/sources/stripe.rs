//! `stripe`: Checkout sessions, customers and invoices, signed with `Stripe-Signature`
//! (`t=<unix>,v1=<hex>`: HMAC-SHA256 of `t.body`, keyed by the `whsec_` string as is).

use serde_json::Value;

use super::util::body::parse_json_object;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::lookup::{Api, Lookup};
use crate::submission::{
    ContactFields, Parsed, Product, Submission, first_text, products_at, text_at,
};

pub(super) const SIGNATURE_HEADER: &str = "Stripe-Signature";

pub(super) const DEFAULT_TOPICS: &[&str] = &[
    "checkout.session.completed",
    "customer.created",
    "invoice.paid",
    // Its customer by id only: looked up (`sender_api.{route}.secret_key`).
    "customer.subscription.created",
];

/// The `stripe` sender.
pub(super) const SPEC: SenderSpec = SenderSpec::new(
    "stripe",
    Auth::Timestamped {
        header: SIGNATURE_HEADER,
    },
    Parse::Whole(parse),
)
.topics(DEFAULT_TOPICS)
.looks_up(crate::lookup::Api::Stripe, false);

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let topic = text_at(&payload, "type").ok_or(ParseError::MissingTopic("\"type\" field"))?;
    let object = payload
        .pointer("/data/object")
        .cloned()
        .unwrap_or(Value::Null);
    let (contact, consent, products) = match topic.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            checkout_fields(&object)
        }
        t if t.starts_with("invoice.") => invoice_fields(&object),
        _ => customer_fields(&object),
    };
    // An object that names its customer only by id (a subscription, a payment intent): the
    // customer is looked up in Stripe's API (`lookup::customers`).
    let lookup = object
        .get("customer")
        .and_then(Value::as_str)
        .filter(|id| contact.email.is_none() && id.starts_with("cus_"))
        .map(|id| Lookup {
            api: Api::Stripe,
            object: "customer".into(),
            id: id.to_string(),
            more_ids: Vec::new(),
            objects: Default::default(),
            context: serde_json::Map::new(),
        });
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id: text_at(&payload, "id"),
        contact,
        products,
        consent,
        payload,
        from_browser_form: false,
        lookup,
    })))
}

fn checkout_fields(o: &Value) -> (ContactFields, Option<bool>, Vec<Product>) {
    let contact = ContactFields {
        email: first_text(o, &["customer_details.email", "customer_email"]),
        first_name: None,
        last_name: None,
        full_name: first_text(
            o,
            &["customer_details.individual_name", "customer_details.name"],
        ),
        phone: text_at(o, "customer_details.phone"),
        organization: text_at(o, "customer_details.business_name"),
        ip4: None,
    };
    // Present only when the session collected promotional consent.
    let consent = text_at(o, "consent.promotions").map(|c| c == "opt_in");
    // Checkout sessions carry no line items in the event (they need an API call).
    (contact, consent, Vec::new())
}

fn customer_fields(o: &Value) -> (ContactFields, Option<bool>, Vec<Product>) {
    let contact = ContactFields {
        email: text_at(o, "email"),
        full_name: text_at(o, "name"),
        phone: text_at(o, "phone"),
        organization: first_text(o, &["metadata.company", "metadata.organization"]),
        ..ContactFields::default()
    };
    (contact, None, Vec::new())
}

fn invoice_fields(o: &Value) -> (ContactFields, Option<bool>, Vec<Product>) {
    let contact = ContactFields {
        email: text_at(o, "customer_email"),
        full_name: text_at(o, "customer_name"),
        phone: text_at(o, "customer_phone"),
        ..ContactFields::default()
    };
    let products = products_at(
        o.pointer("/lines/data"),
        &["price.product", "pricing.price_details.product", "price.id"],
        &["description"],
    );
    (contact, None, products)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::request;

    use std::time::{Duration, UNIX_EPOCH};

    const SECRET: &str = "whsec_test_secret";
    const BODY: &str = "{\n  \"id\": \"evt_1\",\n  \"type\": \"checkout.session.completed\",\n  \"data\": {\n    \"object\": {\n      \"customer_details\": {\"email\": \"ada@example.com\", \"name\": \"Ada King Lovelace\", \"phone\": \"+441234\", \"business_name\": \"Engines Ltd\"},\n      \"consent\": {\"promotions\": \"opt_in\"}\n    }\n  }\n}";

    fn signed_at(t: i64, secrets_to_sign: &[&str]) -> InboundRequest {
        let mut header = format!("t={t}");
        for secret in secrets_to_sign {
            let sig = hmac_sha256(
                secret.as_bytes(),
                &[t.to_string().as_bytes(), b".", BODY.as_bytes()],
            );
            header.push_str(&format!(",v1={}", hex::encode(sig)));
        }
        header.push_str(",v0=deadbeef");
        let mut req = request("/webhooks/stripe", &[(SIGNATURE_HEADER, &header)], BODY);
        req.received_at = UNIX_EPOCH + Duration::from_secs(t as u64 + 10);
        req
    }

    #[test]
    fn checkout_defaults() {
        let Parsed::Submission(s) = parse(&signed_at(1, &[SECRET])).unwrap() else {
            panic!("not a submission")
        };
        assert_eq!(s.topic.as_deref(), Some("checkout.session.completed"));
        assert_eq!(s.delivery_id.as_deref(), Some("evt_1"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Ada King Lovelace"));
        assert_eq!(s.contact.organization.as_deref(), Some("Engines Ltd"));
        assert_eq!(s.consent, Some(true));
    }
}
