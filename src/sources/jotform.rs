//! `jotform`: Jotform's webhook, unsigned, so the route token (`?token=`) authenticates it.
//!
//! Jotform posts `multipart/form-data` with metadata parts (`formID`, `formTitle`,
//! `submissionID`, `ip`, `pretty`...) and a `rawRequest` part: the answers as a JSON string
//! (PHP-encoded, escaped slashes) keyed `q{question id}_{slug}` (`q3_name: {first, last}`,
//! `q4_email`, `q5_phoneNumber: {full}`).
//!
//! The payload for mapping is the parts merged with the parsed answers: `$.q5_company` selects
//! an answer (a part of the same name wins), `$.rawRequest.q5_company` always selects the
//! answer, and `$.formTitle`, `$.submissionID` the metadata.

use serde_json::{Map, Value};

use super::util::body::{
    MEDIA_FORM, MEDIA_MULTIPART, parse_json_object, parse_multipart, parse_urlencoded,
};
use super::util::fields::recognise_fields;
use super::{Auth, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{
    ContactFields, Parsed, Submission, first_email_like, text_at, value_as_text,
};

/// The part that carries the answers.
pub(super) const RAW_REQUEST: &str = "rawRequest";

/// The `jotform` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("jotform", Auth::RouteToken, Parse::Whole(parse))
        .media(Media::only(&[MEDIA_MULTIPART, MEDIA_FORM]));

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let parts = match req.media_type().as_deref() {
        Some(MEDIA_FORM) => parse_urlencoded(&req.body)?,
        _ => parse_multipart(req)?,
    };
    let Value::Object(mut payload) = parts else {
        return Err(ParseError::NotAnObject);
    };
    let answers = match payload.get(RAW_REQUEST) {
        Some(Value::String(raw)) => match parse_json_object(raw.as_bytes())? {
            Value::Object(answers) => answers,
            _ => return Err(ParseError::NotAnObject),
        },
        Some(_) => {
            return Err(ParseError::Multipart(
                "more than one rawRequest part".into(),
            ));
        }
        None => return Err(ParseError::Multipart("no rawRequest part".into())),
    };
    let (recognised, consent) = recognise_fields(&Value::Object(by_slug(&answers)));
    let mut contact = contact(&answers).fill_from(recognised);
    contact.ip4 = payload.get("ip").and_then(value_as_text);
    let delivery_id = payload.get("submissionID").and_then(value_as_text);
    for (key, value) in &answers {
        if !payload.contains_key(key) {
            payload.insert(key.clone(), value.clone());
        }
    }
    payload.insert(RAW_REQUEST.to_string(), Value::Object(answers));
    Ok(Parsed::Submission(Box::new(Submission {
        topic: None,
        delivery_id,
        contact,
        products: Vec::new(),
        consent,
        payload: Value::Object(payload),
        from_browser_form: false,
        lookup: None,
    })))
}

/// The answers `q{id}_{slug}` in question-id order (`q4` before `q12`).
fn questions(answers: &Map<String, Value>) -> Vec<(u64, &str, &Value)> {
    let mut questions: Vec<(u64, &str, &Value)> = answers
        .iter()
        .filter_map(|(key, value)| {
            let (id, slug) = key.strip_prefix('q')?.split_once('_')?;
            Some((id.parse().ok()?, slug, value))
        })
        .collect();
    questions.sort_by_key(|(id, _, _)| *id);
    questions
}

/// The answers keyed by slug (`firstName`, `company`), first question first, so that
/// [`recognise_fields`] finds plain text fields by their usual names.
fn by_slug(answers: &Map<String, Value>) -> Map<String, Value> {
    let mut map = Map::new();
    for (_, slug, value) in questions(answers) {
        map.entry(slug.to_string()).or_insert_with(|| value.clone());
    }
    map
}

/// Whether a slug names this kind of question (`studentsName`, `yourEmail`, `phoneNumber`).
fn slug_has(slug: &str, word: &str) -> bool {
    slug.to_ascii_lowercase().contains(word)
}

/// Jotform's own widgets: the first `q*_email*`, `q*_name*` with first/last, `q*_phone*`.
fn contact(answers: &Map<String, Value>) -> ContactFields {
    let questions = questions(answers);
    let email = questions
        .iter()
        .filter(|(_, slug, _)| slug_has(slug, "email"))
        .find_map(|(_, _, value)| value_as_text(value).or_else(|| first_email_like([*value])))
        .or_else(|| first_email_like(questions.iter().map(|(_, _, value)| *value)));
    let name = questions.iter().find_map(|(_, slug, value)| {
        let first = text_at(value, "first");
        let last = text_at(value, "last");
        (slug_has(slug, "name") && (first.is_some() || last.is_some())).then_some((first, last))
    });
    let (first_name, last_name) = name.unwrap_or_default();
    let phone = questions
        .iter()
        .filter(|(_, slug, _)| slug_has(slug, "phone"))
        .find_map(|(_, _, value)| phone(value));
    ContactFields {
        email,
        first_name,
        last_name,
        phone,
        ..ContactFields::default()
    }
}

/// A phone answer: text, `{full}` (the input-mask widget) or `{area, phone}`.
fn phone(value: &Value) -> Option<String> {
    value_as_text(value)
        .or_else(|| text_at(value, "full"))
        .or_else(|| {
            let parts: Vec<String> = ["area", "phone"]
                .iter()
                .filter_map(|key| text_at(value, key))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{assert_route_token, request, submission};

    const CONTENT_TYPE: &str =
        "multipart/form-data; boundary=------------------------J1JNT4vbVO4FCC1qLG4HSv";

    fn multipart(parts: &[(&str, &str)]) -> String {
        let boundary = "------------------------J1JNT4vbVO4FCC1qLG4HSv";
        let mut body = String::new();
        for (name, value) in parts {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        body
    }

    fn delivery(raw: &str) -> InboundRequest {
        let body = multipart(&[
            ("action", ""),
            ("formID", "243231271343446"),
            ("formTitle", "Contact Us"),
            ("submissionID", "6084250982513018472"),
            ("rawRequest", raw),
            ("pretty", "Name:Ada Lovelace, E-mail:ada@example.com"),
            ("ip", "192.0.2.10"),
        ]);
        request(
            "/webhooks/jotform",
            &[("content-type", CONTENT_TYPE)],
            &body,
        )
    }

    const RAW: &str = r#"{"slug":"submit\/243231271343446","q3_name":{"first":"Ada","last":"Lovelace"},"q4_email":"Ada@Example.com","q5_company":"Analytical Engines","q6_phoneNumber":{"full":"(555) 555-0100"},"q12_contactEmail":"other@example.com","path":"\/submit\/243231271343446"}"#;

    #[test]
    fn route_token_authenticates() {
        assert_route_token(&SPEC, &[], "");
    }

    #[test]
    fn raw_request_answers() {
        let s = submission(parse(&delivery(RAW)));
        assert_eq!(s.delivery_id.as_deref(), Some("6084250982513018472"));
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(s.contact.phone.as_deref(), Some("(555) 555-0100"));
        assert_eq!(
            s.contact.organization.as_deref(),
            Some("Analytical Engines")
        );
        assert_eq!(s.contact.ip4.as_deref(), Some("192.0.2.10"));
        assert!(!s.from_browser_form);
        // Both paths reach an answer; escaped slashes are decoded.
        assert_eq!(s.payload["q5_company"], "Analytical Engines");
        assert_eq!(s.payload["rawRequest"]["q5_company"], "Analytical Engines");
        assert_eq!(s.payload["formTitle"], "Contact Us");
        assert_eq!(s.payload["slug"], "submit/243231271343446");
    }

    #[test]
    fn area_phone_and_email_found_by_value() {
        let raw = r#"{"q10_yourName":{"first":"Grace","last":"Hopper"},"q2_reachYou":"grace@example.com","q7_phone":{"area":"212","phone":"5550101"}}"#;
        let s = submission(parse(&delivery(raw)));
        assert_eq!(s.contact.email.as_deref(), Some("grace@example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Grace"));
        assert_eq!(s.contact.phone.as_deref(), Some("212 5550101"));
    }

    #[test]
    fn without_email_is_a_submission_without_email() {
        let raw = r#"{"q3_name":{"first":"No","last":"Email"},"q4_message":"Call me"}"#;
        let s = submission(parse(&delivery(raw)));
        assert_eq!(s.contact.email, None);
        assert_eq!(s.contact.first_name.as_deref(), Some("No"));
    }

    #[test]
    fn malformed_bodies_are_parse_errors() {
        assert!(matches!(
            parse(&delivery(r#"{"q4_email":"#)),
            Err(ParseError::Json(_))
        ));
        assert_eq!(parse(&delivery("[1]")), Err(ParseError::NotAnObject));
        let no_raw = request(
            "/webhooks/jotform",
            &[("content-type", CONTENT_TYPE)],
            &multipart(&[("formID", "1")]),
        );
        assert!(matches!(parse(&no_raw), Err(ParseError::Multipart(_))));
        let truncated = request(
            "/webhooks/jotform",
            &[("content-type", CONTENT_TYPE)],
            "--------------------------J1JNT4vbVO4FCC1qLG4HSv\r\nContent-Disposition: form-data; name=\"rawRequest\"\r\n\r\n{}",
        );
        assert!(matches!(parse(&truncated), Err(ParseError::Multipart(_))));
    }
}
