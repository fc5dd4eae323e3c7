//! `calendly`: scheduled invitees, signed with `Calendly-Webhook-Signature`
//! (`t=<unix>,v1=<hex>`: HMAC-SHA256 of `t.body`, keyed by the webhook signing key).

use serde_json::{Map, Value};

use super::util::body::parse_json_object;
use super::util::fields::recognise_fields;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, text_at, value_as_text};

pub(super) const SIGNATURE_HEADER: &str = "Calendly-Webhook-Signature";

/// `invitee.canceled` (also fired by a reschedule) carries the invitee too, but is opt-in.
pub(super) const DEFAULT_TOPICS: &[&str] = &["invitee.created"];

/// The `calendly` sender.
pub(super) const SPEC: SenderSpec = SenderSpec::new(
    "calendly",
    Auth::Timestamped {
        header: SIGNATURE_HEADER,
    },
    Parse::Whole(parse),
)
.topics(DEFAULT_TOPICS);

/// `{event, created_at, payload:{uri, email, name, first_name, last_name, text_reminder_number,
/// questions_and_answers[], ...}}`: the invitee events carry the contact.
pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let body = parse_json_object(&req.body)?;
    let topic = text_at(&body, "event").ok_or(ParseError::MissingTopic("\"event\" field"))?;
    if !topic.starts_with("invitee.") {
        return Ok(Parsed::Ignored {
            reason: format!("Calendly event {topic} carries no invitee"),
        });
    }
    let p = body.get("payload").unwrap_or(&Value::Null);
    // Phone and company often come from the booking questions ("Phone number", "Company").
    let (answers, _) = recognise_fields(&answers_by_question(p));
    // first_name/last_name are null unless the event type asks for them separately.
    let first_name = text_at(p, "first_name");
    let last_name = text_at(p, "last_name");
    let full_name = if first_name.is_none() && last_name.is_none() {
        text_at(p, "name")
    } else {
        None
    };
    let contact = ContactFields {
        email: text_at(p, "email").or(answers.email),
        first_name,
        last_name,
        full_name,
        phone: text_at(p, "text_reminder_number").or(answers.phone),
        organization: answers.organization,
        ip4: None,
    };
    Ok(Parsed::Submission(Box::new(Submission {
        topic: Some(topic),
        // Calendly sends no delivery id; the invitee's URI identifies the booking.
        delivery_id: text_at(p, "uri"),
        contact,
        products: Vec::new(),
        consent: None,
        payload: body,
        from_browser_form: false,
        lookup: None,
    })))
}

/// `questions_and_answers[]` as one `{question: answer}` object, for form-style recognition.
fn answers_by_question(payload: &Value) -> Value {
    let mut map = Map::new();
    if let Some(items) = payload
        .get("questions_and_answers")
        .and_then(Value::as_array)
    {
        for item in items {
            if let (Some(question), Some(answer)) = (
                item.get("question").and_then(value_as_text),
                item.get("answer").and_then(value_as_text),
            ) {
                map.entry(question).or_insert(Value::String(answer));
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::{request, secrets, submission};
    use crate::sources::{AuthError, AuthSettings};
    use std::time::{Duration, UNIX_EPOCH};

    const KEY: &str = "calendly-signing-key";
    const AT: i64 = 1_767_225_600;
    const CREATED: &str = r#"{"created_at":"2026-01-01T00:00:00.000000Z","created_by":"https://api.calendly.com/users/AAAAAAAAAAAAAAAA","event":"invitee.created","payload":{"uri":"https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/AAAAAAAAAAAAAAAA","email":"River.Tam@example.com","name":"River Tam","first_name":null,"last_name":null,"status":"active","timezone":"America/New_York","text_reminder_number":"+1 404-555-1234","questions_and_answers":[{"question":"Company","answer":"Blue Sun","position":0},{"question":"Anything else?","answer":"no","position":1}],"tracking":{"utm_source":null},"rescheduled":false}}"#;

    fn signed_at(body: &str, t: i64, keys: &[&str]) -> InboundRequest {
        let mut header = format!("t={t}");
        for key in keys {
            let tag = hmac_sha256(
                key.as_bytes(),
                &[t.to_string().as_bytes(), b".", body.as_bytes()],
            );
            header.push_str(&format!(",v1={}", hex::encode(tag)));
        }
        let mut req = request("/webhooks/calendly", &[(SIGNATURE_HEADER, &header)], body);
        req.received_at = UNIX_EPOCH + Duration::from_secs(t as u64 + 5);
        req
    }

    #[test]
    fn valid_signature_and_invitee_fields() {
        let req = signed_at(CREATED, AT, &[KEY]);
        assert_eq!(
            SPEC.authenticate(&req, &secrets(&[KEY]), &AuthSettings::default()),
            Ok(())
        );
        let s = submission(parse(&req));
        assert_eq!(s.topic.as_deref(), Some("invitee.created"));
        assert_eq!(
            s.delivery_id.as_deref(),
            Some(
                "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/AAAAAAAAAAAAAAAA"
            )
        );
        assert_eq!(s.contact.email.as_deref(), Some("River.Tam@example.com"));
        assert_eq!(s.contact.first_name, None);
        assert_eq!(s.contact.full_name.as_deref(), Some("River Tam"));
        assert_eq!(s.contact.phone.as_deref(), Some("+1 404-555-1234"));
        assert_eq!(s.contact.organization.as_deref(), Some("Blue Sun"));
    }

    #[test]
    fn separate_names_win_over_the_full_name() {
        let body = r#"{"event":"invitee.created","payload":{"uri":"u","email":"a@b.co","name":"Kaylee Frye","first_name":"Kaywinnet Lee","last_name":"Frye","questions_and_answers":[{"question":"Phone number","answer":"+1 555 0100"}]}}"#;
        let s = submission(parse(&request("/webhooks/calendly", &[], body)));
        assert_eq!(s.contact.first_name.as_deref(), Some("Kaywinnet Lee"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Frye"));
        assert_eq!(s.contact.full_name, None);
        assert_eq!(s.contact.phone.as_deref(), Some("+1 555 0100"));
    }

    #[test]
    fn missing_malformed_and_stale() {
        let settings = AuthSettings::default();
        let route = secrets(&[KEY]);
        let missing = request("/webhooks/calendly", &[], CREATED);
        assert_eq!(
            SPEC.authenticate(&missing, &route, &settings),
            Err(AuthError::MissingSignature("Calendly-Webhook-Signature"))
        );
        for header in ["v1=abcd", "t=1767225600", "t=soon,v1=ab", "garbage"] {
            let req = request("/webhooks/calendly", &[(SIGNATURE_HEADER, header)], CREATED);
            assert_eq!(
                SPEC.authenticate(&req, &route, &settings),
                Err(AuthError::MalformedSignature),
                "{header}"
            );
        }
        let mut stale = signed_at(CREATED, AT, &[KEY]);
        stale.received_at = UNIX_EPOCH + Duration::from_secs(AT as u64 + 301);
        assert_eq!(
            SPEC.authenticate(&stale, &route, &settings),
            Err(AuthError::StaleTimestamp)
        );
        let wide = AuthSettings {
            replay_window: Duration::from_secs(900),
            ..AuthSettings::default()
        };
        assert_eq!(SPEC.authenticate(&stale, &route, &wide), Ok(()));
    }

    #[test]
    fn other_events_and_bad_bodies() {
        let canceled = CREATED.replace("invitee.created", "invitee.canceled");
        let s = submission(parse(&request("/webhooks/calendly", &[], &canceled)));
        // Parsed, but not in the default topics: the route answers "ignored".
        assert_eq!(s.topic.as_deref(), Some("invitee.canceled"));
        let routing = r#"{"event":"routing_form_submission.created","payload":{"submitter":null}}"#;
        assert!(matches!(
            parse(&request("/webhooks/calendly", &[], routing)).unwrap(),
            Parsed::Ignored { .. }
        ));
        assert!(matches!(
            parse(&request("/webhooks/calendly", &[], r#"{"payload":{}}"#)),
            Err(ParseError::MissingTopic(_))
        ));
        assert!(matches!(
            parse(&request("/webhooks/calendly", &[], "{\"event\":")),
            Err(ParseError::Json(_))
        ));
    }
}
