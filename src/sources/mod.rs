//! Sources: one module per sender. Each authenticates a request against the route's secrets
//! and parses it into one normalised [`Submission`](crate::submission::Submission).

pub mod batch;
pub mod body;
pub mod calendly;
pub mod elementor;
pub mod form;
pub mod googleforms;
pub mod gravityforms;
pub mod gumroad;
pub mod hubspot;
pub mod jotform;
pub mod lemonsqueezy;
pub mod paddle;
pub mod projection;
pub mod shopify;
pub mod signature;
pub mod standardwebhooks;
pub mod stripe;
pub mod tally;
pub mod typeform;
pub mod webflow;
pub mod woocommerce;
pub mod wpforms;

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::inbound::InboundRequest;
use crate::submission::Parsed;
use projection::Projection;

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
}

/// Per-route verification settings.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub replay_window: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            replay_window: DEFAULT_REPLAY_WINDOW,
        }
    }
}

/// One sender: how it authenticates and how its body becomes a submission.
/// Senders that post JSON, have no handshake and handle every topic need only the last two.
pub trait Sender: Sync {
    /// Topics a route handles unless its configuration names others; empty = every request.
    fn default_topics(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the sender posts bodies of this media type (others are answered 415).
    /// JSON senders: a missing Content-Type is tolerated, the body still must be JSON.
    fn accepts_media_type(&self, media_type: Option<&str>) -> bool {
        matches!(media_type, None | Some(body::MEDIA_JSON))
    }

    /// A larger body limit than the function's default, for senders that post batches.
    fn max_body_bytes(&self) -> Option<usize> {
        None
    }

    /// A handshake or ping the sender sends unsigned and expects answered 200.
    fn handshake(&self, _req: &InboundRequest) -> Option<&'static str> {
        None
    }

    /// Verifies the request against the route's secrets, before anything parses the body.
    fn authenticate(
        &self,
        req: &InboundRequest,
        secrets: &[SecretString],
        settings: &AuthSettings,
    ) -> Result<(), AuthError>;

    /// Parses a verified request into a submission (or a reason to ignore it).
    fn parse(&self, req: &InboundRequest) -> Result<Parsed, ParseError>;

    /// The JSONPaths of the payload the sender reads itself, for senders whose payloads are
    /// large enough that parsing only what is read pays (orders with line items). `None`:
    /// the whole payload is kept.
    fn reads(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// `parse`, keeping only the parts of a JSON payload in `reads`: the sender's own
    /// (`Sender::reads`) and its route's paths.
    fn parse_reading(
        &self,
        req: &InboundRequest,
        _reads: &Projection,
    ) -> Result<Parsed, ParseError> {
        self.parse(req)
    }
}

/// Declares the built-in senders: the `SenderKind` enum (its serde names are the mapping
/// file's `sender` values and the default route names) and each kind's adapter.
macro_rules! senders {
    ($($variant:ident => $name:literal, $adapter:path;)*) => {
        /// The built-in senders. Each has a default route named after it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum SenderKind {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl SenderKind {
            pub const ALL: &'static [SenderKind] = &[$(SenderKind::$variant),*];

            /// The sender's name, also its default route.
            pub fn name(self) -> &'static str {
                match self {
                    $(SenderKind::$variant => $name,)*
                }
            }

            /// The module that authenticates and parses this sender's requests.
            pub fn adapter(self) -> &'static dyn Sender {
                match self {
                    $(SenderKind::$variant => &$adapter,)*
                }
            }
        }
    };
}

senders! {
    Form => "form", form::Form;
    Shopify => "shopify", shopify::Shopify;
    WooCommerce => "woocommerce", woocommerce::WooCommerce;
    Stripe => "stripe", stripe::Stripe;
    Gumroad => "gumroad", gumroad::Gumroad;
    Jotform => "jotform", jotform::Jotform;
    GravityForms => "gravityforms", gravityforms::GravityForms;
    Elementor => "elementor", elementor::Elementor;
    WpForms => "wpforms", wpforms::WpForms;
    GoogleForms => "googleforms", googleforms::GoogleForms;
    Batch => "batch", batch::Batch;
    Typeform => "typeform", typeform::Typeform;
    Tally => "tally", tally::Tally;
    LemonSqueezy => "lemonsqueezy", lemonsqueezy::LemonSqueezy;
    Paddle => "paddle", paddle::Paddle;
    Webflow => "webflow", webflow::Webflow;
    Calendly => "calendly", calendly::Calendly;
    HubSpot => "hubspot", hubspot::HubSpot;
    StandardWebhooks => "standardwebhooks", standardwebhooks::StandardWebhooks;
}

impl SenderKind {
    pub fn default_topics(self) -> &'static [&'static str] {
        self.adapter().default_topics()
    }

    pub fn accepts_media_type(self, media_type: Option<&str>) -> bool {
        self.adapter().accepts_media_type(media_type)
    }

    pub fn max_body_bytes(self) -> Option<usize> {
        self.adapter().max_body_bytes()
    }

    pub fn handshake(self, req: &InboundRequest) -> Option<&'static str> {
        self.adapter().handshake(req)
    }

    pub fn authenticate(
        self,
        req: &InboundRequest,
        secrets: &[SecretString],
        settings: &AuthSettings,
    ) -> Result<(), AuthError> {
        self.adapter().authenticate(req, secrets, settings)
    }

    pub fn parse(self, req: &InboundRequest) -> Result<Parsed, ParseError> {
        self.adapter().parse(req)
    }

    pub fn parse_reading(
        self,
        req: &InboundRequest,
        reads: &Projection,
    ) -> Result<Parsed, ParseError> {
        self.adapter().parse_reading(req, reads)
    }

    /// What a route of this sender reads of a payload, given the route's own paths.
    pub fn projection<'a>(self, route_paths: impl IntoIterator<Item = &'a str>) -> Projection {
        match self.adapter().reads() {
            Some(own) => Projection::of_paths(own.iter().copied().chain(route_paths)),
            None => Projection::All,
        }
    }
}

impl std::fmt::Display for SenderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Test helpers shared by the sender modules.
#[cfg(test)]
pub(crate) mod test_support {
    use http::HeaderMap;
    use secrecy::SecretString;

    use crate::inbound::InboundRequest;
    use crate::sources::ParseError;
    use crate::submission::{Parsed, Submission};

    pub fn secrets(values: &[&str]) -> Vec<SecretString> {
        values
            .iter()
            .map(|v| SecretString::from(v.to_string()))
            .collect()
    }

    /// The submission a parser produced; panics (fails the test) on anything else.
    pub fn submission(parsed: Result<Parsed, ParseError>) -> Submission {
        match parsed {
            Ok(Parsed::Submission(s)) => *s,
            other => panic!("expected a submission, got {other:?}"),
        }
    }

    /// Parsing only what the sender says it reads (`Sender::reads`) gives the same submission
    /// as parsing the whole payload, and does skip something of each request.
    pub fn assert_reads_suffice(sender: &dyn super::Sender, requests: &[InboundRequest]) {
        let reads =
            super::Projection::of_paths(sender.reads().expect("the sender reads").iter().copied());
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
    pub fn assert_route_token(sender: &dyn super::Sender, headers: &[(&str, &str)], body: &str) {
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

    pub fn request(path: &str, headers: &[(&str, &str)], body: &str) -> InboundRequest {
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
