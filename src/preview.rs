//! The preview: what the webhook function would do with a request, with no network at all.
//! It runs the function's own route resolution, verification, parsing and mapping (see
//! `edge::plan`) and shows the exact `contact_sync` fields or bulk import bodies.

use serde_json::{Value, json};

use crate::activecampaign::importer::request_body;
use crate::delivery::import::plan_batch;
use crate::inbound::InboundRequest;
use crate::mapping::{Mapping, Route};
use crate::pipeline::{Arrival, Plan, arrive, interpret};
use crate::secret::AppSecret;
use crate::settings::DEFAULT_MAX_BODY_BYTES;
use crate::sources::util::projection::Projection;

/// `key = value` lines, in the order they are sent (keys not yet URL-encoded).
pub fn field_lines(pairs: &[(String, String)]) -> Vec<String> {
    pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect()
}

/// A JSON report of what the webhook function would do with `req`.
pub fn preview(mapping: &Mapping, secret: &AppSecret, req: &InboundRequest) -> Value {
    preview_found(mapping, secret, req, None)
}

/// [`preview`], with `found` standing in for the sender API's answer to a lookup (the
/// object, as `preview --lookup FILE` reads it: a BigCommerce order with its `products`).
pub fn preview_found(
    mapping: &Mapping,
    secret: &AppSecret,
    req: &InboundRequest,
    found: Option<Value>,
) -> Value {
    let arrival = match arrive(mapping, DEFAULT_MAX_BODY_BYTES, req) {
        Ok(arrival) => arrival,
        Err(error) => return json!({"status": error.status().as_u16(), "error": error.to_string()}),
    };
    let route = arrival.route();
    let mut report = json!({"route": route.name, "sender": route.sender.name});
    if let Arrival::Handshake { reason, .. } = arrival {
        report["outcome"] = json!({"status": "ignored", "reason": reason});
        return report;
    }
    // A failed verification is reported, and the rest still shown: that is how a mapping is
    // checked against a sample whose signature has expired.
    report["verification"] =
        match route
            .sender
            .authenticate(req, secret.route_secrets(&route.name), &route.auth)
        {
            Ok(()) => json!("ok"),
            Err(error) => json!(format!("refused (401): {error}")),
        };
    // The report shows the whole payload, to write new paths against. The function parses only
    // what the route reads, which gives the same contact (tests/preview.rs compares the two).
    let whole_payload = Route {
        projection: Projection::All,
        ..route.clone()
    };
    match interpret(&whole_payload, req) {
        Err(error) => {
            report["outcome"] =
                json!({"status": error.status().as_u16(), "error": error.to_string()})
        }
        Ok(Plan::Answer {
            outcome,
            redirect,
            submission,
        }) => {
            report["submission"] = json!(submission);
            report["outcome"] = outcome.to_response().json_body();
            report["redirect"] = json!(redirect);
        }
        Ok(Plan::Decoy {
            redirect,
            submission,
            ..
        }) => {
            let field = route.guard.honeypot.as_ref().map(|h| h.field.as_str());
            report["submission"] = json!(submission);
            report["outcome"] = json!({
                "status": "honeypot",
                "reason": format!("the honeypot field {:?} is filled: answered as a success, nothing synced", field.unwrap_or_default()),
            });
            report["redirect"] = json!(redirect);
        }
        Ok(Plan::Lookup {
            submission,
            redirect,
        }) => {
            report["submission"] = json!(submission);
            report["redirect"] = json!(redirect);
            if let Some(lookup) = &submission.lookup {
                report["lookup"] = json!(crate::lookup::describe(lookup));
                report["outcome"] = json!({"status": "lookup", "reason": format!(
                    "the webhook carries only ids: {} {} is looked up at delivery (preview --lookup FILE maps a saved answer)",
                    lookup.object, lookup.id
                )});
                if let Some(found) = found {
                    // One contact, or the several of a HubSpot batch read (then listed).
                    let found = crate::lookup::found_submissions(lookup, found, &submission);
                    let mut syncs = Vec::new();
                    let mut outcomes = Vec::new();
                    for found in &found {
                        outcomes.push(match crate::mapping::map_submission(found, route) {
                            crate::mapping::MappingOutcome::Contact(contact) => {
                                syncs.push(json!({"fields": field_lines(&contact.form_pairs()), "body": contact.encode()}));
                                json!({"status": "deliver"})
                            }
                            crate::mapping::MappingOutcome::Skipped { reason } => {
                                json!({"status": "skipped", "reason": reason})
                            }
                            crate::mapping::MappingOutcome::Rejected { reason } => {
                                json!({"status": "rejected", "reason": reason})
                            }
                        });
                    }
                    if let ([one], [outcome]) = (found.as_slice(), outcomes.as_slice()) {
                        report["found"] = json!(one);
                        report["outcome"] = outcome.clone();
                        if let Some(sync) = syncs.pop() {
                            report["contact_sync"] = sync;
                        }
                    } else {
                        report["found"] = json!(found);
                        let status = if syncs.is_empty() {
                            "nothing to deliver"
                        } else {
                            "deliver"
                        };
                        report["outcome"] =
                            json!({"status": status, "contacts": syncs.len(), "each": outcomes});
                        report["contact_sync"] = json!(syncs);
                    }
                }
            }
        }
        Ok(Plan::Contact {
            contact,
            submission,
            redirect,
        }) => {
            report["submission"] = json!(submission);
            report["outcome"] = json!({"status": "deliver"});
            report["redirect"] = json!(redirect);
            if let Some(rule) = &route.guard.captcha {
                report["captcha"] = json!(format!(
                    "the token in {:?} is verified with {} before delivery",
                    rule.field,
                    rule.provider.name()
                ));
            }
            report["contact_sync"] =
                json!({"fields": field_lines(&contact.form_pairs()), "body": contact.encode()});
            if contact.lists.iter().any(|l| {
                !l.may_resubscribe
                    && l.status == crate::activecampaign::contact_sync::ListStatus::Active
            }) {
                report["note"] = json!(
                    "lists are subscribed only if the contact has not unsubscribed from them (one contact_view_email call first)"
                );
            }
        }
        Ok(Plan::Batch {
            contacts, summary, ..
        }) => {
            let rejected: Vec<Value> = summary
                .rejected
                .iter()
                .map(|r| json!({"row": r.row, "email": r.email, "reason": r.reason}))
                .collect();
            // The same split as delivery (`plan_batch`), so the preview shows what is sent.
            let plan = plan_batch(contacts, route.exclude_automations);
            let merged = plan.one_by_one.len() + plan.imports.iter().map(Vec::len).sum::<usize>();
            let one_by_one: Vec<Value> = plan
                .one_by_one
                .iter()
                .map(|contact| json!({"fields": field_lines(&contact.form_pairs())}))
                .collect();
            let imports: Vec<Value> = plan
                .imports
                .iter()
                .map(|part| request_body(part, None, route.exclude_automations))
                .collect();
            report["outcome"] = json!({"status": "deliver batch"});
            report["batch"] = json!({
                "rows": summary.rows,
                "contacts": merged,
                "skipped": summary.skipped,
                "rejected": rejected,
                "contact_sync": one_by_one,
                "bulk_import": imports,
            });
        }
    }
    report
}
