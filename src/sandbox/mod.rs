//! A local stand-in for ActiveCampaign's v1 `contact_sync`, so the whole product runs with no
//! account: it checks the `API-TOKEN` header, answers as ActiveCampaign does (`result_code`,
//! a localised `result_message`), keeps contacts in memory and prints what it received.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Serialize;
use serde_json::{Value, json};

mod importer;

use crate::activecampaign::client::{API_TOKEN_HEADER, V1_PATH};
use crate::mapping::normalise_email;

/// The key the stand-in accepts unless told otherwise (matches `local/secret.json`).
pub const DEFAULT_API_KEY: &str = "local-dev-key";
pub const DEFAULT_PORT: u16 = 4599;

/// Which language `result_message` is in: nothing may depend on its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Portuguese,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoredContact {
    pub id: u64,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
    pub tags: BTreeSet<String>,
    /// List id → status (1 active, 2 unsubscribed).
    pub lists: BTreeMap<u64, u8>,
    pub fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Store {
    contacts: BTreeMap<String, StoredContact>,
    next_id: u64,
    imports: BTreeMap<String, importer::StoredImport>,
    /// When recent imports were requested, for the 100-per-minute limit.
    import_times: std::collections::VecDeque<std::time::Instant>,
}

impl Store {
    /// The contact for `email`, created if new; the flag says whether it was.
    fn upsert(&mut self, email: &str) -> (&mut StoredContact, bool) {
        let is_new = !self.contacts.contains_key(email);
        if is_new {
            self.next_id += 1;
        }
        let id = self.next_id;
        let contact = self
            .contacts
            .entry(email.to_string())
            .or_insert_with(|| StoredContact {
                id,
                email: email.to_string(),
                ..StoredContact::default()
            });
        (contact, is_new)
    }
}

#[derive(Clone)]
pub struct Sandbox {
    api_key: String,
    language: Language,
    store: Arc<Mutex<Store>>,
    quiet: bool,
}

impl Sandbox {
    pub fn new(api_key: impl Into<String>, language: Language) -> Self {
        Self {
            api_key: api_key.into(),
            language,
            store: Arc::new(Mutex::new(Store::default())),
            quiet: false,
        }
    }

    /// Do not print received contacts (tests).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(V1_PATH, any(v1))
            .route("/sandbox/contacts", get(contacts))
            .route(
                importer::BULK_IMPORT_PATH,
                axum::routing::post(importer::bulk_import),
            )
            .route(importer::IMPORT_INFO_PATH, get(importer::import_info))
            .route("/sandbox/imports", get(importer::imports))
            .with_state(self.clone())
    }

    /// Every stored contact, by email.
    pub fn contacts(&self) -> BTreeMap<String, StoredContact> {
        self.store
            .lock()
            .map(|s| s.contacts.clone())
            .unwrap_or_default()
    }

    fn message(&self, english: &'static str, portuguese: &'static str) -> &'static str {
        match self.language {
            Language::English => english,
            Language::Portuguese => portuguese,
        }
    }
}

/// Serves the stand-in on a bound listener until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, sandbox: Sandbox) -> std::io::Result<()> {
    axum::serve(listener, sandbox.router()).await
}

fn v1_json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refused(message: &str) -> Response {
    v1_json(
        StatusCode::OK,
        json!({"result_code": 0, "result_message": message, "result_output": "json"}),
    )
}

async fn contacts(State(sandbox): State<Sandbox>) -> Response {
    let contacts: Vec<StoredContact> = sandbox.contacts().into_values().collect();
    v1_json(StatusCode::OK, json!({ "contacts": contacts }))
}

async fn v1(
    State(sandbox): State<Sandbox>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key_ok = headers
        .get(API_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| k == sandbox.api_key);
    if !key_ok {
        // ActiveCampaign's answer to a bad key is not documented; v3 answers 403.
        return v1_json(
            StatusCode::FORBIDDEN,
            json!({"result_code": 0, "result_message": "You are not authorized to access this file", "result_output": "json"}),
        );
    }
    if query.get("api_output").map(String::as_str) != Some("json") {
        return (
            StatusCode::OK,
            "<result><result_code>0</result_code></result>",
        )
            .into_response();
    }
    match query.get("api_action").map(String::as_str) {
        Some("contact_sync") => contact_sync(&sandbox, &headers, &body),
        Some("contact_view_email") => contact_view_email(&sandbox, query.get("email")),
        _ => refused(sandbox.message("Unknown API action", "Ação de API desconhecida")),
    }
}

fn contact_sync(sandbox: &Sandbox, headers: &HeaderMap, body: &[u8]) -> Response {
    let invalid_email = sandbox.message(
        "Contact Email Address is not valid.",
        "O endereço de e-mail do contato não é válido.",
    );
    // Without the form Content-Type, v1 reports the email as invalid.
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return refused(invalid_email);
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let Some(email) = get("email").as_deref().and_then(normalise_email) else {
        return refused(invalid_email);
    };
    let Ok(mut store) = sandbox.store.lock() else {
        return v1_json(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
    };
    let (contact, is_new) = store.upsert(&email);
    // Sync sends only what changes: absent keys leave stored values alone.
    for (key, target) in [
        ("first_name", &mut contact.first_name),
        ("last_name", &mut contact.last_name),
        ("phone", &mut contact.phone),
        ("customer_acct_name", &mut contact.organization),
    ] {
        if let Some(value) = get(key) {
            *target = Some(value);
        }
    }
    if let Some(tags) = get("tags") {
        contact.tags.extend(
            tags.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        );
    }
    for (key, value) in &pairs {
        if let Some(inner) = key
            .strip_prefix("field[")
            .and_then(|k| k.strip_suffix(",0]"))
        {
            contact.fields.insert(inner.to_string(), value.clone());
        }
        if let Some(id) = key.strip_prefix("p[").and_then(|k| k.strip_suffix(']'))
            && let Ok(id) = id.parse::<u64>()
        {
            let status = get(&format!("status[{id}]"))
                .and_then(|s| s.parse::<u8>().ok())
                .unwrap_or(1);
            // status=1 re-subscribes, as ActiveCampaign documents.
            contact.lists.insert(id, status);
        }
    }
    let id = contact.id;
    if !sandbox.quiet {
        println!("ActiveCampaign stand-in received contact_sync:");
        for (key, value) in &pairs {
            println!("  {key} = {value}");
        }
    }
    let message = if is_new {
        sandbox.message("Contact added", "Contato adicionado")
    } else {
        sandbox.message("Contact updated", "Contato atualizado")
    };
    v1_json(
        StatusCode::OK,
        json!({"subscriber_id": id, "sendlast_should": 0, "sendlast_did": 0, "result_code": 1, "result_message": message, "result_output": "json"}),
    )
}

fn contact_view_email(sandbox: &Sandbox, email: Option<&String>) -> Response {
    let nothing = sandbox.message("Failed: Nothing is returned", "Falha: nada foi retornado");
    let Some(email) = email.and_then(|e| normalise_email(e)) else {
        return refused(nothing);
    };
    let contacts = sandbox.contacts();
    let Some(contact) = contacts.get(&email) else {
        return refused(nothing);
    };
    let lists: serde_json::Map<String, Value> = contact
        .lists
        .iter()
        .map(|(id, status)| {
            (
                id.to_string(),
                json!({"listid": id.to_string(), "status": status.to_string()}),
            )
        })
        .collect();
    v1_json(
        StatusCode::OK,
        json!({"id": contact.id.to_string(), "email": contact.email, "lists": lists, "result_code": 1, "result_message": "Success: Something is returned", "result_output": "json"}),
    )
}
