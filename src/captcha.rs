//! Server-side captcha verification: the token a widget (Cloudflare Turnstile, hCaptcha,
//! reCAPTCHA) put in a form is sent with the route's secret to the provider's `siteverify`
//! endpoint, whose answer decides. All three take the same form-encoded request (`secret`,
//! `response`, optional `remoteip`) and answer `{"success": …, "error-codes": […]}`, with a
//! `score` (reCAPTCHA v3, hCaptcha Enterprise) and an `action` (reCAPTCHA v3, Turnstile).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::mapping::guard::{CAPTCHA_TIMEOUT, CaptchaProvider, CaptchaRule};

/// The largest answer read from a provider (theirs are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// The longest token sent to a provider. Turnstile's are at most 2,048 characters; a longer
/// one is no widget's, and could make a provider refuse the request as too large, which must
/// not pass for an outage on a route that accepts outages.
pub const MAX_TOKEN_CHARS: usize = 4096;
/// Error codes that mean our configuration is wrong, not the visitor: no retry helps.
const CONFIGURATION_ERRORS: &[&str] = &[
    "missing-input-secret",
    "invalid-input-secret",
    "sitekey-secret-mismatch",
    "invalid-or-already-seen-secret",
];
/// Error codes of a provider that failed on its side.
const PROVIDER_ERRORS: &[&str] = &["internal-error"];

/// What the provider said of a token.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Passed,
    /// A bot, an expired or reused token, a low score, another action: 403.
    Failed(String),
    /// The provider could not be asked or failed: the route's `on_outage` decides.
    Unavailable(String),
    /// The provider refused our secret: 503 until the secret is fixed, whatever `on_outage`.
    Misconfigured(String),
}

/// One connection pool for every provider.
#[derive(Clone)]
pub struct CaptchaVerifier {
    http: reqwest::Client,
    /// Replaces every provider's endpoint (`CAPTCHA_SITEVERIFY_URL`: local runs and tests).
    endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Answer {
    success: bool,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
    score: Option<f64>,
    action: Option<String>,
}

impl CaptchaVerifier {
    pub fn new(endpoint: Option<String>) -> Result<Self, crate::https::ClientBuildError> {
        Ok(Self {
            http: crate::https::client(CAPTCHA_TIMEOUT)?,
            endpoint,
        })
    }

    fn url(&self, provider: CaptchaProvider) -> &str {
        self.endpoint
            .as_deref()
            .unwrap_or_else(|| provider.siteverify_url())
    }

    /// Asks the provider about `token`, waiting at most [`CAPTCHA_TIMEOUT`] and never past
    /// `deadline`.
    pub async fn verify(
        &self,
        rule: &CaptchaRule,
        secret: &SecretString,
        token: &str,
        remote_ip: Option<&str>,
        deadline: Instant,
    ) -> Verdict {
        if token.len() > MAX_TOKEN_CHARS {
            return Verdict::Failed(format!("a token longer than {MAX_TOKEN_CHARS} characters"));
        }
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(CAPTCHA_TIMEOUT);
        if budget.is_zero() {
            return Verdict::Unavailable("no time left to ask the provider".into());
        }
        let mut form = vec![("secret", secret.expose_secret()), ("response", token)];
        if let Some(ip) = remote_ip {
            form.push(("remoteip", ip));
        }
        let body = match serde_urlencoded::to_string(&form) {
            Ok(body) => body,
            Err(_) => return Verdict::Failed("a token that cannot be sent".into()),
        };
        let sent = self
            .http
            .post(self.url(rule.provider))
            .timeout(budget)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                return Verdict::Unavailable(format!("no answer within {} ms", budget.as_millis()));
            }
            Err(error) if error.is_connect() => {
                return Verdict::Unavailable("connection failed".into());
            }
            Err(_) => return Verdict::Unavailable("request failed".into()),
        };
        let status = response.status();
        // Their failing (5xx) or throttling us (429) is an outage; a 4xx is about the request.
        if status.is_server_error() || status.as_u16() == 429 {
            return Verdict::Unavailable(format!("HTTP {}", status.as_u16()));
        }
        if !status.is_success() {
            return Verdict::Failed(format!("HTTP {}", status.as_u16()));
        }
        let body = match read_capped(response).await {
            Ok(body) => body,
            Err(why) => return Verdict::Unavailable(why),
        };
        match serde_json::from_slice::<Answer>(&body) {
            Ok(answer) => judge(rule, &answer),
            Err(_) => Verdict::Unavailable("an answer that is not siteverify JSON".into()),
        }
    }
}

fn judge(rule: &CaptchaRule, answer: &Answer) -> Verdict {
    let codes = || answer.error_codes.join(", ");
    if !answer.success {
        let any = |list: &[&str]| {
            answer
                .error_codes
                .iter()
                .any(|c| list.contains(&c.as_str()))
        };
        if any(CONFIGURATION_ERRORS) {
            return Verdict::Misconfigured(format!(
                "{} refused the route's captcha secret ({})",
                rule.provider.name(),
                codes()
            ));
        }
        if any(PROVIDER_ERRORS) {
            return Verdict::Unavailable(codes());
        }
        return Verdict::Failed(if answer.error_codes.is_empty() {
            "not a valid token".into()
        } else {
            codes()
        });
    }
    if let Some(score) = answer.score
        && score < rule.min_score
    {
        return Verdict::Failed(format!("score {score} is below {}", rule.min_score));
    }
    if let Some(expected) = &rule.action
        && answer.action.as_deref() != Some(expected.as_str())
    {
        return Verdict::Failed(format!(
            "action {:?}, not {expected:?}",
            answer.action.as_deref().unwrap_or("")
        ));
    }
    Verdict::Passed
}

async fn read_capped(mut response: reqwest::Response) -> Result<bytes::Bytes, String> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "the answer was cut off".to_string())?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("an answer larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
