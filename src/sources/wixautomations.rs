//! `wixautomations`: a Wix site's Automations action "Send via webhook". Unsigned JSON, so the
//! route token (`?token=`) authenticates it. Wix sends either every key and value of the
//! trigger (a form submission, a new contact: objects such as `contact` or `submissions`
//! nested in it) or the custom keys the site owner chose; its exact shape is not documented,
//! so fields are recognised by their names, at the top level and then one level down
//! (`contact.email`, `submissions.First name`), in the languages `util::fields` knows. No
//! delivery id: a repeat is recognised by its exact body.

use serde_json::Map;

use super::util::body::parse_json_object;
use super::util::fields::recognise_fields;
use super::{Auth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::first_email_like;
use crate::submission::{Parsed, Submission};

/// The `wixautomations` sender.
pub(crate) const SPEC: SenderSpec =
    SenderSpec::new("wixautomations", Auth::RouteToken, Parse::Whole(parse));

pub(crate) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json_object(&req.body)?;
    let (mut contact, mut consent) = recognise_fields(&payload);
    // Then each nested object, filling what the top level lacked: named fields first, and
    // only then any value that looks like an email (else a nested `siteOwner.email` could
    // win over `submissions.Email`).
    let nested: Vec<&serde_json::Value> = payload
        .as_object()
        .into_iter()
        .flat_map(Map::values)
        .filter(|v| v.is_object())
        .collect();
    for object in &nested {
        let (found, found_consent) = recognise_fields(object);
        contact = contact.fill_from(found);
        consent = consent.or(found_consent);
    }
    if contact.email.is_none() {
        contact.email = payload
            .as_object()
            .and_then(|fields| first_email_like(fields.values()));
    }
    Ok(Parsed::Submission(Box::new(Submission {
        topic: None,
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

    fn parsed(body: &str) -> Submission {
        submission(parse(&request(
            "/webhooks/wixautomations",
            &[("content-type", "application/json")],
            body,
        )))
    }

    #[test]
    fn the_route_token_authenticates() {
        assert_route_token(&SPEC, &[("content-type", "application/json")], "{}");
    }

    #[test]
    fn custom_keys_and_nested_trigger_data() {
        let custom = parsed(
            r#"{"email":"Ana@Example.com","firstName":"Ana","lastName":"Lima","newsletter":true}"#,
        );
        assert_eq!(custom.contact.email.as_deref(), Some("Ana@Example.com"));
        assert_eq!(custom.contact.first_name.as_deref(), Some("Ana"));
        assert_eq!(custom.contact.last_name.as_deref(), Some("Lima"));
        assert_eq!(custom.consent, Some(true));
        // Every key of a form trigger: the answers nested, labelled as on the form.
        let all = parsed(
            r#"{"formName":"Contato","submissionTime":"2026-12-01T10:00:00Z","submissions":{"Nome":"Ana","Sobrenome":"Lima","E-mail":"ana@example.com","Telefone":"+55 11 5555"},"contactId":"c-9"}"#,
        );
        assert_eq!(all.contact.email.as_deref(), Some("ana@example.com"));
        assert_eq!(all.contact.first_name.as_deref(), Some("Ana"));
        assert_eq!(all.contact.last_name.as_deref(), Some("Lima"));
        assert_eq!(all.contact.phone.as_deref(), Some("+55 11 5555"));
        assert_eq!(all.payload["formName"], "Contato");
        // A named email field wins over an email-like value elsewhere in the trigger.
        let owner = parsed(
            r#"{"siteOwner":{"id":"o-1","ownerEmail":"owner@site.example"},"submissions":{"E-mail":"ana@example.com"}}"#,
        );
        assert_eq!(owner.contact.email.as_deref(), Some("ana@example.com"));
        assert!(matches!(
            parse(&request("/webhooks/wixautomations", &[], "[1]")),
            Err(ParseError::NotAnObject)
        ));
    }
}
