//! The `lambda_http` adapter: Function URL / HTTP API v2 events in, responses out.
//! It holds no logic beyond converting types.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};

use super::{HttpResponse, WebhookApp};
use crate::inbound::{InboundRequest, parse_query};

/// Serves the app until the runtime stops.
pub async fn serve(app: WebhookApp) -> Result<(), lambda_http::Error> {
    let app = Arc::new(app);
    lambda_http::run(service_fn(move |request: Request| {
        let app = app.clone();
        async move { Ok::<_, lambda_http::Error>(handle(&app, request).await) }
    }))
    .await
}

/// One invocation.
pub async fn handle(app: &WebhookApp, request: Request) -> Response<Body> {
    let runtime_deadline_ms = request.lambda_context_ref().map_or(0, |ctx| ctx.deadline);
    let deadline = app.deadline(runtime_deadline_ms);
    let inbound = to_inbound(request);
    into_lambda_response(app.handle(&inbound, deadline).await)
}

/// Converts a Lambda request; `lambda_http` has already undone `isBase64Encoded`.
pub fn to_inbound(request: Request) -> InboundRequest {
    let raw_path = request.raw_http_path();
    let path = if raw_path.is_empty() {
        request.uri().path().to_string()
    } else {
        raw_path.to_string()
    };
    let raw_query = request.uri().query().unwrap_or_default().to_string();
    let query = parse_query(&raw_query);
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        #[allow(unreachable_patterns)]
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    InboundRequest {
        method: parts.method,
        path,
        raw_query,
        query,
        headers: parts.headers,
        body,
        received_at: SystemTime::now(),
    }
}

pub fn into_lambda_response(response: HttpResponse) -> Response<Body> {
    let mut out = Response::new(if response.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(response.body)
    });
    *out.status_mut() = response.status;
    for (name, value) in response.headers {
        // Values are built by this crate (JSON type, numbers, validated URLs); a value that
        // still fails to convert is dropped rather than allowed to panic.
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            out.headers_mut().insert(name, value);
        }
    }
    out
}
