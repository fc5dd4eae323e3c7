//! Read-only JSON views of what the sandbox holds (contacts, lists, tags, custom fields, and
//! all of it at once), and the admin endpoints that switch faults on and off and rotate the
//! account's key.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::{ACTIVE, Fault, Sandbox, StoredContact, v1_json};

fn status_name(status: u8) -> &'static str {
    if status == ACTIVE {
        "active"
    } else {
        "unsubscribed"
    }
}

/// A contact with its lists and fields named, as a person reads it.
fn contact_view(sandbox: &Sandbox, contact: &StoredContact) -> Value {
    let lists: Vec<Value> = contact
        .lists
        .iter()
        .map(|(id, status)| {
            let name = sandbox.account.list(*id).map(|l| l.name.as_str());
            json!({"id": id, "name": name, "status": status_name(*status)})
        })
        .collect();
    let fields: Vec<Value> = contact
        .fields
        .iter()
        .map(|(id, value)| {
            let field = sandbox.account.field_by_key(&id.to_string());
            json!({
                "id": id,
                "perstag": field.map(|f| format!("%{}%", f.perstag)),
                "title": field.map(|f| f.title.as_str()),
                "value": value,
            })
        })
        .collect();
    json!({
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
        "organization": contact.organization,
        "tags": contact.tags,
        "lists": lists,
        "fields": fields,
    })
}

fn contacts_json(sandbox: &Sandbox) -> Value {
    let contacts: Vec<Value> = sandbox
        .contacts()
        .values()
        .map(|c| contact_view(sandbox, c))
        .collect();
    Value::Array(contacts)
}

fn lists_json(sandbox: &Sandbox) -> Value {
    let contacts = sandbox.contacts();
    let lists: Vec<Value> = sandbox
        .account
        .lists
        .iter()
        .map(|list| {
            let count = |wanted: bool| {
                contacts
                    .values()
                    .filter(|c| c.lists.get(&list.id).is_some_and(|s| (*s == ACTIVE) == wanted))
                    .count()
            };
            json!({"id": list.id, "name": list.name, "active": count(true), "unsubscribed": count(false)})
        })
        .collect();
    Value::Array(lists)
}

fn tags_json(sandbox: &Sandbox) -> Value {
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    for contact in sandbox.contacts().values() {
        for tag in &contact.tags {
            *tags.entry(tag.clone()).or_default() += 1;
        }
    }
    Value::Array(
        tags.into_iter()
            .map(|(tag, contacts)| json!({"tag": tag, "contacts": contacts}))
            .collect(),
    )
}

fn fields_json(sandbox: &Sandbox) -> Value {
    let contacts = sandbox.contacts();
    Value::Array(
        sandbox
            .account
            .fields
            .iter()
            .map(|field| {
                let values = contacts
                    .values()
                    .filter(|c| c.fields.contains_key(&field.id))
                    .count();
                json!({"id": field.id, "perstag": format!("%{}%", field.perstag), "title": field.title, "values": values})
            })
            .collect(),
    )
}

fn current_fault(sandbox: &Sandbox) -> Value {
    sandbox
        .fault
        .lock()
        .ok()
        .and_then(|f| f.clone())
        .map_or(Value::Null, |f| json!(f))
}

pub(super) async fn contacts(State(sandbox): State<Sandbox>) -> Response {
    v1_json(
        StatusCode::OK,
        json!({ "contacts": contacts_json(&sandbox) }),
    )
}

pub(super) async fn lists(State(sandbox): State<Sandbox>) -> Response {
    v1_json(StatusCode::OK, json!({ "lists": lists_json(&sandbox) }))
}

pub(super) async fn tags(State(sandbox): State<Sandbox>) -> Response {
    v1_json(StatusCode::OK, json!({ "tags": tags_json(&sandbox) }))
}

pub(super) async fn fields(State(sandbox): State<Sandbox>) -> Response {
    v1_json(StatusCode::OK, json!({ "fields": fields_json(&sandbox) }))
}

/// Everything at once, with the rate limit, the fault switched on and what was ignored.
pub(super) async fn state(State(sandbox): State<Sandbox>) -> Response {
    let (imports, ignored) = sandbox
        .store
        .lock()
        .map(|s| {
            (
                s.imports.values().cloned().collect::<Vec<_>>(),
                s.notes.iter().cloned().collect::<Vec<_>>(),
            )
        })
        .unwrap_or_default();
    v1_json(
        StatusCode::OK,
        json!({
            "contacts": contacts_json(&sandbox),
            "lists": lists_json(&sandbox),
            "tags": tags_json(&sandbox),
            "fields": fields_json(&sandbox),
            "imports": imports,
            "rate_limit_per_second": sandbox.limiter.as_ref().map_or(0, |l| l.per_second()),
            "rate_limited_requests": sandbox.limiter.as_ref().map_or(0, |l| l.refused()),
            "bad_key_status": sandbox.bad_key_status.as_u16(),
            "fault": current_fault(&sandbox),
            "ignored": ignored,
        }),
    )
}

pub(super) async fn fault(State(sandbox): State<Sandbox>) -> Response {
    v1_json(StatusCode::OK, json!({ "fault": current_fault(&sandbox) }))
}

/// `POST /sandbox/faults` with e.g. `{"kind":"status","status":503,"count":3}`.
pub(super) async fn set_fault(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match Fault::from_json(&body) {
        Ok(fault) => {
            if !sandbox.quiet {
                println!(
                    "ActiveCampaign stand-in: fault switched on: {}",
                    json!(fault)
                );
            }
            sandbox.set_fault(Some(fault));
            v1_json(StatusCode::OK, json!({ "fault": current_fault(&sandbox) }))
        }
        Err(error) => v1_json(StatusCode::BAD_REQUEST, json!({ "error": error })),
    }
}

pub(super) async fn clear_fault(State(sandbox): State<Sandbox>) -> Response {
    sandbox.set_fault(None);
    v1_json(StatusCode::OK, json!({ "fault": null }))
}

/// `POST /sandbox/api-key` with `{"api_key":"new-key"}`: the account's key is rotated, so
/// callers still using the old one are refused as with a wrong key.
pub(super) async fn set_api_key(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let key = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["api_key"].as_str().map(str::to_string))
        .filter(|k| !k.is_empty());
    match key {
        Some(key) => {
            if !sandbox.quiet {
                println!("ActiveCampaign stand-in: API key rotated");
            }
            sandbox.set_api_key(key);
            v1_json(StatusCode::OK, json!({ "rotated": true }))
        }
        None => v1_json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "expected {\"api_key\": \"<a non-empty key>\"}" }),
        ),
    }
}
