//! HTTP answers of the webhook function, and the mapping of every error to its status.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use thiserror::Error;

use crate::sources::{AuthError, ParseError};

const CONTENT_TYPE_JSON: &str = "application/json";
/// The whole body of a 503: nothing of the cause, which only the log holds.
pub const PUBLIC_UNAVAILABLE: &str = "temporarily unavailable: retry later";

/// An answer, independent of Lambda.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", CONTENT_TYPE_JSON.to_string())],
            body: body.to_string(),
        }
    }

    /// `303 See Other` to a form's thank-you page.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: StatusCode::SEE_OTHER,
            headers: vec![("location", location.to_string())],
            body: String::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (tests and the demo read it).
    pub fn json_body(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A request that ended without an accepted contact. Each variant has one status.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WebhookError {
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("body of {size} bytes is over the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("content type {0} is not accepted on this route")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error(transparent)]
    BadRequest(#[from] ParseError),
    /// A browser post the route does not take: another origin, a failed captcha.
    #[error(transparent)]
    Forbidden(#[from] crate::mapping::guard::Refusal),
    /// Something we depend on failed. `reason` is for the log only: it can name the
    /// secret's ARN (the account id) or echo the store's error, so callers, who may be
    /// anyone, are answered [`PUBLIC_UNAVAILABLE`].
    #[error("{reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
    /// The same delivery (or import) is being handled now: the caller retries.
    #[error("{what}")]
    Busy {
        what: &'static str,
        retry_after: Duration,
    },
    /// This source address is over the route's per-address limit.
    #[error("too many requests from this address")]
    TooManyRequests { retry_after: Duration },
    /// The mapped contact cannot be queued as it is (a retry cannot help).
    #[error(transparent)]
    ContactTooLarge(#[from] crate::delivery::message::TooLarge),
    /// A batch too big to finish within one invocation (nothing was sent).
    #[error("{0}")]
    BatchTooSlow(String),
}

impl WebhookError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::NotFound => StatusCode::NOT_FOUND,
            WebhookError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            WebhookError::PayloadTooLarge { .. }
            | WebhookError::ContactTooLarge(_)
            | WebhookError::BatchTooSlow(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebhookError::Unavailable { .. } | WebhookError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            WebhookError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// What the caller is told: the error, except for an outage's cause.
    pub fn public_message(&self) -> String {
        match self {
            WebhookError::Unavailable { .. } => PUBLIC_UNAVAILABLE.to_string(),
            other => other.to_string(),
        }
    }

    pub fn to_response(&self) -> HttpResponse {
        let mut response =
            HttpResponse::json(self.status(), &json!({ "error": self.public_message() }));
        match self {
            WebhookError::MethodNotAllowed { allow } => {
                response.headers.push(("allow", allow.to_string()));
            }
            WebhookError::Unavailable { retry_after, .. }
            | WebhookError::Busy { retry_after, .. }
            | WebhookError::TooManyRequests { retry_after } => {
                let secs = retry_after.as_secs().max(1);
                response.headers.push(("retry-after", secs.to_string()));
            }
            _ => {}
        }
        response
    }
}

/// What a batch came to, row by row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchSummary {
    pub rows: usize,
    pub synced: usize,
    /// Contacts durably queued for the sync-worker (queue mode), and in how many messages.
    pub queued: usize,
    pub messages: usize,
    pub skipped: usize,
    pub imports: Vec<crate::delivery::ImportedBatch>,
    pub rejected: Vec<RejectedRow>,
}

/// A row that can never be synced as sent (its row number counts from 1; 0 if unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub row: usize,
    pub email: Option<String>,
    pub reason: String,
}

/// A request that ended well: answered 200 (or 303 for a browser form).
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    Synced {
        subscriber_id: Option<u64>,
    },
    Queued {
        message_id: String,
    },
    Skipped {
        reason: String,
    },
    Ignored {
        reason: String,
    },
    Rejected {
        reason: String,
    },
    Batch(Box<BatchSummary>),
    /// A repeat of a batch already handled (same route and bytes): its first answer.
    Duplicate {
        first: serde_json::Value,
    },
}

impl WebhookOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            WebhookOutcome::Synced { .. } => "synced",
            WebhookOutcome::Queued { .. } => "queued",
            WebhookOutcome::Skipped { .. } => "skipped",
            WebhookOutcome::Ignored { .. } => "ignored",
            WebhookOutcome::Rejected { .. } => "rejected",
            // The importer has queued the contacts; it reports completion to the callback.
            WebhookOutcome::Batch(summary) if !summary.imports.is_empty() || summary.queued > 0 => {
                "queued"
            }
            WebhookOutcome::Batch(_) => "synced",
            WebhookOutcome::Duplicate { .. } => "duplicate",
        }
    }

    pub fn to_response(&self) -> HttpResponse {
        let body = match self {
            WebhookOutcome::Synced {
                subscriber_id: Some(id),
            } => {
                json!({ "status": self.label(), "subscriber_id": id })
            }
            WebhookOutcome::Synced {
                subscriber_id: None,
            } => json!({ "status": self.label() }),
            WebhookOutcome::Queued { message_id } => {
                json!({ "status": self.label(), "message_id": message_id })
            }
            WebhookOutcome::Batch(summary) => json!({
                "status": self.label(),
                "rows": summary.rows,
                "synced": summary.synced,
                "imported": summary.imports.iter().map(|i| i.queued_contacts).sum::<usize>(),
                "imports": summary.imports.iter().map(|i| json!({"batch_id": i.batch_id, "queued_contacts": i.queued_contacts})).collect::<Vec<_>>(),
                "queued": summary.queued,
                "skipped": summary.skipped,
                "rejected": summary.rejected.iter().map(|r| json!({"row": r.row, "email": r.email, "reason": r.reason})).collect::<Vec<_>>(),
            }),
            WebhookOutcome::Skipped { reason }
            | WebhookOutcome::Ignored { reason }
            | WebhookOutcome::Rejected { reason } => {
                json!({ "status": self.label(), "reason": reason })
            }
            WebhookOutcome::Duplicate { first } => {
                json!({ "status": self.label(), "first": first })
            }
        };
        HttpResponse::json(StatusCode::OK, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_status_and_headers() {
        let unavailable = WebhookError::Unavailable {
            reason: "ActiveCampaign unavailable: HTTP 503".into(),
            retry_after: Duration::from_millis(200),
        }
        .to_response();
        assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.header("retry-after"), Some("1"));
        assert_eq!(
            unavailable.json_body(),
            json!({"error": PUBLIC_UNAVAILABLE}),
            "the cause stays in the log"
        );
        let not_allowed = WebhookError::MethodNotAllowed { allow: "POST" }.to_response();
        assert_eq!(not_allowed.header("allow"), Some("POST"));
        assert_eq!(
            WebhookError::from(AuthError::SignatureMismatch)
                .to_response()
                .json_body(),
            json!({"error": "signature does not match"})
        );
    }
}
