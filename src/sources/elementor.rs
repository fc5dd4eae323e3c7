//! `elementor`: the Elementor Pro form "Webhook" action, unsigned, so the route token
//! (`?token=`) authenticates it. Elementor posts `application/x-www-form-urlencoded`
//! (`wp_remote_post`, `http_build_query`) synchronously inside the visitor's submission and
//! shows "Webhook Error" for any status but 200.
//!
//! - Simple mode (the default): keys are the field labels (`Email`, `First Name`; `No Label
//!   {id}` when empty) plus the enabled meta titles (`Remote IP`, `Page URL`...) and `form_id`,
//!   `form_name`. Mapping paths quote labels: `$['Company Name']`.
//! - Advanced mode ("Advanced Data"): `form[id]`, `form[name]`,
//!   `fields[<id>][id|type|title|value|raw_value|required]`, `meta[<key>][title|value]`, nested
//!   back into objects: `$.fields.company.value`, `$.form.name`, `$.meta.remote_ip.value`.

use serde_json::{Map, Value};

use super::util::body::{MEDIA_FORM, nest_brackets, parse_urlencoded};
use super::util::fields::recognise_fields_any_email;
use super::{Auth, Media, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use crate::submission::{ContactFields, Parsed, Submission, is_affirmative, text_at};

/// The simple-mode key of the "Remote IP" meta field.
pub(super) const REMOTE_IP_LABEL: &str = "Remote IP";

/// The `elementor` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("elementor", Auth::RouteToken, Parse::Whole(parse))
        .media(Media::only(&[MEDIA_FORM]));

pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let flat = parse_urlencoded(&req.body)?;
    let advanced = flat.as_object().is_some_and(|fields| {
        fields
            .keys()
            .any(|k| k.starts_with("fields[") || k.starts_with("form["))
    });
    let (payload, contact, consent) = if advanced {
        // Only advanced keys are nested: simple-mode labels are free text.
        let payload = nest_brackets(flat);
        let (contact, consent) = advanced_contact(&payload);
        (payload, contact, consent)
    } else {
        let (mut contact, consent) = recognise_fields_any_email(&flat);
        contact.ip4 = text_at(&flat, REMOTE_IP_LABEL);
        (flat, contact, consent)
    };
    Ok(Parsed::Submission(Box::new(Submission {
        topic: None,
        // Elementor sends no id; it does not retry either.
        delivery_id: None,
        contact,
        products: Vec::new(),
        consent,
        payload,
        from_browser_form: false,
        lookup: None,
    })))
}

/// Advanced mode: the field with id `email` or of type `email`, the first `tel` field, the
/// first `acceptance` field; names and company recognised by title, then by id.
fn advanced_contact(payload: &Value) -> (ContactFields, Option<bool>) {
    let empty = Map::new();
    let fields = payload
        .get("fields")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let of_type = |kind: &str| {
        fields
            .values()
            .filter(|f| f.get("type").and_then(Value::as_str) == Some(kind))
            .find_map(|f| text_at(f, "value"))
    };
    let by_type = ContactFields {
        email: text_at(payload, "fields.email.value").or_else(|| of_type("email")),
        phone: of_type("tel"),
        ip4: text_at(payload, "meta.remote_ip.value"),
        ..ContactFields::default()
    };
    let values_by = |key: &str| -> Value {
        Value::Object(
            fields
                .iter()
                .filter_map(|(id, f)| {
                    let name = text_at(f, key).unwrap_or_else(|| id.clone());
                    Some((name, f.get("value")?.clone()))
                })
                .collect(),
        )
    };
    let (by_title, title_consent) = recognise_fields_any_email(&values_by("title"));
    let (by_id, id_consent) = recognise_fields_any_email(&values_by("id"));
    let acceptance = fields
        .values()
        .find(|f| f.get("type").and_then(Value::as_str) == Some("acceptance"))
        .map(|f| {
            f.get("raw_value").is_some_and(is_affirmative)
                || f.get("value").is_some_and(is_affirmative)
        });
    let contact = by_type.fill_from(by_title).fill_from(by_id);
    (contact, acceptance.or(title_consent).or(id_consent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::{assert_route_token, request, submission};

    const FORM: &str = "application/x-www-form-urlencoded; charset=UTF-8";
    const SIMPLE: &str = "Name=Ada+Lovelace&Email=Ada%40Example.com&Phone=%2B44+20+7946+0000&Company=Analytical+Engines\
        &Newsletter=on&Date=January+1%2C+2026&Remote+IP=192.0.2.90&Powered+by=Elementor&form_id=7f3a2b1&form_name=Contact";
    const ADVANCED: &str = "form%5Bid%5D=7f3a2b1&form%5Bname%5D=Contact\
        &fields%5Bname%5D%5Bid%5D=name&fields%5Bname%5D%5Btype%5D=text&fields%5Bname%5D%5Btitle%5D=Name\
        &fields%5Bname%5D%5Bvalue%5D=Grace+Hopper&fields%5Bname%5D%5Braw_value%5D=Grace+Hopper&fields%5Bname%5D%5Brequired%5D=0\
        &fields%5Bemail%5D%5Bid%5D=email&fields%5Bemail%5D%5Btype%5D=email&fields%5Bemail%5D%5Btitle%5D=Email\
        &fields%5Bemail%5D%5Bvalue%5D=grace%40example.com&fields%5Bemail%5D%5Braw_value%5D=grace%40example.com&fields%5Bemail%5D%5Brequired%5D=1\
        &fields%5Bfield_3%5D%5Bid%5D=field_3&fields%5Bfield_3%5D%5Btype%5D=tel&fields%5Bfield_3%5D%5Btitle%5D=Mobile\
        &fields%5Bfield_3%5D%5Bvalue%5D=%2B1+212+555+0101&fields%5Bfield_3%5D%5Braw_value%5D=%2B1+212+555+0101\
        &fields%5Bcompany%5D%5Bid%5D=company&fields%5Bcompany%5D%5Btype%5D=text&fields%5Bcompany%5D%5Btitle%5D=Organisation\
        &fields%5Bcompany%5D%5Bvalue%5D=US+Navy&fields%5Bcompany%5D%5Braw_value%5D=US+Navy\
        &fields%5Bterms%5D%5Bid%5D=terms&fields%5Bterms%5D%5Btype%5D=acceptance&fields%5Bterms%5D%5Btitle%5D=\
        &fields%5Bterms%5D%5Bvalue%5D=on&fields%5Bterms%5D%5Braw_value%5D=on\
        &fields%5Btopics%5D%5Bid%5D=topics&fields%5Btopics%5D%5Btype%5D=checkbox&fields%5Btopics%5D%5Btitle%5D=Topics\
        &fields%5Btopics%5D%5Bvalue%5D=A%2C+B&fields%5Btopics%5D%5Braw_value%5D%5B0%5D=A&fields%5Btopics%5D%5Braw_value%5D%5B1%5D=B\
        &meta%5Bremote_ip%5D%5Btitle%5D=Remote+IP&meta%5Bremote_ip%5D%5Bvalue%5D=192.0.2.91";

    #[test]
    fn route_token_authenticates() {
        assert_route_token(&SPEC, &[], "");
        assert!(SPEC.accepts_media_type(Some(MEDIA_FORM)));
        assert!(!SPEC.accepts_media_type(Some("application/json")));
    }

    #[test]
    fn simple_mode_by_label() {
        let req = request("/webhooks/elementor", &[("content-type", FORM)], SIMPLE);
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(s.contact.phone.as_deref(), Some("+44 20 7946 0000"));
        assert_eq!(
            s.contact.organization.as_deref(),
            Some("Analytical Engines")
        );
        assert_eq!(s.contact.ip4.as_deref(), Some("192.0.2.90"));
        assert_eq!(s.consent, Some(true));
        assert_eq!(s.payload["form_name"], "Contact");
        assert!(!s.from_browser_form);
    }

    #[test]
    fn advanced_mode_by_id_and_type() {
        let req = request("/webhooks/elementor", &[("content-type", FORM)], ADVANCED);
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("grace@example.com"));
        assert_eq!(s.contact.full_name.as_deref(), Some("Grace Hopper"));
        assert_eq!(s.contact.phone.as_deref(), Some("+1 212 555 0101"));
        assert_eq!(s.contact.organization.as_deref(), Some("US Navy"));
        assert_eq!(s.contact.ip4.as_deref(), Some("192.0.2.91"));
        assert_eq!(s.consent, Some(true));
        assert_eq!(s.payload["form"]["name"], "Contact");
        assert_eq!(
            s.payload["fields"]["topics"]["raw_value"],
            serde_json::json!(["A", "B"])
        );
    }

    #[test]
    fn advanced_email_by_type_when_id_differs() {
        let body = "form%5Bid%5D=x&fields%5Bf1%5D%5Btype%5D=email&fields%5Bf1%5D%5Bvalue%5D=k%40example.com";
        let req = request("/webhooks/elementor", &[("content-type", FORM)], body);
        let s = submission(parse(&req));
        assert_eq!(s.contact.email.as_deref(), Some("k@example.com"));
        assert_eq!(s.consent, None);
    }

    #[test]
    fn without_email_is_a_submission_without_email() {
        let req = request(
            "/webhooks/elementor",
            &[("content-type", FORM)],
            "Name=No+Email&Message=Call+me&form_id=1&form_name=Callback",
        );
        let s = submission(parse(&req));
        assert_eq!(s.contact.email, None);
        assert_eq!(s.contact.full_name.as_deref(), Some("No Email"));
    }

    #[test]
    fn malformed_body_is_a_parse_error() {
        let mut req = request("/webhooks/elementor", &[("content-type", FORM)], "");
        req.body = bytes::Bytes::from_static(b"Email=\xc3\x28");
        assert_eq!(parse(&req), Err(ParseError::NotUtf8));
    }
}
