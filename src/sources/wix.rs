//! `wix`: Wix app webhooks. The body is a JWT that Wix signs RS256 with the app's key; the
//! route's secret is the app's public key (PEM, from the app's dashboard), several during a
//! rotation. Only RS256 is accepted, and an `exp` claim, when there is one, is checked.
//!
//! The claims carry the event as JSON text: `data` (itself an object or text) holds
//! `eventType` (the topic, `wix.contacts.v4.contact_created`), `instanceId`, `identity` and
//! `data`, the event: `{id, entityFqdn, slug, entityId, createdEvent: {entity}}` or, updated,
//! `updatedEvent: {currentEntity}`. Each text is parsed, so a route selects from
//! `$.contact` (the contact entity), `$.event`, `$.identity` and `$.instanceId`. Contacts:
//! `primaryInfo.email`/`phone` (else the primary of `info.emails`/`info.phones`),
//! `info.name.first`/`last`, `info.company`, consent from the email subscription status
//! (`SUBSCRIBED` yes, `UNSUBSCRIBED` no). Dedupe: the event's `id`. Wix waits 1.25 s for 200.

use base64::prelude::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::spec::Media;
use super::{Auth, AuthError, AuthSettings, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, text_at};

pub(crate) const DEFAULT_TOPICS: &[&str] = &[
    "wix.contacts.v4.contact_created",
    "wix.contacts.v4.contact_updated",
];

/// The `wix` sender. Wix does not document the Content-Type of the JWT body: any text type.
pub(crate) const SPEC: SenderSpec = SenderSpec::new(
    "wix",
    Auth::SignedBody {
        verify: authenticate,
    },
    Parse::Whole(parse),
)
.media(Media {
    types: &[
        "text/plain",
        "application/jwt",
        "application/json",
        "application/octet-stream",
    ],
    missing_is_json: true,
})
.topics(DEFAULT_TOPICS);

/// The compact JWT of the body (a JSON string holding one is read too).
fn token(body: &[u8]) -> Result<&str, AuthError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| AuthError::BodyNotSigned("a JWT signed by Wix"))?
        .trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text.split('.').count() != 3 || text.is_empty() {
        return Err(AuthError::BodyNotSigned("a JWT signed by Wix"));
    }
    Ok(text)
}

pub(crate) fn authenticate(
    req: &InboundRequest,
    secrets: &[SecretString],
    _settings: &AuthSettings,
) -> Result<(), AuthError> {
    let token = token(&req.body)?;
    if secrets.is_empty() {
        return Err(AuthError::NoSecretConfigured);
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // Wix does not document an `exp`: checked when present, not required.
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_aud = false;
    check_issued_at(token, req.received_at)?;
    let mut usable_key = false;
    let mut refusal = AuthError::SignatureMismatch;
    for secret in secrets {
        let Ok(key) = DecodingKey::from_rsa_pem(secret.expose_secret().as_bytes()) else {
            continue;
        };
        usable_key = true;
        match jsonwebtoken::decode::<Value>(token, &key, &validation) {
            Ok(_) => return Ok(()),
            Err(error) => match error.kind() {
                ErrorKind::InvalidSignature => {}
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => {
                    refusal = AuthError::StaleTimestamp;
                }
                _ => return Err(AuthError::MalformedSignature),
            },
        }
    }
    if usable_key {
        Err(refusal)
    } else {
        Err(AuthError::UnusableKey("a PEM public key (the Wix app's)"))
    }
}

/// Older than this, a token is refused even without an `exp`: longer than Wix's retries (about
/// 47 h) and than a route remembers deliveries (72 h), so a captured body cannot re-apply old
/// data once it is forgotten. Whether Wix re-signs a retry is not documented: this allows both.
pub(crate) const MAX_TOKEN_AGE_SECS: i64 = 72 * 3600;

/// An `iat` claim, when there is one, no older than [`MAX_TOKEN_AGE_SECS`] (nor ahead).
fn check_issued_at(token: &str, now: std::time::SystemTime) -> Result<(), AuthError> {
    let Ok(claims) = claims(token.as_bytes()) else {
        return Err(AuthError::MalformedSignature);
    };
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return Ok(());
    };
    super::util::signature::check_replay_window(
        iat,
        now,
        std::time::Duration::from_secs(MAX_TOKEN_AGE_SECS as u64),
    )
}

/// A JSON value that may arrive as JSON text (Wix nests its event as strings).
fn unstring(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

/// The claims of a verified body, without checking the signature again.
fn claims(body: &[u8]) -> Result<Value, ParseError> {
    let token = token(body).map_err(|_| ParseError::Json("the body is not a JWT".into()))?;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = BASE64_URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| ParseError::Json("the JWT's claims are not base64url".into()))?;
    super::util::body::parse_json_object(&bytes)
}

pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let claims = claims(&req.body)?;
    let envelope = unstring(claims.get("data"));
    let topic = text_at(&envelope, "eventType")
        .ok_or(ParseError::MissingTopic("\"eventType\" in the JWT's data"))?;
    let event = unstring(envelope.get("data"));
    let contact_entity = event
        .pointer("/createdEvent/entity")
        .or_else(|| event.pointer("/updatedEvent/currentEntity"))
        .cloned()
        .unwrap_or(Value::Null);
    let contact = contact_of(&contact_entity);
    let consent = consent_of(&contact_entity);
    let delivery_id = text_at(&event, "id");
    let mut payload = Map::new();
    payload.insert("eventType".into(), Value::String(topic.clone()));
    payload.insert(
        "instanceId".into(),
        envelope.get("instanceId").cloned().unwrap_or(Value::Null),
    );
    payload.insert("identity".into(), unstring(envelope.get("identity")));
    payload.insert("contact".into(), contact_entity);
    payload.insert("event".into(), event);
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id,
        contact,
        products: Vec::new(),
        consent,
        payload: Value::Object(payload),
        from_browser_form: false,
        lookup: None,
    })))
}

/// The primary item of `info.emails` / `info.phones` (else the first).
fn primary_item(entity: &Value, list: &str, key: &str) -> Option<String> {
    let items = entity.pointer(&format!("/info/{list}/items"))?.as_array()?;
    items
        .iter()
        .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| items.first())
        .and_then(|i| text_at(i, key))
}

fn contact_of(entity: &Value) -> ContactFields {
    ContactFields {
        email: text_at(entity, "primaryInfo.email")
            .or_else(|| text_at(entity, "primaryEmail.email"))
            .or_else(|| primary_item(entity, "emails", "email")),
        first_name: text_at(entity, "info.name.first"),
        last_name: text_at(entity, "info.name.last"),
        full_name: None,
        phone: text_at(entity, "primaryInfo.phone")
            .or_else(|| text_at(entity, "primaryPhone.phone"))
            .or_else(|| primary_item(entity, "phones", "phone")),
        organization: text_at(entity, "info.company"),
        ip4: None,
    }
}

fn consent_of(entity: &Value) -> Option<bool> {
    let status = text_at(entity, "primaryEmail.subscriptionStatus").or_else(|| {
        entity
            .pointer("/info/extendedFields/items")
            .and_then(|items| items.get("emailSubscriptions.subscriptionStatus"))
            .and_then(Value::as_str)
            .map(str::to_string)
    })?;
    match status.as_str() {
        "SUBSCRIBED" => Some(true),
        "UNSUBSCRIBED" => Some(false),
        _ => None,
    }
}

/// Signs claims as Wix would, with the test key pair of `local/` (tests only).
#[cfg(test)]
pub(crate) fn sign_for_tests(claims: &Value, private_pem: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::RS256), claims, &key).unwrap()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sources::test_support::{request, secrets, submission};

    const PRIVATE: &str = include_str!("../../local/wix-app-private-key.pem");

    fn public() -> String {
        let secret: Value = serde_json::from_str(include_str!("../../local/secret.json")).unwrap();
        secret["webhook_secrets"]["wix"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A contact_created event as Wix nests it: the event, and the envelope, as JSON text.
    fn created(extra_claims: Value) -> Value {
        let entity = json!({
            "id": "c-1", "revision": 1,
            "primaryInfo": {"email": "Kim@Example.com", "phone": "+1 555 0100"},
            "primaryEmail": {"email": "Kim@Example.com", "subscriptionStatus": "SUBSCRIBED"},
            "info": {"name": {"first": "Kim", "last": "Ito"}, "company": "Ito & Co",
                     "emails": {"items": [{"email": "Kim@Example.com", "primary": true}]}}
        });
        let event = json!({"id": "ev-1", "entityFqdn": "wix.contacts.v4.contact", "slug": "created",
                           "entityId": "c-1", "createdEvent": {"entity": entity}});
        let envelope = json!({"eventType": "wix.contacts.v4.contact_created", "instanceId": "inst-1",
                              "data": event.to_string(), "identity": "{\"identityType\":\"APP\"}"});
        let mut claims = json!({"data": envelope.to_string(), "iat": 1_767_225_600});
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra_claims) {
            claims.extend(extra);
        }
        claims
    }

    /// Received a minute after the claims' `iat`.
    fn post(body: &str) -> InboundRequest {
        let mut req = request("/webhooks/wix", &[("content-type", "text/plain")], body);
        req.received_at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_660);
        req
    }

    #[test]
    fn a_signed_contact_created_event_maps_its_contact() {
        let req = post(&sign_for_tests(&created(json!({})), PRIVATE));
        assert_eq!(
            SPEC.authenticate(&req, &secrets(&[&public()]), &AuthSettings::default()),
            Ok(())
        );
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("wix.contacts.v4.contact_created"));
        assert_eq!(s.delivery_id.as_deref(), Some("ev-1"));
        assert_eq!(s.contact.email.as_deref(), Some("Kim@Example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Kim"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Ito"));
        assert_eq!(s.contact.phone.as_deref(), Some("+1 555 0100"));
        assert_eq!(s.contact.organization.as_deref(), Some("Ito & Co"));
        assert_eq!(s.consent, Some(true));
        assert_eq!(s.payload["contact"]["id"], "c-1");
        assert_eq!(s.payload["identity"]["identityType"], "APP");
    }

    #[test]
    fn only_rs256_with_the_apps_key_and_unexpired_passes() {
        let keys = secrets(&[&public()]);
        let settings = AuthSettings::default();
        let verify = |body: &str| SPEC.authenticate(&post(body), &keys, &settings);
        let good = sign_for_tests(&created(json!({})), PRIVATE);
        // Another key pair's signature.
        let other = rsa_test_key();
        assert_eq!(
            verify(&sign_for_tests(&created(json!({})), &other)),
            Err(AuthError::SignatureMismatch)
        );
        // Claims changed after signing.
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = BASE64_URL_SAFE_NO_PAD.encode(created(json!({"x": 1})).to_string());
        parts[1] = &forged;
        assert_eq!(verify(&parts.join(".")), Err(AuthError::SignatureMismatch));
        // Issued longer ago than Wix retries and a route remembers, with no `exp`.
        let mut late = post(&good);
        late.received_at += std::time::Duration::from_secs(MAX_TOKEN_AGE_SECS as u64 + 1);
        assert_eq!(
            SPEC.authenticate(&late, &keys, &settings),
            Err(AuthError::StaleTimestamp)
        );
        // Expired.
        assert_eq!(
            verify(&sign_for_tests(
                &created(json!({"exp": 1_000_000})),
                PRIVATE
            )),
            Err(AuthError::StaleTimestamp)
        );
        // `alg: none` and HS256 (keyed with the public key, the classic confusion) are refused.
        let none = format!(
            "{}.{}.",
            BASE64_URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            BASE64_URL_SAFE_NO_PAD.encode(created(json!({})).to_string())
        );
        assert!(verify(&none).is_err());
        let hs256 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &created(json!({})),
            &jsonwebtoken::EncodingKey::from_secret(public().as_bytes()),
        )
        .unwrap();
        assert_eq!(verify(&hs256), Err(AuthError::MalformedSignature));
        assert!(matches!(
            verify("not a token"),
            Err(AuthError::BodyNotSigned(_))
        ));
        // Rotation: either key verifies; a key that is not PEM is a configuration error.
        let rotated = secrets(&["not a key", &public()]);
        assert_eq!(SPEC.authenticate(&post(&good), &rotated, &settings), Ok(()));
        assert!(matches!(
            SPEC.authenticate(&post(&good), &secrets(&["not a key"]), &settings),
            Err(AuthError::UnusableKey(_))
        ));
        assert_eq!(verify(&good), Ok(()));
    }

    /// A second RSA key, made the way local/wix-app-private-key.pem was (openssl genpkey).
    fn rsa_test_key() -> String {
        include_str!("../../tests/fixtures/other-rsa-private-key.pem").to_string()
    }

    #[test]
    fn updated_events_and_unsubscribed_contacts() {
        let entity = json!({"info": {"name": {"first": "Lee"},
                                     "emails": {"items": [{"email": "b@x.com"}, {"email": "lee@x.com", "primary": true}]},
                                     "extendedFields": {"items": {"emailSubscriptions.subscriptionStatus": "UNSUBSCRIBED"}}}});
        let event = json!({"id": "ev-2", "updatedEvent": {"currentEntity": entity}});
        // Here the envelope is an object and the event an object: both shapes are read.
        let claims =
            json!({"data": {"eventType": "wix.contacts.v4.contact_updated", "data": event}});
        let s = submission(parse(&post(&sign_for_tests(&claims, PRIVATE))));
        assert_eq!(s.topic.as_deref(), Some("wix.contacts.v4.contact_updated"));
        assert_eq!(s.contact.email.as_deref(), Some("lee@x.com"));
        assert_eq!(s.consent, Some(false));
        let no_topic = json!({"data": "{}"});
        assert!(matches!(
            parse(&post(&sign_for_tests(&no_topic, PRIVATE))),
            Err(ParseError::MissingTopic(_))
        ));
    }
}
