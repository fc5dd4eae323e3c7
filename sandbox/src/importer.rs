//! The stand-in's Bulk Contact Importer: JSON validation that rejects a whole request for one
//! bad contact, the 250-contact and 400,000-byte limits, 100 requests per minute (answered
//! HTTP 400 "Rate limit exceeded."; 20 a minute for single-contact requests), asynchronous processing with `import/info`'s status
//! progression, the rule that `subscribe` never re-subscribes, and the completion callback.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Sandbox, v1_json, v3_forbidden};
use ac_webhook_sync::email::normalise_email;

pub const BULK_IMPORT_PATH: &str = "/api/3/import/bulk_import";
pub const IMPORT_INFO_PATH: &str = "/api/3/import/info";
const MAX_CONTACTS: usize = 250;
const MAX_BYTES: usize = 400_000;
const IMPORTS_PER_MINUTE: usize = 100;
/// The importer's separate limit for requests of one contact.
const SINGLE_IMPORTS_PER_MINUTE: usize = 20;
/// How long each status lasts before the next, so a caller can watch the progression.
const STEP: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Serialize)]
pub struct StoredImport {
    pub batch_id: String,
    pub contacts: usize,
    /// `false` (as JSON `false`), then `waiting`, `active`, `completed`.
    pub status: Value,
    /// Ids of the contacts the import created.
    pub success: Vec<String>,
    /// Emails of contacts that failed.
    pub failure: Vec<String>,
}

fn refused(message: &str, reasons: Value) -> Response {
    v1_json(
        StatusCode::BAD_REQUEST,
        json!({"success": 0, "message": message, "failureReasons": reasons}),
    )
}

/// Counts one more request against a per-minute limit, unless the last minute's are `limit`.
fn admit(times: &mut std::collections::VecDeque<Instant>, limit: usize) -> bool {
    let now = Instant::now();
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
    {
        times.pop_front();
    }
    if times.len() >= limit {
        return false;
    }
    times.push_back(now);
    true
}

pub async fn bulk_import(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !sandbox.key_ok(&headers) {
        return v3_forbidden();
    }
    {
        let Ok(mut store) = sandbox.store.lock() else {
            return v1_json(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
        };
        if !admit(&mut store.import_times, IMPORTS_PER_MINUTE) {
            return refused(
                "Rate limit exceeded.",
                json!(["Up to 100 imports may be requested per minute. Please try again later."]),
            );
        }
    }
    if body.len() > MAX_BYTES {
        return refused(
            "Payload too large.",
            json!([format!("The request body is over {MAX_BYTES} bytes.")]),
        );
    }
    let invalid = "JSON payload did not pass validation. The import was not queued for processing.";
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refused(invalid, json!(["The request body is not JSON."]));
    };
    let Some(contacts) = request["contacts"].as_array().filter(|c| !c.is_empty()) else {
        return refused(
            invalid,
            json!(["'contacts' is a required, non-empty array."]),
        );
    };
    if contacts.len() > MAX_CONTACTS {
        return refused(
            invalid,
            json!([format!(
                "Up to {MAX_CONTACTS} contacts may be imported per request."
            )]),
        );
    }
    let failures: Vec<Value> = contacts
        .iter()
        .enumerate()
        .filter(|(_, c)| c["email"].as_str().and_then(normalise_email).is_none())
        .map(|(i, _)| json!({"contact": i, "failureReason": "Field 'email' incorrect format"}))
        .collect();
    if !failures.is_empty() {
        return refused(invalid, Value::Array(failures));
    }
    let count = contacts.len();
    if count == 1 {
        let Ok(mut store) = sandbox.store.lock() else {
            return v1_json(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
        };
        if !admit(&mut store.single_import_times, SINGLE_IMPORTS_PER_MINUTE) {
            return refused(
                "Rate limit exceeded.",
                json!([
                    "Up to 20 single-contact imports may be requested per minute. Please try again later."
                ]),
            );
        }
    }
    let batch_id = format!(
        "{:08x}-{:04x}-sandbox",
        fastrand::u32(..),
        fastrand::u16(..)
    );
    let import = StoredImport {
        batch_id: batch_id.clone(),
        contacts: count,
        status: Value::Bool(false),
        success: Vec::new(),
        failure: Vec::new(),
    };
    if let Ok(mut store) = sandbox.store.lock() {
        store.imports.insert(batch_id.clone(), import);
    }
    tokio::spawn(process(sandbox.clone(), batch_id.clone(), request));
    v1_json(
        StatusCode::OK,
        json!({"success": 1, "queued_contacts": count, "batchId": batch_id, "message": "Contact import queued"}),
    )
}

fn set_status(sandbox: &Sandbox, batch_id: &str, status: &str) {
    if let Ok(mut store) = sandbox.store.lock()
        && let Some(import) = store.imports.get_mut(batch_id)
    {
        import.status = json!(status);
    }
}

/// How the next imports end (each count is used up one import at a time), and how many of
/// the next callbacks are never sent: `POST /sandbox/import-faults`
/// `{"fail": 1, "interrupt": 0, "lose_callbacks": 2}`. A failed or interrupted import writes
/// no contact, as ActiveCampaign's `failed` ("can no longer be retried") and `interrupted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFaults {
    #[serde(default)]
    pub fail: u32,
    #[serde(default)]
    pub interrupt: u32,
    #[serde(default)]
    pub lose_callbacks: u32,
}

pub async fn import_faults(State(sandbox): State<Sandbox>) -> Response {
    let faults = sandbox
        .import_faults
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    v1_json(StatusCode::OK, json!(faults))
}

pub async fn set_import_faults(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<ImportFaults>(&body) {
        Ok(faults) => {
            if let Ok(mut current) = sandbox.import_faults.lock() {
                *current = faults.clone();
            }
            v1_json(StatusCode::OK, json!(faults))
        }
        Err(error) => v1_json(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("import faults: {error}")}),
        ),
    }
}

pub async fn clear_import_faults(State(sandbox): State<Sandbox>) -> Response {
    if let Ok(mut current) = sandbox.import_faults.lock() {
        *current = ImportFaults::default();
    }
    v1_json(StatusCode::OK, json!(ImportFaults::default()))
}

/// The fault for the import now ending (its end status, if not completed) and whether its
/// callback is lost; counts them down.
fn next_import_fault(sandbox: &Sandbox) -> (Option<&'static str>, bool) {
    let Ok(mut faults) = sandbox.import_faults.lock() else {
        return (None, false);
    };
    let status = if faults.fail > 0 {
        faults.fail -= 1;
        Some("failed")
    } else if faults.interrupt > 0 {
        faults.interrupt -= 1;
        Some("interrupted")
    } else {
        None
    };
    let lost = faults.lose_callbacks > 0;
    if lost {
        faults.lose_callbacks -= 1;
    }
    (status, lost)
}

/// Runs an import the way ActiveCampaign does, later: waiting, active, then the contacts are
/// written and the import completes, and the callback (if any) is called.
async fn process(sandbox: Sandbox, batch_id: String, request: Value) {
    tokio::time::sleep(STEP).await;
    set_status(&sandbox, &batch_id, "waiting");
    tokio::time::sleep(STEP).await;
    set_status(&sandbox, &batch_id, "active");
    tokio::time::sleep(STEP).await;
    let (ended, callback_lost) = next_import_fault(&sandbox);
    let (created, failed) = match ended {
        None => apply(&sandbox, &request),
        Some(_) => (Vec::new(), Vec::new()),
    };
    if let Ok(mut store) = sandbox.store.lock()
        && let Some(import) = store.imports.get_mut(&batch_id)
    {
        import.success = created.clone();
        import.failure = failed.clone();
        import.status = json!(ended.unwrap_or("completed"));
    }
    if callback_lost {
        if !sandbox.quiet {
            println!("ActiveCampaign stand-in lost the callback of import {batch_id} (fault)");
        }
        return;
    }
    if !sandbox.quiet {
        println!(
            "ActiveCampaign stand-in ended import {batch_id} {}: {} created, {} failed",
            ended.unwrap_or("completed"),
            created.len(),
            failed.len()
        );
    }
    if let Some(callback) = request.get("callback").filter(|c| c.is_object()) {
        fire_callback(callback, created.len(), failed.len()).await;
    }
}

/// Writes the contacts: tags added, fields by id, `subscribe` never re-subscribing someone
/// who unsubscribed, `unsubscribe` always. Returns created ids and failed emails.
fn apply(sandbox: &Sandbox, request: &Value) -> (Vec<String>, Vec<String>) {
    let mut created = Vec::new();
    let failed = Vec::new();
    let Ok(mut store) = sandbox.store.lock() else {
        return (created, failed);
    };
    for item in request["contacts"].as_array().into_iter().flatten() {
        let Some(email) = item["email"].as_str().and_then(normalise_email) else {
            continue;
        };
        let (contact, is_new) = store.upsert(&email);
        if is_new {
            created.push(contact.id.to_string());
        }
        for (key, target) in [
            ("first_name", &mut contact.first_name),
            ("last_name", &mut contact.last_name),
            ("phone", &mut contact.phone),
            ("customer_acct_name", &mut contact.organization),
        ] {
            if let Some(value) = item[key].as_str() {
                *target = Some(value.to_string());
            }
        }
        for tag in item["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            contact.tags.insert(tag.to_string());
        }
        for field in item["fields"].as_array().into_iter().flatten() {
            // Fields the account does not have are skipped, as in contact_sync.
            if let (Some(id), Some(value)) = (field["id"].as_u64(), field["value"].as_str())
                && sandbox.account.field_by_key(&id.to_string()).is_some()
            {
                contact.fields.insert(id, value.to_string());
            }
        }
        for list in item["subscribe"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["listid"].as_u64())
            .filter(|id| sandbox.account.list(*id).is_some())
        {
            // The importer cannot re-subscribe: an unsubscribed contact stays unsubscribed.
            contact.lists.entry(list).or_insert(super::ACTIVE);
        }
        for list in item["unsubscribe"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["listid"].as_u64())
            .filter(|id| sandbox.account.list(*id).is_some())
        {
            contact.lists.insert(list, super::UNSUBSCRIBED);
        }
    }
    (created, failed)
}

fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["key"].as_str()?.to_string(),
                p["value"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Calls the callback with its params (query for GET, form body for POST) and headers.
async fn fire_callback(callback: &Value, created: usize, failed: usize) {
    let Some(url) = callback["url"].as_str() else {
        return;
    };
    let client = reqwest::Client::new();
    let mut params = pairs(&callback["params"]);
    let get = callback["requestType"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("GET"));
    let mut request = if get {
        let mut full = url.to_string();
        full.push(if url.contains('?') { '&' } else { '?' });
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(&params);
        full.push_str(&query.finish());
        client.get(full)
    } else {
        if callback["detailed_results"].as_str() != Some("false") {
            params.push(("success".into(), created.to_string()));
            params.push(("failure".into(), failed.to_string()));
        }
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(&params);
        client
            .post(url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.finish())
    };
    for (key, value) in pairs(&callback["headers"]) {
        request = request.header(key, value);
    }
    if let Err(error) = request.timeout(Duration::from_secs(10)).send().await {
        eprintln!(
            "ActiveCampaign stand-in could not call the import callback: {}",
            error.without_url()
        );
    }
}

pub async fn import_info(
    State(sandbox): State<Sandbox>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !sandbox.key_ok(&headers) {
        return v3_forbidden();
    }
    let Some(batch_id) = query.get("batchId") else {
        return v1_json(
            StatusCode::BAD_REQUEST,
            json!({"success": 0, "message": "'batchId' is a required field."}),
        );
    };
    let import = sandbox
        .store
        .lock()
        .ok()
        .and_then(|s| s.imports.get(batch_id).cloned());
    match import {
        Some(import) => v1_json(
            StatusCode::OK,
            json!({"status": import.status, "success": import.success, "failure": import.failure}),
        ),
        None => v1_json(StatusCode::NOT_FOUND, json!({"message": "No Result found"})),
    }
}

pub async fn imports(State(sandbox): State<Sandbox>) -> Response {
    let imports: Vec<StoredImport> = sandbox
        .store
        .lock()
        .map(|s| s.imports.values().cloned().collect())
        .unwrap_or_default();
    v1_json(StatusCode::OK, json!({ "imports": imports }))
}
