//! `hubspot`: a workflow's "Send a webhook" action, which posts the enrolled contact as the
//! legacy v1 contact JSON (`properties.<name>.value`). Requests are signed with the app's client
//! secret: `X-HubSpot-Signature-v3` (base64 HMAC-SHA256 of method + URI + body + timestamp, with
//! `X-HubSpot-Request-Timestamp` in ms) or the older `X-HubSpot-Signature` (v1: hex SHA-256 of
//! secret + body; v2: hex SHA-256 of secret + method + URI + body, no timestamp).
//!
//! App webhooks (`contact.creation`, ...) post a JSON array of events that carry only ids: the
//! contacts are looked up through HubSpot's API (`lookup::hubspot`), several in one batch read.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::util::body::parse_json;
use super::util::fields::recognise_fields;
use super::util::signature::{TagEncoding, check_replay_window, constant_time_eq, verify_hmac_any};
use super::{Auth, AuthError, AuthSettings, CustomAuth, Parse, ParseError, SenderSpec};
use crate::inbound::InboundRequest;
use std::collections::BTreeMap;

use crate::lookup::{Api, Lookup, NamedObject};
use crate::submission::{ContactFields, Parsed, Submission, first_text, is_affirmative, text_at};

pub(super) const SIGNATURE_V3_HEADER: &str = "x-hubspot-signature-v3";
pub(super) const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
pub(super) const SIGNATURE_HEADER: &str = "x-hubspot-signature";
pub(super) const SIGNATURE_VERSION_HEADER: &str = "x-hubspot-signature-version";

/// The `hubspot` sender.
pub(super) const SPEC: SenderSpec =
    SenderSpec::new("hubspot", Auth::Custom(AUTH), Parse::Whole(parse))
        .looks_up(crate::lookup::Api::HubSpot, false);

const AUTH: CustomAuth = CustomAuth {
    verify: authenticate,
    headers: &[
        SIGNATURE_V3_HEADER,
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
        SIGNATURE_VERSION_HEADER,
    ],
    timed: true,
    untimed_fallback: true,
    #[cfg(any(test, feature = "testing"))]
    sign,
};

/// v3: base64 HMAC of `POST` + URL + body + the timestamp in ms.
#[cfg(any(test, feature = "testing"))]
fn sign(signing: &super::spec::Signing<'_>) -> Vec<(&'static str, String)> {
    use base64::prelude::*;
    let ms = (signing.timestamp * 1000).to_string();
    let tag = super::util::signature::hmac_sha256(
        signing.secret.as_bytes(),
        &[b"POST", signing.url.as_bytes(), signing.body, ms.as_bytes()],
    );
    vec![
        (SIGNATURE_V3_HEADER, BASE64_STANDARD.encode(tag)),
        (TIMESTAMP_HEADER, ms),
    ]
}

/// v3 when HubSpot sent it (its timestamp makes replays expire); otherwise the legacy
/// `X-HubSpot-Signature` in the version `X-HubSpot-Signature-Version` names (v1 when absent).
pub(super) fn authenticate(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
) -> Result<(), AuthError> {
    if let Some(signature) = req.header(SIGNATURE_V3_HEADER) {
        return verify_v3(req, secrets, settings, signature);
    }
    // Without a timestamp a captured request verifies forever: the legacy schemes only
    // where the route allows them.
    let signature = req
        .header(SIGNATURE_HEADER)
        .ok_or(AuthError::MissingSignature("X-HubSpot-Signature-v3"))?;
    if settings.require_timestamped {
        return Err(AuthError::UntimedSignature("legacy X-HubSpot-Signature"));
    }
    let version = req
        .header(SIGNATURE_VERSION_HEADER)
        .map(|v| v.trim().to_ascii_lowercase());
    match version.as_deref() {
        None | Some("v1") => verify_legacy(req, secrets, signature, false),
        Some("v2") => verify_legacy(req, secrets, signature, true),
        Some(_) => Err(AuthError::MalformedSignature),
    }
}

fn verify_v3(
    req: &InboundRequest,
    secrets: &[SecretString],
    settings: &AuthSettings,
    signature: &str,
) -> Result<(), AuthError> {
    let timestamp = req
        .header(TIMESTAMP_HEADER)
        .ok_or(AuthError::MissingSignature("X-HubSpot-Request-Timestamp"))?
        .trim();
    let millis: i64 = timestamp
        .parse()
        .map_err(|_| AuthError::MalformedSignature)?;
    let method = req.method.as_str().as_bytes();
    let mut result = Err(AuthError::SignatureMismatch);
    for uri in signed_uris(req) {
        let attempt = verify_hmac_any(
            secrets,
            &[method, uri.as_bytes(), &req.body, timestamp.as_bytes()],
            &[signature],
            TagEncoding::Base64,
        );
        match attempt {
            Ok(()) => {
                result = Ok(());
                break;
            }
            // Malformed tag or no secret: the same answer for every URI.
            Err(AuthError::SignatureMismatch) => {}
            Err(other) => return Err(other),
        }
    }
    result?;
    check_replay_window(
        millis.div_euclid(1000),
        req.received_at,
        settings.replay_window,
    )
}

/// v1 = hex SHA-256(secret + body); v2 = hex SHA-256(secret + method + URI + body).
fn verify_legacy(
    req: &InboundRequest,
    secrets: &[SecretString],
    signature: &str,
    with_uri: bool,
) -> Result<(), AuthError> {
    if secrets.is_empty() {
        return Err(AuthError::NoSecretConfigured);
    }
    let tag = TagEncoding::Hex
        .decode(signature)
        .ok_or(AuthError::MalformedSignature)?;
    let uris = if with_uri {
        signed_uris(req)
    } else {
        vec![String::new()]
    };
    let method = if with_uri { req.method.as_str() } else { "" };
    let mut matched = false;
    for secret in secrets {
        for uri in &uris {
            let digest = Sha256::new()
                .chain_update(secret.expose_secret().as_bytes())
                .chain_update(method.as_bytes())
                .chain_update(uri.as_bytes())
                .chain_update(&req.body)
                .finalize();
            // No early exit, as in `verify_hmac_any`.
            matched |= constant_time_eq(digest.as_slice(), &tag);
        }
    }
    if matched {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// The URI HubSpot called: `https://{Host}{path}[?{raw query}]` (the scheme from
/// `X-Forwarded-Proto` when a proxy set it). HubSpot's v3 instructions also decode a few
/// percent-encoded characters before signing, so that form is tried too when it differs.
pub(super) fn signed_uris(req: &InboundRequest) -> Vec<String> {
    let scheme = req
        .header("x-forwarded-proto")
        .and_then(|p| p.split(',').next())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("https");
    let host = req.header("host").unwrap_or_default();
    // The URL as the sender called it: behind an API Gateway stage, the stage is in it.
    let path = req.called_path.as_deref().unwrap_or(&req.path);
    let mut uri = format!("{scheme}://{host}{path}");
    if !req.raw_query.is_empty() {
        uri.push('?');
        uri.push_str(&req.raw_query);
    }
    let decoded = decode_reserved(&uri);
    if decoded == uri {
        vec![uri]
    } else {
        vec![uri, decoded]
    }
}

/// Decodes exactly the escapes HubSpot lists for v3 (`%3A` → `:`, `%2F` → `/`, ...).
fn decode_reserved(uri: &str) -> String {
    const TABLE: &[(&str, char)] = &[
        ("3A", ':'),
        ("2F", '/'),
        ("3F", '?'),
        ("40", '@'),
        ("21", '!'),
        ("24", '$'),
        ("27", '\''),
        ("28", '('),
        ("29", ')'),
        ("2A", '*'),
        ("2C", ','),
        ("3B", ';'),
    ];
    let mut parts = uri.split('%');
    let mut out = parts.next().unwrap_or_default().to_string();
    for part in parts {
        let decoded = part.get(..2).and_then(|escape| {
            TABLE
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(escape))
                .map(|(_, c)| *c)
        });
        match decoded {
            Some(c) => {
                out.push(c);
                out.push_str(part.get(2..).unwrap_or_default());
            }
            None => {
                out.push('%');
                out.push_str(part);
            }
        }
    }
    out
}

/// A workflow's legacy v1 contact object, or an app webhook's array of id-only events.
pub(super) fn parse(req: &InboundRequest) -> Result<Parsed, ParseError> {
    let payload = parse_json(&req.body)?;
    if let Some(events) = payload.as_array() {
        return Ok(app_events(events, &payload));
    }
    if !payload.is_object() {
        return Err(ParseError::NotAnObject);
    }
    let contact = contact_fields(&payload);
    // `hs_email_optout` is an opt-out: it can only say "no".
    let consent = payload
        .pointer("/properties/hs_email_optout/value")
        .filter(|v| is_affirmative(v))
        .map(|_| false);
    // No delivery id: the contact id and its last modification identify this version.
    let delivery_id = first_text(&payload, &["vid", "canonical-vid", "objectId"]).map(|vid| {
        match text_at(&payload, "properties.lastmodifieddate.value") {
            Some(modified) => format!("{vid}:{modified}"),
            None => vid,
        }
    });
    Ok(Parsed::Submission(Box::new(Submission {
        // Workflow webhooks have no event type.
        topic: None,
        delivery_id,
        contact,
        products: Vec::new(),
        consent,
        payload,
        from_browser_form: false,
        lookup: None,
    })))
}

/// The app-webhook events whose contact is looked up: a contact made, changed or restored.
/// Deletions, merges and association changes name no contact to sync.
const LOOKED_UP_EVENTS: &[&str] = &[
    "contact.creation",
    "contact.propertyChange",
    "contact.restore",
];

/// An app webhook's array of events: one lookup of every contact they name (each once, in the
/// order named), through HubSpot's API with `sender_api.{route}.access_token`. Each contact
/// keeps the topics of its events (a route's `topics` are applied per contact), its account
/// and its own delivery: the identities of its events. HubSpot's `eventId` alone is not
/// unique, so an event is its `eventId`, `subscriptionId`, `occurredAt` and the contact.
fn app_events(events: &[Value], payload: &Value) -> Parsed {
    let mut ids: Vec<String> = Vec::new();
    let mut objects: BTreeMap<String, (NamedObject, Vec<String>)> = BTreeMap::new();
    for event in events {
        let kind = text_at(event, "subscriptionType").unwrap_or_default();
        let id = text_at(event, "objectId")
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        let Some(id) = id.filter(|_| LOOKED_UP_EVENTS.contains(&kind.as_str())) else {
            continue;
        };
        let identity = ["eventId", "subscriptionId", "occurredAt"]
            .map(|key| text_at(event, key).unwrap_or_default())
            .join(".");
        if !ids.contains(&id) {
            ids.push(id.clone());
        }
        let (object, identities) = objects.entry(id).or_default();
        if !object.topics.contains(&kind) {
            object.topics.push(kind);
        }
        if object.account.is_none() {
            object.account = text_at(event, "portalId");
        }
        identities.push(identity);
    }
    let Some((first, more)) = ids.split_first() else {
        let mut kinds: Vec<String> = events
            .iter()
            .filter_map(|e| text_at(e, "subscriptionType"))
            .collect();
        kinds.dedup();
        let kinds = if kinds.is_empty() {
            "no events".to_string()
        } else {
            kinds.join(", ")
        };
        return Parsed::Ignored {
            reason: format!("HubSpot app webhook ({kinds}) names no contact made or changed"),
        };
    };
    let mut all = Vec::new();
    let objects: BTreeMap<String, NamedObject> = objects
        .into_iter()
        .map(|(id, (mut object, mut identities))| {
            identities.sort();
            all.extend(identities.iter().map(|i| format!("{id}.{i}")));
            object.delivery = format!("contact {id}: {}", short(&identities.join(",")));
            (id, object)
        })
        .collect();
    all.sort();
    let topic = objects.get(first).and_then(|o| o.topics.first().cloned());
    let mut context = serde_json::Map::new();
    if let Some(account) = objects.get(first).and_then(|o| o.account.clone()) {
        context.insert("portal_id".into(), Value::String(account));
    }
    Parsed::Submission(Box::new(Submission {
        topic,
        // A request retried as it was (only `attemptNumber` differs) is this delivery again.
        delivery_id: Some(short(&all.join(","))),
        lookup: Some(Lookup {
            api: Api::HubSpot,
            object: "contact".into(),
            id: first.clone(),
            more_ids: more.to_vec(),
            context,
            objects,
        }),
        payload: payload.clone(),
        ..Submission::default()
    }))
}

/// An identity of at most 64 characters: itself, or a digest of it.
fn short(identity: &str) -> String {
    if identity.len() <= 64 {
        identity.to_string()
    } else {
        format!(
            "sha256:{}",
            &hex::encode(Sha256::digest(identity.as_bytes()))[..32]
        )
    }
}

/// `properties.<name>.value` (legacy v1), then `properties.<name>` (newer CRM objects), then
/// flat keys (a workflow action with a customised body).
fn contact_fields(p: &Value) -> ContactFields {
    let property = |name: &str| {
        first_text(
            p,
            &[
                &format!("properties.{name}.value"),
                &format!("properties.{name}"),
            ],
        )
    };
    let (flat, _) = recognise_fields(p);
    ContactFields {
        email: property("email")
            .or_else(|| identity_email(p))
            .or(flat.email),
        first_name: property("firstname").or(flat.first_name),
        last_name: property("lastname").or(flat.last_name),
        full_name: flat.full_name,
        phone: property("phone")
            .or_else(|| property("mobilephone"))
            .or(flat.phone),
        organization: property("company").or(flat.organization),
        ip4: None,
    }
}

/// `identity-profiles[].identities[]` with `type: "EMAIL"`.
fn identity_email(p: &Value) -> Option<String> {
    p.get("identity-profiles")?
        .as_array()?
        .iter()
        .filter_map(|profile| profile.get("identities")?.as_array())
        .flatten()
        .find(|identity| text_at(identity, "type").as_deref() == Some("EMAIL"))
        .and_then(|identity| text_at(identity, "value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hmac_sha256;
    use crate::sources::test_support::{request, secrets, submission};
    use base64::prelude::*;
    use http::Method;
    use std::time::{Duration, UNIX_EPOCH};

    // HubSpot's published examples: the request-validation docs (v1 with an app-webhook body,
    // v2 with a GET) and the signature tests of HubSpot's Python SDK (v1, v2, v3).
    const DOCS_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const DOCS_V1_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const SDK_BODY: &str = "{'example_field':'example_value'}";
    const SDK_TIMESTAMP: &str = "1693657560000";

    const SECRET: &str = "hubspot-client-secret";
    const HOST: &str = "abcdefghij.lambda-url.us-east-1.on.aws";
    const AT_MS: i64 = 1_767_225_600_000;
    const CONTACT: &str = r#"{"vid":3234574,"canonical-vid":3234574,"portal-id":62515,"is-contact":true,"properties":{"email":{"value":"Inara.Serra@example.com","versions":[]},"firstname":{"value":"Inara"},"lastname":{"value":"Serra"},"phone":{"value":"+1 617 555 0134"},"company":{"value":"Companion Guild"},"lastmodifieddate":{"value":"1767225599000"}},"form-submissions":[],"identity-profiles":[{"vid":3234574,"identities":[{"type":"EMAIL","value":"inara.serra@example.com"}]}]}"#;

    fn example_com(path: &str, headers: &[(&str, &str)], body: &str) -> InboundRequest {
        let mut all = vec![("host", "www.example.com")];
        all.extend_from_slice(headers);
        request(path, &all, body)
    }

    fn v3_signed(
        path: &str,
        body: &str,
        secret: &str,
        at_ms: i64,
        signed_uri: &str,
    ) -> InboundRequest {
        let ts = at_ms.to_string();
        let tag = BASE64_STANDARD.encode(hmac_sha256(
            secret.as_bytes(),
            &[
                b"POST",
                signed_uri.as_bytes(),
                body.as_bytes(),
                ts.as_bytes(),
            ],
        ));
        let mut req = request(
            path,
            &[
                ("host", HOST),
                ("x-forwarded-proto", "https"),
                (SIGNATURE_V3_HEADER, &tag),
                (TIMESTAMP_HEADER, &ts),
            ],
            body,
        );
        req.received_at = UNIX_EPOCH + Duration::from_millis(at_ms as u64 + 5_000);
        req
    }

    fn function_url(path: &str) -> String {
        format!("https://{HOST}{path}")
    }

    /// A route that takes the legacy signatures (`require_timestamped = false`).
    fn legacy_allowed() -> AuthSettings {
        AuthSettings {
            require_timestamped: false,
            ..AuthSettings::default()
        }
    }

    #[test]
    fn published_v1_and_v2_examples() {
        let settings = legacy_allowed();
        let docs_v1 = example_com(
            "/webhook_uri",
            &[
                (
                    SIGNATURE_HEADER,
                    "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
                ),
                (SIGNATURE_VERSION_HEADER, "v1"),
            ],
            DOCS_V1_BODY,
        );
        assert_eq!(
            authenticate(&docs_v1, &secrets(&[DOCS_SECRET]), &settings),
            Ok(())
        );
        let mut docs_v2_get = example_com(
            "/webhook_uri",
            &[
                (
                    SIGNATURE_HEADER,
                    "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e",
                ),
                (SIGNATURE_VERSION_HEADER, "v2"),
            ],
            "",
        );
        docs_v2_get.method = Method::GET;
        assert_eq!(
            authenticate(&docs_v2_get, &secrets(&[DOCS_SECRET]), &settings),
            Ok(())
        );
        let sdk_v1 = example_com(
            "/webhook_uri",
            &[(
                SIGNATURE_HEADER,
                "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750",
            )],
            SDK_BODY,
        );
        // No version header: v1, as HubSpot's libraries default to.
        assert_eq!(
            authenticate(&sdk_v1, &secrets(&[DOCS_SECRET]), &settings),
            Ok(())
        );
        let sdk_v2 = example_com(
            "/webhook_uri",
            &[
                (
                    SIGNATURE_HEADER,
                    "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383",
                ),
                (SIGNATURE_VERSION_HEADER, "V2"),
            ],
            SDK_BODY,
        );
        assert_eq!(
            authenticate(&sdk_v2, &secrets(&[DOCS_SECRET]), &settings),
            Ok(())
        );
        // The same v2 tag read as v1 does not match.
        let mut as_v1 = sdk_v2.clone();
        as_v1
            .headers
            .insert(SIGNATURE_VERSION_HEADER, "v1".parse().unwrap());
        assert_eq!(
            authenticate(&as_v1, &secrets(&[DOCS_SECRET]), &settings),
            Err(AuthError::SignatureMismatch)
        );
    }

    #[test]
    fn published_v3_example() {
        let mut req = example_com(
            "/webhook_uri",
            &[
                (
                    SIGNATURE_V3_HEADER,
                    "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
                ),
                (TIMESTAMP_HEADER, SDK_TIMESTAMP),
            ],
            SDK_BODY,
        );
        req.received_at = UNIX_EPOCH + Duration::from_millis(1_693_657_560_000 + 60_000);
        let settings = AuthSettings::default();
        assert_eq!(
            authenticate(&req, &secrets(&[DOCS_SECRET]), &settings),
            Ok(())
        );
        // Signed for https: the same request seen as plain http does not verify.
        let mut http = req.clone();
        http.headers
            .insert("x-forwarded-proto", "http".parse().unwrap());
        assert_eq!(
            authenticate(&http, &secrets(&[DOCS_SECRET]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        // Valid signature, five minutes and more later: refused.
        req.received_at = UNIX_EPOCH + Duration::from_millis(1_693_657_560_000 + 302_000);
        assert_eq!(
            authenticate(&req, &secrets(&[DOCS_SECRET]), &settings),
            Err(AuthError::StaleTimestamp)
        );
    }

    #[test]
    fn v3_uri_includes_the_raw_query_and_hubspots_decoded_form() {
        let settings = AuthSettings::default();
        let route = secrets(&[SECRET]);
        let path = "/webhooks/hubspot?portal=62515&list=new%20leads";
        let req = v3_signed(path, CONTACT, SECRET, AT_MS, &function_url(path));
        assert_eq!(authenticate(&req, &route, &settings), Ok(()));
        let path = "/webhooks/hubspot?source=workflow%3Alead";
        let decoded = function_url("/webhooks/hubspot?source=workflow:lead");
        let req = v3_signed(path, CONTACT, SECRET, AT_MS, &decoded);
        assert_eq!(authenticate(&req, &route, &settings), Ok(()));
        let without_query = v3_signed(
            path,
            CONTACT,
            SECRET,
            AT_MS,
            &function_url("/webhooks/hubspot"),
        );
        assert_eq!(
            authenticate(&without_query, &route, &settings),
            Err(AuthError::SignatureMismatch)
        );
        assert_eq!(
            decode_reserved("https://h/p?a=%3a%2F%20%zz%4"),
            "https://h/p?a=:/%20%zz%4"
        );
    }

    #[test]
    fn v3_tampered_wrong_secret_rotation_and_headers() {
        let settings = AuthSettings::default();
        let path = "/webhooks/hubspot";
        let req = v3_signed(path, CONTACT, SECRET, AT_MS, &function_url(path));
        assert_eq!(
            authenticate(&req, &secrets(&["previous", SECRET]), &settings),
            Ok(())
        );
        assert_eq!(
            authenticate(&req, &secrets(&["previous"]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        let mut tampered = req.clone();
        tampered.body = CONTACT.replace("Inara.Serra@", "Saffron@").into();
        assert_eq!(
            authenticate(&tampered, &secrets(&[SECRET]), &settings),
            Err(AuthError::SignatureMismatch)
        );
        let mut no_timestamp = req.clone();
        no_timestamp.headers.remove(TIMESTAMP_HEADER);
        assert_eq!(
            authenticate(&no_timestamp, &secrets(&[SECRET]), &settings),
            Err(AuthError::MissingSignature("X-HubSpot-Request-Timestamp"))
        );
        let mut bad_timestamp = req.clone();
        bad_timestamp
            .headers
            .insert(TIMESTAMP_HEADER, "now".parse().unwrap());
        assert_eq!(
            authenticate(&bad_timestamp, &secrets(&[SECRET]), &settings),
            Err(AuthError::MalformedSignature)
        );
        let mut bad_tag = req.clone();
        bad_tag
            .headers
            .insert(SIGNATURE_V3_HEADER, "%%%".parse().unwrap());
        assert_eq!(
            authenticate(&bad_tag, &secrets(&[SECRET]), &settings),
            Err(AuthError::MalformedSignature)
        );
        let unsigned = request(path, &[("host", HOST)], CONTACT);
        assert_eq!(
            authenticate(&unsigned, &secrets(&[SECRET]), &settings),
            Err(AuthError::MissingSignature("X-HubSpot-Signature-v3"))
        );
        assert_eq!(
            authenticate(&req, &[], &settings),
            Err(AuthError::NoSecretConfigured)
        );
    }

    #[test]
    fn legacy_signature_errors() {
        let settings = legacy_allowed();
        let route = secrets(&[SECRET]);
        let v1 = hex::encode(
            Sha256::new()
                .chain_update(SECRET.as_bytes())
                .chain_update(CONTACT.as_bytes())
                .finalize(),
        );
        let ok = request(
            "/webhooks/hubspot",
            &[(SIGNATURE_HEADER, &v1), (SIGNATURE_VERSION_HEADER, "v1")],
            CONTACT,
        );
        assert_eq!(
            authenticate(&ok, &secrets(&["old", SECRET]), &settings),
            Ok(())
        );
        // By default a route takes only v3: a captured v1 request, its v3 header stripped,
        // would otherwise verify forever.
        assert_eq!(
            authenticate(&ok, &route, &AuthSettings::default()),
            Err(AuthError::UntimedSignature("legacy X-HubSpot-Signature"))
        );
        let mut tampered = ok.clone();
        tampered.body = CONTACT.replace("Inara", "Yolanda").into();
        assert_eq!(
            authenticate(&tampered, &route, &settings),
            Err(AuthError::SignatureMismatch)
        );
        let mut unknown = ok.clone();
        unknown
            .headers
            .insert(SIGNATURE_VERSION_HEADER, "v9".parse().unwrap());
        assert_eq!(
            authenticate(&unknown, &route, &settings),
            Err(AuthError::MalformedSignature)
        );
        let mut not_hex = ok.clone();
        not_hex
            .headers
            .insert(SIGNATURE_HEADER, "xyz".parse().unwrap());
        assert_eq!(
            authenticate(&not_hex, &route, &settings),
            Err(AuthError::MalformedSignature)
        );
    }

    #[test]
    fn workflow_contact_fields() {
        let s = submission(parse(&request("/webhooks/hubspot", &[], CONTACT)));
        assert_eq!(s.topic, None);
        assert_eq!(s.delivery_id.as_deref(), Some("3234574:1767225599000"));
        assert_eq!(s.contact.email.as_deref(), Some("Inara.Serra@example.com"));
        assert_eq!(s.contact.first_name.as_deref(), Some("Inara"));
        assert_eq!(s.contact.last_name.as_deref(), Some("Serra"));
        assert_eq!(s.contact.phone.as_deref(), Some("+1 617 555 0134"));
        assert_eq!(s.contact.organization.as_deref(), Some("Companion Guild"));
        assert_eq!(s.consent, None);
    }

    #[test]
    fn email_from_identities_and_opt_out() {
        let body = r#"{"vid":7,"properties":{"hs_email_optout":{"value":"true"}},"identity-profiles":[{"identities":[{"type":"LEAD_GUID","value":"x"},{"type":"EMAIL","value":"book@example.com"}]}]}"#;
        let s = submission(parse(&request("/webhooks/hubspot", &[], body)));
        assert_eq!(s.contact.email.as_deref(), Some("book@example.com"));
        assert_eq!(s.delivery_id.as_deref(), Some("7"));
        assert_eq!(s.consent, Some(false));
    }

    #[test]
    fn app_webhook_arrays_are_looked_up_and_bad_bodies_refused() {
        // HubSpot's documented example: one contact made, looked up by its id.
        match parse(&request("/webhooks/hubspot", &[], DOCS_V1_BODY)).unwrap() {
            Parsed::Submission(s) => {
                let lookup = s.lookup.unwrap();
                assert_eq!((lookup.api, lookup.id.as_str()), (Api::HubSpot, "123"));
                assert!(lookup.more_ids.is_empty());
                assert_eq!(lookup.context["portal_id"], "62515");
                assert_eq!(s.topic.as_deref(), Some("contact.creation"));
                // HubSpot's eventId is not unique on its own.
                assert_eq!(s.delivery_id.as_deref(), Some("123.1.12345.1564113600000"));
            }
            other => panic!("expected a lookup, got {other:?}"),
        }
        // Each contact once, in the order named; events of other kinds left out.
        let several = r#"[{"eventId":7,"subscriptionType":"contact.propertyChange","objectId":5,"portalId":1},
            {"eventId":3,"subscriptionType":"contact.deletion","objectId":9,"portalId":1},
            {"eventId":4,"subscriptionType":"contact.creation","objectId":2,"portalId":1},
            {"eventId":5,"subscriptionType":"contact.creation","objectId":5,"portalId":1},
            {"eventId":6,"subscriptionType":"company.creation","objectId":8,"portalId":1}]"#;
        match parse(&request("/webhooks/hubspot", &[], several)).unwrap() {
            Parsed::Submission(s) => {
                let lookup = s.lookup.unwrap();
                assert_eq!(
                    (lookup.id.as_str(), lookup.more_ids),
                    ("5", vec!["2".to_string()])
                );
                assert_eq!(s.topic.as_deref(), Some("contact.propertyChange"));
                assert_eq!(s.delivery_id.as_deref(), Some("2.4..,5.5..,5.7.."));
                let five = &lookup.objects["5"];
                assert_eq!(five.topics, ["contact.propertyChange", "contact.creation"]);
                assert_eq!(five.delivery, "contact 5: 5..,7..");
                assert_eq!(five.account.as_deref(), Some("1"));
                assert_eq!(lookup.objects["2"].delivery, "contact 2: 4..");
            }
            other => panic!("expected a lookup, got {other:?}"),
        }
        match parse(&request(
            "/webhooks/hubspot",
            &[],
            r#"[{"eventId":3,"subscriptionType":"contact.deletion","objectId":9}]"#,
        ))
        .unwrap()
        {
            Parsed::Ignored { reason } => assert!(reason.contains("contact.deletion"), "{reason}"),
            other => panic!("expected ignored, got {other:?}"),
        }
        assert_eq!(
            parse(&request("/webhooks/hubspot", &[], "42")),
            Err(ParseError::NotAnObject)
        );
        assert!(matches!(
            parse(&request("/webhooks/hubspot", &[], "{\"vid\":")),
            Err(ParseError::Json(_))
        ));
    }
}
