//! One conformance suite per authentication kind, run over every sender of that kind: each
//! sender is signed by its own declaration (`Auth::sign`) and must accept exactly that.
//! The senders' real formats are checked independently by `events/` (signed by the Python
//! generator in `scripts/eventgen/`), so a scheme wrong on both sides is still caught there.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::spec::{Auth, SenderSpec, Signing};
use super::test_support::{assert_route_token, secrets};
use super::{AuthError, AuthSettings, SENDERS};
use crate::inbound::InboundRequest;

/// Secrets in the `whsec_` + base64 form, so they are keys for every scheme.
const SECRET: &str = "whsec_Y29uZm9ybWFuY2UtMQ==";
const OTHER: &str = "whsec_Y29uZm9ybWFuY2UtMg==";
const HOST: &str = "abcdefghij.lambda-url.us-east-1.on.aws";
const BODY: &[u8] = br#"{"email":"ada@example.com","type":"customer.created"}"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn signing_senders() -> impl Iterator<Item = &'static SenderSpec> {
    SENDERS
        .iter()
        .copied()
        .filter(|sender| !matches!(sender.auth, Auth::RouteToken | Auth::SignedBody { .. }))
}

/// A request to `/webhooks/r` as `sender` would send it, signed with `secret` over `signed`
/// at `timestamp`, carrying `body`.
fn request(
    sender: &SenderSpec,
    secret: &str,
    signed: &[u8],
    body: &[u8],
    timestamp: i64,
) -> InboundRequest {
    let url = format!("https://{HOST}/webhooks/r");
    let signature = sender.auth.sign(&Signing {
        secret,
        body: signed,
        timestamp,
        id: "msg_2Lq0",
        url: &url,
    });
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in signature.headers {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    let path = match signature.query {
        Some((key, value)) => format!("/webhooks/r?{key}={value}"),
        None => "/webhooks/r".to_string(),
    };
    InboundRequest::post(&path, headers, body.to_vec())
}

fn verify(sender: &SenderSpec, req: &InboundRequest, keys: &[&str]) -> Result<(), AuthError> {
    sender.authenticate(req, &secrets(keys), &AuthSettings::default())
}

#[test]
fn every_signing_sender_accepts_its_signature_under_rotation_and_nothing_else() {
    let senders: Vec<&str> = signing_senders().map(|s| s.name).collect();
    assert_eq!(senders.len(), 13, "{senders:?}");
    for sender in signing_senders() {
        let name = sender.name;
        let signed = request(sender, SECRET, BODY, BODY, now());
        assert_eq!(verify(sender, &signed, &[SECRET]), Ok(()), "{name}");
        assert_eq!(
            verify(sender, &signed, &[OTHER, SECRET]),
            Ok(()),
            "{name}: rotation"
        );
        assert_eq!(
            verify(sender, &signed, &[OTHER]),
            Err(AuthError::SignatureMismatch),
            "{name}: wrong secret"
        );
        assert_eq!(
            verify(sender, &signed, &[]),
            Err(AuthError::NoSecretConfigured),
            "{name}: no secret"
        );
        let tampered = request(
            sender,
            SECRET,
            BODY,
            br#"{"email":"eve@example.com"}"#,
            now(),
        );
        assert_eq!(
            verify(sender, &tampered, &[SECRET]),
            Err(AuthError::SignatureMismatch),
            "{name}: tampered body"
        );
        let unsigned = InboundRequest::post("/webhooks/r", HeaderMap::new(), BODY.to_vec());
        let refused = verify(sender, &unsigned, &[SECRET]);
        assert!(
            // Webflow's dashboard hooks are unsigned and use the route token instead.
            matches!(
                refused,
                Err(AuthError::MissingSignature(_) | AuthError::MissingToken)
            ),
            "{name}: unsigned, {refused:?}"
        );
    }
}

#[test]
fn every_timed_signature_expires_with_the_replay_window_both_ways() {
    let window = AuthSettings::default().replay_window.as_secs() as i64;
    let timed: Vec<&str> = signing_senders()
        .filter(|s| s.auth.timed())
        .map(|s| s.name)
        .collect();
    assert_eq!(
        timed,
        [
            "stripe",
            "paddle",
            "webflow",
            "calendly",
            "hubspot",
            "standardwebhooks",
            "bigcommerce"
        ]
    );
    for sender in signing_senders() {
        for offset in [-window - 60, window + 60] {
            let req = request(sender, SECRET, BODY, BODY, now() + offset);
            let expected = if sender.auth.timed() {
                Err(AuthError::StaleTimestamp)
            } else {
                Ok(())
            };
            assert_eq!(
                verify(sender, &req, &[SECRET]),
                expected,
                "{} at {offset} s",
                sender.name
            );
        }
        let inside = request(sender, SECRET, BODY, BODY, now() - window + 5);
        assert_eq!(
            verify(sender, &inside, &[SECRET]),
            Ok(()),
            "{}",
            sender.name
        );
    }
}

#[test]
fn stripe_style_headers_may_carry_several_signatures() {
    for sender in SENDERS
        .iter()
        .filter(|s| matches!(s.auth, Auth::Timestamped { .. }))
    {
        let Auth::Timestamped { header } = sender.auth else {
            unreachable!()
        };
        let mut req = request(sender, SECRET, BODY, BODY, now());
        let value = req.header(header).unwrap().to_string();
        let (t, v1) = value.split_once(",v1=").unwrap();
        let several = format!("{t},v1={},v1={v1},v0=ignored", "00".repeat(32));
        req.headers.insert(
            HeaderName::from_bytes(header.as_bytes()).unwrap(),
            HeaderValue::from_str(&several).unwrap(),
        );
        assert_eq!(verify(sender, &req, &[SECRET]), Ok(()), "{}", sender.name);
    }
}

#[test]
fn every_route_token_sender_takes_the_token_and_nothing_else() {
    let token_senders: Vec<&SenderSpec> = SENDERS
        .iter()
        .copied()
        .filter(|s| matches!(s.auth, Auth::RouteToken))
        .collect();
    assert_eq!(token_senders.len(), 9);
    for sender in token_senders {
        // A signature header it does not read changes nothing.
        assert_route_token(sender, &[("x-signature", "ignored")], "{}");
    }
}

#[test]
fn every_sender_is_registered_once() {
    let mut names: Vec<&str> = SENDERS.iter().map(|s| s.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), SENDERS.len(), "a name registered twice");
}
