//! `typeform`: form responses, signed with `Typeform-Signature: sha256=<base64>` (HMAC-SHA256
//! of the raw body, keyed by the webhook's secret). No timestamp: dedupe on `event_id`.
//!
//! Answers are a list keyed by the form's fields. Read by default: the `email` answer, the
//! `phone_number` answer, consent from `boolean` answers of `legal` (else `yes_no`) fields,
//! and text answers recognised as form fields are (names, company, in the languages
//! `util::fields` knows) by their `field.ref` (`first_name`), else by their question's title in
//! `definition.fields` (`Vorname`, the Contact Info block's `First name`). A route selects
//! anything else, e.g. `first_name = "$.form_response.answers[?@.field.ref == 'fn'].text"`.

use serde_json::Value;

use super::util::body::parse_json_object;
use super::util::fields::recognise_fields;
use super::util::signature::TagEncoding;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, text_at, value_as_text};

pub(crate) const SIGNATURE_HEADER: &str = "Typeform-Signature";
/// The scheme prefix of the header value.
pub(crate) const SIGNATURE_PREFIX: &str = "sha256=";

pub(crate) const DEFAULT_TOPICS: &[&str] = &["form_response"];

/// Field types whose `boolean` answer is read as marketing consent, in order of preference.
const CONSENT_FIELD_TYPES: &[&str] = &["legal", "yes_no"];

/// The `typeform` sender.
pub(crate) const SPEC: SenderSpec = SenderSpec::new(
    "typeform",
    Auth::BodyHmac {
        header: SIGNATURE_HEADER,
        encoding: TagEncoding::Base64,
        prefix: SIGNATURE_PREFIX,
    },
    Parse::Whole(parse),
)
.topics(DEFAULT_TOPICS);

pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let topic =
        text_at(&payload, "event_type").ok_or(ParseError::MissingTopic("\"event_type\" field"))?;
    let answers: &[Value] = payload
        .pointer("/form_response/answers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let typed = ContactFields {
        email: answers.iter().find_map(|a| typed_answer(a, "email")),
        phone: answers.iter().find_map(|a| typed_answer(a, "phone_number")),
        ..ContactFields::default()
    };
    let titles = titles_by_id(&payload);
    let by_ref = recognise_fields(&text_answers(answers, |field| {
        field.get("ref").and_then(Value::as_str)
    }))
    .0;
    let by_title = recognise_fields(&text_answers(answers, |field| {
        let id = field.get("id").and_then(Value::as_str)?;
        titles.get(id).copied()
    }))
    .0;
    let contact = typed.fill_from(by_ref).fill_from(by_title);
    let consent = consent(answers);
    let delivery_id =
        text_at(&payload, "event_id").or_else(|| text_at(&payload, "form_response.token"));
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

/// Question titles by field id, from the form's definition (sent with every response).
fn titles_by_id(payload: &Value) -> std::collections::HashMap<&str, &str> {
    payload
        .pointer("/form_response/definition/fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f.get("id")?.as_str()?, f.get("title")?.as_str()?)))
        .collect()
}

/// The text answers as form fields, named by `name_of(answer.field)`.
fn text_answers<'a>(answers: &'a [Value], name_of: impl Fn(&'a Value) -> Option<&'a str>) -> Value {
    let mut fields = serde_json::Map::new();
    for answer in answers {
        let (Some(text), Some(name)) = (
            typed_answer(answer, "text"),
            answer.get("field").and_then(&name_of),
        ) else {
            continue;
        };
        fields
            .entry(name.to_string())
            .or_insert(Value::String(text));
    }
    Value::Object(fields)
}

/// The value of an answer of type `kind`, which Typeform puts under the key named like the type
/// (`{"type": "email", "email": "…"}`).
fn typed_answer(answer: &Value, kind: &str) -> Option<String> {
    if answer.get("type").and_then(Value::as_str) != Some(kind) {
        return None;
    }
    answer.get(kind).and_then(value_as_text)
}

/// Consent from `boolean` answers: `legal` fields first, else `yes_no` fields; any `true` wins.
fn consent(answers: &[Value]) -> Option<bool> {
    CONSENT_FIELD_TYPES.iter().find_map(|field_type| {
        let mut found = None;
        for answer in answers {
            let is_boolean = answer.get("type").and_then(Value::as_str) == Some("boolean");
            let of_type =
                answer.pointer("/field/type").and_then(Value::as_str) == Some(*field_type);
            if let (true, true, Some(value)) = (
                is_boolean,
                of_type,
                answer.get("boolean").and_then(Value::as_bool),
            ) {
                found = Some(found.unwrap_or(false) || value);
            }
        }
        found
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::{request, secrets, submission};
    use crate::sources::{AuthError, AuthSettings};
    use base64::prelude::*;

    const SECRET: &str = "tf-webhook-secret";
    // Shaped like the example payload of typeform.com/developers/webhooks (reference section 4).
    const BODY: &str = r#"{"event_id":"01HXYZ8K2W3","event_type":"form_response","form_response":{"form_id":"lT4Z3j","token":"a3a12ec67a1365927098a606107fac15","submitted_at":"2026-01-01T10:00:00Z","hidden":{"utm_source":"newsletter"},"answers":[{"type":"text","text":"Ada","field":{"id":"Y9ae","type":"short_text","ref":"first_name"}},{"type":"text","text":"Lovelace","field":{"id":"Y9af","type":"short_text","ref":"last_name"}},{"type":"email","email":"Ada@Example.com","field":{"id":"SMEU","type":"email","ref":"email"}},{"type":"phone_number","phone_number":"+442079460000","field":{"id":"PhN1","type":"phone_number","ref":"phone"}},{"type":"boolean","boolean":false,"field":{"id":"Yn01","type":"yes_no","ref":"customer"}},{"type":"boolean","boolean":true,"field":{"id":"Lg01","type":"legal","ref":"marketing"}}]}}"#;

    fn signed_with(body: &str, secret: &str) -> InboundRequest {
        let tag = BASE64_STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
        request(
            "/webhooks/typeform",
            &[
                ("content-type", "application/json"),
                (SIGNATURE_HEADER, &format!("sha256={tag}")),
            ],
            body,
        )
    }

    #[test]
    fn missing_and_malformed_headers() {
        let unsigned = request("/webhooks/typeform", &[], BODY);
        assert_eq!(
            SPEC.authenticate(&unsigned, &secrets(&[SECRET]), &AuthSettings::default()),
            Err(AuthError::MissingSignature("Typeform-Signature"))
        );
        let tag = BASE64_STANDARD.encode(hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]));
        // The tag without its `sha256=` prefix is not Typeform's format.
        let bare = request("/webhooks/typeform", &[(SIGNATURE_HEADER, &tag)], BODY);
        assert_eq!(
            SPEC.authenticate(&bare, &secrets(&[SECRET]), &AuthSettings::default()),
            Err(AuthError::MalformedSignature)
        );
        let not_base64 = request(
            "/webhooks/typeform",
            &[(SIGNATURE_HEADER, "sha256=%%%not-base64%%%")],
            BODY,
        );
        assert_eq!(
            SPEC.authenticate(&not_base64, &secrets(&[SECRET]), &AuthSettings::default()),
            Err(AuthError::MalformedSignature)
        );
        // Hex is not base64 of 32 bytes, so a hex tag cannot pass either.
        let hex_tag = hex::encode(hmac_sha256(SECRET.as_bytes(), &[BODY.as_bytes()]));
        let hex_req = request(
            "/webhooks/typeform",
            &[(SIGNATURE_HEADER, &format!("sha256={hex_tag}"))],
            BODY,
        );
        assert!(
            SPEC.authenticate(&hex_req, &secrets(&[SECRET]), &AuthSettings::default())
                .is_err()
        );
    }

    #[test]
    fn typed_answers_and_consent() {
        let s = submission(parse(&signed_with(BODY, SECRET)));
        assert_eq!(s.topic.as_deref(), Some("form_response"));
        assert_eq!(s.delivery_id.as_deref(), Some("01HXYZ8K2W3"));
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.phone.as_deref(), Some("+442079460000"));
        // Text answers whose refs are named like form fields.
        assert_eq!(s.contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Lovelace"));
        // The legal answer decides, not the yes_no one.
        assert_eq!(s.consent, Some(true));
        assert_eq!(
            s.payload["form_response"]["hidden"]["utm_source"],
            "newsletter"
        );
    }

    #[test]
    fn names_and_company_by_question_title_when_refs_say_nothing() {
        // Refs as Typeform generates them (UUIDs); titles as the form's owner wrote them,
        // here a German form and the Contact Info block's own sub-fields.
        let body = r#"{"event_id":"e2","event_type":"form_response","form_response":{"definition":{"fields":[{"id":"a1","ref":"0f6c…","type":"short_text","title":"Vorname"},{"id":"a2","ref":"51d2…","type":"short_text","title":"Nachname"},{"id":"a3","ref":"9be1…","type":"short_text","title":"Company"},{"id":"a4","ref":"77aa…","type":"email","title":"Email"}]},"answers":[{"type":"text","text":"Grete","field":{"id":"a1","type":"short_text","ref":"0f6c…"}},{"type":"text","text":"Weiss","field":{"id":"a2","type":"short_text","ref":"51d2…"}},{"type":"text","text":"Weiss AG","field":{"id":"a3","type":"short_text","ref":"9be1…"}},{"type":"email","email":"grete@example.de","field":{"id":"a4","type":"email","ref":"77aa…"}}]}}"#;
        let s = submission(parse(&signed_with(body, SECRET)));
        assert_eq!(s.contact.email.as_deref(), Some("grete@example.de"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Grete"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Weiss"));
        assert_eq!(s.contact.organization.as_deref(), Some("Weiss AG"));
    }

    #[test]
    fn yes_no_is_the_fallback_and_no_boolean_means_unknown() {
        let yes_no = r#"{"event_type":"form_response","form_response":{"answers":[{"type":"boolean","boolean":true,"field":{"type":"yes_no","ref":"news"}}]}}"#;
        assert_eq!(
            submission(parse(&signed_with(yes_no, SECRET))).consent,
            Some(true)
        );
        let none = r#"{"event_type":"form_response","form_response":{"answers":[]}}"#;
        let s = submission(parse(&signed_with(none, SECRET)));
        assert_eq!(s.consent, None);
        // No email answer still parses; the mapping stage answers "skipped".
        assert_eq!(s.contact.email, None);
        assert_eq!(s.delivery_id, None);
    }

    #[test]
    fn malformed_body_and_missing_event_type() {
        assert!(matches!(
            parse(&signed_with("{\"event_type\":", SECRET)),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse(&signed_with("{\"form_response\":{}}", SECRET)),
            Err(ParseError::MissingTopic(_))
        ));
    }
}
