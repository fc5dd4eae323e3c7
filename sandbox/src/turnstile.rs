//! A stand-in for Cloudflare Turnstile's `siteverify`, so a local stack can verify a form's
//! captcha with no network: it answers as Turnstile does for Cloudflare's documented test
//! secret keys (developers.cloudflare.com/turnstile/troubleshooting/testing), and refuses
//! every other secret as Turnstile refuses an unknown one.

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Where Turnstile serves it.
pub(crate) const SITEVERIFY_PATH: &str = "/turnstile/v0/siteverify";

/// Always passes validation.
pub const PASSING_SECRET: &str = "1x0000000000000000000000000000000AA";
/// Always fails validation.
pub const FAILING_SECRET: &str = "2x0000000000000000000000000000000AA";
/// Answers that the token was already spent.
pub const SPENT_SECRET: &str = "3x0000000000000000000000000000000AA";

pub(crate) async fn siteverify(body: Bytes) -> Response {
    // Turnstile takes a form or JSON.
    let fields: Vec<(String, String)> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
            .collect(),
        _ => form_urlencoded::parse(&body).into_owned().collect(),
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let failure = |code: &str| json!({"success": false, "error-codes": [code], "messages": []});
    let answer = match (field("secret"), field("response")) {
        (None, _) => failure("missing-input-secret"),
        (Some(_), None) => failure("missing-input-response"),
        (Some(PASSING_SECRET), Some(_)) => json!({
            "success": true,
            "challenge_ts": "2026-01-01T00:00:00.000Z",
            "hostname": "example.com",
            "error-codes": [],
            "action": "",
            "cdata": "",
            "metadata": {"interactive": false},
        }),
        (Some(FAILING_SECRET), Some(_)) => failure("invalid-input-response"),
        (Some(SPENT_SECRET), Some(_)) => failure("timeout-or-duplicate"),
        (Some(_), Some(_)) => failure("invalid-input-secret"),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}
