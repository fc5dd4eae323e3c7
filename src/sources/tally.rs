//! `tally`: form responses (`FORM_RESPONSE`), signed with `Tally-Signature` (base64
//! HMAC-SHA256 of the raw body, keyed by the webhook's signing secret). No timestamp: dedupe on
//! `eventId`.
//!
//! Fields are a list of `{key, label, type, value, options?}`. Email and phone come from the
//! `INPUT_EMAIL` / `INPUT_PHONE_NUMBER` fields; names and company from the labels ("First name",
//! "Company"…) through the form sender's field recognition; consent from a `CHECKBOX` field.
//! Choice values are option ids, resolved to the options' text before labels are matched.

use serde_json::{Map, Value};

use super::util::body::parse_json_object;
use super::util::fields::recognise_fields;
use super::util::signature::TagEncoding;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, text_at, value_as_text};

pub(super) const SIGNATURE_HEADER: &str = "Tally-Signature";

pub(super) const DEFAULT_TOPICS: &[&str] = &["FORM_RESPONSE"];

/// The `tally` sender.
pub(super) const SPEC: SenderSpec = SenderSpec::new(
    "tally",
    Auth::BodyHmac {
        header: SIGNATURE_HEADER,
        encoding: TagEncoding::Base64,
        prefix: "",
    },
    Parse::Whole(parse),
)
.topics(DEFAULT_TOPICS);

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let topic =
        text_at(&payload, "eventType").ok_or(ParseError::MissingTopic("\"eventType\" field"))?;
    let fields: &[Value] = payload
        .pointer("/data/fields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (recognised, label_consent) = recognise_fields(&by_label(fields));
    let contact = ContactFields {
        email: typed_value(fields, "INPUT_EMAIL").or(recognised.email),
        phone: typed_value(fields, "INPUT_PHONE_NUMBER").or(recognised.phone),
        first_name: recognised.first_name,
        last_name: recognised.last_name,
        full_name: recognised.full_name,
        organization: recognised.organization,
        ip4: None,
    };
    let consent = checkbox_consent(fields).or(label_consent);
    let delivery_id = text_at(&payload, "eventId").or_else(|| text_at(&payload, "data.responseId"));
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

fn field_type(field: &Value) -> Option<&str> {
    field.get("type").and_then(Value::as_str)
}

/// The text of the first field of this type that holds one.
fn typed_value(fields: &[Value], kind: &str) -> Option<String> {
    fields
        .iter()
        .filter(|f| field_type(f) == Some(kind))
        .find_map(|f| f.get("value").and_then(value_as_text))
}

/// Consent from `CHECKBOX` fields (a single tick box): any ticked one is consent; present but
/// unticked is a refusal; no such field says nothing.
fn checkbox_consent(fields: &[Value]) -> Option<bool> {
    fields
        .iter()
        .filter(|f| field_type(f) == Some("CHECKBOX"))
        .filter_map(|f| f.get("value").and_then(Value::as_bool))
        .reduce(|a, b| a || b)
}

/// `{label: value}` for every field (the key when a field has no label; the first field wins
/// when labels repeat), with choice option ids replaced by the options' text.
fn by_label(fields: &[Value]) -> Value {
    let mut map = Map::new();
    for field in fields {
        let Some(label) = field
            .get("label")
            .and_then(value_as_text)
            .or_else(|| field.get("key").and_then(value_as_text))
        else {
            continue;
        };
        if !map.contains_key(&label) {
            map.insert(label, resolved_value(field));
        }
    }
    Value::Object(map)
}

/// A field's value with option ids (choice fields) replaced by the matching option's text;
/// ids without a matching option are kept as they are.
fn resolved_value(field: &Value) -> Value {
    let value = field.get("value").cloned().unwrap_or(Value::Null);
    let Some(options) = field.get("options").and_then(Value::as_array) else {
        return value;
    };
    let text_of = |id: Value| -> Value {
        id.as_str()
            .and_then(|id| {
                options
                    .iter()
                    .find(|o| o.get("id").and_then(Value::as_str) == Some(id))
            })
            .and_then(|option| option.get("text"))
            .cloned()
            .unwrap_or(id)
    };
    match value {
        Value::Array(ids) => Value::Array(ids.into_iter().map(text_of).collect()),
        id @ Value::String(_) => text_of(id),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::{request, secrets, submission};
    use crate::sources::{AuthError, AuthSettings};
    use base64::prelude::*;
    use serde_json::json;

    const SECRET: &str = "tally-signing-secret";
    // Shaped like the example event of tally.so/help/webhooks (reference section 16).
    const BODY: &str = r#"{"eventId":"a4cb511e-d513-4fa5-baee-b815d718dfd1","eventType":"FORM_RESPONSE","createdAt":"2026-01-01T10:00:00.000Z","data":{"responseId":"2wgx4n","submissionId":"2wgx4n","respondentId":"dwQKYm","formId":"VwbNEw","formName":"Contact us","createdAt":"2026-01-01T10:00:00.000Z","fields":[{"key":"question_3EKz4n","label":"First name","type":"INPUT_TEXT","value":"Grace"},{"key":"question_w4Q4Xn","label":"Last name","type":"INPUT_TEXT","value":"Hopper"},{"key":"question_mVGEg3","label":"Your email","type":"INPUT_EMAIL","value":"Grace@Example.com"},{"key":"question_nPQJzq","label":"Phone","type":"INPUT_PHONE_NUMBER","value":"+12125550101"},{"key":"question_Xyz123","label":"Company","type":"DROPDOWN","value":["f4a1"],"options":[{"id":"f4a1","text":"US Navy"},{"id":"f4a2","text":"Harvard"}]},{"key":"question_mKk9qQ","label":"Keep me posted","type":"CHECKBOX","value":true}]}}"#;

    fn signed_with(body: &str, secret: &str) -> InboundRequest {
        let tag = BASE64_STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body.as_bytes()]));
        request(
            "/webhooks/tally",
            &[
                ("content-type", "application/json"),
                (SIGNATURE_HEADER, &tag),
            ],
            body,
        )
    }

    #[test]
    fn missing_and_malformed_headers() {
        let unsigned = request("/webhooks/tally", &[], BODY);
        assert_eq!(
            SPEC.authenticate(&unsigned, &secrets(&[SECRET]), &AuthSettings::default()),
            Err(AuthError::MissingSignature("Tally-Signature"))
        );
        let garbage = request(
            "/webhooks/tally",
            &[(SIGNATURE_HEADER, "*not base64*")],
            BODY,
        );
        assert_eq!(
            SPEC.authenticate(&garbage, &secrets(&[SECRET]), &AuthSettings::default()),
            Err(AuthError::MalformedSignature)
        );
    }

    #[test]
    fn typed_fields_labels_and_resolved_choices() {
        let s = submission(parse(&signed_with(BODY, SECRET)));
        assert_eq!(s.topic.as_deref(), Some("FORM_RESPONSE"));
        assert_eq!(
            s.delivery_id.as_deref(),
            Some("a4cb511e-d513-4fa5-baee-b815d718dfd1")
        );
        // "Your email" is recognised by its type, whatever its label.
        assert_eq!(s.contact.email.as_deref(), Some("Grace@Example.com"));
        assert_eq!(s.contact.phone.as_deref(), Some("+12125550101"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Grace"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Hopper"));
        // The dropdown's option id became its text.
        assert_eq!(s.contact.organization.as_deref(), Some("US Navy"));
        assert_eq!(s.consent, Some(true));
    }

    #[test]
    fn option_ids_resolve_in_arrays_and_strings() {
        let fields = vec![
            json!({"label": "Interests", "type": "CHECKBOXES", "value": ["o1", "o9"],
                   "options": [{"id": "o1", "text": "Rockets"}, {"id": "o2", "text": "Math"}]}),
            json!({"label": "Plan", "type": "MULTIPLE_CHOICE", "value": "o2",
                   "options": [{"id": "o2", "text": "Pro"}]}),
            json!({"key": "question_h1", "label": null, "type": "HIDDEN_FIELDS", "value": "ref-7"}),
            json!({"label": "Plan", "type": "INPUT_TEXT", "value": "shadowed"}),
        ];
        assert_eq!(
            by_label(&fields),
            json!({"Interests": ["Rockets", "o9"], "Plan": "Pro", "question_h1": "ref-7"})
        );
    }

    #[test]
    fn full_name_label_and_unticked_checkbox() {
        let body = r#"{"eventId":"e2","eventType":"FORM_RESPONSE","data":{"fields":[{"label":"Name","type":"INPUT_TEXT","value":"Grace Brewster Hopper"},{"label":"Email","type":"INPUT_TEXT","value":"grace@example.com"},{"label":"Newsletter","type":"CHECKBOX","value":false}]}}"#;
        let s = submission(parse(&signed_with(body, SECRET)));
        assert_eq!(
            s.contact.full_name.as_deref(),
            Some("Grace Brewster Hopper")
        );
        // No INPUT_EMAIL field: the "Email" label is used.
        assert_eq!(s.contact.email.as_deref(), Some("grace@example.com"));
        assert_eq!(s.consent, Some(false));
    }

    #[test]
    fn no_email_still_parses_and_malformed_is_an_error() {
        let body = r#"{"eventId":"e3","eventType":"FORM_RESPONSE","data":{"responseId":"r3","fields":[{"label":"Message","type":"TEXTAREA","value":"Hi"}]}}"#;
        let s = submission(parse(&signed_with(body, SECRET)));
        assert_eq!(s.contact.email, None);
        assert_eq!(s.consent, None);
        assert!(matches!(
            parse(&signed_with("{\"eventId\":", SECRET)),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse(&signed_with("{\"data\":{}}", SECRET)),
            Err(ParseError::MissingTopic(_))
        ));
    }
}
