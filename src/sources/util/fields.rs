//! Field recognition for form-like senders: a contact found in flat fields by their common
//! names (`email`, `E-mail`, `First Name`, `tel`, `company`, a `newsletter` checkbox...).

use serde_json::{Map, Value};

use crate::submission::{ContactFields, first_email_like, is_affirmative, value_as_text};

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
