//! `wpforms`: the WPForms Webhooks add-on. Its `X-WPForms-Webhook-Signature` uses a secret
//! that WPForms never shows, so it is ignored and the route token (`?token=`) authenticates.
//!
//! The body holds the keys the site owner mapped in the webhook's "Request Body" (`email`,
//! `first_name`, `company`...), as JSON (`application/json; charset=utf-8`) or
//! `application/x-www-form-urlencoded`; bracketed form keys are nested back so both formats
//! share mapping paths. WPForms joins multi-line values (address, checkboxes) with `||`.
//! WPForms' default method is GET, which this function answers 405: set the webhook to POST.

use super::util::body::parse_form_or_json;
use super::util::fields::recognise_fields_any_email;
use super::{Auth, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{Parsed, Submission};

/// The `wpforms` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("wpforms", Auth::RouteToken, Parse::Whole(parse)).media(Media::FORM_OR_JSON);

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
