//! The Lambda adapter of the HTTP functions, over `lambda_http`: Function URLs, API Gateway
//! HTTP APIs (payload 1.0 and 2.0), API Gateway REST APIs and ALB target groups all arrive as
//! one [`InboundRequest`], and each answer goes back in the shape its front door expects.
//!
//! `lambda_http` converts an event with `expect`s: a body marked base64 that is not would
//! panic (`Body::from_maybe_encoded`), and so would a host or query that makes no URI. No
//! request may end a container, so the body is checked before the conversion (streaming, in
//! constant memory), and the conversion runs under `catch_unwind` (the release profile
//! unwinds for it); either refusal is answered 400 in the front door's own format.

use std::future::Future;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::SystemTime;

use aws_lambda_events::alb::AlbTargetGroupResponse;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::{Adapter, Body, LambdaEvent, RequestExt, Service, service_fn};
use serde::Serialize;

use crate::functions::import_callback::CallbackApp;
use crate::functions::webhook::WebhookApp;
use crate::inbound::{InboundRequest, parse_query};
use crate::response::HttpResponse;

/// An invocation of an HTTP function, from any front door.
pub type HttpEvent = LambdaEvent<LambdaRequest>;

/// An event that is no request as sent.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not an HTTP event (Function URL, API Gateway or ALB): {0}")]
    NotAnEvent(#[from] serde_json::Error),
    #[error("the event's body is marked base64 but is not valid base64")]
    InvalidBase64,
    #[error("the event's path, host or query does not make a URI")]
    NotAUri,
}

impl EventError {
    fn to_response(&self) -> HttpResponse {
        HttpResponse::json(
            http::StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": self.to_string() }),
        )
    }
}

/// What goes back to the front door: `lambda_http`'s answer in the event's own shape, or the
/// refusal of an event it could not convert, in that shape too.
#[derive(Serialize)]
#[serde(untagged)]
pub enum FrontDoorAnswer<R> {
    Converted(R),
    Refused(serde_json::Value),
}

/// Serves the webhook app until the runtime stops.
pub async fn serve_webhook(app: WebhookApp) -> Result<(), lambda_runtime::Error> {
    let app = std::sync::Arc::new(app);
    lambda_runtime::run(service_fn(move |event: HttpEvent| {
        let app = app.clone();
        async move {
            let deadline = app.deadline(event.context.deadline);
            // Boxed: the handler's future type is deep enough to overflow the compiler's
            // layout query when nested inside the runtime's own futures.
            Ok::<_, lambda_runtime::Error>(
                answer(event, move |req| async move {
                    Box::pin(app.handle(&req, deadline)).await
                })
                .await,
            )
        }
    }))
    .await
}

/// Serves the import-callback app until the runtime stops.
pub async fn serve_callback(app: CallbackApp) -> Result<(), lambda_runtime::Error> {
    let app = std::sync::Arc::new(app);
    lambda_runtime::run(service_fn(move |event: HttpEvent| {
        let app = app.clone();
        async move {
            Ok::<_, lambda_runtime::Error>(
                answer(event, move |req| async move {
                    Box::pin(app.handle(&req, app.deadline())).await
                })
                .await,
            )
        }
    }))
    .await
}

/// One invocation of an HTTP function: the event checked, converted by `lambda_http`,
/// handled, and answered; an event that cannot be converted is answered 400 without reaching
/// the handler.
pub async fn answer<F, Fut>(event: HttpEvent, handle: F) -> FrontDoorAnswer<impl Serialize>
where
    F: FnOnce(InboundRequest) -> Fut + Send,
    Fut: Future<Output = HttpResponse> + Send,
{
    let origin = event.payload.request_origin();
    let refuse = |error: EventError| {
        tracing::warn!(error = %error, "Refused an event that is not a valid request.");
        FrontDoorAnswer::Refused(refusal(&origin, error.to_response()))
    };
    if let Err(error) = check_body(&event.payload) {
        return refuse(error);
    }
    let mut handle = Some(handle);
    let mut adapter = Adapter::from(service_fn(move |req: lambda_http::Request| {
        let handle = handle.take();
        async move {
            let response = match handle {
                Some(handle) => handle(to_inbound(req)).await,
                // An adapter serves one event here: there is no second call.
                None => HttpResponse::json(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    &serde_json::json!({"error": "handler already used"}),
                ),
            };
            Ok::<_, std::convert::Infallible>(into_response(response))
        }
    }));
    // The conversion happens in `call`, before the returned future is polled.
    let converted = catch_unwind(AssertUnwindSafe(|| adapter.call(event)));
    match converted {
        Ok(answered) => match answered.await {
            Ok(response) => FrontDoorAnswer::Converted(response),
            Err(never) => match never {},
        },
        Err(_) => refuse(EventError::NotAUri),
    }
}

/// Reads an event from its JSON text (the preview tool, tests, benchmarks), with the same
/// checks as a live invocation.
pub fn from_json(raw: &str) -> Result<InboundRequest, EventError> {
    let event: LambdaRequest = serde_json::from_str(raw)?;
    check_body(&event)?;
    let request = catch_unwind(AssertUnwindSafe(|| lambda_http::Request::from(event)))
        .map_err(|_| EventError::NotAUri)?;
    Ok(to_inbound(request))
}

/// The event's body and whether it claims to be base64.
fn body_of(event: &LambdaRequest) -> (Option<&str>, bool) {
    match event {
        LambdaRequest::ApiGatewayV1(e) => (e.body.as_deref(), e.is_base64_encoded),
        LambdaRequest::ApiGatewayV2(e) => (e.body.as_deref(), e.is_base64_encoded),
        LambdaRequest::Alb(e) => (e.body.as_deref(), e.is_base64_encoded),
        _ => (None, false),
    }
}

/// What `lambda_http` would panic on in the body: base64 that is not. Decoded through a small
/// buffer, so a 6 MiB body costs no second copy.
fn check_body(event: &LambdaRequest) -> Result<(), EventError> {
    let (Some(body), true) = body_of(event) else {
        return Ok(());
    };
    let mut bytes = body.as_bytes();
    let mut decoder =
        base64::read::DecoderReader::new(&mut bytes, &base64::engine::general_purpose::STANDARD);
    let mut buffer = [0u8; 8192];
    loop {
        match decoder.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err(EventError::InvalidBase64),
        }
    }
}

/// The request as every stage sees it: the route's own path (no API Gateway stage), the
/// query exactly as the front door gives it, the headers, and the body's exact bytes.
pub fn to_inbound(request: lambda_http::Request) -> InboundRequest {
    let (path, called_path) = paths_of(&request);
    let source_ip = source_ip_of(&request);
    let raw_query = request.uri().query().unwrap_or_default().to_string();
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    InboundRequest {
        method: parts.method,
        called_path: called_path.filter(|called| *called != path),
        path,
        query: parse_query(&raw_query),
        raw_query,
        headers: parts.headers,
        body,
        received_at: SystemTime::now(),
        source_ip,
    }
}

/// The client's address as the front door saw it: a Function URL's or API's request context,
/// or for an ALB the last `X-Forwarded-For` entry (the one the load balancer added).
fn source_ip_of(request: &lambda_http::Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
        _ => request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|ip| ip.trim().to_string()),
    }
    .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
}

/// The route's path, and the path as the sender called it (what HubSpot signs):
/// - a Function URL or HTTP API gives its raw path, which carries a named stage before the
///   route's path (`/prod/webhooks/…`) on the execute-api domain;
/// - a REST API gives the resource path (never the stage) and, in its request context, the
///   path as called (with the stage, or a custom domain's base path);
/// - an ALB gives the path as called.
fn paths_of(request: &lambda_http::Request) -> (String, Option<String>) {
    use lambda_http::request::RequestContext;
    let raw = match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    };
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            let stage = context.stage.as_deref().filter(|s| *s != "$default");
            (without_stage(raw, stage).to_string(), Some(raw.to_string()))
        }
        Some(RequestContext::ApiGatewayV1(context)) => (raw.to_string(), context.path.clone()),
        _ => (raw.to_string(), None),
    }
}

/// The route's path: an HTTP API on a named stage puts the stage before it (`/prod/webhooks/…`).
fn without_stage<'p>(path: &'p str, stage: Option<&str>) -> &'p str {
    stage
        .and_then(|stage| path.strip_prefix('/')?.strip_prefix(stage))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path)
}

/// Our answer as an HTTP response, for `lambda_http` to put in the front door's shape.
pub fn into_response(response: HttpResponse) -> http::Response<Body> {
    let mut out = http::Response::new(if response.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(response.body)
    });
    *out.status_mut() = response.status;
    *out.headers_mut() = headers_of(response.headers);
    out
}

/// The answer's headers. Values are built by this crate (JSON type, numbers, validated URLs);
/// one that could still split a header is dropped.
fn headers_of(headers: Vec<(&'static str, String)>) -> HeaderMap {
    headers
        .into_iter()
        .filter_map(|(name, value)| Some((name.parse().ok()?, HeaderValue::from_str(&value).ok()?)))
        .collect()
}

/// A refusal in the shape the front door reads.
fn refusal(origin: &RequestOrigin, response: HttpResponse) -> serde_json::Value {
    let status = response.status;
    let body = Some(aws_lambda_events::encodings::Body::Text(response.body));
    let headers = headers_of(response.headers);
    let shaped = match origin {
        RequestOrigin::Alb => {
            let mut alb = AlbTargetGroupResponse::default();
            alb.status_code = i64::from(status.as_u16());
            alb.status_description = Some(status.to_string());
            // Read instead of `headers` when the target group has multi-value headers on.
            alb.multi_value_headers = headers.clone();
            alb.headers = headers;
            alb.body = body;
            serde_json::to_value(alb)
        }
        RequestOrigin::ApiGatewayV1 => {
            let mut rest = ApiGatewayProxyResponse::default();
            rest.status_code = i64::from(status.as_u16());
            rest.headers = headers;
            rest.body = body;
            serde_json::to_value(rest)
        }
        _ => {
            let mut v2 = ApiGatewayV2httpResponse::default();
            v2.status_code = i64::from(status.as_u16());
            v2.headers = headers;
            v2.body = body;
            serde_json::to_value(v2)
        }
    };
    shaped.unwrap_or_else(|_| serde_json::json!({ "statusCode": status.as_u16() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_stage_is_not_part_of_the_route() {
        assert_eq!(
            without_stage("/prod/webhooks/shop", Some("prod")),
            "/webhooks/shop"
        );
        assert_eq!(
            without_stage("/webhooks/shop", Some("prod")),
            "/webhooks/shop"
        );
        assert_eq!(
            without_stage("/production/x", Some("prod")),
            "/production/x"
        );
        assert_eq!(
            without_stage("/prod/webhooks/shop", None),
            "/prod/webhooks/shop"
        );
    }

    #[test]
    fn an_http_api_on_a_named_stage_routes_by_the_path_after_it() {
        let event = serde_json::json!({
            "version": "2.0", "rawPath": "/prod/webhooks/form", "rawQueryString": "token=t%20u",
            "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com", "content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/prod/webhooks/form"}, "stage": "prod"},
            "body": "{}", "isBase64Encoded": false
        });
        let request = from_json(&event.to_string()).unwrap();
        assert_eq!(request.path, "/webhooks/form");
        assert_eq!(request.called_path.as_deref(), Some("/prod/webhooks/form"));
        assert_eq!(request.raw_query, "token=t%20u");
        assert_eq!(request.query[0], ("token".into(), "t u".into()));
        assert_eq!(&request.body[..], b"{}");
    }

    #[test]
    fn an_http_api_payload_1_0_is_read_like_a_rest_event() {
        let event = serde_json::json!({
            "version": "1.0", "resource": "/webhooks/{route}", "path": "/webhooks/form",
            "httpMethod": "POST",
            "headers": {"Host": "abc.execute-api.us-east-1.amazonaws.com", "Content-Type": "application/x-www-form-urlencoded"},
            "multiValueHeaders": {"Content-Type": ["application/x-www-form-urlencoded"]},
            "queryStringParameters": {"token": "t u"},
            "multiValueQueryStringParameters": {"token": ["t u"]},
            "requestContext": {"httpMethod": "POST", "path": "/webhooks/form", "stage": "$default"},
            "body": "ZW1haWw9YSU0MGIuYw==", "isBase64Encoded": true
        });
        let request = from_json(&event.to_string()).unwrap();
        assert_eq!(request.method, http::Method::POST);
        assert_eq!(request.path, "/webhooks/form");
        assert_eq!(request.called_path, None);
        assert_eq!(request.query_param("token"), Some("t u"));
        assert_eq!(&request.body[..], b"email=a%40b.c");
        assert_eq!(
            request.media_type().as_deref(),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn a_rest_api_keeps_its_resource_path_and_tells_the_called_one() {
        // A stage named like the route's first segment must not be taken off a REST path,
        // which never carries the stage.
        let event = serde_json::json!({
            "resource": "/webhooks/{route}", "path": "/webhooks/form", "httpMethod": "POST",
            "headers": {"Host": "abc.execute-api.us-east-1.amazonaws.com"},
            "requestContext": {"httpMethod": "POST", "path": "/webhooks/webhooks/form", "stage": "webhooks"},
            "body": null, "isBase64Encoded": false
        });
        let request = from_json(&event.to_string()).unwrap();
        assert_eq!(request.path, "/webhooks/form");
        assert_eq!(
            request.called_path.as_deref(),
            Some("/webhooks/webhooks/form")
        );
    }

    #[test]
    fn responses_drop_header_values_that_could_split_a_header() {
        let mut response = HttpResponse::redirect("https://example.com/ok");
        response
            .headers
            .push(("x-bad", "a\r\nSet-Cookie: x=1".to_string()));
        let out = into_response(response);
        assert_eq!(out.status(), 303);
        assert_eq!(out.headers()["location"], "https://example.com/ok");
        assert!(out.headers().get("x-bad").is_none());
        assert!(matches!(out.body(), Body::Empty));
    }
}
