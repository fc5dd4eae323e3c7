//! The request as every stage sees it: independent of Lambda, so it can be built in tests,
//! by the preview tool and by the Lambda adapter alike.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method};

/// One HTTP request as received, with the exact body bytes (base64 already undone).
#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub method: Method,
    /// The route's path (`/webhooks/shop`), without what a front door adds before it.
    pub path: String,
    /// The path as the sender called it, where a front door added to it (an API Gateway
    /// stage: `/prod/webhooks/shop`): what a sender that signs the URL signed.
    pub called_path: Option<String>,
    /// The query string exactly as received (without `?`), for senders that sign the URI.
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub received_at: SystemTime,
    /// The address the front door saw the request come from (a browser's, or a proxy's in
    /// front of it), for captcha checks and per-address limits.
    pub source_ip: Option<String>,
}

impl InboundRequest {
    /// A POST with the given path, headers and body, received now.
    pub fn post(path: &str, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        let (path, raw_query) = match path.split_once('?') {
            Some((path, query)) => (path.to_string(), query.to_string()),
            None => (path.to_string(), String::new()),
        };
        Self {
            method: Method::POST,
            called_path: None,
            path,
            query: parse_query(&raw_query),
            raw_query,
            headers,
            body: body.into(),
            received_at: SystemTime::now(),
            source_ip: None,
        }
    }

    /// A header's value as text; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the body, lower-cased, without parameters (`application/json`).
    pub fn media_type(&self) -> Option<String> {
        let raw = self.header("content-type")?;
        let essence = raw
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        (!essence.is_empty()).then_some(essence)
    }

    /// A parameter of the Content-Type header (`boundary`, `charset`), unquoted.
    pub fn content_type_param(&self, name: &str) -> Option<String> {
        let raw = self.header("content-type")?;
        raw.split(';').skip(1).find_map(|part| {
            let (key, value) = part.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().trim_matches('"').to_string())
        })
    }
}

/// Decodes an `application/x-www-form-urlencoded` query string into pairs.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_drops_parameters_and_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "Multipart/Form-Data; boundary=\"abc\"".parse().unwrap(),
        );
        let req = InboundRequest::post("/webhooks/form?token=t%20x", headers, "");
        assert_eq!(req.media_type().as_deref(), Some("multipart/form-data"));
        assert_eq!(req.content_type_param("boundary").as_deref(), Some("abc"));
        assert_eq!(req.path, "/webhooks/form");
        assert_eq!(req.query_param("token"), Some("t x"));
        assert_eq!(req.raw_query, "token=t%20x");
    }
}
