//! `form`: plain HTML forms (URL-encoded or multipart) and any JSON poster.
//! Unsigned, so the route token (`?token=`) authenticates it.

use secrecy::SecretString;
use serde_json::{Map, Value};

use super::body::{self, MEDIA_FORM, MEDIA_JSON, MEDIA_MULTIPART};
use super::signature::verify_token;
use super::{AuthError, AuthSettings, ParseError, Sender};
use crate::inbound::InboundRequest;
use crate::submission::{
    ContactFields, Parsed, Submission, first_email_like, is_affirmative, value_as_text,
};

/// The query parameter that carries the route token.
pub const TOKEN_PARAM: &str = "token";

// Recognised field names, compared after lower-casing and dropping everything but letters
// and digits, so `E-mail`, `your_email` and `Email Address` all match.
const EMAIL_KEYS: &[&str] = &["email", "emailaddress", "youremail", "mail", "contactemail"];
const FIRST_NAME_KEYS: &[&str] = &["firstname", "fname", "first", "givenname", "forename"];
const LAST_NAME_KEYS: &[&str] = &["lastname", "lname", "last", "surname", "familyname"];
const FULL_NAME_KEYS: &[&str] = &["name", "fullname", "yourname", "contactname"];
const PHONE_KEYS: &[&str] = &[
    "phone",
    "tel",
    "telephone",
    "phonenumber",
    "mobile",
    "yourphone",
];
const ORGANIZATION_KEYS: &[&str] = &[
    "company",
    "organization",
    "organisation",
    "org",
    "companyname",
    "yourcompany",
];
const CONSENT_KEYS: &[&str] = &[
    "consent",
    "marketingconsent",
    "optin",
    "newsletter",
    "subscribe",
    "acceptsmarketing",
    "gdpr",
];

/// The `form` sender.
pub struct Form;

impl Sender for Form {
    fn accepts_media_type(&self, media_type: Option<&str>) -> bool {
        accepts_media_type(media_type)
    }

    fn authenticate(
        &self,
        req: &InboundRequest,
        secrets: &[SecretString],
        _settings: &AuthSettings,
    ) -> Result<(), AuthError> {
        authenticate(req, secrets)
    }

    fn parse(&self, req: &InboundRequest) -> Result<Parsed, ParseError> {
        parse(req)
    }
}

pub fn accepts_media_type(media_type: Option<&str>) -> bool {
    matches!(
        media_type,
        Some(MEDIA_FORM) | Some(MEDIA_MULTIPART) | Some(MEDIA_JSON)
    )
}

pub fn authenticate(req: &InboundRequest, secrets: &[SecretString]) -> Result<(), AuthError> {
    verify_token(secrets, req.query_param(TOKEN_PARAM))
}

pub fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
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
    })))
}

/// Finds a contact in flat form fields by their common names (`email`, `E-mail`,
/// `First Name`, `tel`, `company`, a `newsletter` checkbox...). Form-like senders reuse it.
pub fn recognise_fields(payload: &Value) -> (ContactFields, Option<bool>) {
    let empty = Map::new();
    let fields = payload.as_object().unwrap_or(&empty);
    let contact = ContactFields {
        email: find(fields, EMAIL_KEYS),
        first_name: find(fields, FIRST_NAME_KEYS),
        last_name: find(fields, LAST_NAME_KEYS),
        full_name: find(fields, FULL_NAME_KEYS),
        phone: find(fields, PHONE_KEYS),
        organization: find(fields, ORGANIZATION_KEYS),
        ip4: None,
    };
    let consent = find_value(fields, CONSENT_KEYS).map(is_affirmative);
    (contact, consent)
}

/// [`recognise_fields`] for senders whose keys are chosen by the site owner (WPForms, Elementor
/// labels, Google Forms question titles): when no key is named like an email, the first value
/// that looks like an email address is the email.
pub fn recognise_fields_any_email(payload: &Value) -> (ContactFields, Option<bool>) {
    let (mut contact, consent) = recognise_fields(payload);
    if contact.email.is_none() {
        contact.email = payload
            .as_object()
            .and_then(|fields| first_email_like(fields.values()));
    }
    (contact, consent)
}

fn normalise_key(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn find_value<'a>(fields: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    // Preference follows the order of `names`, not the order of the form.
    names.iter().find_map(|name| {
        fields
            .iter()
            .find(|(key, _)| normalise_key(key) == *name)
            .map(|(_, value)| value)
    })
}

fn find(fields: &Map<String, Value>, names: &[&str]) -> Option<String> {
    let value = find_value(fields, names)?;
    match value {
        // A repeated field: the first non-empty value.
        Value::Array(items) => items.iter().find_map(value_as_text),
        other => value_as_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{request, secrets, submission};

    #[test]
    fn token_in_query_authenticates() {
        let route = secrets(&["tok-123"]);
        let ok = request("/webhooks/form?token=tok-123", &[], "");
        assert!(authenticate(&ok, &route).is_ok());
        let wrong = request("/webhooks/form?token=tok-124", &[], "");
        assert_eq!(authenticate(&wrong, &route), Err(AuthError::TokenMismatch));
        let header_only = request("/webhooks/form", &[("x-token", "tok-123")], "");
        assert_eq!(
            authenticate(&header_only, &route),
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
