//! Body decoders shared by senders: JSON objects, URL-encoded forms and multipart forms,
//! each turned into one JSON value so that route selections use one path language.

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{Map, Value};

use super::ParseError;
use crate::inbound::InboundRequest;

pub const MEDIA_JSON: &str = "application/json";
pub const MEDIA_FORM: &str = "application/x-www-form-urlencoded";
pub const MEDIA_MULTIPART: &str = "multipart/form-data";

/// Most fields a form may carry; more is hostile input, not a sign-up.
const MAX_FORM_FIELDS: usize = 1_000;
/// Nesting deeper than this is refused rather than walked.
const MAX_JSON_DEPTH: usize = 64;

/// Parses a JSON body into a value, refusing absurd nesting.
pub fn parse_json(body: &[u8]) -> Result<Value, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if depth(&value) > MAX_JSON_DEPTH {
        return Err(ParseError::TooDeep(MAX_JSON_DEPTH));
    }
    Ok(value)
}

/// Parses a JSON body that must be an object.
pub fn parse_json_object(body: &[u8]) -> Result<Value, ParseError> {
    let value = parse_json(body)?;
    if !value.is_object() {
        return Err(ParseError::NotAnObject);
    }
    Ok(value)
}

fn depth(value: &Value) -> usize {
    // Iterative, so hostile nesting cannot overflow the stack here (serde_json limits to 128).
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space; repeated keys become arrays).
pub fn parse_urlencoded(body: &[u8]) -> Result<Value, ParseError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ParseError::NotUtf8);
    }
    let mut fields = FormFields::default();
    for (key, value) in form_urlencoded::parse(body) {
        fields.push(key.into_owned(), value.into_owned())?;
    }
    Ok(fields.into_value())
}

/// Decodes `multipart/form-data`; file parts are skipped (a contact is text).
pub fn parse_multipart(req: &InboundRequest) -> Result<Value, ParseError> {
    let boundary = req
        .content_type_param("boundary")
        .ok_or(ParseError::MissingBoundary)?;
    let body: Bytes = req.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = FormFields::default();
    loop {
        // The whole body is already in memory, so every future here is ready at once:
        // polling it once keeps this parser synchronous (usable by preview and fuzzing).
        let next = multipart
            .next_field()
            .now_or_never()
            .ok_or(ParseError::Multipart("incomplete body".into()))?
            .map_err(|e| ParseError::Multipart(e.to_string()))?;
        let Some(field) = next else { break };
        let name = field.name().unwrap_or_default().to_string();
        let is_file = field.file_name().is_some();
        let data = field
            .bytes()
            .now_or_never()
            .ok_or(ParseError::Multipart("incomplete part".into()))?
            .map_err(|e| ParseError::Multipart(e.to_string()))?;
        if is_file || name.is_empty() {
            continue;
        }
        let text = String::from_utf8(data.to_vec()).map_err(|_| ParseError::NotUtf8)?;
        fields.push(name, text)?;
    }
    Ok(fields.into_value())
}

/// Form fields in arrival order, collapsing repeated keys into arrays.
#[derive(Default)]
struct FormFields {
    map: Map<String, Value>,
    count: usize,
}

impl FormFields {
    fn push(&mut self, key: String, value: String) -> Result<(), ParseError> {
        self.count += 1;
        if self.count > MAX_FORM_FIELDS {
            return Err(ParseError::TooManyFields(MAX_FORM_FIELDS));
        }
        match self.map.get_mut(&key) {
            None => {
                self.map.insert(key, Value::String(value));
            }
            Some(Value::Array(items)) => items.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
        }
        Ok(())
    }

    fn into_value(self) -> Value {
        Value::Object(self.map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use serde_json::json;

    #[test]
    fn urlencoded_repeats_become_arrays_and_plus_is_space() {
        let value = parse_urlencoded(b"email=a%40b.co&name=Ada+Lovelace&i=x&i=y&i=z").unwrap();
        assert_eq!(
            value,
            json!({"email": "a@b.co", "name": "Ada Lovelace", "i": ["x", "y", "z"]})
        );
    }

    #[test]
    fn urlencoded_refuses_invalid_utf8() {
        assert_eq!(parse_urlencoded(b"a=\xff"), Err(ParseError::NotUtf8));
    }

    #[test]
    fn json_must_be_an_object_and_shallow() {
        assert_eq!(parse_json_object(b"[1]"), Err(ParseError::NotAnObject));
        assert!(matches!(parse_json_object(b"{"), Err(ParseError::Json(_))));
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(
            parse_json(deep.as_bytes()),
            Err(ParseError::TooDeep(_)) | Err(ParseError::Json(_))
        ));
        let nested = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(
            parse_json(nested.as_bytes()),
            Err(ParseError::TooDeep(MAX_JSON_DEPTH))
        );
    }

    #[test]
    fn multipart_text_parts_and_skipped_files() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nada@example.com\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.pdf\"\r\n\
                    Content-Type: application/pdf\r\n\r\n%PDF\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\na\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nb\r\n--XyZ--\r\n";
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        let req = InboundRequest::post("/webhooks/form", headers, body);
        assert_eq!(
            parse_multipart(&req).unwrap(),
            json!({"email": "ada@example.com", "tags": ["a", "b"]})
        );
    }

    #[test]
    fn multipart_without_boundary_or_truncated_is_an_error() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "multipart/form-data".parse().unwrap());
        let req = InboundRequest::post("/", headers.clone(), "x");
        assert_eq!(parse_multipart(&req), Err(ParseError::MissingBoundary));
        headers.insert(
            "content-type",
            "multipart/form-data; boundary=B".parse().unwrap(),
        );
        let req = InboundRequest::post(
            "/",
            headers,
            "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated",
        );
        assert!(matches!(
            parse_multipart(&req),
            Err(ParseError::Multipart(_))
        ));
    }
}
