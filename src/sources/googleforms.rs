//! `googleforms`: Google Forms has no webhook, so an Apps Script `onFormSubmit` trigger posts
//! each response (examples/google-forms-apps-script.js) to the route URL with `?token=`.
//!
//! The documented body, `application/json`:
//!
//! ```json
//! {
//!   "formId": "1FAIpQLSe…",
//!   "formTitle": "Workshop sign-up",
//!   "responseId": "2_ABaOnud…",
//!   "timestamp": "2026-01-01T10:00:00.000Z",
//!   "respondentEmail": "ada@example.com",
//!   "answers": { "<question title>": "<answer>" | ["<choice>", …] | [["<grid row>"], …] }
//! }
//! ```
//!
//! `respondentEmail` is empty unless the form collects email addresses. Mapping paths quote
//! titles: `$.answers['Company name']`.

use serde_json::Value;

use super::util::body::parse_json_object;
use super::util::fields::recognise_fields_any_email;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, text_at};

/// The `googleforms` sender (JSON only: the trait's default media types).
/// The `googleforms` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("googleforms", Auth::RouteToken, Parse::Whole(parse));

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let p = parse_json_object(&req.body)?;
    // Google verified this address when the form collects emails: it comes first.
    let respondent = ContactFields {
        email: text_at(&p, "respondentEmail"),
        ..ContactFields::default()
    };
    // Answers are keyed by question title: recognised like form fields (`Email`, `First name`,
    // `Phone number`, `Company`), else the first answer that looks like an email address.
    let (by_title, consent) = match p.get("answers") {
        Some(answers @ Value::Object(_)) => recognise_fields_any_email(answers),
        _ => (ContactFields::default(), None),
    };
    Ok(Parsed::Submission(Box::new(Submission {
        topic: None,
        delivery_id: text_at(&p, "responseId"),
        contact: respondent.fill_from(by_title),
        products: Vec::new(),
        consent,
        payload: p,
        from_browser_form: false,
        lookup: None,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{assert_route_token, request, submission};

    const JSON: &str = "application/json";

    #[test]
    fn route_token_authenticates() {
        assert_route_token(&SPEC, &[], "{}");
        assert!(SPEC.accepts_media_type(Some(JSON)));
        assert!(!SPEC.accepts_media_type(Some("application/x-www-form-urlencoded")));
    }

    #[test]
    fn respondent_email_and_answers_by_title() {
        let body = r#"{"formId":"1FAIpQLSe","formTitle":"Workshop","responseId":"2_ABaOnud","timestamp":"2026-01-01T10:00:00.000Z","respondentEmail":"Ada@Example.com","answers":{"First name":"Ada","Last name":"Lovelace","Phone number":"+44 20 7946 0000","Company":"Analytical Engines","Which topics?":["Engines","Poetry"],"Subscribe to our newsletter?":"Yes","Email":"other@example.com"}}"#;
        let req = request("/webhooks/googleforms", &[("content-type", JSON)], body);
        let s = submission(parse(&req));
        assert_eq!(s.delivery_id.as_deref(), Some("2_ABaOnud"));
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(s.contact.phone.as_deref(), Some("+44 20 7946 0000"));
        assert_eq!(
            s.contact.organization.as_deref(),
            Some("Analytical Engines")
        );
        // "Subscribe to our newsletter?" is not a consent key by name: a route selects it.
        assert_eq!(s.consent, None);
        assert!(!s.from_browser_form);
    }

    #[test]
    fn email_from_an_answer_when_not_collected() {
        let body = r#"{"responseId":"r2","respondentEmail":"","answers":{"How can we reach you?":"grace@example.com","Your name":"Grace Hopper","Newsletter":["Yes"]}}"#;
        let req = request("/webhooks/googleforms", &[("content-type", JSON)], body);
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("grace@example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Grace Hopper"));
        assert_eq!(s.consent, Some(true));
    }

    #[test]
    fn without_email_is_a_submission_without_email() {
        let body = r#"{"responseId":"r3","respondentEmail":"","answers":{"Your name":"No Email"}}"#;
        let req = request("/webhooks/googleforms", &[("content-type", JSON)], body);
        let s = submission(parse(&req));
        assert_eq!(s.contact.email, None);
    }

    #[test]
    fn malformed_body_is_a_parse_error() {
        let req = request(
            "/webhooks/googleforms",
            &[("content-type", JSON)],
            r#"{"responseId":"r4","answers":{"#,
        );
        assert!(matches!(parse(&req), Err(ParseError::Json(_))));
    }
}
