//! `paddle`: Paddle Billing notifications, signed with `Paddle-Signature: ts=<unix>;h1=<hex>`
//! (HMAC-SHA256 of `ts:body`, keyed by the notification destination's secret; several `h1`
//! during a secret rotation). The timestamp is checked against the route's replay window
//! (`replay_window_secs`, default 300 s), not the SDK's 5 s, which Lambda clock skew and cold
//! starts would break.
//!
//! `customer.*` events carry the contact. Transaction and subscription events carry only ids
//! (`customer_id`, `address_id`): the customer is looked up in Paddle's API
//! (`lookup::customers`) with `sender_api.{route}.api_key`.

use secrecy::SecretString;
use serde_json::Value;

use super::util::body::parse_json_object;
use super::util::signature::{TagEncoding, check_replay_window, verify_hmac_any};
use super::{Auth, AuthError, AuthSettings, CustomAuth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::lookup::{Api, Lookup};
use crate::submission::{ContactFields, Parsed, Submission, is_affirmative, text_at};

pub(crate) const SIGNATURE_HEADER: &str = "paddle-signature";

pub(crate) const DEFAULT_TOPICS: &[&str] = &["customer.created", "transaction.completed"];

/// Event families whose payload names the customer only by id.
const IDS_ONLY_PREFIXES: &[&str] = &["transaction.", "subscription."];

/// The longest `ts` accepted: more digits than an `i64` of seconds can hold is not a time.
const MAX_TS_DIGITS: usize = 18;

/// The parts of a `Paddle-Signature` header that matter: the timestamp (as sent, since it is
/// signed as text) and every `h1`.
#[derive(Debug, PartialEq)]
pub(crate) struct SignatureHeader<'a> {
    pub ts: &'a str,
    pub timestamp: i64,
    pub h1: Vec<&'a str>,
}

/// The `paddle` sender.
pub(crate) const SPEC: SenderSpec =
    SenderSpec::new("paddle", Auth::Custom(AUTH), Parse::Whole(parse))
        .topics(DEFAULT_TOPICS)
        .looks_up(crate::lookup::Api::Paddle, false);

const AUTH: CustomAuth = CustomAuth {
    verify: authenticate,
    headers: &[SIGNATURE_HEADER],
    timed: true,
    untimed_fallback: false,
    #[cfg(any(test, feature = "testing"))]
    sign,
};

/// `ts=<unix>;h1=<hex HMAC of "ts:body">`.
#[cfg(any(test, feature = "testing"))]
fn sign(signing: &super::spec::Signing<'_>) -> Vec<(&'static str, String)> {
    let ts = signing.timestamp.to_string();
    let tag = super::util::signature::hmac_sha256(
        signing.secret.as_bytes(),
        &[ts.as_bytes(), b":", signing.body],
    );
    vec![(SIGNATURE_HEADER, format!("ts={ts};h1={}", hex::encode(tag)))]
}

/// Parses `ts=…;h1=…[;h1=…]`; other schemes are ignored.
pub(crate) fn parse_signature_header(header: &str) -> Result<SignatureHeader<'_>, AuthError> {
    let mut ts = None;
    let mut h1 = Vec::new();
    for item in header.split(';') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "ts" => ts = Some(value),
            "h1" if !value.is_empty() => h1.push(value),
            _ => {}
        }
    }
    let ts = ts
        .filter(|t| {
            !t.is_empty() && t.len() <= MAX_TS_DIGITS && t.bytes().all(|b| b.is_ascii_digit())
        })
        .ok_or(AuthError::MalformedSignature)?;
    let timestamp = ts
        .parse::<i64>()
        .map_err(|_| AuthError::MalformedSignature)?;
    if h1.is_empty() {
        return Err(AuthError::MalformedSignature);
    }
    Ok(SignatureHeader { ts, timestamp, h1 })
}

pub(crate) fn authenticate(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
) -> Result<(), AuthError> {
    let header = req
        .header(SIGNATURE_HEADER)
        .ok_or(AuthError::MissingSignature("Paddle-Signature"))?;
    let parsed = parse_signature_header(header)?;
    verify_hmac_any(
        secrets,
        &[parsed.ts.as_bytes(), b":", &req.body],
        &parsed.h1,
        TagEncoding::Hex,
    )?;
    check_replay_window(parsed.timestamp, req.received_at, settings.replay_window)
}

pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let topic =
        text_at(&payload, "event_type").ok_or(ParseError::MissingTopic("\"event_type\" field"))?;
    let data = payload.get("data").unwrap_or(&Value::Null);
    let delivery_id =
        text_at(&payload, "notification_id").or_else(|| text_at(&payload, "event_id"));
    // Transactions and subscriptions name their customer by id: looked up in Paddle's API.
    if IDS_ONLY_PREFIXES.iter().any(|p| topic.starts_with(p)) {
        let Some(customer_id) = text_at(data, "customer_id") else {
            return Ok(Parsed::Ignored {
                reason: format!("Paddle {topic} names no customer_id to look up"),
            });
        };
        return Ok(Parsed::Submission(Box::new(Submission {
            topic: Some(topic),
            delivery_id,
            lookup: Some(Lookup {
                api: Api::Paddle,
                object: "customer".into(),
                id: customer_id,
                more_ids: Vec::new(),
                objects: Default::default(),
                context: serde_json::Map::new(),
            }),
            payload,
            ..Submission::default()
        })));
    }
    let contact = ContactFields {
        email: text_at(data, "email"),
        // One string ("Sam Miller"): the mapping stage splits it.
        full_name: text_at(data, "name"),
        ..ContactFields::default()
    };
    let consent = data
        .get("marketing_consent")
        .filter(|v| !v.is_null())
        .map(is_affirmative);
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        delivery_id,
        contact,
        products: Vec::new(),
        consent,
        payload,
        from_browser_form: false,
        lookup: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::{request, secrets, submission};
    use std::time::{Duration, UNIX_EPOCH};

    const SECRET: &str = "pdl_ntfset_01h8test_secret";
    // Shaped like the customer.created mock of PaddleHQ/paddle-node-sdk (reference section 13).
    const CUSTOMER: &str = r#"{"event_id":"evt_01hv8x2acma2gz4my1st3tq4ze","event_type":"customer.created","occurred_at":"2026-01-01T10:00:00.000000Z","notification_id":"ntf_01hv8x2af4jdzz6a1chzyr8g3n","data":{"id":"ctm_01hv8wt8nffez4p2t6typn4a5j","name":"Sam Miller","email":"Sam@Example.com","locale":"en","status":"active","custom_data":null,"marketing_consent":true,"created_at":"2026-01-01T10:00:00.000Z","updated_at":"2026-01-01T10:00:00.000Z","import_meta":null}}"#;

    fn signed_at(body: &str, ts: i64, secrets_to_sign: &[&str]) -> InboundRequest {
        let mut header = format!("ts={ts}");
        for secret in secrets_to_sign {
            let sig = hmac_sha256(
                secret.as_bytes(),
                &[ts.to_string().as_bytes(), b":", body.as_bytes()],
            );
            header.push_str(&format!(";h1={}", hex::encode(sig)));
        }
        let mut req = request(
            "/webhooks/paddle",
            &[
                ("content-type", "application/json"),
                (SIGNATURE_HEADER, &header),
            ],
            body,
        );
        req.received_at = UNIX_EPOCH + Duration::from_secs(ts as u64 + 10);
        req
    }

    /// The published vectors of PaddleHQ/paddle-node-sdk
    /// `src/__tests__/notifications/webhooks-validator.test.ts` ("Valid signature", "Valid
    /// signature with multiple hashes", "Invalid secret", "Invalid data - has more space"),
    /// with the receive time set to the SDK test's 2023-11-01T00:00:00Z.
    #[test]
    fn paddle_node_sdk_vectors() {
        let at = |body: &str, header: &str| {
            let mut req = request("/webhooks/paddle", &[(SIGNATURE_HEADER, header)], body);
            req.received_at = UNIX_EPOCH + Duration::from_secs(1_698_796_800);
            req
        };
        let settings = AuthSettings::default();
        let valid = at(
            r#"{"data": ["1", "2"]}"#,
            "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
        );
        assert!(authenticate(&valid, &secrets(&["VALID_SECRET"]), &settings).is_ok());
        let multiple = at(
            r#"{"data": "value"}"#,
            "ts=1698796800;h1=28981e941fae76e53db32f3d2a83cb69db41476595e84e1970a1b5d98f62b261;\
             h1=28981e941fae76e53db32f3d2a83cb69db41476595e84e1970a1b5d98f62b261;h2=RANDOM_HASH",
        );
        assert!(authenticate(&multiple, &secrets(&["VALID_SECRET"]), &settings).is_ok());
        assert_eq!(
            authenticate(&valid, &secrets(&["INVALID_VALID_SECRET"]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        let spaced = at(
            r#"{ "data": [ "1", "2" ]}"#,
            "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
        );
        assert_eq!(
            authenticate(&spaced, &secrets(&["VALID_SECRET"]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        // The SDK test's "InValid timestamp" (ts=9876 with the same h1): the signature no
        // longer covers that ts.
        let wrong_ts = at(
            r#"{"data": ["1", "2"]}"#,
            "ts=9876;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9",
        );
        assert_eq!(
            authenticate(&wrong_ts, &secrets(&["VALID_SECRET"]), &settings),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn header_parsing() {
        assert_eq!(
            parse_signature_header("ts=12;h1=aa;h2=bb;h1=cc").unwrap(),
            SignatureHeader {
                ts: "12",
                timestamp: 12,
                h1: vec!["aa", "cc"]
            }
        );
        // The SDK's "Missing TS and H1", "Missing TS" and "Missing H1" cases.
        for bad in [
            "invalid_header",
            "h1=invalid_header",
            "ts=1234;h2=invalid_header",
        ] {
            assert_eq!(
                parse_signature_header(bad),
                Err(AuthError::MalformedSignature),
                "{bad}"
            );
        }
        for bad in [
            "ts=-5;h1=aa",
            "ts=1e9;h1=aa",
            "ts=;h1=aa",
            "ts=1234567890123456789012;h1=aa",
        ] {
            assert_eq!(
                parse_signature_header(bad),
                Err(AuthError::MalformedSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn verification_rotation_and_tampering() {
        let settings = AuthSettings::default();
        let ts = 1_767_225_600;
        // Two h1 during a rotation: either secret verifies.
        let req = signed_at(CUSTOMER, ts, &["pdl_ntfset_old", SECRET]);
        assert!(authenticate(&req, &secrets(&[SECRET]), &settings).is_ok());
        assert!(authenticate(&req, &secrets(&["pdl_ntfset_old"]), &settings).is_ok());
        // Two secrets on the route, one h1.
        let one = signed_at(CUSTOMER, ts, &[SECRET]);
        assert!(authenticate(&one, &secrets(&["pdl_ntfset_new", SECRET]), &settings).is_ok());
        assert_eq!(
            authenticate(&one, &secrets(&["pdl_ntfset_other"]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        let mut tampered = one.clone();
        tampered.body = CUSTOMER.replace("Sam@", "Eve@").into();
        assert_eq!(
            authenticate(&tampered, &secrets(&[SECRET]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        let unsigned = request("/webhooks/paddle", &[], CUSTOMER);
        assert_eq!(
            authenticate(&unsigned, &secrets(&[SECRET]), &settings),
            Err(AuthError::MissingSignature("Paddle-Signature"))
        );
        let malformed = request(
            "/webhooks/paddle",
            &[(SIGNATURE_HEADER, "h1=abc")],
            CUSTOMER,
        );
        assert_eq!(
            authenticate(&malformed, &secrets(&[SECRET]), &settings),
            Err(AuthError::MalformedSignature)
        );
    }

    #[test]
    fn replay_window_comes_from_the_route_not_the_sdk() {
        let settings = AuthSettings::default();
        let ts = 1_767_225_600;
        let mut req = signed_at(CUSTOMER, ts, &[SECRET]);
        // 60 s late: the SDK's 5 s would refuse it, the default 300 s accepts it.
        req.received_at = UNIX_EPOCH + Duration::from_secs(ts as u64 + 60);
        assert!(authenticate(&req, &secrets(&[SECRET]), &settings).is_ok());
        req.received_at = UNIX_EPOCH + Duration::from_secs(ts as u64 + 301);
        assert_eq!(
            authenticate(&req, &secrets(&[SECRET]), &settings),
            Err(AuthError::StaleTimestamp)
        );
        let wide = AuthSettings {
            replay_window: Duration::from_secs(600),
            ..AuthSettings::default()
        };
        assert!(authenticate(&req, &secrets(&[SECRET]), &wide).is_ok());
        let narrow = AuthSettings {
            replay_window: Duration::from_secs(5),
            ..AuthSettings::default()
        };
        req.received_at = UNIX_EPOCH + Duration::from_secs(ts as u64 + 6);
        assert_eq!(
            authenticate(&req, &secrets(&[SECRET]), &narrow),
            Err(AuthError::StaleTimestamp)
        );
    }

    #[test]
    fn customer_defaults() {
        let s = submission(parse(&signed_at(CUSTOMER, 1, &[SECRET])));
        assert_eq!(s.topic.as_deref(), Some("customer.created"));
        assert_eq!(
            s.delivery_id.as_deref(),
            Some("ntf_01hv8x2af4jdzz6a1chzyr8g3n")
        );
        assert_eq!(s.contact.email.as_deref(), Some("Sam@Example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Sam Miller"));
        assert_eq!(s.consent, Some(true));
        let refused = CUSTOMER.replace("\"marketing_consent\":true", "\"marketing_consent\":false");
        assert_eq!(
            submission(parse(&signed_at(&refused, 1, &[SECRET]))).consent,
            Some(false)
        );
        let no_ntf =
            r#"{"event_id":"evt_1","event_type":"customer.created","data":{"email":null}}"#;
        let s = submission(parse(&signed_at(no_ntf, 1, &[SECRET])));
        assert_eq!(s.delivery_id.as_deref(), Some("evt_1"));
        assert_eq!(s.contact.email, None);
        assert_eq!(s.consent, None);
    }

    #[test]
    fn transaction_and_subscription_events_look_their_customer_up() {
        for topic in [
            "transaction.completed",
            "transaction.paid",
            "subscription.created",
        ] {
            let body = format!(
                r#"{{"event_id":"evt_2","event_type":"{topic}","notification_id":"ntf_2","data":{{"id":"txn_1","customer_id":"ctm_1","address_id":"add_1"}}}}"#
            );
            let s = submission(parse(&signed_at(&body, 1, &[SECRET])));
            let lookup = s.lookup.expect("a lookup");
            assert_eq!(
                (lookup.api, lookup.id.as_str()),
                (Api::Paddle, "ctm_1"),
                "{topic}"
            );
            assert_eq!(s.delivery_id.as_deref(), Some("ntf_2"));
        }
        let no_customer = r#"{"event_type":"transaction.created","data":{"id":"txn_1"}}"#;
        assert!(matches!(
            parse(&signed_at(no_customer, 1, &[SECRET])).unwrap(),
            Parsed::Ignored { .. }
        ));
    }

    #[test]
    fn malformed_body_and_missing_event_type() {
        assert!(matches!(
            parse(&signed_at("{\"event_type\":", 1, &[SECRET])),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse(&signed_at("{\"data\":{}}", 1, &[SECRET])),
            Err(ParseError::MissingTopic(_))
        ));
    }
}
