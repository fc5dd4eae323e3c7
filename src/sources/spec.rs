//! What a sender is, as data: the media types it posts, its default topics, body limit and
//! handshake, how it authenticates, and its parse function. Each sender module declares one
//! `SPEC`; the registry ([`super::SENDERS`]) lists them, and the pipeline reads only this.

use secrecy::SecretString;

use super::util::body::{MEDIA_FORM, MEDIA_JSON};
use super::util::projection::Projection;
use super::util::signature::{TagEncoding, verify_hmac_any, verify_timestamped, verify_token};
use super::{AuthError, AuthSettings, ParseError};
use crate::inbound::InboundRequest;
use crate::submission::Parsed;

/// The query parameter that carries a route token.
pub const TOKEN_PARAM: &str = "token";

/// One sender, declared.
pub struct SenderSpec {
    /// The mapping file's `sender` value, also the name of its default route.
    pub name: &'static str,
    /// The media types it posts (others are answered 415).
    pub media: Media,
    /// Topics a route handles unless its configuration names others; empty = every request.
    pub default_topics: &'static [&'static str],
    /// A larger body limit than the function's default, for senders that post batches.
    pub max_body_bytes: Option<usize>,
    /// A handshake or ping the sender sends unsigned and expects answered 200: the reason.
    pub handshake: Option<fn(&InboundRequest) -> Option<&'static str>>,
    /// How a request is verified, before anything parses its body.
    pub auth: Auth,
    /// How it is verified instead on a route with `signed = true`, for a sender that can sign
    /// but is usually set up with a token.
    pub signed_auth: Option<Auth>,
    /// How a verified request becomes a submission (or a reason to ignore it).
    pub parse: Parse,
    /// The sender's API its webhooks are looked up in, if any.
    pub lookup: Option<SenderLookup>,
}

/// A sender whose webhooks (all, or some events) carry only ids.
#[derive(Debug, Clone, Copy)]
pub struct SenderLookup {
    pub api: crate::lookup::Api,
    /// Every webhook is a reference (BigCommerce); otherwise only some events are (a Stripe
    /// event that names its customer by id), and a route works without the credentials.
    pub always: bool,
}

/// The media types a sender posts.
#[derive(Debug, Clone, Copy)]
pub struct Media {
    pub types: &'static [&'static str],
    /// JSON senders: a missing Content-Type is tolerated (the body still must be JSON).
    pub missing_is_json: bool,
}

impl Media {
    pub const JSON: Self = Self {
        types: &[MEDIA_JSON],
        missing_is_json: true,
    };
    /// A server-built URL-encoded form or JSON (see `body::parse_form_or_json`).
    pub const FORM_OR_JSON: Self = Self::only(&[MEDIA_FORM, MEDIA_JSON]);

    /// Exactly these types, and a Content-Type is required.
    pub const fn only(types: &'static [&'static str]) -> Self {
        Self {
            types,
            missing_is_json: false,
        }
    }

    pub fn accepts(&self, media_type: Option<&str>) -> bool {
        match media_type {
            None => self.missing_is_json,
            Some(media_type) => self.types.contains(&media_type),
        }
    }
}

/// A parse function: of the whole payload, or of only the parts it reads (senders whose
/// payloads are large enough that parsing only what is read pays: orders with line items).
#[derive(Clone, Copy)]
pub enum Parse {
    Whole(fn(&InboundRequest) -> Result<Parsed, ParseError>),
    Reading {
        /// The JSONPaths of the payload the sender reads itself.
        reads: &'static [&'static str],
        parse: fn(&InboundRequest, &Projection) -> Result<Parsed, ParseError>,
    },
}

/// How a sender authenticates, as data, so one conformance suite per kind covers every
/// sender of that kind.
#[derive(Clone, Copy)]
pub enum Auth {
    /// Unsigned: `?token=` must be one of the route's secrets.
    RouteToken,
    /// One header holding HMAC-SHA256 of the raw body (after `prefix`), keyed by a secret.
    BodyHmac {
        header: &'static str,
        encoding: TagEncoding,
        prefix: &'static str,
    },
    /// Stripe's scheme: `t=<unix>,v1=<hex>[,v1=…]` over `"{t}.{body}"`, within the
    /// route's replay window.
    Timestamped { header: &'static str },
    /// A scheme of the sender's own.
    Custom(CustomAuth),
    /// The body itself is a token the sender signed with its private key (Wix's RS256 JWT);
    /// the route's secrets are the matching public keys. Not an HMAC over the body, so the
    /// HMAC conformance suite does not cover it: the sender's own tests do.
    SignedBody {
        verify: fn(&InboundRequest, &[SecretString], &AuthSettings) -> Result<(), AuthError>,
    },
}

/// A sender's own verification, and (in test builds) how to sign for it.
#[derive(Clone, Copy)]
pub struct CustomAuth {
    pub verify: fn(&InboundRequest, &[SecretString], &AuthSettings) -> Result<(), AuthError>,
    /// The headers it reads (the fuzz target fills them with arbitrary text).
    pub headers: &'static [&'static str],
    /// Whether a signature expires (a signed timestamp checked against the replay window).
    pub timed: bool,
    /// Whether it also accepts an older scheme without a timestamp, which a route's
    /// `require_timestamped` (on by default) refuses.
    pub untimed_fallback: bool,
    #[cfg(any(test, feature = "testing"))]
    pub sign: fn(&Signing<'_>) -> Vec<(&'static str, String)>,
}

impl SenderSpec {
    /// A JSON sender with no handshake that handles every topic within the default body
    /// limit; the builders below change what differs.
    pub const fn new(name: &'static str, auth: Auth, parse: Parse) -> Self {
        Self {
            name,
            media: Media::JSON,
            default_topics: &[],
            max_body_bytes: None,
            handshake: None,
            auth,
            signed_auth: None,
            parse,
            lookup: None,
        }
    }

    pub const fn looks_up(mut self, api: crate::lookup::Api, always: bool) -> Self {
        self.lookup = Some(SenderLookup { api, always });
        self
    }

    pub const fn signed_auth(mut self, auth: Auth) -> Self {
        self.signed_auth = Some(auth);
        self
    }

    pub const fn media(mut self, media: Media) -> Self {
        self.media = media;
        self
    }

    pub const fn topics(mut self, default_topics: &'static [&'static str]) -> Self {
        self.default_topics = default_topics;
        self
    }

    pub const fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = Some(limit);
        self
    }

    pub const fn handshake(
        mut self,
        handshake: fn(&InboundRequest) -> Option<&'static str>,
    ) -> Self {
        self.handshake = Some(handshake);
        self
    }

    pub fn accepts_media_type(&self, media_type: Option<&str>) -> bool {
        self.media.accepts(media_type)
    }

    /// The reason to answer a handshake or ping 200 unsigned, when `req` is one.
    pub fn handshake_of(&self, req: &InboundRequest) -> Option<&'static str> {
        self.handshake.and_then(|handshake| handshake(req))
    }

    /// Whether anyone who reads the route's URL can post to it: its token is all it checks
    /// (unless the route verifies the sender's signature instead, `signed`).
    pub fn authenticated_by_token(&self, settings: &AuthSettings) -> bool {
        matches!(self.route_auth(settings), Auth::RouteToken)
    }

    /// How a route with these settings verifies its requests.
    fn route_auth(&self, settings: &AuthSettings) -> &Auth {
        match (&self.signed_auth, settings.signed) {
            (Some(signed), true) => signed,
            _ => &self.auth,
        }
    }

    /// Whether it accepts a legacy signature without a timestamp (see `require_timestamped`).
    pub fn has_untimed_signatures(&self) -> bool {
        matches!(
            self.auth,
            Auth::Custom(CustomAuth {
                untimed_fallback: true,
                ..
            })
        )
    }

    /// Verifies the request against the route's secrets.
    pub fn authenticate(
        &self,
        req: &InboundRequest,
        secrets: &[SecretString],
        settings: &AuthSettings,
    ) -> Result<(), AuthError> {
        self.route_auth(settings).verify(req, secrets, settings)
    }

    /// Parses a verified request, keeping only what `reads` names of a JSON payload when
    /// the sender parses what it reads.
    pub fn parse_reading(
        &self,
        req: &InboundRequest,
        reads: &Projection,
    ) -> Result<Parsed, ParseError> {
        match self.parse {
            Parse::Whole(parse) => parse(req),
            Parse::Reading { parse, .. } => parse(req, reads),
        }
    }

    /// Parses the whole of a verified request.
    pub fn parse(&self, req: &InboundRequest) -> Result<Parsed, ParseError> {
        self.parse_reading(req, &Projection::All)
    }

    /// What a route of this sender reads of a payload, given the route's own paths.
    pub fn projection<'a>(&self, route_paths: impl IntoIterator<Item = &'a str>) -> Projection {
        match self.parse {
            Parse::Reading { reads, .. } => {
                Projection::of_paths(reads.iter().copied().chain(route_paths))
            }
            Parse::Whole(_) => Projection::All,
        }
    }

    /// The JSONPaths the sender reads itself (`None`: the whole payload is kept).
    pub fn reads(&self) -> Option<&'static [&'static str]> {
        match self.parse {
            Parse::Reading { reads, .. } => Some(reads),
            Parse::Whole(_) => None,
        }
    }
}

impl Auth {
    pub fn verify(
        &self,
        req: &InboundRequest,
        secrets: &[SecretString],
        settings: &AuthSettings,
    ) -> Result<(), AuthError> {
        match *self {
            Auth::RouteToken => verify_token(secrets, req.query_param(TOKEN_PARAM)),
            Auth::BodyHmac {
                header,
                encoding,
                prefix,
            } => {
                let value = req
                    .header(header)
                    .ok_or(AuthError::MissingSignature(header))?;
                let tag = value
                    .trim()
                    .strip_prefix(prefix)
                    .ok_or(AuthError::MalformedSignature)?;
                verify_hmac_any(secrets, &[&req.body], &[tag], encoding)
            }
            Auth::Timestamped { header } => verify_timestamped(req, secrets, settings, header),
            Auth::Custom(custom) => (custom.verify)(req, secrets, settings),
            Auth::SignedBody { verify } => verify(req, secrets, settings),
        }
    }

    /// The headers verification reads.
    pub fn headers(&self) -> Vec<&'static str> {
        match *self {
            Auth::RouteToken | Auth::SignedBody { .. } => Vec::new(),
            Auth::BodyHmac { header, .. } | Auth::Timestamped { header } => vec![header],
            Auth::Custom(custom) => custom.headers.to_vec(),
        }
    }

    /// Whether a signature expires with the replay window.
    pub fn timed(&self) -> bool {
        match self {
            // A signed body's `exp` is its own, not the replay window.
            Auth::RouteToken | Auth::BodyHmac { .. } | Auth::SignedBody { .. } => false,
            Auth::Timestamped { .. } => true,
            Auth::Custom(custom) => custom.timed,
        }
    }
}

impl PartialEq for SenderSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for SenderSpec {}

impl std::fmt::Debug for SenderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl std::fmt::Display for SenderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// What a signature is made over, for signing as a sender would (tests and fuzzing).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    pub secret: &'a str,
    pub body: &'a [u8],
    /// When it was signed (Unix seconds).
    pub timestamp: i64,
    /// A delivery id, for schemes that sign one.
    pub id: &'a str,
    /// The URL the request is sent to, for schemes that sign it.
    pub url: &'a str,
}

#[cfg(any(test, feature = "testing"))]
impl Auth {
    /// The headers, and the query parameter, a sender with `signing.secret` would send.
    pub fn sign(&self, signing: &Signing<'_>) -> Signed {
        use super::util::signature::hmac_sha256;
        let mac = |parts: &[&[u8]]| hmac_sha256(signing.secret.as_bytes(), parts);
        let headers = match *self {
            Auth::RouteToken => {
                return Signed {
                    headers: Vec::new(),
                    query: Some((TOKEN_PARAM, signing.secret.to_string())),
                };
            }
            Auth::BodyHmac {
                header,
                encoding,
                prefix,
            } => vec![(
                header,
                format!("{prefix}{}", encoding.encode(&mac(&[signing.body]))),
            )],
            Auth::Timestamped { header } => {
                let t = signing.timestamp.to_string();
                let tag = hex::encode(mac(&[t.as_bytes(), b".", signing.body]));
                vec![(header, format!("t={t},v1={tag}"))]
            }
            Auth::Custom(custom) => (custom.sign)(signing),
            // The signature is the body: nothing to add to a request.
            Auth::SignedBody { .. } => Vec::new(),
        };
        Signed {
            headers,
            query: None,
        }
    }
}

/// A request's signature, as headers or a query parameter.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Default)]
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
    pub query: Option<(&'static str, String)>,
}
