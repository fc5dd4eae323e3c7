//! `webflow`: form submissions. Site webhooks (v2) are signed with `x-webflow-timestamp` (Unix
//! ms) and `x-webflow-signature` (hex HMAC-SHA256 of `"{timestamp}:{raw body}"`); hooks created
//! in the Webflow dashboard carry no signature headers and authenticate with the route token
//! (`?token=`) instead.

use secrecy::SecretString;
use serde_json::Value;

use super::spec::TOKEN_PARAM;
use super::util::body::parse_json_object;
use super::util::fields::recognise_fields;
use super::util::signature::{TagEncoding, check_replay_window, verify_hmac_any, verify_token};
use super::{Auth, AuthError, AuthSettings, CustomAuth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{Parsed, Submission, text_at, value_as_text};

pub(super) const SIGNATURE_HEADER: &str = "x-webflow-signature";
pub(super) const TIMESTAMP_HEADER: &str = "x-webflow-timestamp";

pub(super) const FORM_SUBMISSION: &str = "form_submission";
pub(super) const DEFAULT_TOPICS: &[&str] = &[FORM_SUBMISSION];

/// The `webflow` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("webflow", Auth::Custom(AUTH), Parse::Whole(parse)).topics(DEFAULT_TOPICS);

const AUTH: CustomAuth = CustomAuth {
    verify: authenticate,
    headers: &[SIGNATURE_HEADER, TIMESTAMP_HEADER],
    timed: true,
    untimed_fallback: false,
    #[cfg(any(test, feature = "testing"))]
    sign,
};

/// The v2 site-webhook signature: hex HMAC of `"{ms}:{body}"`, and the timestamp in ms.
#[cfg(any(test, feature = "testing"))]
fn sign(signing: &super::spec::Signing<'_>) -> Vec<(&'static str, String)> {
    let ms = (signing.timestamp * 1000).to_string();
    let tag = super::util::signature::hmac_sha256(
        signing.secret.as_bytes(),
        &[ms.as_bytes(), b":", signing.body],
    );
    vec![(SIGNATURE_HEADER, hex::encode(tag)), (TIMESTAMP_HEADER, ms)]
}

/// Signed (either Webflow header present) → signature and replay window; unsigned → route token.
pub(super) fn authenticate(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
) -> Result<(), AuthError> {
    let signature = req.header(SIGNATURE_HEADER);
    let timestamp = req.header(TIMESTAMP_HEADER);
    match (signature, timestamp) {
        // A dashboard-created hook: Webflow cannot sign it, so the URL carries a token.
        (None, None) => verify_token(secrets, req.query_param(TOKEN_PARAM)),
        (Some(_), None) => Err(AuthError::MissingSignature("x-webflow-timestamp")),
        (None, Some(_)) => Err(AuthError::MissingSignature("x-webflow-signature")),
        (Some(signature), Some(timestamp)) => {
            let timestamp = timestamp.trim();
            let millis: i64 = timestamp
                .parse()
                .map_err(|_| AuthError::MalformedSignature)?;
            // The timestamp is signed exactly as sent.
            verify_hmac_any(
                secrets,
                &[timestamp.as_bytes(), b":", &req.body],
                &[signature],
                TagEncoding::Hex,
            )?;
            check_replay_window(
                millis.div_euclid(1000),
                req.received_at,
                settings.replay_window,
            )
        }
    }
}

/// v2 `{triggerType, payload:{data, id, ...}}` or legacy v1 `{name, site, data, d, _id}`.
pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let (data, delivery_id) = match payload.get("triggerType") {
        Some(trigger) => {
            let trigger = value_as_text(trigger).unwrap_or_default();
            if trigger != FORM_SUBMISSION {
                return Ok(Parsed::Ignored {
                    reason: format!("Webflow trigger {trigger:?} carries no form submission"),
                });
            }
            (
                payload.pointer("/payload/data"),
                text_at(&payload, "payload.id"),
            )
        }
        // Legacy (v1) bodies have no trigger: every one is a form submission.
        None => (payload.get("data"), text_at(&payload, "_id")),
    };
    // Keys are the field names set in the Designer ("Email", "First Name", "Phone Number"...);
    // values may be numbers, and checkboxes are "true"/"false" strings.
    let (contact, consent) = recognise_fields(data.unwrap_or(&Value::Null));
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(FORM_SUBMISSION.to_string()),
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

    const SECRET: &str = "webflow-client-secret";
    /// Milliseconds, as Webflow sends them.
    const AT_MS: i64 = 1_767_225_600_123;
    const V2: &str = r#"{"triggerType":"form_submission","payload":{"name":"Contact Us","siteId":"65427cf400e02b306eaa049c","data":{"First Name":"Zoe","Last Name":"Washburne","Email":"Zoe@Example.com","Phone Number":15550000000,"Company":"Serenity","Newsletter":"true"},"submittedAt":"2026-01-01T00:00:00.000Z","id":"6321ca84df3949bfc6752327","formId":"65429eadebe8a9f3a30f62d0"}}"#;
    const V1: &str = r#"{"name":"Contact Us","site":"62749158efef318abc8d5a0f","data":{"name":"Hoban Washburne","email":"wash@example.com"},"d":"2026-01-01T00:00:00.000Z","_id":"6287ec36a841b25637c663df"}"#;

    fn signed(body: &str, secret: &str, at_ms: i64) -> InboundRequest {
        let tag = hex::encode(hmac_sha256(
            secret.as_bytes(),
            &[at_ms.to_string().as_bytes(), b":", body.as_bytes()],
        ));
        let mut req = request(
            "/webhooks/webflow",
            &[
                (SIGNATURE_HEADER, &tag),
                (TIMESTAMP_HEADER, &at_ms.to_string()),
            ],
            body,
        );
        req.received_at = UNIX_EPOCH + Duration::from_millis(at_ms as u64 + 2_000);
        req
    }

    #[test]
    fn signed_v2_verifies_and_maps_designer_names() {
        let settings = AuthSettings::default();
        let req = signed(V2, SECRET, AT_MS);
        assert_eq!(authenticate(&req, &secrets(&[SECRET]), &settings), Ok(()));
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("form_submission"));
        assert_eq!(s.delivery_id.as_deref(), Some("6321ca84df3949bfc6752327"));
        assert_eq!(s.contact.email.as_deref(), Some("Zoe@Example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Zoe"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Washburne"));
        // Numbers are rendered as text.
        assert_eq!(s.contact.phone.as_deref(), Some("15550000000"));
        assert_eq!(s.contact.organization.as_deref(), Some("Serenity"));
        assert_eq!(s.consent, Some(true));
        assert!(!s.from_browser_form);
    }

    #[test]
    fn tampered_wrong_secret_and_rotation() {
        let settings = AuthSettings::default();
        let req = signed(V2, SECRET, AT_MS);
        let mut tampered = req.clone();
        tampered.body = V2.replace("Zoe@", "Mal@").into();
        assert_eq!(
            authenticate(&tampered, &secrets(&[SECRET]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            authenticate(&req, &secrets(&["another-secret"]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        // Rotation: any of the route's secrets verifies.
        assert_eq!(
            authenticate(&req, &secrets(&["old-secret", SECRET]), &settings),
            Ok(())
        );
        assert_eq!(
            authenticate(&req, &[], &settings),
            Err(AuthError::NoSecretConfigured)
        );
    }

    #[test]
    fn missing_and_malformed_headers() {
        let settings = AuthSettings::default();
        let route = secrets(&[SECRET]);
        let only_signature = request("/webhooks/webflow", &[(SIGNATURE_HEADER, "ab")], V2);
        assert_eq!(
            authenticate(&only_signature, &route, &settings),
            Err(AuthError::MissingSignature("x-webflow-timestamp"))
        );
        let only_timestamp = request("/webhooks/webflow", &[(TIMESTAMP_HEADER, "1")], V2);
        assert_eq!(
            authenticate(&only_timestamp, &route, &settings),
            Err(AuthError::MissingSignature("x-webflow-signature"))
        );
        let mut bad_timestamp = signed(V2, SECRET, AT_MS);
        bad_timestamp
            .headers
            .insert(TIMESTAMP_HEADER, "yesterday".parse().unwrap());
        assert_eq!(
            authenticate(&bad_timestamp, &route, &settings),
            Err(AuthError::MalformedSignature)
        );
        let mut not_hex = signed(V2, SECRET, AT_MS);
        not_hex
            .headers
            .insert(SIGNATURE_HEADER, "not-hex".parse().unwrap());
        assert_eq!(
            authenticate(&not_hex, &route, &settings),
            Err(AuthError::MalformedSignature)
        );
    }

    #[test]
    fn replay_window_in_milliseconds() {
        let settings = AuthSettings::default();
        let route = secrets(&[SECRET]);
        let mut req = signed(V2, SECRET, AT_MS);
        req.received_at = UNIX_EPOCH + Duration::from_millis(AT_MS as u64 + 299_000);
        assert_eq!(authenticate(&req, &route, &settings), Ok(()));
        req.received_at = UNIX_EPOCH + Duration::from_millis(AT_MS as u64 + 302_000);
        assert_eq!(
            authenticate(&req, &route, &settings),
            Err(AuthError::StaleTimestamp)
        );
        let wide = AuthSettings {
            replay_window: Duration::from_secs(600),
            ..AuthSettings::default()
        };
        assert_eq!(authenticate(&req, &route, &wide), Ok(()));
        // A timestamp read as seconds would be far in the future: also refused.
        let seconds = signed(V2, SECRET, AT_MS / 1000);
        let mut seconds = seconds;
        seconds.received_at = UNIX_EPOCH + Duration::from_millis(AT_MS as u64);
        assert_eq!(
            authenticate(&seconds, &route, &settings),
            Err(AuthError::StaleTimestamp)
        );
    }

    #[test]
    fn unsigned_dashboard_hooks_need_the_route_token() {
        let settings = AuthSettings::default();
        let route = secrets(&["route-token", "older-token"]);
        let ok = request("/webhooks/webflow?token=older-token", &[], V1);
        assert_eq!(authenticate(&ok, &route, &settings), Ok(()));
        let wrong = request("/webhooks/webflow?token=guess", &[], V1);
        assert_eq!(
            authenticate(&wrong, &route, &settings),
            Err(AuthError::TokenMismatch)
        );
        let missing = request("/webhooks/webflow", &[], V1);
        assert_eq!(
            authenticate(&missing, &route, &settings),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn legacy_v1_body() {
        let s = submission(parse(&request("/webhooks/webflow", &[], V1)));
        assert_eq!(s.topic.as_deref(), Some("form_submission"));
        assert_eq!(s.delivery_id.as_deref(), Some("6287ec36a841b25637c663df"));
        assert_eq!(s.contact.email.as_deref(), Some("wash@example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Hoban Washburne"));
        assert_eq!(s.consent, None);
    }

    #[test]
    fn other_triggers_are_ignored_and_bad_json_refused() {
        let publish = r#"{"triggerType":"site_publish","payload":{"siteId":"1","domains":[]}}"#;
        assert!(matches!(
            parse(&request("/webhooks/webflow", &[], publish)).unwrap(),
            Parsed::Ignored { .. }
        ));
        assert!(matches!(
            parse(&request("/webhooks/webflow", &[], "{\"triggerType\":")),
            Err(ParseError::Json(_))
        ));
        // No email: still a submission; the mapping stage answers "skipped".
        let no_email =
            r#"{"triggerType":"form_submission","payload":{"data":{"Message":"hi"},"id":"x"}}"#;
        let s = submission(parse(&request("/webhooks/webflow", &[], no_email)));
        assert_eq!(s.contact.email, None);
    }
}
