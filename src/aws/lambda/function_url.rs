//! The Lambda adapter of the HTTP functions: Function URL (HTTP API v2) events in, responses
//! out. It holds no logic beyond converting types.
//!
//! The event is read with the crate's own small types rather than through `lambda_http`,
//! whose conversion panics on a body that claims base64 but is not: no request may panic.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use lambda_runtime::{LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

use crate::functions::import_callback::CallbackApp;
use crate::functions::webhook::WebhookApp;
use crate::inbound::{InboundRequest, parse_query};
use crate::response::HttpResponse;

/// A Function URL / HTTP API v2 event: the parts this product reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlEvent {
    #[serde(default)]
    pub raw_path: Option<String>,
    #[serde(default)]
    pub raw_query_string: Option<String>,
    /// Lower-cased names; repeated headers arrive joined with commas.
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
    #[serde(default)]
    pub cookies: Option<Vec<String>>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
    #[serde(default)]
    pub request_context: RequestContext,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestContext {
    #[serde(default)]
    pub http: HttpDescription,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpDescription {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path: Option<String>,
}

/// The response document Function URLs and HTTP APIs expect.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub is_base64_encoded: bool,
    /// Always present (empty): readers of this document, `cargo lambda watch` among them,
    /// require the key.
    pub cookies: Vec<String>,
}

/// An event that cannot be a request as sent.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a Function URL event: {0}")]
    NotAnEvent(#[from] serde_json::Error),
    #[error("the event's body is marked base64 but is not valid base64")]
    InvalidBase64,
    #[error("the event's HTTP method is not valid")]
    InvalidMethod,
}

impl EventError {
    fn to_response(&self) -> HttpResponse {
        HttpResponse::json(
            http::StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": self.to_string() }),
        )
    }
}

/// Serves the webhook app until the runtime stops.
pub async fn serve_webhook(app: WebhookApp) -> Result<(), lambda_runtime::Error> {
    let app = Arc::new(app);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<FunctionUrlEvent>| {
        let app = app.clone();
        async move {
            let deadline = app.deadline(event.context.deadline);
            // Boxed: the handler's future type is deep enough to overflow the compiler's
            // layout query when nested inside the runtime's own futures.
            let response = answer(event.payload, |req| async move {
                Box::pin(app.handle(&req, deadline)).await
            })
            .await;
            Ok::<_, lambda_runtime::Error>(response)
        }
    }))
    .await
}

/// Serves the import-callback app until the runtime stops.
pub async fn serve_callback(app: CallbackApp) -> Result<(), lambda_runtime::Error> {
    let app = Arc::new(app);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<FunctionUrlEvent>| {
            let app = app.clone();
            async move {
                let response = answer(event.payload, |req| async move {
                    // Boxed for the same reason as the webhook's adapter.
                    Box::pin(app.handle(&req, app.deadline())).await
                })
                .await;
                Ok::<_, lambda_runtime::Error>(response)
            }
        },
    ))
    .await
}

/// One invocation of any HTTP function: the event converted, handled, and answered; an event
/// that cannot be converted is answered 400 without reaching the handler.
pub async fn answer<F, Fut>(event: FunctionUrlEvent, handle: F) -> FunctionUrlResponse
where
    F: FnOnce(InboundRequest) -> Fut,
    Fut: Future<Output = HttpResponse>,
{
    let response = match to_inbound(event) {
        Ok(request) => handle(request).await,
        Err(error) => {
            tracing::warn!(error = %error, "Refused an event that is not a valid request.");
            error.to_response()
        }
    };
    into_response(response)
}

/// Reads an event from its JSON text (the preview tool, tests).
pub fn from_json(raw: &str) -> Result<InboundRequest, EventError> {
    to_inbound(serde_json::from_str(raw)?)
}

/// Converts an event: headers that HTTP could not have carried are dropped, a base64 body
/// is decoded, and the path is the raw one the sender used.
pub fn to_inbound(event: FunctionUrlEvent) -> Result<InboundRequest, EventError> {
    let method = if event.request_context.http.method.is_empty() {
        Method::GET
    } else {
        Method::from_bytes(event.request_context.http.method.as_bytes())
            .map_err(|_| EventError::InvalidMethod)?
    };
    let body = match event.body {
        None => Bytes::new(),
        Some(body) if event.is_base64_encoded => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|_| EventError::InvalidBase64)?,
        ),
        Some(body) => Bytes::from(body),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in event.headers.unwrap_or_default() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    if let Some(cookies) = event.cookies.filter(|c| !c.is_empty())
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(http::header::COOKIE, value);
    }
    let path = event
        .raw_path
        .filter(|p| !p.is_empty())
        .or(event.request_context.http.path)
        .unwrap_or_else(|| "/".to_string());
    let raw_query = event.raw_query_string.unwrap_or_default();
    Ok(InboundRequest {
        method,
        path,
        query: parse_query(&raw_query),
        raw_query,
        headers,
        body,
        received_at: SystemTime::now(),
    })
}

pub fn into_response(response: HttpResponse) -> FunctionUrlResponse {
    FunctionUrlResponse {
        status_code: response.status.as_u16(),
        headers: response
            .headers
            .into_iter()
            // Values are built by this crate (JSON type, numbers, validated URLs); one that
            // could still split a header is dropped.
            .filter(|(_, value)| HeaderValue::from_str(value).is_ok())
            .map(|(name, value)| (name.to_string(), value))
            .collect(),
        body: Some(response.body).filter(|b| !b.is_empty()),
        is_base64_encoded: false,
        cookies: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: serde_json::Value) -> FunctionUrlEvent {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn converts_a_function_url_event() {
        let request = to_inbound(event(json!({
            "rawPath": "/webhooks/form",
            "rawQueryString": "token=a%20b&x=1",
            "headers": {"content-type": "application/json", "bad header": "x", "x-ok": "caf\u{e9}"},
            "cookies": ["a=1", "b=2"],
            "body": "eyJhIjoxfQ==",
            "isBase64Encoded": true,
            "requestContext": {"http": {"method": "POST", "path": "/webhooks/form"}}
        })))
        .unwrap();
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/webhooks/form");
        assert_eq!(request.raw_query, "token=a%20b&x=1");
        assert_eq!(request.query[0], ("token".into(), "a b".into()));
        assert_eq!(&request.body[..], br#"{"a":1}"#);
        assert_eq!(request.headers["content-type"], "application/json");
        assert_eq!(request.headers["cookie"], "a=1; b=2");
        assert!(request.headers.get("bad header").is_none());
    }

    #[test]
    fn a_body_that_is_not_base64_is_an_error_not_a_panic() {
        let error = to_inbound(event(json!({
            "rawPath": "/webhooks/form", "body": "%%% not base64", "isBase64Encoded": true,
            "requestContext": {"http": {"method": "POST"}}
        })))
        .unwrap_err();
        assert!(matches!(error, EventError::InvalidBase64));
        assert_eq!(error.to_response().status, http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_method_that_is_not_a_token_is_an_error() {
        let error = to_inbound(event(json!({
            "rawPath": "/", "requestContext": {"http": {"method": "GE T"}}
        })))
        .unwrap_err();
        assert!(matches!(error, EventError::InvalidMethod));
    }

    #[test]
    fn responses_drop_header_values_that_could_split_a_header() {
        let mut response = HttpResponse::redirect("https://example.com/ok");
        response
            .headers
            .push(("x-bad", "a\r\nSet-Cookie: x=1".to_string()));
        let out = into_response(response);
        assert_eq!(out.status_code, 303);
        assert_eq!(out.headers["location"], "https://example.com/ok");
        assert!(!out.headers.contains_key("x-bad"));
        assert_eq!(out.body, None);
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            serde_json::json!({"statusCode": 303, "headers": {"location": "https://example.com/ok"},
                               "isBase64Encoded": false, "cookies": []})
        );
    }
}
