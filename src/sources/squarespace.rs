//! `squarespace`: Commerce webhook subscriptions (`order.create`, `order.update`), which carry
//! only ids. Signed with `Squarespace-Signature`: hex HMAC-SHA256 of the raw body keyed by the
//! subscription's secret, hex-decoded (Squarespace returns it, in upper-case hex, only when the
//! subscription is created or its secret rotated; a rotation ends the old one at once). No
//! timestamp: dedupe on the body's `id`. The order (`data.orderId`) is looked up through the
//! Commerce API (`lookup::squarespace`) with `sender_api.{route}.api_key`.

use secrecy::{ExposeSecret, SecretString};

use super::util::body::parse_json_object;
use super::util::signature::{TagEncoding, constant_time_eq, hmac_sha256};
use super::{Auth, AuthError, AuthSettings, CustomAuth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::lookup::{Api, Lookup};
use crate::submission::{Parsed, Submission, text_at};

pub(crate) const SIGNATURE_HEADER: &str = "Squarespace-Signature";
pub(crate) const DEFAULT_TOPICS: &[&str] = &["order.create"];

/// The `squarespace` sender.
pub(crate) const SPEC: SenderSpec =
    SenderSpec::new("squarespace", Auth::Custom(AUTH), Parse::Whole(parse))
        .topics(DEFAULT_TOPICS)
        .looks_up(crate::lookup::Api::Squarespace, true);

const AUTH: CustomAuth = CustomAuth {
    verify: authenticate,
    headers: &[SIGNATURE_HEADER],
    timed: false,
    untimed_fallback: false,
    #[cfg(any(test, feature = "testing"))]
    sign,
};

/// The key of a secret: its hex decoded (the secret as it is, when it is not hex).
fn key_of(secret: &SecretString) -> Vec<u8> {
    let text = secret.expose_secret().trim();
    hex::decode(text).unwrap_or_else(|_| text.as_bytes().to_vec())
}

fn authenticate(
    req: &InboundRequest,
    secrets: &[SecretString],
    _settings: &AuthSettings,
) -> Result<(), AuthError> {
    let header = req
        .header(SIGNATURE_HEADER)
        .ok_or(AuthError::MissingSignature(SIGNATURE_HEADER))?;
    let tag = TagEncoding::Hex
        .decode(header.trim())
        .ok_or(AuthError::MalformedSignature)?;
    if secrets.is_empty() {
        return Err(AuthError::NoSecretConfigured);
    }
    let mut matched = false;
    for secret in secrets {
        // No early exit: the work done does not depend on which secret matched.
        matched |= constant_time_eq(&hmac_sha256(&key_of(secret), &[&req.body]), &tag);
    }
    if matched {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

#[cfg(any(test, feature = "testing"))]
fn sign(signing: &super::spec::Signing<'_>) -> Vec<(&'static str, String)> {
    let key = key_of(&SecretString::from(signing.secret.to_string()));
    vec![(
        SIGNATURE_HEADER,
        hex::encode(hmac_sha256(&key, &[signing.body])),
    )]
}

pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let topic = text_at(&payload, "topic").ok_or(ParseError::MissingTopic("\"topic\" field"))?;
    let Some(order_id) = text_at(&payload, "data.orderId") else {
        return Ok(Parsed::Ignored {
            reason: format!("Squarespace {topic} names no order to look up"),
        });
    };
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id: text_at(&payload, "id"),
        lookup: Some(Lookup {
            api: Api::Squarespace,
            object: "order".into(),
            id: order_id,
            more_ids: Vec::new(),
            objects: Default::default(),
            context: serde_json::Map::new(),
        }),
        payload,
        ..Submission::default()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{request, secrets, submission};

    const SECRET: &str = "6C6F63616C2D7371756172657370616365";
    // Shaped like the notification of developers.squarespace.com/webhooks (reference section 10).
    const BODY: &str = r#"{"id":"5f0b8b1c2d3e4f5a6b7c8d9e","websiteId":"5c3d2e1f0a9b8c7d6e5f4a3b","subscriptionId":"c3c7f3a0-1b2c-4d5e-8f90-a1b2c3d4e5f6","topic":"order.create","createdOn":"2026-01-01T00:00:00.000Z","data":{"orderId":"5f0b8b1c2d3e4f5a6b7c8d9f"}}"#;

    #[test]
    fn the_signature_is_keyed_by_the_hex_decoded_secret() {
        let key = hex::decode(SECRET).unwrap();
        let tag = hex::encode(hmac_sha256(&key, &[BODY.as_bytes()]));
        let route = secrets(&[SECRET]);
        let settings = AuthSettings::default();
        let signed = request("/webhooks/squarespace", &[(SIGNATURE_HEADER, &tag)], BODY);
        assert_eq!(SPEC.authenticate(&signed, &route, &settings), Ok(()));
        // Upper-case hex, as Squarespace documents its secrets, verifies the same.
        let upper = request(
            "/webhooks/squarespace",
            &[(SIGNATURE_HEADER, &tag.to_uppercase())],
            BODY,
        );
        assert_eq!(SPEC.authenticate(&upper, &route, &settings), Ok(()));
        // Keyed with the secret's text instead of its bytes: refused.
        let text_keyed = hex::encode(hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]));
        let wrong = request(
            "/webhooks/squarespace",
            &[(SIGNATURE_HEADER, &text_keyed)],
            BODY,
        );
        assert_eq!(
            SPEC.authenticate(&wrong, &route, &settings),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn an_order_notification_is_a_lookup_of_its_order() {
        let s = submission(parse(&request("/webhooks/squarespace", &[], BODY)));
        assert_eq!(s.topic.as_deref(), Some("order.create"));
        assert_eq!(s.delivery_id.as_deref(), Some("5f0b8b1c2d3e4f5a6b7c8d9e"));
        let lookup = s.lookup.unwrap();
        assert_eq!(
            (lookup.api, lookup.id.as_str()),
            (Api::Squarespace, "5f0b8b1c2d3e4f5a6b7c8d9f")
        );
        let uninstall = r#"{"id":"x","topic":"extension.uninstall","data":{}}"#;
        assert!(matches!(
            parse(&request("/webhooks/squarespace", &[], uninstall)),
            Ok(Parsed::Ignored { .. })
        ));
    }
}
