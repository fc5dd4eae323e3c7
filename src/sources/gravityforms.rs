//! `gravityforms`: the Gravity Forms Webhooks add-on, unsigned, so the route token
//! (`?token=`) authenticates it.
//!
//! With "all fields" the body is the entry: meta (`id`, `form_id`, `date_created`, `ip`,
//! `source_url`...) and values keyed by field id (`"4"` an email field, `"1.3"`/`"1.6"` a name
//! field's first and last name, `"5.1"` a consent field's checkbox). JSON or
//! `application/x-www-form-urlencoded; charset=UTF-8`, as the feed is configured; mapping paths
//! quote the ids: `$['2']`, `$['1.3']`.

use serde_json::{Map, Value};

use super::util::body::parse_form_or_json;
use super::util::fields::recognise_fields_any_email;
use super::{Auth, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{
    ContactFields, Parsed, Submission, first_email_like, text_at, value_as_text,
};

/// The `gravityforms` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("gravityforms", Auth::RouteToken, Parse::Whole(parse))
        .media(Media::FORM_OR_JSON);

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let p = parse_form_or_json(req)?;
    let empty = Map::new();
    let entry = p.as_object().unwrap_or(&empty);
    let fields = field_values(entry);
    let (first_name, last_name) = name_pair(&fields).unwrap_or_default();
    let by_id = ContactFields {
        email: first_email_like(fields.iter().map(|f| f.value)),
        first_name,
        last_name,
        ip4: text_at(&p, "ip"),
        ..ContactFields::default()
    };
    // "Select fields" feeds name their keys (`email`, `phone`): recognise those by name.
    let (by_name, named_consent) = recognise_fields_any_email(&p);
    let contact = by_id.fill_from(by_name);
    let consent = consent_field(&fields).or(named_consent);
    Ok(Parsed::Submission(Box::new(Submission {
        topic: None,
        // The entry id counts up per WordPress site: with the site's page and the form, it
        // tells two sites posting to one route apart.
        delivery_id: text_at(&p, "id").map(|id| {
            let site = text_at(&p, "source_url").unwrap_or_default();
            let form = text_at(&p, "form_id").unwrap_or_default();
            format!("{site}#{form}#{id}")
        }),
        contact,
        products: Vec::new(),
        consent,
        payload: p,
        from_browser_form: false,
        lookup: None,
    })))
}

/// One value keyed by a field id: `"4"` (field 4) or `"1.3"` (input 3 of field 1).
struct FieldValue<'a> {
    field: u64,
    input: Option<u64>,
    value: &'a Value,
}

/// The entry's field values in field order (`2` before `10`), each field's inputs in order.
fn field_values(entry: &Map<String, Value>) -> Vec<FieldValue<'_>> {
    let mut fields: Vec<FieldValue<'_>> = entry
        .iter()
        .filter_map(|(key, value)| {
            let (field, input) = match key.split_once('.') {
                Some((field, input)) => (field.parse().ok()?, Some(input.parse().ok()?)),
                None => (key.parse().ok()?, None),
            };
            Some(FieldValue {
                field,
                input,
                value,
            })
        })
        .collect();
    fields.sort_by_key(|f| (f.field, f.input));
    fields
}

/// The inputs of one field, by input number.
fn inputs<'a>(fields: &'a [FieldValue<'a>], field: u64) -> impl Iterator<Item = (u64, &'a Value)> {
    fields
        .iter()
        .filter(move |f| f.field == field)
        .filter_map(|f| Some((f.input?, f.value)))
}

fn input_text(fields: &[FieldValue<'_>], field: u64, input: u64) -> Option<String> {
    inputs(fields, field)
        .find(|(i, _)| *i == input)
        .and_then(|(_, v)| value_as_text(v))
}

/// The first name field: `N.3` first, `N.6` last. Address fields also have `.3` (city) and
/// `.6` (country) but always `.1` and `.5`, which a name field never has.
fn name_pair(fields: &[FieldValue<'_>]) -> Option<(Option<String>, Option<String>)> {
    let mut ids: Vec<u64> = fields.iter().map(|f| f.field).collect();
    ids.dedup();
    ids.into_iter().find_map(|field| {
        let has = |n: u64| inputs(fields, field).any(|(i, _)| i == n);
        if has(1) || has(5) {
            return None;
        }
        let first = input_text(fields, field, 3);
        let last = input_text(fields, field, 6);
        (first.is_some() || last.is_some()).then_some((first, last))
    })
}

/// The first consent field: exactly inputs `.1` (`"1"` when ticked, else empty), `.2` (the
/// consent text) and `.3` (the text's revision id, digits). A checkbox field with three
/// choices has the same inputs but carries choice values, not this pattern.
fn consent_field(fields: &[FieldValue<'_>]) -> Option<bool> {
    let mut ids: Vec<u64> = fields.iter().map(|f| f.field).collect();
    ids.dedup();
    ids.into_iter().find_map(|field| {
        let mut numbers: Vec<u64> = inputs(fields, field).map(|(i, _)| i).collect();
        numbers.sort_unstable();
        if numbers != [1, 2, 3] {
            return None;
        }
        let ticked = inputs(fields, field)
            .find(|(i, _)| *i == 1)
            .and_then(|(_, v)| v.as_str())?;
        let text = input_text(fields, field, 2)?;
        let revision = input_text(fields, field, 3)?;
        let is_consent = matches!(ticked, "1" | "")
            && !text.chars().all(|c| c.is_ascii_digit())
            && revision.chars().all(|c| c.is_ascii_digit());
        is_consent.then_some(ticked == "1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{assert_route_token, request, submission};

    const ENTRY: &str = r#"{"id":"42","form_id":"3","post_id":null,"date_created":"2026-01-01 10:00:00","ip":"192.0.2.80","source_url":"https:\/\/example.com\/contact\/","user_agent":"Mozilla\/5.0","status":"active","1.2":"","1.3":"Ada","1.4":"","1.6":"Lovelace","1.8":"","2":"Ada@Example.com","3":"(555) 555-0101","4.1":"12 Main St","4.2":"","4.3":"Springfield","4.4":"IL","4.5":"62701","4.6":"United States","5.1":"1","5.2":"I agree to receive the newsletter.","5.3":"1","6":"Analytical Engines"}"#;

    #[test]
    fn route_token_authenticates() {
        assert_route_token(&SPEC, &[], "");
    }

    #[test]
    fn json_entry_by_field_id() {
        let req = request(
            "/webhooks/gravityforms",
            &[("content-type", "application/json")],
            ENTRY,
        );
        let s = submission(parse(&req));
        assert_eq!(
            s.delivery_id.as_deref(),
            Some("https://example.com/contact/#3#42")
        );
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(s.contact.ip4.as_deref(), Some("192.0.2.80"));
        // Phone and company have no fixed id: a route selects them.
        assert_eq!(s.contact.phone, None);
        assert_eq!(s.contact.organization, None);
        assert_eq!(s.consent, Some(true));
        assert_eq!(s.payload["1.3"], "Ada");
        assert!(!s.from_browser_form);
    }

    #[test]
    fn form_encoded_entry_and_unticked_consent() {
        let body = "id=43&form_id=3&ip=192.0.2.81&10.3=Grace&10.6=Hopper&4.1=Main&4.3=City&4.5=1&4.6=US\
                    &11=grace%40example.com&5.1=&5.2=Send+me+news&5.3=2&7.1=1&7.2=2&7.3=3";
        let req = request(
            "/webhooks/gravityforms",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )],
            body,
        );
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("grace@example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Grace"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Hopper"));
        assert_eq!(s.consent, Some(false));
    }

    #[test]
    fn select_fields_feed_is_recognised_by_name() {
        let req = request(
            "/webhooks/gravityforms",
            &[("content-type", "application/json")],
            r#"{"Work Email":"k@example.com","First Name":"Katherine","Phone":"555","company":"NASA"}"#,
        );
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("k@example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Katherine"));
        assert_eq!(s.contact.phone.as_deref(), Some("555"));
        assert_eq!(s.contact.organization.as_deref(), Some("NASA"));
    }

    #[test]
    fn without_email_is_a_submission_without_email() {
        let req = request(
            "/webhooks/gravityforms",
            &[("content-type", "application/json")],
            r#"{"id":"44","form_id":"3","1.3":"No","1.6":"Email","7":"hello"}"#,
        );
        let s = submission(parse(&req));
        assert_eq!(s.contact.email, None);
        assert_eq!(s.consent, None);
    }

    #[test]
    fn malformed_bodies_are_parse_errors() {
        let req = request(
            "/webhooks/gravityforms",
            &[("content-type", "application/json")],
            r#"{"id":"42","2":"#,
        );
        assert!(matches!(parse(&req), Err(ParseError::Json(_))));
        let mut req = request(
            "/webhooks/gravityforms",
            &[("content-type", "application/x-www-form-urlencoded")],
            "",
        );
        req.body = bytes::Bytes::from_static(b"2=\xfe");
        assert_eq!(parse(&req), Err(ParseError::NotUtf8));
    }
}
