//! The network-free part of handling a webhook, the one sequence every caller runs: route →
//! handshake ([`arrive`]), then authenticate → origin → content type → parse → honeypot →
//! captcha token → topic → map ([`verify_and_interpret`]). The webhook function delivers what it plans, the benchmarks
//! time it, and the preview prints it (verifying apart, to show a refusal and go on).

use std::collections::HashMap;

use http::Method;

use crate::activecampaign::ContactSync;
use crate::inbound::InboundRequest;
use crate::mapping::config::is_valid_route_name;
use crate::mapping::guard::Refusal;
use crate::mapping::{Mapping, MappingOutcome, Route, map_submission};
use crate::response::{BatchSummary, RejectedRow, WebhookError, WebhookOutcome};
use crate::secret::AppSecret;
use crate::submission::{BatchRow, Parsed, Submission};

/// Where webhook routes live: `/webhooks/{route}`.
pub const WEBHOOK_PREFIX: &str = "/webhooks/";

/// What a verified request comes to before anything is delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Answered without delivering anything (ignored, skipped, rejected).
    Answer {
        outcome: WebhookOutcome,
        redirect: Option<String>,
        submission: Option<Box<Submission>>,
    },
    /// One contact to deliver.
    Contact {
        contact: Box<ContactSync>,
        submission: Box<Submission>,
        redirect: Option<String>,
    },
    /// A filled honeypot: answered exactly as a success, and nothing delivered.
    Decoy {
        redirect: Option<String>,
        submission: Box<Submission>,
        /// The email the contact would have had (a real success's id depends on it).
        email: Option<String>,
    },
    /// A reference to look up in the sender's API: mapped once it is found.
    Lookup {
        submission: Box<Submission>,
        redirect: Option<String>,
    },
    /// A batch: its mapped contacts, the row each email came from, and what mapping decided.
    Batch {
        contacts: Vec<ContactSync>,
        row_of_email: HashMap<String, usize>,
        summary: BatchSummary,
    },
}

/// Where a request arrived: its route, and whether it is the sender's unsigned handshake.
#[derive(Debug, Clone, Copy)]
pub enum Arrival<'m> {
    /// A handshake or ping to answer 200 with this reason, unverified.
    Handshake {
        route: &'m Route,
        reason: &'static str,
    },
    /// A request to verify with the route's secrets.
    Request(&'m Route),
}

impl<'m> Arrival<'m> {
    pub fn route(&self) -> &'m Route {
        match *self {
            Arrival::Handshake { route, .. } | Arrival::Request(route) => route,
        }
    }
}

/// The checks that need no secret: the route (404, 405, 413), then the handshake.
pub fn arrive<'m>(
    mapping: &'m Mapping,
    max_body_bytes: usize,
    req: &InboundRequest,
) -> Result<Arrival<'m>, WebhookError> {
    let route = resolve_route(mapping, max_body_bytes, req)?;
    Ok(match route.sender.handshake_of(req) {
        Some(reason) => Arrival::Handshake { route, reason },
        None => Arrival::Request(route),
    })
}

/// Authenticates `req` with the route's secrets (401), then [`interpret`]s it.
pub fn verify_and_interpret(
    route: &Route,
    req: &InboundRequest,
    secret: &AppSecret,
) -> Result<Plan, WebhookError> {
    route
        .sender
        .authenticate(req, secret.route_secrets(&route.name), &route.auth)?;
    interpret(route, req)
}

/// The route a request is for, after the checks that need no secret: 404, 405, 413.
pub fn resolve_route<'m>(
    mapping: &'m Mapping,
    max_body_bytes: usize,
    req: &InboundRequest,
) -> Result<&'m Route, WebhookError> {
    let route_name = req
        .path
        .trim_end_matches('/')
        .strip_prefix(WEBHOOK_PREFIX)
        .filter(|name| is_valid_route_name(name))
        .ok_or(WebhookError::NotFound)?;
    let route = mapping.route(route_name).ok_or(WebhookError::NotFound)?;
    if req.method != Method::POST {
        return Err(WebhookError::MethodNotAllowed { allow: "POST" });
    }
    let limit = route
        .sender
        .max_body_bytes
        .map_or(max_body_bytes, |l| l.max(max_body_bytes));
    if req.body.len() > limit {
        return Err(WebhookError::PayloadTooLarge {
            size: req.body.len(),
            limit,
        });
    }
    Ok(route)
}

/// Origin (403), content type (415), body (400), honeypot, topic and mapping, for a request
/// already authenticated.
pub fn interpret(route: &Route, req: &InboundRequest) -> Result<Plan, WebhookError> {
    route.guard.check_origin(req)?;
    let media_type = req.media_type();
    if !route.sender.accepts_media_type(media_type.as_deref()) {
        return Err(WebhookError::UnsupportedMediaType(
            media_type.unwrap_or_else(|| "(none)".into()),
        ));
    }
    let mut submission = match route.sender.parse_reading(req, &route.projection)? {
        Parsed::Submission(submission) => submission,
        Parsed::Ignored { reason } => {
            return Ok(Plan::Answer {
                outcome: WebhookOutcome::Ignored { reason },
                redirect: None,
                submission: None,
            });
        }
        Parsed::Batch(rows) => return Ok(plan_batch(route, &rows)),
    };
    let redirect = route
        .redirect
        .clone()
        .filter(|_| submission.from_browser_form);
    if let Some(honeypot) = &route.guard.honeypot
        && honeypot.filled(&submission)
    {
        let email = match map_submission(&submission, route) {
            MappingOutcome::Contact(contact) => Some(contact.email),
            _ => None,
        };
        return Ok(Plan::Decoy {
            redirect,
            submission,
            email,
        });
    }
    // The token itself is verified at delivery (the provider is asked over the network).
    if let Some(captcha) = &route.guard.captcha
        && captcha.token(&submission).is_none()
    {
        return Err(Refusal::CaptchaMissing.into());
    }
    // Several objects, each with its own events' topics: the route's topics pick among them.
    let mut unhandled_objects = None;
    let lookup_topics_checked = submission
        .lookup
        .as_ref()
        .is_some_and(|l| !l.objects.is_empty());
    if let Some(lookup) = submission.lookup.clone().filter(|_| lookup_topics_checked) {
        let handled = |_: &str, object: Option<&crate::lookup::NamedObject>| {
            object.is_none_or(|o| o.topics.iter().any(|t| route.handles(Some(t))))
        };
        match lookup.retain(handled) {
            Some(kept) => {
                if let Some(topic) = kept.objects.get(&kept.id).and_then(|o| o.topics.first()) {
                    submission.topic = Some(topic.clone());
                }
                submission.lookup = Some(kept);
            }
            None => {
                let mut topics: Vec<&str> = lookup
                    .objects
                    .values()
                    .flat_map(|o| o.topics.iter().map(String::as_str))
                    .collect();
                topics.sort_unstable();
                topics.dedup();
                unhandled_objects = Some(format!(
                    "topic {} is not handled by route {}",
                    topics.join(", "),
                    route.name
                ));
            }
        }
    }
    let answer = |outcome| Plan::Answer {
        outcome,
        redirect: redirect.clone(),
        submission: Some(submission.clone()),
    };
    if let Some(reason) = unhandled_objects {
        return Ok(answer(WebhookOutcome::Ignored { reason }));
    }
    if !lookup_topics_checked && !route.handles(submission.topic.as_deref()) {
        let topic = submission.topic.as_deref().unwrap_or_default();
        let reason = format!("topic {topic} is not handled by route {}", route.name);
        return Ok(answer(WebhookOutcome::Ignored { reason }));
    }
    if submission.lookup.is_some() {
        return Ok(Plan::Lookup {
            submission,
            redirect,
        });
    }
    Ok(match map_submission(&submission, route) {
        MappingOutcome::Contact(contact) => Plan::Contact {
            contact,
            submission,
            redirect,
        },
        MappingOutcome::Skipped { reason } => answer(WebhookOutcome::Skipped { reason }),
        MappingOutcome::Rejected { reason } => answer(WebhookOutcome::Rejected { reason }),
    })
}

fn plan_batch(route: &Route, rows: &[BatchRow]) -> Plan {
    let mut summary = BatchSummary {
        rows: rows.len(),
        ..BatchSummary::default()
    };
    let mut contacts = Vec::with_capacity(rows.len());
    let mut row_of_email = HashMap::new();
    for BatchRow { row, submission } in rows {
        match map_submission(submission, route) {
            MappingOutcome::Contact(contact) => {
                row_of_email.entry(contact.email.clone()).or_insert(*row);
                contacts.push(*contact);
            }
            MappingOutcome::Skipped { .. } => summary.skipped += 1,
            MappingOutcome::Rejected { reason } => summary.rejected.push(RejectedRow {
                row: *row,
                email: submission.contact.email.clone(),
                reason,
            }),
        }
    }
    Plan::Batch {
        contacts,
        row_of_email,
        summary,
    }
}
