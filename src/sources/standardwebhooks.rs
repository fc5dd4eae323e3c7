//! `standardwebhooks`: any sender following the Standard Webhooks specification (Svix and the
//! services built on it, ...). Headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (or their `svix-` equivalents); the signature header is a space-separated
//! list of `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{raw body}">`, keyed by the base64-decoded
//! `whsec_` secret. Asymmetric `v1a,` signatures are not verified here.

use base64::prelude::*;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::Value;

use super::util::body::parse_json_object;
use super::util::fields::recognise_fields;
use super::util::signature::{TagEncoding, check_replay_window, constant_time_eq, hmac_sha256};
use super::{Auth, AuthError, AuthSettings, CustomAuth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, text_at};

pub(crate) const ID_HEADER: &str = "webhook-id";
pub(crate) const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub(crate) const SIGNATURE_HEADER: &str = "webhook-signature";
pub(crate) const SVIX_ID_HEADER: &str = "svix-id";
pub(crate) const SVIX_TIMESTAMP_HEADER: &str = "svix-timestamp";
pub(crate) const SVIX_SIGNATURE_HEADER: &str = "svix-signature";

/// The prefix of symmetric secrets; the rest is the base64 key.
pub(crate) const SECRET_PREFIX: &str = "whsec_";
/// The only signature version verified (`v1a` is ed25519).
const SIGNATURE_VERSION: &str = "v1";

/// The `standardwebhooks` sender.
pub(crate) const SPEC: SenderSpec =
    SenderSpec::new("standardwebhooks", Auth::Custom(AUTH), Parse::Whole(parse));

const AUTH: CustomAuth = CustomAuth {
    verify: authenticate,
    headers: &[SIGNATURE_HEADER, TIMESTAMP_HEADER, ID_HEADER],
    timed: true,
    untimed_fallback: false,
    #[cfg(any(test, feature = "testing"))]
    sign,
};

/// `v1,<base64 HMAC of "{id}.{timestamp}.{body}">`, keyed by the decoded `whsec_` secret.
#[cfg(any(test, feature = "testing"))]
fn sign(signing: &super::spec::Signing<'_>) -> Vec<(&'static str, String)> {
    let key = signing_key(&SecretString::from(signing.secret.to_string()))
        .map(|key| key.expose_secret().to_vec())
        .unwrap_or_default();
    sign_with_key(&key, signing)
}

/// The three Standard Webhooks headers for `signing`, with the HMAC keyed by `key`.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn sign_with_key(
    key: &[u8],
    signing: &super::spec::Signing<'_>,
) -> Vec<(&'static str, String)> {
    let ts = signing.timestamp.to_string();
    let tag = hmac_sha256(
        key,
        &[
            signing.id.as_bytes(),
            b".",
            ts.as_bytes(),
            b".",
            signing.body,
        ],
    );
    vec![
        (
            SIGNATURE_HEADER,
            format!("v1,{}", BASE64_STANDARD.encode(tag)),
        ),
        (TIMESTAMP_HEADER, ts),
        (ID_HEADER, signing.id.to_string()),
    ]
}

/// The `webhook-*` header, else its `svix-*` twin.
fn header<'a>(req: &'a InboundRequest, name: &str, svix: &str) -> Option<&'a str> {
    req.header(name).or_else(|| req.header(svix))
}

/// The HMAC key of a route secret: base64 after an optional `whsec_` prefix, as the
/// reference libraries read it. `None` when it is not base64 (it can then verify nothing).
pub(crate) fn signing_key(secret: &SecretString) -> Option<SecretBox<[u8]>> {
    let encoded = secret.expose_secret().trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    BASE64_STANDARD
        .decode(encoded)
        .or_else(|_| BASE64_STANDARD_NO_PAD.decode(encoded))
        .ok()
        .filter(|key| !key.is_empty())
        .map(|key| SecretBox::new(key.into_boxed_slice()))
}

pub(crate) fn authenticate(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
) -> Result<(), AuthError> {
    authenticate_keyed(req, secrets, settings, signing_key)
}

/// The Standard Webhooks check with the HMAC key each secret gives (`key_of`): the decoded
/// `whsec_` value here; BigCommerce keys with its client secret's own bytes.
pub(crate) fn authenticate_keyed(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
    key_of: fn(&SecretString) -> Option<SecretBox<[u8]>>,
) -> Result<(), AuthError> {
    let signature = header(req, SIGNATURE_HEADER, SVIX_SIGNATURE_HEADER)
        .ok_or(AuthError::MissingSignature("webhook-signature"))?;
    let id =
        header(req, ID_HEADER, SVIX_ID_HEADER).ok_or(AuthError::MissingSignature("webhook-id"))?;
    let timestamp = header(req, TIMESTAMP_HEADER, SVIX_TIMESTAMP_HEADER)
        .ok_or(AuthError::MissingSignature("webhook-timestamp"))?
        .trim();
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| AuthError::MalformedSignature)?;
    if secrets.is_empty() {
        return Err(AuthError::NoSecretConfigured);
    }
    // Every `v1,<base64>` entry; other versions (`v1a,` ed25519) are skipped.
    let tags: Vec<Vec<u8>> = signature
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .filter_map(|(_, tag)| TagEncoding::Base64.decode(tag))
        .collect();
    if tags.is_empty() {
        return Err(AuthError::MalformedSignature);
    }
    let keys: Vec<SecretBox<[u8]>> = secrets.iter().filter_map(key_of).collect();
    if keys.is_empty() {
        // The route's secrets are not `whsec_<base64>` values: nothing can verify.
        return Err(AuthError::NoSecretConfigured);
    }
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", &req.body];
    let mut matched = false;
    for key in &keys {
        let expected = hmac_sha256(key.expose_secret(), &parts);
        for tag in &tags {
            // No early exit: the work done does not depend on which secret or tag matched.
            matched |= constant_time_eq(&expected, tag);
        }
    }
    if !matched {
        return Err(AuthError::SignatureMismatch);
    }
    check_replay_window(seconds, req.received_at, settings.replay_window)
}

/// The recommended payload `{type, timestamp, data}`: topic `type`, contact from `data`.
pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let topic = text_at(&payload, "type");
    let data = payload.get("data").unwrap_or(&Value::Null);
    let (contact, consent) = data_contact(data);
    Ok(Parsed::Submission(Box::new(Submission {
        topic,
        // The message id is the same on every retry: the de-duplication key.
        delivery_id: header(req, ID_HEADER, SVIX_ID_HEADER).map(str::to_string),
        contact,
        products: Vec::new(),
        consent,
        payload,
        from_browser_form: false,
        lookup: None,
    })))
}

/// Common field names in `data`, or in one object under it (`data.customer`, `data.contact`,
/// `data.user`) when `data` itself has no email.
fn data_contact(data: &Value) -> (ContactFields, Option<bool>) {
    let own = recognise_fields(data);
    if own.0.email.is_some() {
        return own;
    }
    ["customer", "contact", "user", "object"]
        .iter()
        .filter_map(|key| data.get(key))
        .map(recognise_fields)
        .find(|(contact, _)| contact.email.is_some())
        .unwrap_or(own)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{request, secrets, submission};
    use std::time::{Duration, UNIX_EPOCH};

    // The Standard Webhooks specification repository's published test vector (its PHP library's
    // `testSignFunctionWorks`, also in the svix-webhooks tests).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: u64 = 1_614_265_330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // The same repository's Rust library `test_sign` vector.
    const RUST_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const RUST_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const RUST_TIMESTAMP: u64 = 1_649_367_553;
    const RUST_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const RUST_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn delivered(
        names: [&str; 3],
        id: &str,
        timestamp: u64,
        signature: &str,
        body: &str,
    ) -> InboundRequest {
        let ts = timestamp.to_string();
        let mut req = request(
            "/webhooks/standardwebhooks",
            &[(names[0], id), (names[1], &ts), (names[2], signature)],
            body,
        );
        req.received_at = UNIX_EPOCH + Duration::from_secs(timestamp + 3);
        req
    }

    const UNBRANDED: [&str; 3] = [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER];
    const SVIX: [&str; 3] = [SVIX_ID_HEADER, SVIX_TIMESTAMP_HEADER, SVIX_SIGNATURE_HEADER];

    fn vector(names: [&str; 3], signature: &str) -> InboundRequest {
        delivered(names, VECTOR_ID, VECTOR_TIMESTAMP, signature, VECTOR_BODY)
    }

    /// Signs like a Standard Webhooks sender, with the shared HMAC helper.
    fn sign(secret: &str, id: &str, timestamp: u64, body: &str) -> String {
        let key = signing_key(&SecretString::from(secret.to_string())).unwrap();
        let tag = hmac_sha256(
            key.expose_secret(),
            &[format!("{id}.{timestamp}.").as_bytes(), body.as_bytes()],
        );
        format!("v1,{}", BASE64_STANDARD.encode(tag))
    }

    #[test]
    fn published_test_vectors_reproduce() {
        assert_eq!(
            sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
        assert_eq!(
            sign(RUST_SECRET, RUST_ID, RUST_TIMESTAMP, RUST_BODY),
            RUST_SIGNATURE
        );
        let settings = AuthSettings::default();
        for names in [UNBRANDED, SVIX] {
            assert_eq!(
                authenticate(
                    &vector(names, VECTOR_SIGNATURE),
                    &secrets(&[VECTOR_SECRET]),
                    &settings
                ),
                Ok(())
            );
        }
        let rust = delivered(
            UNBRANDED,
            RUST_ID,
            RUST_TIMESTAMP,
            RUST_SIGNATURE,
            RUST_BODY,
        );
        assert_eq!(
            authenticate(&rust, &secrets(&[RUST_SECRET]), &settings),
            Ok(())
        );
        // The prefix is optional, as in the reference libraries.
        assert_eq!(
            authenticate(
                &vector(UNBRANDED, VECTOR_SIGNATURE),
                &secrets(&["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
                &settings
            ),
            Ok(())
        );
    }

    #[test]
    fn any_v1_entry_and_any_secret_may_match() {
        let settings = AuthSettings::default();
        let list = format!(
            "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc {VECTOR_SIGNATURE} v1,not-base64!"
        );
        let req = vector(UNBRANDED, &list);
        assert_eq!(
            authenticate(&req, &secrets(&[RUST_SECRET, VECTOR_SECRET]), &settings),
            Ok(())
        );
        assert_eq!(
            authenticate(&req, &secrets(&[RUST_SECRET]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        // The signature is only valid for v1: an ed25519-looking entry never matches.
        let only_v1a = vector(
            UNBRANDED,
            "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        assert_eq!(
            authenticate(&only_v1a, &secrets(&[VECTOR_SECRET]), &settings),
            Err(AuthError::MalformedSignature)
        );
    }

    #[test]
    fn tampered_body_id_or_timestamp() {
        let settings = AuthSettings::default();
        let route = secrets(&[VECTOR_SECRET]);
        let body = delivered(
            UNBRANDED,
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_SIGNATURE,
            r#"{"test": 2432232315}"#,
        );
        assert_eq!(
            authenticate(&body, &route, &settings),
            Err(AuthError::SignatureMismatch)
        );
        let id = delivered(
            UNBRANDED,
            "msg_other",
            VECTOR_TIMESTAMP,
            VECTOR_SIGNATURE,
            VECTOR_BODY,
        );
        assert_eq!(
            authenticate(&id, &route, &settings),
            Err(AuthError::SignatureMismatch)
        );
        let ts = delivered(
            UNBRANDED,
            VECTOR_ID,
            VECTOR_TIMESTAMP + 1,
            VECTOR_SIGNATURE,
            VECTOR_BODY,
        );
        assert_eq!(
            authenticate(&ts, &route, &settings),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn missing_and_malformed_headers_and_secrets() {
        let settings = AuthSettings::default();
        let route = secrets(&[VECTOR_SECRET]);
        for (missing, expected) in [
            (ID_HEADER, "webhook-id"),
            (TIMESTAMP_HEADER, "webhook-timestamp"),
            (SIGNATURE_HEADER, "webhook-signature"),
        ] {
            let mut req = vector(UNBRANDED, VECTOR_SIGNATURE);
            req.headers.remove(missing);
            assert_eq!(
                authenticate(&req, &route, &settings),
                Err(AuthError::MissingSignature(expected))
            );
        }
        let mut float = vector(UNBRANDED, VECTOR_SIGNATURE);
        float
            .headers
            .insert(TIMESTAMP_HEADER, "1614265330.0".parse().unwrap());
        assert_eq!(
            authenticate(&float, &route, &settings),
            Err(AuthError::MalformedSignature)
        );
        let no_comma = vector(UNBRANDED, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            authenticate(&no_comma, &route, &settings),
            Err(AuthError::MalformedSignature)
        );
        let req = vector(UNBRANDED, VECTOR_SIGNATURE);
        assert_eq!(
            authenticate(&req, &[], &settings),
            Err(AuthError::NoSecretConfigured)
        );
        assert_eq!(
            authenticate(&req, &secrets(&["whsec_***not base64***"]), &settings),
            Err(AuthError::NoSecretConfigured)
        );
    }

    #[test]
    fn five_minutes_either_way() {
        let settings = AuthSettings::default();
        let route = secrets(&[VECTOR_SECRET]);
        let mut req = vector(UNBRANDED, VECTOR_SIGNATURE);
        req.received_at = UNIX_EPOCH + Duration::from_secs(VECTOR_TIMESTAMP + 301);
        assert_eq!(
            authenticate(&req, &route, &settings),
            Err(AuthError::StaleTimestamp)
        );
        req.received_at = UNIX_EPOCH + Duration::from_secs(VECTOR_TIMESTAMP - 301);
        assert_eq!(
            authenticate(&req, &route, &settings),
            Err(AuthError::StaleTimestamp)
        );
        req.received_at = UNIX_EPOCH + Duration::from_secs(VECTOR_TIMESTAMP - 300);
        assert_eq!(authenticate(&req, &route, &settings), Ok(()));
    }

    #[test]
    fn type_and_contact_from_data() {
        let body = r#"{"type":"contact.created","timestamp":"2026-01-01T00:00:00Z","data":{"email":"Shepherd@example.com","first_name":"Derrial","last_name":"Book","phone":"+1 555 0199","company":"Southdown Abbey"}}"#;
        let req = delivered(UNBRANDED, "msg_1", 1, "v1,x", body);
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("contact.created"));
        assert_eq!(s.delivery_id.as_deref(), Some("msg_1"));
        assert_eq!(s.contact.email.as_deref(), Some("Shepherd@example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Derrial"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Book"));
        assert_eq!(s.contact.phone.as_deref(), Some("+1 555 0199"));
        assert_eq!(s.contact.organization.as_deref(), Some("Southdown Abbey"));
    }

    #[test]
    fn nested_customer_svix_id_and_bad_bodies() {
        let body = r#"{"type":"order.paid","data":{"id":"ord_1","customer":{"email":"a@b.co","name":"Ada Lovelace"}}}"#;
        let req = delivered(SVIX, "msg_svix", 1, "v1,x", body);
        let s = submission(parse(&req));
        assert_eq!(s.delivery_id.as_deref(), Some("msg_svix"));
        assert_eq!(s.contact.email.as_deref(), Some("a@b.co"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Ada Lovelace"));
        let no_email = r#"{"type":"invoice.voided","data":{"id":"in_1"}}"#;
        let s = submission(parse(&delivered(SVIX, "m", 1, "v1,x", no_email)));
        assert_eq!(s.contact.email, None);
        assert!(matches!(
            parse(&delivered(UNBRANDED, "m", 1, "v1,x", "{\"type\":")),
            Err(ParseError::Json(_))
        ));
        assert_eq!(
            parse(&delivered(UNBRANDED, "m", 1, "v1,x", "[]")),
            Err(ParseError::NotAnObject)
        );
    }
}
