//! `bigcommerce`: store webhooks, which carry only ids. Signed with the Standard Webhooks
//! headers (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` over
//! `{id}.{timestamp}.{body}`), keyed by the app's client secret as it is (its own bytes, not
//! base64-decoded), within the replay window. The body is `{scope, store_id, producer:
//! "stores/{hash}", hash, data: {type, id}}`: the order is looked up through BigCommerce's API
//! (`lookup::bigcommerce`) with `sender_api.{route}.access_token`. Dedupe: `webhook-id`,
//! else the body's `hash` (the same for duplicate fires of one event).

use secrecy::{SecretBox, SecretString};
use serde_json::Value;

use super::standardwebhooks::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, authenticate_keyed};
use super::util::body::parse_json_object;
use super::{Auth, AuthError, AuthSettings, CustomAuth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::lookup::{Api, Lookup};
use crate::submission::{Parsed, Submission, text_at};

pub(crate) const DEFAULT_TOPICS: &[&str] = &["store/order/created"];

/// The `bigcommerce` sender.
pub(crate) const SPEC: SenderSpec =
    SenderSpec::new("bigcommerce", Auth::Custom(AUTH), Parse::Whole(parse))
        .topics(DEFAULT_TOPICS)
        .looks_up(crate::lookup::Api::BigCommerce, true);

const AUTH: CustomAuth = CustomAuth {
    verify: authenticate,
    headers: &[SIGNATURE_HEADER, TIMESTAMP_HEADER, ID_HEADER],
    timed: true,
    untimed_fallback: false,
    #[cfg(any(test, feature = "testing"))]
    sign,
};

/// The client secret's own bytes are the key.
fn raw_key(secret: &SecretString) -> Option<SecretBox<[u8]>> {
    use secrecy::ExposeSecret;
    let bytes = secret.expose_secret().trim().as_bytes().to_vec();
    (!bytes.is_empty()).then(|| SecretBox::new(bytes.into_boxed_slice()))
}

fn authenticate(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
) -> Result<(), AuthError> {
    authenticate_keyed(req, secrets, settings, raw_key)
}

/// Keyed by the client secret's own bytes.
#[cfg(any(test, feature = "testing"))]
fn sign(signing: &super::spec::Signing<'_>) -> Vec<(&'static str, String)> {
    super::standardwebhooks::sign_with_key(signing.secret.as_bytes(), signing)
}

pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let topic = text_at(&payload, "scope").ok_or(ParseError::MissingTopic("\"scope\" field"))?;
    let delivery_id = req
        .header(ID_HEADER)
        .map(str::to_string)
        .or_else(|| text_at(&payload, "hash"));
    let kind = text_at(&payload, "data.type").unwrap_or_default();
    // Order ids are numbers; anything else is not an order this can look up.
    let id = text_at(&payload, "data.id")
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
    let Some(id) = id.filter(|_| kind == "order") else {
        return Ok(Parsed::Ignored {
            reason: format!("{topic} carries no order to look up"),
        });
    };
    let mut context = serde_json::Map::new();
    if let Some(hash) = text_at(&payload, "producer").and_then(|p| {
        p.strip_prefix("stores/")
            .map(str::to_string)
            .filter(|h| !h.is_empty())
    }) {
        context.insert("store_hash".into(), Value::String(hash));
    }
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id,
        lookup: Some(Lookup {
            api: Api::BigCommerce,
            object: "order".into(),
            id,
            more_ids: Vec::new(),
            objects: Default::default(),
            context,
        }),
        payload,
        ..Submission::default()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{request, secrets, submission};

    // Shaped like the order webhook of BigCommerce's docs (reference section 12).
    const BODY: &str = r#"{"created_at":1767225600,"store_id":"1025646","producer":"stores/abc123","scope":"store/order/created","hash":"3f9ea420af83450d7ef9f78b08c8af25b2213637","data":{"type":"order","id":100}}"#;

    #[test]
    fn the_client_secret_keys_the_standard_webhooks_signature_as_it_is() {
        let signed = |secret: &str| {
            let headers = sign(&crate::sources::spec::Signing {
                secret,
                body: BODY.as_bytes(),
                timestamp: now(),
                id: "wh-1",
                url: "",
            });
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request("/webhooks/bigcommerce", &headers, BODY)
        };
        let route = secrets(&["bc-client-secret"]);
        let settings = AuthSettings::default();
        assert_eq!(
            SPEC.authenticate(&signed("bc-client-secret"), &route, &settings),
            Ok(())
        );
        assert_eq!(
            SPEC.authenticate(&signed("another"), &route, &settings),
            Err(AuthError::SignatureMismatch)
        );
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn an_order_webhook_is_a_lookup_of_its_order_in_its_store() {
        let req = request("/webhooks/bigcommerce", &[(ID_HEADER, "wh-1")], BODY);
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("store/order/created"));
        assert_eq!(s.delivery_id.as_deref(), Some("wh-1"));
        let lookup = s.lookup.unwrap();
        assert_eq!(lookup.api, Api::BigCommerce);
        assert_eq!(lookup.id, "100");
        assert_eq!(lookup.context["store_hash"], "abc123");
        assert_eq!(s.contact.email, None, "nothing but ids");
        // Without the header, the body's hash identifies the delivery.
        let s = submission(parse(&request("/webhooks/bigcommerce", &[], BODY)));
        assert_eq!(
            s.delivery_id.as_deref(),
            Some("3f9ea420af83450d7ef9f78b08c8af25b2213637")
        );
        let odd_id = r#"{"scope":"store/order/created","data":{"type":"order","id":"12a3"}}"#;
        assert!(matches!(
            parse(&request("/webhooks/bigcommerce", &[], odd_id)),
            Ok(Parsed::Ignored { .. })
        ));
        let product = r#"{"scope":"store/product/updated","data":{"type":"product","id":7}}"#;
        assert!(matches!(
            parse(&request("/webhooks/bigcommerce", &[], product)),
            Ok(Parsed::Ignored { .. })
        ));
    }
}
