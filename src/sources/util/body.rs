//! Body decoders shared by senders: JSON objects, URL-encoded forms and multipart forms,
//! each turned into one JSON value so that route selections use one path language.

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{Map, Value};

use super::projection::{self, ProjectedParseError, Projection};
use crate::inbound::InboundRequest;
use crate::sources::ParseError;

pub const MEDIA_JSON: &str = "application/json";
pub const MEDIA_FORM: &str = "application/x-www-form-urlencoded";
pub const MEDIA_MULTIPART: &str = "multipart/form-data";

/// Most fields a form may carry; more is hostile input, not a sign-up.
const MAX_FORM_FIELDS: usize = 1_000;
/// Nesting deeper than this is refused rather than walked.
const MAX_JSON_DEPTH: usize = 64;

/// Parses a JSON body into a value, refusing absurd nesting.
pub fn parse_json(body: &[u8]) -> Result<Value, ParseError> {
    parse_json_reading(body, &Projection::All)
}

/// Parses a JSON body that must be an object.
pub fn parse_json_object(body: &[u8]) -> Result<Value, ParseError> {
    parse_json_object_reading(body, &Projection::All)
}

/// Parses a JSON object body keeping only the parts `reads` selects (the rest is checked, not
/// kept).
pub fn parse_json_object_reading(body: &[u8], reads: &Projection) -> Result<Value, ParseError> {
    let value = parse_json_reading(body, reads)?;
    if !value.is_object() {
        return Err(ParseError::NotAnObject);
    }
    Ok(value)
}

fn parse_json_reading(body: &[u8], reads: &Projection) -> Result<Value, ParseError> {
    // Depth is checked while parsing, in skipped parts too (serde_json alone allows 128).
    projection::parse(body, reads, MAX_JSON_DEPTH).map_err(|e| match e {
        ProjectedParseError::TooDeep => ParseError::TooDeep(MAX_JSON_DEPTH),
        ProjectedParseError::Json(e) => ParseError::Json(e.to_string()),
    })
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

/// Whether a media type is a URL-encoded form or JSON: what WordPress plugins (Gravity Forms,
/// WPForms) and Gumroad post, depending on their configuration.
pub fn is_form_or_json(media_type: Option<&str>) -> bool {
    matches!(media_type, Some(MEDIA_FORM) | Some(MEDIA_JSON))
}

/// A server-built URL-encoded form (bracketed keys nested, see [`nest_brackets`]) or a JSON
/// object, by the request's media type, so both encodings of one sender share mapping paths.
pub fn parse_form_or_json(req: &InboundRequest) -> Result<Value, ParseError> {
    match req.media_type().as_deref() {
        Some(MEDIA_FORM) => Ok(nest_brackets(parse_urlencoded(&req.body)?)),
        _ => parse_json_object(&req.body),
    }
}

/// Deepest bracket nesting a form key may spell; deeper keys stay flat.
const MAX_BRACKET_DEPTH: usize = 16;

/// Undoes PHP's `http_build_query` and Rails' `to_params` on a decoded form: `card[visual]`
/// becomes `{"card": {"visual": …}}`, `tags[]` an array, and an object keyed `0`…`n-1` an
/// array (`raw_value[0]`, `raw_value[1]`). A key that is not well-formed brackets, is too deep
/// or clashes with another key (`a=1&a[b]=2`) stays flat, as sent.
pub fn nest_brackets(flat: Value) -> Value {
    let Value::Object(fields) = flat else {
        return flat;
    };
    // Plain keys first, so that `a=1` wins over `a[b]=2` whatever the order.
    let (bracketed, plain): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .partition(|(key, _)| bracket_path(key).is_some());
    let mut nested: Map<String, Value> = plain.into_iter().collect();
    let mut unnested = Vec::new();
    for (key, value) in bracketed {
        let path = bracket_path(&key).unwrap_or_default();
        if let Err(value) = insert_at(&mut nested, &path, value) {
            unnested.push((key, value));
        }
    }
    for (key, value) in unnested {
        // Such a key has brackets, so no nested root or plain key has its name.
        nested.entry(key).or_insert(value);
    }
    // The top level stays an object even when its keys are 0…n-1.
    Value::Object(
        nested
            .into_iter()
            .map(|(k, v)| (k, indexed_objects_to_arrays(v)))
            .collect(),
    )
}

/// `a[b][]` → `["a", "b", ""]`; `None` for a plain key or malformed brackets.
fn bracket_path(key: &str) -> Option<Vec<&str>> {
    let (root, mut rest) = key.split_once('[')?;
    if root.is_empty() || root.contains(']') {
        return None;
    }
    let mut path = vec![root];
    loop {
        let (segment, after) = rest.split_once(']')?;
        if segment.contains('[') {
            return None;
        }
        path.push(segment);
        if after.is_empty() {
            break;
        }
        rest = after.strip_prefix('[')?;
    }
    // Only a trailing `[]` (append) is meaningful; an empty segment inside stays flat.
    let inner_empty = path.iter().rev().skip(1).any(|s| s.is_empty());
    (!inner_empty && path.len() <= MAX_BRACKET_DEPTH).then_some(path)
}

/// Inserts `value` at `path`; gives it back when the path runs into a value already there.
fn insert_at(map: &mut Map<String, Value>, path: &[&str], value: Value) -> Result<(), Value> {
    let (value, path) = match path.split_last() {
        // `key[]`: repeated keys already became an array; one value becomes a one-item array.
        Some((&"", parent)) => match value {
            Value::Array(_) => (value, parent),
            other => (Value::Array(vec![other]), parent),
        },
        _ => (value, path),
    };
    let Some((last, parents)) = path.split_last() else {
        return Err(value);
    };
    let mut current = map;
    for key in parents {
        let entry = current
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(next) = entry else {
            return Err(value);
        };
        current = next;
    }
    if current.contains_key(*last) {
        return Err(value);
    }
    current.insert(last.to_string(), value);
    Ok(())
}

fn indexed_objects_to_arrays(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let n = map.len();
            let indexed = n > 0 && (0..n).all(|i| map.contains_key(&i.to_string()));
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, indexed_objects_to_arrays(v))))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, indexed_objects_to_arrays(v)))
                        .collect(),
                )
            }
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(indexed_objects_to_arrays).collect())
        }
        other => other,
    }
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
    fn brackets_nest_like_php_and_rails() {
        let flat = parse_urlencoded(
            b"form%5Bid%5D=f1&fields%5Bemail%5D%5Bvalue%5D=a%40b.co\
              &fields%5Bcb%5D%5Braw_value%5D%5B0%5D=x&fields%5Bcb%5D%5Braw_value%5D%5B1%5D=y\
              &tags%5B%5D=a&tags%5B%5D=b&one%5B%5D=z&plain=p&a=1&a%5Bb%5D=2&odd%5Bx=3&%5Bnoroot%5D=4",
        )
        .unwrap();
        assert_eq!(
            nest_brackets(flat),
            json!({
                "form": {"id": "f1"},
                "fields": {"email": {"value": "a@b.co"}, "cb": {"raw_value": ["x", "y"]}},
                "tags": ["a", "b"],
                "one": ["z"],
                "plain": "p",
                "a": "1",
                "a[b]": "2",
                "odd[x": "3",
                "[noroot]": "4"
            })
        );
        let deep = format!("k{}=v", "[x]".repeat(MAX_BRACKET_DEPTH));
        let flat = parse_urlencoded(deep.as_bytes()).unwrap();
        assert_eq!(nest_brackets(flat.clone()), flat);
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
