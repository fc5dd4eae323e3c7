//! What stands between a caller and the sandbox's API: ActiveCampaign's 5 requests/second
//! per account (429 with `Retry-After`), and faults switched on for tests and demos (an error
//! status, a slow answer, an empty body, an HTML error page, a key refused as if revoked),
//! applied to the next N API requests or until cleared.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Sandbox, v1_json, v1_not_authorized, v3_forbidden};
use crate::V1_PATH;

/// ActiveCampaign's documented limit, per account.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 5;
/// The longest `slow` fault, so a typo cannot hang a test run.
const MAX_DELAY_MS: u64 = 60_000;
const INJECTED: &str = "Fault injected by ac-sandbox.";
const RATE_LIMIT_LIMIT: &str = "ratelimit-limit";
const RATE_LIMIT_REMAINING: &str = "ratelimit-remaining";

/// A token bucket: up to `per_second` requests at once, refilled at `per_second` a second, so
/// a client pacing itself at the limit is never refused while a burst over it is.
#[derive(Debug)]
pub(super) struct RateLimiter {
    per_second: u32,
    bucket: std::sync::Mutex<(f64, Instant)>,
    /// How many requests were answered 429, for the state view.
    refused: AtomicU64,
}

impl RateLimiter {
    pub(super) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            bucket: std::sync::Mutex::new((f64::from(per_second), Instant::now())),
            refused: AtomicU64::new(0),
        }
    }

    pub(super) fn per_second(&self) -> u32 {
        self.per_second
    }

    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Takes a token: `Ok(remaining)`, or `Err(whole seconds until one is free)`.
    fn take(&self) -> Result<u32, u64> {
        let rate = f64::from(self.per_second);
        let Ok(mut bucket) = self.bucket.lock() else {
            return Ok(0);
        };
        let now = Instant::now();
        let (tokens, at) = *bucket;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * rate).min(rate);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            // Whole tokens left, as the `RateLimit-Remaining` header counts them.
            Ok((tokens - 1.0).floor() as u32)
        } else {
            *bucket = (tokens, now);
            self.refused.fetch_add(1, Ordering::Relaxed);
            // `Retry-After` is in whole seconds: round up, never 0.
            Err((((1.0 - tokens) / rate).ceil() as u64).max(1))
        }
    }
}

/// Which fault, as posted to `/sandbox/faults` or given in `AC_SANDBOX_FAULT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with `status` (default 503) and a JSON error; the request is not handled.
    Status,
    /// Wait `delay_ms`, then handle the request.
    Slow,
    /// Handle the request, then answer with an empty body (ActiveCampaign has been seen to
    /// save the contact and answer nothing).
    Empty,
    /// Answer an HTML error page with `status` (default 502); the request is not handled.
    Html,
    /// Answer as if the request's key were wrong (a revoked or rotated key): v1 with
    /// `result_code` 0 and the bad-key status (200 unless configured), v3 with 403. The
    /// request is not handled.
    WrongKey,
}

/// A fault and how many API requests it applies to (`None`: until cleared).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// `Retry-After` seconds sent with a `status` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

impl Fault {
    /// Parses and checks a fault's JSON, naming what is wrong.
    pub fn from_json(text: &[u8]) -> Result<Self, String> {
        let fault: Fault = serde_json::from_slice(text).map_err(|e| format!("fault: {e}"))?;
        if let Some(status) = fault.status
            && StatusCode::from_u16(status).is_err()
        {
            return Err(format!("fault: status {status} is not an HTTP status"));
        }
        if fault.status.is_some() && !matches!(fault.kind, FaultKind::Status | FaultKind::Html) {
            return Err("fault: status applies to kinds status and html".into());
        }
        match (fault.kind, fault.delay_ms) {
            (FaultKind::Slow, None) => return Err("fault: slow needs delay_ms".into()),
            (FaultKind::Slow, Some(ms)) if ms > MAX_DELAY_MS => {
                return Err(format!("fault: delay_ms is at most {MAX_DELAY_MS}"));
            }
            (FaultKind::Slow, _) | (_, None) => {}
            (_, Some(_)) => return Err("fault: delay_ms applies to kind slow".into()),
        }
        if fault.count == Some(0) {
            return Err("fault: count is at least 1 (leave it out for until cleared)".into());
        }
        Ok(fault)
    }
}

/// The fault for this request, if one is on; counts it down.
fn next_fault(sandbox: &Sandbox) -> Option<Fault> {
    let mut active = sandbox.fault.lock().ok()?;
    let fault = active.clone()?;
    match fault.count {
        Some(1) => *active = None,
        Some(n) => {
            if let Some(current) = active.as_mut() {
                current.count = Some(n - 1);
            }
        }
        None => {}
    }
    Some(fault)
}

fn status_or(fault: &Fault, default: StatusCode) -> StatusCode {
    fault
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(default)
}

/// An error status with a JSON error body (and `Retry-After` if asked for).
fn status_fault(fault: &Fault) -> Response {
    let status = status_or(fault, StatusCode::SERVICE_UNAVAILABLE);
    let mut response = v1_json(
        status,
        json!({"errors": [{"title": status.canonical_reason().unwrap_or("Error"), "detail": INJECTED}]}),
    );
    if let Some(seconds) = fault.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// An error page such as a load balancer serves: HTML, not JSON.
fn html_fault(fault: &Fault) -> Response {
    let status = status_or(fault, StatusCode::BAD_GATEWAY);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<html><head><title>{status}</title></head><body><h1>{status}</h1><p>{INJECTED}</p></body></html>"
        ),
    )
        .into_response()
}

/// The answer to a key refused by a `wrong_key` fault, as each API answers a wrong key.
fn wrong_key(sandbox: &Sandbox, request: &Request) -> Response {
    if request.uri().path() == V1_PATH {
        v1_not_authorized(sandbox)
    } else {
        v3_forbidden()
    }
}

/// Every API request passes here: faults first (as a failing load balancer would answer
/// before the account is reached), then the account's rate limit.
pub(super) async fn gate(State(sandbox): State<Sandbox>, request: Request, next: Next) -> Response {
    let fault = next_fault(&sandbox);
    if let Some(fault) = &fault {
        match fault.kind {
            FaultKind::Status => return status_fault(fault),
            FaultKind::Html => return html_fault(fault),
            FaultKind::Slow => {
                let delay = Duration::from_millis(fault.delay_ms.unwrap_or(0));
                tokio::time::sleep(delay).await;
            }
            FaultKind::Empty => {}
            FaultKind::WrongKey => return wrong_key(&sandbox, &request),
        }
    }
    let mut response = match admission(&sandbox, &request) {
        Admission::Refused { limit, retry_after } => {
            return too_many_requests(limit, retry_after);
        }
        Admission::Uncounted => next.run(request).await,
        Admission::Counted { limit, remaining } => {
            let mut response = next.run(request).await;
            let headers = response.headers_mut();
            headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(limit));
            headers.insert(RATE_LIMIT_REMAINING, HeaderValue::from(remaining));
            response
        }
    };
    if fault.is_some_and(|f| f.kind == FaultKind::Empty) {
        *response.body_mut() = Body::empty();
        response.headers_mut().remove(header::CONTENT_TYPE);
        response.headers_mut().remove(header::CONTENT_LENGTH);
    }
    response
}

/// What the account's rate limit says about one request.
enum Admission {
    /// Not counted: a wrong key (which the handler refuses) or the Bulk Importer, which has
    /// its own limit.
    Uncounted,
    Counted {
        limit: u32,
        remaining: u32,
    },
    Refused {
        limit: u32,
        retry_after: u64,
    },
}

fn admission(sandbox: &Sandbox, request: &Request) -> Admission {
    let Some(limiter) = sandbox.limiter.as_ref() else {
        return Admission::Uncounted;
    };
    if !sandbox.key_ok(request.headers())
        || request.uri().path() == super::importer::BULK_IMPORT_PATH
    {
        return Admission::Uncounted;
    }
    let limit = limiter.per_second();
    match limiter.take() {
        Ok(remaining) => Admission::Counted { limit, remaining },
        Err(retry_after) => Admission::Refused { limit, retry_after },
    }
}

/// The 429: ActiveCampaign documents its status and headers, not its body, so the body is
/// v3's error shape.
fn too_many_requests(limit: u32, retry_after: u64) -> Response {
    let mut response = v1_json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"errors": [{"title": "Too Many Requests", "detail": format!("Up to {limit} requests per second are allowed.")}]}),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(limit));
    headers.insert(RATE_LIMIT_REMAINING, HeaderValue::from(0u32));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_limit_is_refused_for_whole_seconds() {
        let limiter = RateLimiter::new(5);
        for left in (0..5).rev() {
            assert_eq!(limiter.take(), Ok(left));
        }
        assert_eq!(limiter.take(), Err(1));
    }

    #[test]
    fn faults_are_checked() {
        let ok = Fault::from_json(br#"{"kind":"status","status":500,"count":2}"#).unwrap();
        assert_eq!(
            (ok.kind, ok.status, ok.count),
            (FaultKind::Status, Some(500), Some(2))
        );
        let revoked = Fault::from_json(br#"{"kind":"wrong_key","count":3}"#).unwrap();
        assert_eq!(
            (revoked.kind, revoked.count),
            (FaultKind::WrongKey, Some(3))
        );
        assert_eq!(json!(revoked), json!({"kind": "wrong_key", "count": 3}));
        for bad in [
            r#"{"kind":"slow"}"#,
            r#"{"kind":"slow","delay_ms":999999}"#,
            r#"{"kind":"status","status":99}"#,
            r#"{"kind":"empty","status":500}"#,
            r#"{"kind":"empty","delay_ms":5}"#,
            r#"{"kind":"status","count":0}"#,
            r#"{"kind":"teapot"}"#,
            r#"{"kind":"empty","colour":1}"#,
            r#"{"kind":"wrong_key","status":403}"#,
            r#"{"kind":"wrong_key","delay_ms":5}"#,
            r#"{"kind":"wrongkey"}"#,
        ] {
            assert!(Fault::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
