//! `form`: plain HTML forms (URL-encoded or multipart) and any JSON poster.
//! Unsigned, so the route token (`?token=`) authenticates it.

use super::util::body::{self, MEDIA_FORM, MEDIA_JSON, MEDIA_MULTIPART};
use super::util::fields::recognise_fields;
use super::{Auth, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{Parsed, Submission};

/// The `form` sender.
pub(crate) const SPEC: SenderSpec = SenderSpec::new("form", Auth::RouteToken, Parse::Whole(parse))
    .media(Media::only(&[MEDIA_FORM, MEDIA_MULTIPART, MEDIA_JSON]));

pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let media_type = req.media_type();
    let (payload, from_browser_form) = match media_type.as_deref() {
        Some(MEDIA_MULTIPART) => (body::parse_multipart(req)?, true),
        Some(MEDIA_FORM) => (body::parse_urlencoded(&req.body)?, true),
        _ => (body::parse_json_object(&req.body)?, false),
    };
    let (contact, consent) = recognise_fields(&payload);
    Ok(Parsed::Submission(Box::new(Submission {
        topic: None,
        delivery_id: None,
        contact,
        products: Vec::new(),
        consent,
        payload,
        from_browser_form,
        lookup: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{request, secrets, submission};
    use crate::sources::{AuthError, AuthSettings};

    #[test]
    fn token_in_query_authenticates() {
        let route = secrets(&["tok-123"]);
        let ok = request("/webhooks/form?token=tok-123", &[], "");
        assert!(
            SPEC.authenticate(&ok, &route, &AuthSettings::default())
                .is_ok()
        );
        let wrong = request("/webhooks/form?token=tok-124", &[], "");
        assert_eq!(
            SPEC.authenticate(&wrong, &route, &AuthSettings::default()),
            Err(AuthError::TokenMismatch)
        );
        let header_only = request("/webhooks/form", &[("x-token", "tok-123")], "");
        assert_eq!(
            SPEC.authenticate(&header_only, &route, &AuthSettings::default()),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn urlencoded_common_names() {
        let req = request(
            "/webhooks/form",
            &[("content-type", "application/x-www-form-urlencoded")],
            "E-mail=Ada%40Example.com&First+Name=Ada&surname=Lovelace&tel=%2B44+20&Company=Analytical&newsletter=on",
        );
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(s.contact.phone.as_deref(), Some("+44 20"));
        assert_eq!(s.contact.organization.as_deref(), Some("Analytical"));
        assert_eq!(s.consent, Some(true));
        assert!(s.from_browser_form);
    }

    #[test]
    fn json_poster_with_full_name() {
        let req = request(
            "/webhooks/form",
            &[("content-type", "application/json")],
            r#"{"email":"grace@example.com","name":"Grace Brewster Hopper","organization":"Navy"}"#,
        );
        let s = submission(parse(&req));
        assert_eq!(
            s.contact.full_name.as_deref(),
            Some("Grace Brewster Hopper")
        );
        assert_eq!(s.contact.organization.as_deref(), Some("Navy"));
        assert_eq!(s.consent, None);
        assert!(!s.from_browser_form);
    }

    #[test]
    fn malformed_json_is_a_parse_error() {
        let req = request(
            "/webhooks/form",
            &[("content-type", "application/json")],
            "{\"email\":",
        );
        assert!(matches!(parse(&req), Err(ParseError::Json(_))));
    }
}
