//! Sources: one module per sender, each a [`SenderSpec`] (how it authenticates, what it posts)
//! and a parse function into one normalised [`Submission`](crate::submission::Submission);
//! what they share is in [`util`]. [`SENDERS`] is the registry.

pub(crate) mod batch;
mod bigcommerce;
mod calendly;
#[cfg(test)]
mod conformance;
mod elementor;
pub(crate) mod form;
mod googleforms;
mod gravityforms;
mod gumroad;
mod hubspot;
mod jotform;
mod lemonsqueezy;
pub(crate) mod paddle;
mod shopify;
pub mod spec;
mod squarespace;
pub(crate) mod standardwebhooks;
mod stripe;
mod tally;
pub(crate) mod typeform;
pub mod util;
mod webflow;
mod wix;
mod wixautomations;
mod woocommerce;
mod wpforms;

use std::time::Duration;

use thiserror::Error;

pub use spec::{Auth, CustomAuth, Media, Parse, SenderSpec};

/// Default replay window for senders that sign a timestamp (Stripe's SDK default).
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// Why a request was not accepted as coming from the sender (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("missing signature header {0}")]
    MissingSignature(&'static str),
    #[error("signature header is malformed")]
    MalformedSignature,
    #[error("signature does not match")]
    SignatureMismatch,
    #[error("timestamp is outside the replay window")]
    StaleTimestamp,
    #[error("missing token: add ?token=<route token> to the webhook URL")]
    MissingToken,
    #[error("token does not match")]
    TokenMismatch,
    #[error("no webhook secret is configured for this route")]
    NoSecretConfigured,
    #[error(
        "a {0} signature carries no timestamp, so a captured request would verify forever: this route takes only the timestamped one (require_timestamped = false accepts it)"
    )]
    UntimedSignature(&'static str),
    #[error("the body is not {0}")]
    BodyNotSigned(&'static str),
    #[error("the route's webhook secret is not {0}: fix it in the secret")]
    UnusableKey(&'static str),
}

/// Why a verified body could not be read (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("JSON body must be an object")]
    NotAnObject,
    #[error("JSON nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("form has more than {0} fields")]
    TooManyFields(usize),
    #[error("multipart body has no boundary in its Content-Type")]
    MissingBoundary,
    #[error("multipart body is malformed: {0}")]
    Multipart(String),
    #[error("missing event type ({0})")]
    MissingTopic(&'static str),
    #[error("row {row}: {message}")]
    Row { row: usize, message: String },
    #[error("a batch holds at most {0} rows")]
    TooManyRows(usize),
    /// What the request says outside its signature contradicts what it signed.
    #[error("{0}")]
    Contradiction(String),
}

/// Per-route verification settings.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub replay_window: Duration,
    /// Refuse a sender's legacy signature that carries no timestamp (HubSpot v1 and v2).
    pub require_timestamped: bool,
    /// The route verifies the sender's signature where its sender can sign but is usually
    /// set up with a token (WPForms, with the secret read from the form's settings).
    pub signed: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            replay_window: DEFAULT_REPLAY_WINDOW,
            require_timestamped: true,
            signed: false,
        }
    }
}

/// The built-in senders. Each has a default route named after it.
pub const SENDERS: &[&SenderSpec] = &[
    &form::SPEC,
    &shopify::SPEC,
    &woocommerce::SPEC,
    &stripe::SPEC,
    &gumroad::SPEC,
    &jotform::SPEC,
    &gravityforms::SPEC,
    &elementor::SPEC,
    &wpforms::SPEC,
    &googleforms::SPEC,
    &batch::SPEC,
    &typeform::SPEC,
    &tally::SPEC,
    &lemonsqueezy::SPEC,
    &paddle::SPEC,
    &webflow::SPEC,
    &calendly::SPEC,
    &hubspot::SPEC,
    &standardwebhooks::SPEC,
    &wix::SPEC,
    &wixautomations::SPEC,
    &bigcommerce::SPEC,
    &squarespace::SPEC,
];

/// The sender a mapping file names.
pub fn sender(name: &str) -> Option<&'static SenderSpec> {
    SENDERS.iter().copied().find(|sender| sender.name == name)
}

/// Every sender's name, for errors that list them.
pub fn sender_names() -> String {
    SENDERS
        .iter()
        .map(|sender| sender.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Test helpers shared by the sender modules.
#[cfg(test)]
pub(crate) mod test_support {
    use http::HeaderMap;
    use secrecy::SecretString;

    use crate::inbound::InboundRequest;
    use crate::sources::ParseError;
    use crate::submission::{Parsed, Submission};

    pub(crate) fn secrets(values: &[&str]) -> Vec<SecretString> {
        values
            .iter()
            .map(|v| SecretString::from(v.to_string()))
            .collect()
    }

    /// The submission a parser produced; panics (fails the test) on anything else.
    pub(crate) fn submission(parsed: Result<Parsed, ParseError>) -> Submission {
        match parsed {
            Ok(Parsed::Submission(s)) => *s,
            other => panic!("expected a submission, got {other:?}"),
        }
    }

    /// Parsing only what the sender says it reads (`Sender::reads`) gives the same submission
    /// as parsing the whole payload, and does skip something of each request.
    pub(crate) fn assert_reads_suffice(sender: &super::SenderSpec, requests: &[InboundRequest]) {
        let reads = super::util::projection::Projection::of_paths(
            sender.reads().expect("the sender reads").iter().copied(),
        );
        for req in requests {
            let whole = submission(sender.parse(req));
            let read = submission(sender.parse_reading(req, &reads));
            assert_ne!(whole.payload, read.payload, "nothing of {req:?} is skipped");
            let without_payload = |s: Submission| Submission {
                payload: serde_json::Value::Null,
                ..s
            };
            assert_eq!(without_payload(whole), without_payload(read), "{req:?}");
        }
    }

    /// A token-authenticated sender: the route's token passes; a near miss and a missing
    /// token are refused. `headers` go with every request (e.g. a signature to ignore).
    pub(crate) fn assert_route_token(
        sender: &super::SenderSpec,
        headers: &[(&str, &str)],
        body: &str,
    ) {
        let route = secrets(&["route-token-1"]);
        let settings = super::AuthSettings::default();
        let with = |query: &str| request(&format!("/webhooks/r{query}"), headers, body);
        let ok = with("?token=route-token-1");
        assert!(sender.authenticate(&ok, &route, &settings).is_ok());
        assert_eq!(
            sender.authenticate(&with("?token=route-token-2"), &route, &settings),
            Err(super::AuthError::TokenMismatch)
        );
        assert_eq!(
            sender.authenticate(&with(""), &route, &settings),
            Err(super::AuthError::MissingToken)
        );
    }

    pub(crate) fn request(path: &str, headers: &[(&str, &str)], body: &str) -> InboundRequest {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        InboundRequest::post(path, map, body.to_string())
    }
}
