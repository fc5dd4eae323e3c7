//! Entry points for the `cargo fuzz` targets in `fuzz/` and for `tests/fuzz_regressions.rs`,
//! which replays every input the fuzzer ever crashed on. Not part of the API: each function
//! decodes raw bytes into the inputs one stage gets from the internet (or from ActiveCampaign,
//! or from the mapping file), runs that stage, and panics only when an invariant the rest of
//! the function relies on is broken. A panic is the bug the fuzzer reports.
//!
//! Inputs with several parts separate them with the byte `0xFF`, which never occurs in UTF-8
//! text; the last part (a body) is the rest of the input and may contain it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use secrecy::SecretString;
use serde_json::Value;

use crate::activecampaign::client::parse_retry_after;
use crate::activecampaign::importer::{classify_import, classify_info};
use crate::activecampaign::response::{list_statuses, parse_v1, subscriber_id};
use crate::inbound::InboundRequest;
use crate::mapping::template::{Context, Expression, MAX_EXPANSIONS};
use crate::mapping::{MAX_TAGS, MAX_TEXT_CHARS, Mapping, MappingOutcome, map_submission};
use crate::secret::AppSecret;
use crate::sources::Auth;
use crate::sources::batch::{MAX_ROWS, MEDIA_CSV};
use crate::sources::spec::Signing;
use crate::sources::util::body::{
    MEDIA_FORM, nest_brackets, parse_form_or_json, parse_json, parse_json_object,
    parse_json_object_reading, parse_multipart, parse_urlencoded,
};
use crate::sources::util::projection::Projection;
use crate::sources::util::signature::{TagEncoding, parse_timestamped_header};
use crate::sources::{AuthError, AuthSettings, SENDERS, paddle, standardwebhooks};
use crate::submission::{ContactFields, Parsed, Product, Submission};

/// Separates the parts of a structured fuzz input.
pub const PART_SEPARATOR: u8 = 0xFF;
/// The deepest JSON a parsed body may hold (the body parser's own limit).
const MAX_JSON_DEPTH: usize = 64;
/// When the `events/` samples were signed: requests are "received" then, so seeds verify.
const EVENTS_SIGNED_AT_SECS: u64 = 1_767_225_600;
/// The host the sender target's requests are addressed to (HubSpot signs it).
const FUNCTION_HOST: &str = "abcdefghij.lambda-url.us-east-1.on.aws";
/// The local secret the `events/` samples are signed with.
const LOCAL_SECRET_JSON: &str = include_str!("../local/secret.json");

/// The first `count - 1` parts and the rest of the input as the last part.
fn parts(data: &[u8], count: usize) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = data.splitn(count, |&b| b == PART_SEPARATOR).collect();
    parts.resize(count, &[]);
    parts
}

fn received_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EVENTS_SIGNED_AT_SECS)
}

/// `name: value` lines; lines that are not a valid header are dropped (a client could not
/// have sent them, and `http` refuses to build them).
fn header_map(block: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let value = value.strip_suffix(b"\r").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}

fn request(path: &str, headers: HeaderMap, body: &[u8]) -> InboundRequest {
    let mut req = InboundRequest::post(path, headers, Bytes::copy_from_slice(body));
    req.received_at = received_at();
    req
}

fn json_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        _ => 1,
    }
}

/// JSON bodies: any bytes.
pub fn json_body(data: &[u8]) {
    let ours = parse_json(data);
    if let Ok(value) = &ours {
        assert!(json_depth(value) <= MAX_JSON_DEPTH, "accepted too deep");
    }
    // The same document serde_json builds, whenever it is shallow enough. (With serde_json's
    // `raw_value` feature, which test builds get through a dev-dependency, serde_json reads a
    // member named RAW_VALUE_TOKEN as a raw document; ours keeps it as an ordinary member.)
    let raw_value_token = b"$serde_json::private::RawValue";
    let serde_reads_raw_values = data
        .windows(raw_value_token.len())
        .any(|w| w == raw_value_token);
    match serde_json::from_slice::<Value>(data) {
        _ if serde_reads_raw_values => {}
        Ok(value) if json_depth(&value) <= MAX_JSON_DEPTH => {
            assert_eq!(ours.as_ref().ok(), Some(&value), "parsed unlike serde_json")
        }
        _ => assert!(
            ours.is_err(),
            "accepted what serde_json refuses or is too deep"
        ),
    }
    if let Ok(value) = parse_json_object(data) {
        assert!(value.is_object());
    }
    // A projected parse accepts exactly the same bodies, and answers its paths the same.
    static PROJECTED: std::sync::OnceLock<(Projection, Vec<serde_json_path::JsonPath>)> =
        std::sync::OnceLock::new();
    let (projection, paths) = PROJECTED.get_or_init(|| {
        let paths = PROJECTED_PATHS
            .iter()
            .map(|p| serde_json_path::JsonPath::parse(p));
        (
            Projection::of_paths(PROJECTED_PATHS.iter().copied()),
            paths.collect::<Result<_, _>>().expect("valid paths"),
        )
    });
    let projected = parse_json_object_reading(data, projection);
    let whole = parse_json_object(data);
    assert_eq!(
        projected.is_ok(),
        whole.is_ok(),
        "projection changed acceptance"
    );
    if let (Ok(projected), Ok(whole)) = (projected, whole) {
        for path in paths {
            assert_eq!(path.query(&projected).all(), path.query(&whole).all());
        }
    }
}

/// Paths of every shape a projection narrows down (names, `*`, indices) or keeps whole.
const PROJECTED_PATHS: &[&str] = &[
    "$.email",
    "$.a.b",
    "$.line_items[*].sku",
    "$.line_items[0].name",
    "$['customer']['first_name']",
    "$.m.*.x",
    "$.f[?@.k == 'v'].w",
    "$.d..e",
];

/// `application/x-www-form-urlencoded` bodies, flat and with PHP/Rails bracket nesting.
pub fn form_body(data: &[u8]) {
    if let Ok(flat) = parse_urlencoded(data) {
        let nested = nest_brackets(flat.clone());
        assert!(nested.is_object());
        // Nesting moves fields, it does not make nesting deeper than its own limit allows.
        assert!(
            json_depth(&nested) <= 2 + 16,
            "bracket nesting went too deep"
        );
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(MEDIA_FORM),
    );
    let _ = parse_form_or_json(&request("/webhooks/form", headers, data));
}

/// Multipart bodies: `<Content-Type value> 0xFF <body>`.
pub fn multipart_body(data: &[u8]) {
    let [content_type, body] = parts(data, 2)[..] else {
        unreachable!("parts() gives exactly the count asked for")
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(content_type) {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    let _ = parse_multipart(&request("/webhooks/form", headers, body));
}

/// Batch bodies: `<Content-Type value> 0xFF <body>` through the batch sender's parser.
pub fn batch_body(data: &[u8]) {
    let [content_type, body] = parts(data, 2)[..] else {
        unreachable!("parts() gives exactly the count asked for")
    };
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_bytes(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static(MEDIA_CSV));
    headers.insert(http::header::CONTENT_TYPE, value);
    match crate::sources::batch::SPEC.parse(&request("/webhooks/batch", headers, body)) {
        Ok(Parsed::Batch(rows)) => {
            assert!(rows.len() <= MAX_ROWS);
            assert!(
                rows.windows(2).all(|w| w[0].row < w[1].row),
                "row numbers must increase"
            );
        }
        Ok(other) => panic!("the batch sender parsed a non-batch: {other:?}"),
        Err(_) => {}
    }
}

/// Secrets the signature target verifies with (the second one tests rotation). Each is
/// `whsec_` + base64, so it is a key for every scheme (Standard Webhooks decodes it).
const SIGNING_SECRETS: &[&str] = &["whsec_ZnV6ei1zZWNyZXQtMQ==", "whsec_ZnV6ei1zZWNyZXQtMg=="];

fn secrets(values: &[&str]) -> Vec<SecretString> {
    values.iter().map(|v| SecretString::from(*v)).collect()
}

/// Signature headers: `<signature> 0xFF <timestamp> 0xFF <id> 0xFF <body>`, the first byte
/// also choosing the clock offset and secret of the signed round trip.
///
/// 1. The header parsers on arbitrary text, and every signed sender's verification with the
///    fuzzed parts in the headers it reads: no panic.
/// 2. A request signed by each sender's own scheme (`Auth::sign`) over the fuzzed body, id
///    and clock offset verifies exactly when the offset is inside the replay window.
pub fn signature_headers(data: &[u8]) {
    let selector = data.first().copied().unwrap_or(0);
    let [signature, timestamp, id, body] = parts(data.get(1..).unwrap_or_default(), 4)[..] else {
        unreachable!("parts() gives exactly the count asked for")
    };
    let signature_text = String::from_utf8_lossy(signature);
    let _ = parse_timestamped_header(&signature_text);
    let _ = paddle::parse_signature_header(&signature_text);
    let _ = standardwebhooks::signing_key(&SecretString::from(signature_text.to_string()));
    let _ = TagEncoding::Base64.decode(&signature_text);
    let _ = TagEncoding::Hex.decode(&signature_text);

    let route_secrets = secrets(SIGNING_SECRETS);
    let settings = AuthSettings::default();
    let values = [signature, timestamp, id];
    for sender in SENDERS {
        // Route tokens are in the query string, covered by the sender target.
        let names = sender.auth.headers();
        if names.is_empty() {
            continue;
        }
        let mut lines = Vec::new();
        for (i, name) in names.iter().enumerate() {
            // The selector's bits leave headers out, so each path of a scheme that reads
            // several headers (HubSpot's v3 and legacy) is reached.
            if names.len() > 1 && selector & (1 << i) != 0 {
                continue;
            }
            lines.extend_from_slice(name.as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(values[i % values.len()]);
            lines.push(b'\n');
        }
        lines.extend_from_slice(b"host: ");
        lines.extend_from_slice(FUNCTION_HOST.as_bytes());
        let req = request("/webhooks/fuzz?token=x", header_map(&lines), body);
        let _ = sender.authenticate(&req, &route_secrets, &settings);
    }

    signed_round_trip(selector, id, body);
}

/// Signs `body` as each sender would, `offset` seconds away from the receiving clock, and
/// checks that verification accepts it inside the replay window and refuses it as stale
/// outside it (for schemes that sign a time), never for any other reason.
fn signed_round_trip(selector: u8, id: &[u8], body: &[u8]) {
    // -1280 s ..= +1270 s: both sides of the 300 s window.
    let offset = i64::from(selector as i8) * 10;
    let settings = AuthSettings::default();
    let within_window = offset.unsigned_abs() <= settings.replay_window.as_secs();
    // Only ids a client could send as a header (visible ASCII: a header with other bytes
    // reads as absent, see `InboundRequest::header`).
    let id = std::str::from_utf8(id)
        .ok()
        .filter(|id| {
            HeaderValue::from_str(id).is_ok_and(|v| v.to_str().is_ok())
                && !id.is_empty()
                && id.trim() == *id
        })
        .unwrap_or("msg_fuzz");
    let url = format!("https://{FUNCTION_HOST}/webhooks/fuzz");
    let signing = Signing {
        secret: SIGNING_SECRETS[usize::from(selector & 1)],
        body,
        timestamp: EVENTS_SIGNED_AT_SECS as i64 + offset,
        id,
        url: &url,
    };
    let route_secrets = secrets(SIGNING_SECRETS);
    for sender in SENDERS {
        // A signed body (Wix's JWT) is not a signature over arbitrary bytes.
        if matches!(sender.auth, Auth::SignedBody { .. }) {
            continue;
        }
        let signed = sender.auth.sign(&signing);
        if signed.query.is_some() {
            continue;
        }
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static(FUNCTION_HOST));
        for (name, value) in signed.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header names are valid");
            let value = HeaderValue::from_str(&value).expect("signatures are ASCII");
            map.insert(name, value);
        }
        let req = request("/webhooks/fuzz", map, body);
        let expected = if sender.auth.timed() && !within_window {
            Err(AuthError::StaleTimestamp)
        } else {
            Ok(())
        };
        assert_eq!(
            sender.authenticate(&req, &route_secrets, &settings),
            expected,
            "{sender} refused its own signature (offset {offset} s)"
        );
    }
}

/// A whole request through the network-free pipeline (route, handshake, verification,
/// parsing, mapping, bulk bodies): `<route name or /path> 0xFF <query> 0xFF <header lines>
/// 0xFF <body>`. Secrets are the local ones the `events/` samples are signed with.
pub fn sender_request(data: &[u8]) {
    static STATE: std::sync::OnceLock<(Mapping, AppSecret)> = std::sync::OnceLock::new();
    let (mapping, secret) = STATE.get_or_init(|| {
        (
            Mapping::bundled().expect("the bundled mapping is valid"),
            AppSecret::from_json(LOCAL_SECRET_JSON).expect("local/secret.json is valid"),
        )
    });
    let [route, query, header_block, body] = parts(data, 4)[..] else {
        unreachable!("parts() gives exactly the count asked for")
    };
    let route = String::from_utf8_lossy(route);
    let path = if route.starts_with('/') {
        // A raw path: route resolution's own checks (404 on tricks).
        route.into_owned()
    } else if mapping.route(&route).is_some() {
        format!("/webhooks/{route}")
    } else {
        // Any other name picks a route, so mutations of it still reach a sender.
        let names: Vec<&str> = mapping.routes().map(|r| r.name.as_str()).collect();
        let pick = route.bytes().map(usize::from).sum::<usize>() % names.len();
        format!("/webhooks/{}", names[pick])
    };
    let query = String::from_utf8_lossy(query);
    let full = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let req = request(&full, header_map(header_block), body);
    let report = crate::preview::preview(mapping, secret, &req);
    assert!(report.is_object());
}

/// A submission as a sender would hand it over, for a payload.
fn submission_of(payload: Value) -> Submission {
    let (contact, consent) = crate::sources::util::fields::recognise_fields(&payload);
    Submission {
        topic: Some("orders/paid".into()),
        delivery_id: None,
        contact: ContactFields {
            email: contact.email.clone().or(Some("ada@example.com".into())),
            ..contact
        },
        products: vec![Product {
            sku: Some("SKU-1".into()),
            title: Some("Engine".into()),
        }],
        consent,
        payload,
        from_browser_form: false,
        lookup: None,
    }
}

/// What every contact handed to ActiveCampaign must satisfy, whatever the input.
fn check_outcome(outcome: &MappingOutcome) {
    if let MappingOutcome::Contact(contact) = outcome {
        assert!(
            contact.email.contains('@'),
            "email without @: {:?}",
            contact.email
        );
        assert!(
            contact.tags.len() <= MAX_TAGS,
            "{} tags",
            contact.tags.len()
        );
        let texts = [
            &contact.first_name,
            &contact.last_name,
            &contact.phone,
            &contact.organization,
        ];
        // Cut to ActiveCampaign's column size, and no CR/LF or other control character
        // (they would reach a form field or a header).
        for text in texts.into_iter().flatten().chain(&contact.tags) {
            assert!(
                text.chars().count() <= MAX_TEXT_CHARS,
                "text over the limit"
            );
            assert!(
                !text.chars().any(char::is_control),
                "control character in {text:?}"
            );
        }
        assert!(
            !contact
                .email
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        );
    }
}

/// A mapping expression (JSONPath or template) against a payload, alone and inside a route:
/// `<expression> 0xFF <payload JSON>`.
pub fn mapping_template(data: &[u8]) {
    let [source, payload_bytes] = parts(data, 2)[..] else {
        unreachable!("parts() gives exactly the count asked for")
    };
    // Payloads reach mapping through the body parser, so within its depth limit.
    let payload = parse_json(payload_bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload_bytes).into_owned()));
    let submission = submission_of(payload);
    let source = String::from_utf8_lossy(source);
    let ctx = Context {
        route: "fuzz",
        sender: "form",
    };
    if let Ok(expression) = Expression::compile(&source) {
        let values = expression.expand(&submission, ctx);
        assert!(
            values.len() <= MAX_EXPANSIONS,
            "{} expansions",
            values.len()
        );
        let node = expression.first_node(&submission.payload);
        // Keeping only what the expression reads changes none of its answers.
        let projection = Projection::of_paths(expression.paths());
        if let Ok(projected) = parse_json_object_reading(payload_bytes, &projection) {
            let projected = submission_of(projected);
            assert_eq!(
                expression.expand(&projected, ctx),
                values,
                "projected expansion"
            );
            assert_eq!(
                expression.first_node(&projected.payload),
                node,
                "projected first node"
            );
        }
    }
    // The same expression in every place a route takes one.
    let quoted = serde_json::to_string(&*source).expect("strings serialise");
    let toml = format!(
        "[routes.fuzz]\nsender = \"form\"\ntags = [{quoted}, \"t:{{sku}}\"]\n\
         [routes.fuzz.contact]\nemail = {quoted}\nfirst_name = {quoted}\nconsent = {quoted}\n\
         [routes.fuzz.fields]\n\"1\" = {quoted}\n"
    );
    if let Ok(mapping) = Mapping::from_toml(&toml)
        && let Some(route) = mapping.route("fuzz")
    {
        check_outcome(&map_submission(&submission, route));
    }
    // And the payload through every bundled route.
    static BUNDLED: std::sync::OnceLock<Mapping> = std::sync::OnceLock::new();
    let bundled = BUNDLED.get_or_init(|| Mapping::bundled().expect("the bundled mapping is valid"));
    for route in bundled.routes() {
        check_outcome(&map_submission(&submission, route));
    }
}

/// The mapping file loader on arbitrary text; a mapping it accepts then maps a sample.
pub fn mapping_config(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mapping) = Mapping::from_toml(source) {
        let submission = submission_of(serde_json::json!({
            "email": "ada@example.com", "name": "Ada Lovelace", "source": "fuzz",
            "line_items": [{"sku": "A"}, {"sku": "B"}], "agree": "yes"
        }));
        for route in mapping.routes() {
            check_outcome(&map_submission(&submission, route));
        }
    }
}

/// HTTP statuses ActiveCampaign answers with, chosen by the first byte.
const AC_STATUSES: &[u16] = &[200, 201, 400, 401, 403, 404, 422, 429, 500, 502, 503, 504];

/// ActiveCampaign answers: `<status selector byte><Retry-After value> 0xFF <body>`, through
/// the v1 reader, `contact_view_email` list statuses, and the bulk importer's two readers.
pub fn ac_response(data: &[u8]) {
    let selector = data.first().copied().unwrap_or(0);
    let [retry_after, body] = parts(data.get(1..).unwrap_or_default(), 2)[..] else {
        unreachable!("parts() gives exactly the count asked for")
    };
    let status = StatusCode::from_u16(AC_STATUSES[usize::from(selector) % AC_STATUSES.len()])
        .expect("listed statuses are valid");
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(retry_after) {
        headers.insert(http::header::RETRY_AFTER, value);
    }
    let _ = parse_retry_after(&headers);
    if let crate::activecampaign::response::V1Answer::Success { body } = parse_v1(body) {
        let _ = subscriber_id(&body);
        let _ = list_statuses(&body);
    }
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let _ = list_statuses(&value);
    }
    let _ = classify_import(status, &headers, body);
    let _ = classify_info(status, &headers, body);
}

/// One fuzz target's entry point.
pub type EntryPoint = fn(&[u8]);

/// Every entry point by target name, for the regression replayer.
pub const TARGETS: &[(&str, EntryPoint)] = &[
    ("json_body", json_body),
    ("form_body", form_body),
    ("multipart_body", multipart_body),
    ("batch_body", batch_body),
    ("signature_headers", signature_headers),
    ("sender_request", sender_request),
    ("mapping_template", mapping_template),
    ("mapping_config", mapping_config),
    ("ac_response", ac_response),
];
