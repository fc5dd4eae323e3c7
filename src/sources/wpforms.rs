//! `wpforms`: the WPForms Webhooks add-on. The route token (`?token=`) authenticates it, since
//! WPForms never shows the secret of its `X-WPForms-Webhook-Signature`; a route with
//! `signed = true` verifies that signature instead (`t={unix},v={hex HMAC-SHA256 of
//! "{t}.{body}"}`, within the replay window), with the secret read from the form's settings
//! (a form export) as `webhook_secrets.{route}`. WPForms signs JSON bodies as sent; it signs a
//! form body's JSON rendering, not its bytes, so a signed route needs the JSON format.
//!
//! The body holds the keys the site owner mapped in the webhook's "Request Body" (`email`,
//! `first_name`, `company`...), as JSON (`application/json; charset=utf-8`) or
//! `application/x-www-form-urlencoded`; bracketed form keys are nested back so both formats
//! share mapping paths. WPForms joins multi-line values (address, checkboxes) with `||`.
//! WPForms' default method is GET, which this function answers 405: set the webhook to POST.

use secrecy::SecretString;

use super::spec::CustomAuth;
use super::util::body::parse_form_or_json;
use super::util::fields::recognise_fields_any_email;
use super::util::signature::verify_timestamped_of;
use super::{Auth, AuthError, AuthSettings, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{Parsed, Submission};

pub(super) const SIGNATURE_HEADER: &str = "X-WPForms-Webhook-Signature";

/// The `wpforms` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("wpforms", Auth::RouteToken, Parse::Whole(parse))
        .media(Media::FORM_OR_JSON)
        .signed_auth(Auth::Custom(SIGNED));

const SIGNED: CustomAuth = CustomAuth {
    verify: verify_signature,
    headers: &[SIGNATURE_HEADER],
    timed: true,
    untimed_fallback: false,
    #[cfg(any(test, feature = "testing"))]
    sign,
};

fn verify_signature(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
) -> Result<(), AuthError> {
    verify_timestamped_of(req, secrets, settings, SIGNATURE_HEADER, "v")
}

/// `t={unix},v={hex}` over `"{t}.{body}"`.
#[cfg(any(test, feature = "testing"))]
fn sign(signing: &super::spec::Signing<'_>) -> Vec<(&'static str, String)> {
    let tag = crate::crypto::hmac_sha256(
        signing.secret.as_bytes(),
        &[signing.timestamp.to_string().as_bytes(), b".", signing.body],
    );
    vec![(
        SIGNATURE_HEADER,
        format!("t={},v={}", signing.timestamp, hex::encode(tag)),
    )]
}

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_form_or_json(req)?;
    let (contact, consent) = recognise_fields_any_email(&payload);
    Ok(Parsed::Submission(Box::new(Submission {
        topic: None,
        // X-WPForms-Webhook-Id names the webhook configuration, not the delivery.
        delivery_id: None,
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
    use crate::sources::test_support::{assert_route_token, request, submission};

    const JSON: &str = "application/json; charset=utf-8";
    const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

    #[test]
    fn route_token_authenticates_and_signature_is_ignored() {
        let signed = [(
            "x-wpforms-webhook-signature",
            "t=1767225600,v=00000000000000000000000000000000",
        )];
        assert_route_token(&SPEC, &signed, "{}");
    }

    #[test]
    fn a_signed_route_verifies_the_signature_within_the_replay_window() {
        use std::time::{Duration, UNIX_EPOCH};
        let secret = "wpforms-64-char-secret-from-the-form-export";
        let body = r#"{"email":"ada@example.com"}"#;
        let at = 1_767_225_600_i64;
        let signed_at = |t: i64, key: &str| {
            let tag = hex::encode(crate::crypto::hmac_sha256(
                key.as_bytes(),
                &[t.to_string().as_bytes(), b".", body.as_bytes()],
            ));
            let mut req = request(
                "/webhooks/wpforms",
                &[
                    ("content-type", JSON),
                    (SIGNATURE_HEADER, &format!("t={t},v={tag}")),
                ],
                body,
            );
            req.received_at = UNIX_EPOCH + Duration::from_secs(at as u64 + 10);
            req
        };
        let route = crate::sources::test_support::secrets(&[secret]);
        let signed = AuthSettings {
            signed: true,
            ..AuthSettings::default()
        };
        assert_eq!(
            SPEC.authenticate(&signed_at(at, secret), &route, &signed),
            Ok(())
        );
        assert_eq!(
            SPEC.authenticate(&signed_at(at, "another"), &route, &signed),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            SPEC.authenticate(&signed_at(at - 600, secret), &route, &signed),
            Err(AuthError::StaleTimestamp)
        );
        // A token in the URL is no signature on a signed route.
        let token_only = request(
            "/webhooks/wpforms?token=wpforms-64-char-secret-from-the-form-export",
            &[("content-type", JSON)],
            body,
        );
        assert_eq!(
            SPEC.authenticate(&token_only, &route, &signed),
            Err(AuthError::MissingSignature(SIGNATURE_HEADER))
        );
        // Without `signed`, the route token is what counts, signature or not.
        assert_eq!(
            SPEC.authenticate(&signed_at(at, secret), &route, &AuthSettings::default()),
            Err(AuthError::MissingToken)
        );
        assert!(SPEC.authenticated_by_token(&AuthSettings::default()));
        assert!(!SPEC.authenticated_by_token(&signed));
    }

    #[test]
    fn json_mapped_keys() {
        let body = r#"{"email":"Ada@Example.com","first_name":"Ada","last_name":"Lovelace","phone":"+44 20 7946 0000","company":"Analytical Engines","newsletter":"Yes","interests":"Engines||Poetry","signed_up":{"value":"01\/01\/2026 10:00 am","unix":1767261600}}"#;
        let req = request("/webhooks/wpforms", &[("content-type", JSON)], body);
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(s.contact.phone.as_deref(), Some("+44 20 7946 0000"));
        assert_eq!(
            s.contact.organization.as_deref(),
            Some("Analytical Engines")
        );
        assert_eq!(s.consent, Some(true));
        assert_eq!(s.payload["signed_up"]["unix"], 1767261600);
        assert!(!s.from_browser_form);
    }

    #[test]
    fn form_mapped_keys_nest_like_json() {
        let body = "customer-email=grace%40example.com&name=Grace+Hopper&signed_up%5Bvalue%5D=01%2F01%2F2026&signed_up%5Bunix%5D=1767261600\
                    &files%5B0%5D=https%3A%2F%2Fexample.com%2Fa.pdf&files%5B1%5D=https%3A%2F%2Fexample.com%2Fb.pdf";
        let req = request("/webhooks/wpforms", &[("content-type", FORM)], body);
        let s = submission(parse(&req));
        // No key is named like an email: the value that looks like one is taken.
        assert_eq!(s.contact.email.as_deref(), Some("grace@example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Grace Hopper"));
        assert_eq!(s.payload["signed_up"]["unix"], "1767261600");
        assert_eq!(s.payload["files"][1], "https://example.com/b.pdf");
    }

    #[test]
    fn without_email_is_a_submission_without_email() {
        let req = request(
            "/webhooks/wpforms",
            &[("content-type", JSON)],
            r#"{"name":"No Email","message":"Call me"}"#,
        );
        let s = submission(parse(&req));
        assert_eq!(s.contact.email, None);
    }

    #[test]
    fn malformed_body_is_a_parse_error() {
        let req = request(
            "/webhooks/wpforms",
            &[("content-type", JSON)],
            r#"{"email":"a@b.co""#,
        );
        assert!(matches!(parse(&req), Err(ParseError::Json(_))));
        let req = request("/webhooks/wpforms", &[("content-type", JSON)], "[]");
        assert_eq!(parse(&req), Err(ParseError::NotAnObject));
    }
}
