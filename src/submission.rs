//! The normalised submission: what every sender's parser produces and the mapping stage reads.

use serde::Serialize;
use serde_json::Value;

/// Contact attributes a sender found by default, before the route's overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContactFields {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// A single name string (Stripe, forms) that the mapping stage splits when first/last are absent.
    pub full_name: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
    pub ip4: Option<String>,
}

impl ContactFields {
    /// Fills what this one lacks from `other`, a weaker source (fields recognised by name).
    /// Names move as a group: `other`'s names are taken only when this one has none, so a
    /// first name from one source is never paired with a last name from another.
    pub fn fill_from(self, other: ContactFields) -> ContactFields {
        let has_name =
            self.first_name.is_some() || self.last_name.is_some() || self.full_name.is_some();
        let (first_name, last_name, full_name) = if has_name {
            (self.first_name, self.last_name, self.full_name)
        } else {
            (other.first_name, other.last_name, other.full_name)
        };
        ContactFields {
            email: self.email.or(other.email),
            first_name,
            last_name,
            full_name,
            phone: self.phone.or(other.phone),
            organization: self.organization.or(other.organization),
            ip4: self.ip4.or(other.ip4),
        }
    }
}

/// One purchased item, for tags built from products.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Product {
    pub sku: Option<String>,
    pub title: Option<String>,
}

/// One verified, parsed webhook that may carry a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Submission {
    /// The sender's event type (`orders/create`, `checkout.session.completed`); `None` for forms.
    pub topic: Option<String>,
    /// The sender's id for this event, for de-duplication and logs.
    pub delivery_id: Option<String>,
    pub contact: ContactFields,
    pub products: Vec<Product>,
    /// Marketing consent carried by the payload: `Some(true)` only for an affirmative signal.
    pub consent: Option<bool>,
    /// The body as JSON (form bodies become objects), for the route's JSONPath selections.
    pub payload: Value,
    /// A browser posted it (form encodings), so a `redirect` applies.
    pub from_browser_form: bool,
    /// The webhook carried only a reference: the contact is in the sender's API, looked up
    /// at delivery (see `lookup`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<crate::lookup::Lookup>,
}

/// What a sender's parser made of a verified body.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Submission(Box<Submission>),
    /// Well-formed, but nothing to do (a topic without a contact, a test delivery).
    Ignored {
        reason: String,
    },
    /// Many contacts at once (the `batch` sender), one submission per row.
    Batch(Vec<BatchRow>),
}

/// One row of a batch, with the number a person would use to find it: the CSV line (the
/// header is row 1), the NDJSON line, or the position in a JSON array (from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    pub row: usize,
    pub submission: Submission,
}

/// Interprets common truthy encodings of a consent checkbox or flag.
pub fn is_affirmative(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64() == Some(1),
        Value::String(s) => matches!(
            s.trim().to_lowercase().as_str(),
            "on" | "yes" | "y" | "true" | "1" | "checked" | "subscribed" | "opt_in" | "granted"
            // German and Dutch, French, Spanish and Italian, Portuguese.
            | "ja" | "oui" | "si" | "sí" | "sim"
        ),
        Value::Array(items) => items.iter().any(is_affirmative),
        _ => false,
    }
}

/// A JSON value as a trimmed, non-empty string (numbers are rendered; objects are not text).
pub fn value_as_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// Whether a text looks like an email address (the mapping stage validates it again).
pub fn looks_like_email(text: &str) -> bool {
    crate::email::normalise_email(text).is_some()
}

/// The first string among `values` that looks like an email address, looking inside arrays
/// and objects (a checkbox list, a compound field) in order. For senders whose fields are
/// named by the site owner or by id, so no key says which one is the email.
pub fn first_email_like<'a>(values: impl IntoIterator<Item = &'a Value>) -> Option<String> {
    values.into_iter().find_map(|value| {
        // Depth-first in document order; iterative, so nesting cannot overflow the stack.
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) if looks_like_email(s) => return Some(s.trim().to_string()),
                Value::Array(items) => stack.extend(items.iter().rev()),
                Value::Object(map) => stack.extend(map.values().rev()),
                _ => {}
            }
        }
        None
    })
}

/// The text at a dotted path of plain object keys (`customer.email`), for sender defaults.
pub fn text_at(payload: &Value, dotted: &str) -> Option<String> {
    let mut current = payload;
    for key in dotted.split('.') {
        current = current.get(key)?;
    }
    value_as_text(current)
}

/// The first of several dotted paths that holds text.
pub fn first_text(payload: &Value, candidates: &[&str]) -> Option<String> {
    candidates.iter().find_map(|path| text_at(payload, path))
}

/// Products from an array of items (line items, invoice lines), each item's SKU and title taken
/// from the first of the given dotted paths that holds text.
pub fn products_at(
    items: Option<&Value>,
    sku_paths: &[&str],
    title_paths: &[&str],
) -> Vec<Product> {
    items
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| Product {
                    sku: first_text(item, sku_paths),
                    title: first_text(item, title_paths),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn affirmative_values() {
        for yes in [
            json!(true),
            json!("on"),
            json!("Yes"),
            json!(1),
            json!(["", "on"]),
        ] {
            assert!(is_affirmative(&yes), "{yes}");
        }
        for no in [
            json!(false),
            json!("off"),
            json!(""),
            json!(0),
            json!(null),
            json!("no"),
        ] {
            assert!(!is_affirmative(&no), "{no}");
        }
    }

    #[test]
    fn first_email_like_looks_inside_in_order() {
        let values = [
            json!("not an email"),
            json!({"a": ["x", " Grace@Example.com "], "b": "ada@example.com"}),
            json!("ada@example.com"),
        ];
        assert_eq!(
            first_email_like(&values).as_deref(),
            Some("Grace@Example.com")
        );
        assert_eq!(first_email_like(&[json!("a@b"), json!(1)]), None);
        assert!(looks_like_email("x@y.co") && !looks_like_email("x y@z.co"));
    }

    #[test]
    fn fill_from_keeps_names_together() {
        let strong = ContactFields {
            email: Some("a@b.co".into()),
            full_name: Some("Ada Lovelace".into()),
            ..ContactFields::default()
        };
        let weak = ContactFields {
            email: Some("other@b.co".into()),
            first_name: Some("Other".into()),
            phone: Some("555".into()),
            ..ContactFields::default()
        };
        let merged = strong.fill_from(weak.clone());
        assert_eq!(merged.email.as_deref(), Some("a@b.co"));
        assert_eq!(merged.first_name, None);
        assert_eq!(merged.full_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(merged.phone.as_deref(), Some("555"));
        let merged = ContactFields::default().fill_from(weak);
        assert_eq!(merged.first_name.as_deref(), Some("Other"));
    }

    #[test]
    fn text_at_walks_objects_and_renders_numbers() {
        let payload = json!({"a": {"b": " x "}, "n": 15550000000u64, "o": {}});
        assert_eq!(text_at(&payload, "a.b").as_deref(), Some("x"));
        assert_eq!(text_at(&payload, "n").as_deref(), Some("15550000000"));
        assert_eq!(text_at(&payload, "o"), None);
        assert_eq!(
            first_text(&payload, &["missing", "a.b"]).as_deref(),
            Some("x")
        );
    }
}
