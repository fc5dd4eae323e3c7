//! What a public route trusts of a request beyond its authentication. A form route's token is
//! in the page's source, so anyone can post to it: these keys let a route refuse what a browser
//! on its own site would never send (another origin, a filled honeypot, a missing captcha)
//! and bound what a stranger's payload can do (tags, re-subscribing).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::template::{Expression, Placeholder};
use crate::inbound::InboundRequest;
use crate::submission::Submission;

/// The longest a captcha provider is waited for.
pub const CAPTCHA_TIMEOUT: Duration = Duration::from_secs(3);
/// reCAPTCHA v3's own suggestion for a first threshold.
pub const DEFAULT_MIN_SCORE: f64 = 0.5;

/// A route's defences, compiled.
#[derive(Debug, Clone, Default)]
pub struct RouteGuard {
    /// A hidden field that people leave empty and bots fill.
    pub honeypot: Option<Honeypot>,
    /// Origins a browser may post from (`scheme://host[:port]`, lower case); empty: any.
    pub allowed_origins: Vec<AllowedOrigin>,
    pub captcha: Option<CaptchaRule>,
    /// Per payload placeholder of a tag template, the values it may take.
    pub tag_values: BTreeMap<String, Vec<String>>,
    /// Requests a minute from one source address, per container.
    pub rate_limit_per_ip: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Honeypot {
    /// The field name as configured, for logs.
    pub field: String,
    pub path: Expression,
}

/// One entry of `allowed_origins`: an exact origin, or `scheme://*.domain` for its subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: String,
    /// The host, or the domain after `*.`.
    host: String,
    port: Option<u16>,
    subdomains: bool,
}

/// The captcha providers whose server-side verification is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaProvider {
    Turnstile,
    Hcaptcha,
    Recaptcha,
}

impl CaptchaProvider {
    /// The provider's verification endpoint.
    pub fn siteverify_url(self) -> &'static str {
        match self {
            CaptchaProvider::Turnstile => {
                "https://challenges.cloudflare.com/turnstile/v0/siteverify"
            }
            CaptchaProvider::Hcaptcha => "https://api.hcaptcha.com/siteverify",
            CaptchaProvider::Recaptcha => "https://www.google.com/recaptcha/api/siteverify",
        }
    }

    /// The form field the provider's widget adds to the form.
    pub fn token_field(self) -> &'static str {
        match self {
            CaptchaProvider::Turnstile => "cf-turnstile-response",
            CaptchaProvider::Hcaptcha => "h-captcha-response",
            CaptchaProvider::Recaptcha => "g-recaptcha-response",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CaptchaProvider::Turnstile => "turnstile",
            CaptchaProvider::Hcaptcha => "hcaptcha",
            CaptchaProvider::Recaptcha => "recaptcha",
        }
    }
}

/// What to do when the provider cannot be asked (timeout, 5xx, an answer that is not JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptchaOutage {
    /// 503 with `Retry-After`: nothing is synced unverified.
    #[default]
    Refuse,
    /// Deliver unverified (counted), but never re-subscribe on its word.
    Accept,
}

/// A route's captcha, compiled.
#[derive(Debug, Clone)]
pub struct CaptchaRule {
    pub provider: CaptchaProvider,
    /// The field holding the widget's token.
    pub field: String,
    pub path: Expression,
    /// Scores below this are refused (reCAPTCHA v3, hCaptcha Enterprise).
    pub min_score: f64,
    /// The action the widget must have been rendered with.
    pub action: Option<String>,
    pub on_outage: CaptchaOutage,
}

/// `captcha = "turnstile"` or a table with options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum CaptchaFile {
    Provider(CaptchaProvider),
    Table(CaptchaTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CaptchaTable {
    provider: CaptchaProvider,
    field: Option<String>,
    min_score: Option<f64>,
    action: Option<String>,
    #[serde(default)]
    on_outage: CaptchaOutage,
}

/// A field name of a form (top-level key), or a JSONPath into the payload.
fn field_path(field: &str) -> Result<Expression, String> {
    if field.trim().is_empty() {
        return Err("name a field".into());
    }
    if field.starts_with('$') {
        return Expression::compile(field);
    }
    let quoted = serde_json::to_string(field).map_err(|e| e.to_string())?;
    // JSONPath string literals take single quotes here; a name with one is escaped.
    let inner = &quoted[1..quoted.len() - 1];
    Expression::compile(&format!("$['{}']", inner.replace('\'', "\\'")))
}

impl Honeypot {
    pub(super) fn compile(field: &str) -> Result<Self, String> {
        Ok(Self {
            field: field.to_string(),
            path: field_path(field)?,
        })
    }

    /// Whether the payload filled the field: any value but empty text, `false` or `null`.
    pub fn filled(&self, submission: &Submission) -> bool {
        self.path
            .first_node(&submission.payload)
            .is_some_and(|value| match value {
                serde_json::Value::Null | serde_json::Value::Bool(false) => false,
                serde_json::Value::String(text) => !text.trim().is_empty(),
                serde_json::Value::Array(items) => !items.is_empty(),
                serde_json::Value::Object(map) => !map.is_empty(),
                _ => true,
            })
    }
}

impl CaptchaFile {
    pub(super) fn compile(&self) -> Result<CaptchaRule, String> {
        let table = match self {
            CaptchaFile::Provider(provider) => CaptchaTable {
                provider: *provider,
                field: None,
                min_score: None,
                action: None,
                on_outage: CaptchaOutage::default(),
            },
            CaptchaFile::Table(table) => table.clone(),
        };
        let min_score = table.min_score.unwrap_or(DEFAULT_MIN_SCORE);
        if !(0.0..=1.0).contains(&min_score) {
            return Err("min_score is between 0.0 and 1.0".into());
        }
        let field = table
            .field
            .unwrap_or_else(|| table.provider.token_field().to_string());
        Ok(CaptchaRule {
            provider: table.provider,
            path: field_path(&field)?,
            field,
            min_score,
            action: table.action.filter(|a| !a.trim().is_empty()),
            on_outage: table.on_outage,
        })
    }
}

impl CaptchaRule {
    /// The widget's token in the payload, if any.
    pub fn token<'s>(&self, submission: &'s Submission) -> Option<&'s str> {
        self.path
            .first_node(&submission.payload)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

impl AllowedOrigin {
    pub(super) fn parse(source: &str) -> Result<Self, String> {
        let text = source.trim().trim_end_matches('/').to_ascii_lowercase();
        let (scheme, rest) = text
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "https" || *scheme == "http")
            .ok_or_else(|| format!("{source:?} is not an origin: write https://host[:port]"))?;
        let (subdomains, rest) = match rest.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let url = url::Url::parse(&format!("{scheme}://{rest}"))
            .map_err(|e| format!("{source:?} is not an origin: {e}"))?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{source:?} is an origin with no path: write https://host[:port]"
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{source:?} has no host"))?
            .to_string();
        Ok(Self {
            scheme: scheme.to_string(),
            host,
            port: url.port(),
            subdomains,
        })
    }

    fn allows(&self, origin: &url::Url) -> bool {
        let Some(host) = origin.host_str() else {
            return false;
        };
        let host_matches = if self.subdomains {
            host.strip_suffix(self.host.as_str())
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
        } else {
            host == self.host
        };
        origin.scheme() == self.scheme && host_matches && origin.port() == self.port
    }
}

/// Why a browser's post was refused (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this route does not accept posts from the page's origin")]
    Origin,
    #[error("captcha token missing")]
    CaptchaMissing,
    #[error("captcha verification failed")]
    CaptchaFailed,
}

impl RouteGuard {
    /// A browser's post names its page in `Origin` (or, without one, `Referer`): it must be
    /// one of the route's. Requests without either (server-to-server senders) pass.
    pub fn check_origin(&self, req: &InboundRequest) -> Result<(), Refusal> {
        if self.allowed_origins.is_empty() {
            return Ok(());
        }
        let claimed = if req.headers.contains_key("origin") {
            req.header("origin")
        } else if req.headers.contains_key("referer") {
            req.header("referer")
        } else {
            return Ok(());
        };
        let claimed = claimed.ok_or(Refusal::Origin)?;
        // `Origin: null` (a sandboxed frame, a file, a redirect across origins) is no origin.
        let origin = url::Url::parse(claimed.trim()).map_err(|_| Refusal::Origin)?;
        if self.allowed_origins.iter().any(|a| a.allows(&origin)) {
            Ok(())
        } else {
            Err(Refusal::Origin)
        }
    }

    /// A value the payload gave a tag placeholder, as the route lists it (its spelling, not
    /// the payload's), or `None` when the route's list for that placeholder lacks it. A
    /// placeholder without a list takes any value: configuration validation gives one to every
    /// payload placeholder of a token route.
    pub fn tag_value(&self, placeholder: &Placeholder<'_>, value: String) -> Option<String> {
        let Some(allowed) = placeholder
            .allow_list_key()
            .and_then(|key| self.tag_values.get(&key))
        else {
            return Some(value);
        };
        let given = value.trim();
        allowed
            .iter()
            .find(|a| a.trim().eq_ignore_ascii_case(given))
            .map(|a| a.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn request(headers: &[(&str, &str)]) -> InboundRequest {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        InboundRequest::post("/webhooks/f", map, "")
    }

    fn guard(origins: &[&str]) -> RouteGuard {
        RouteGuard {
            allowed_origins: origins
                .iter()
                .map(|o| AllowedOrigin::parse(o).unwrap())
                .collect(),
            ..RouteGuard::default()
        }
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let g = guard(&[
            "https://Example.com/",
            "https://*.shop.example",
            "http://127.0.0.1:8080",
        ]);
        let ok = |h: &[(&str, &str)]| g.check_origin(&request(h)).is_ok();
        assert!(ok(&[("origin", "https://example.com")]));
        assert!(ok(&[("origin", "https://example.com:443")]));
        assert!(ok(&[("origin", "https://eu.shop.example")]));
        assert!(ok(&[("origin", "http://127.0.0.1:8080")]));
        assert!(!ok(&[("origin", "http://example.com")]));
        assert!(!ok(&[("origin", "https://example.com.evil.test")]));
        assert!(!ok(&[("origin", "https://evilexample.com")]));
        assert!(!ok(&[("origin", "https://shop.example")]));
        assert!(!ok(&[("origin", "http://127.0.0.1:8081")]));
        assert!(!ok(&[("origin", "null")]));
        // Referer stands in for a missing Origin; neither: a server, which passes.
        assert!(ok(&[("referer", "https://example.com/signup?x=1")]));
        assert!(!ok(&[("referer", "https://other.test/signup")]));
        assert!(ok(&[]));
        // A header that is not text is no origin.
        let mut odd = request(&[]);
        odd.headers
            .insert("origin", http::HeaderValue::from_bytes(b"\xff").unwrap());
        assert!(g.check_origin(&odd).is_err());
        assert!(
            guard(&[])
                .check_origin(&request(&[("origin", "https://x.test")]))
                .is_ok()
        );
    }

    #[test]
    fn origins_are_validated() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/page",
            "https://",
        ] {
            assert!(AllowedOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_honeypot_is_filled_by_any_value_but_nothing() {
        let honeypot = Honeypot::compile("website").unwrap();
        let with = |payload: serde_json::Value| {
            honeypot.filled(&Submission {
                payload,
                ..Submission::default()
            })
        };
        assert!(with(serde_json::json!({"website": "http://spam.test"})));
        assert!(with(serde_json::json!({"website": ["x"]})));
        assert!(!with(serde_json::json!({"website": "  "})));
        assert!(!with(serde_json::json!({"website": false})));
        assert!(!with(serde_json::json!({"other": "x"})));
        let quoted = Honeypot::compile("it's").unwrap();
        assert!(quoted.filled(&Submission {
            payload: serde_json::json!({"it's": "x"}),
            ..Submission::default()
        }));
    }
}
