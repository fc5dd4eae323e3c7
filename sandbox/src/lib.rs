//! A local stand-in for ActiveCampaign, so the whole product runs with no account: v1
//! `contact_sync` and `contact_view_email` (the `API-TOKEN` check, upsert by email, lists,
//! tags, custom fields resolved against a seed, a localised `result_message`), v3
//! `users/me`, the Bulk Contact Importer ([`importer`]), the 5 requests/second limit and
//! switchable faults ([`traffic`]), and read-only JSON views of what it holds ([`views`]).
//! Beside it, a Turnstile `siteverify` stand-in ([`turnstile`]) for forms with a captcha, and
//! stand-ins for the APIs of senders whose webhooks carry only ids (`senders`).
//!
//! A wrong or missing key is answered as ActiveCampaign answers it: v1 with HTTP 200 and
//! `result_code` 0, "You are not authorized to access this file" (activecampaign-api-php
//! issue #8; [`Sandbox::with_bad_key_status`] picks another status), v3 with 403
//! `{"message":"Forbidden"}`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use serde_json::{Value, json};

mod importer;
mod seed;
mod senders;
mod settings;
mod traffic;
pub mod turnstile;
mod views;

pub use seed::{Seed, SeedError, SeedField, SeedImport, SeedList, SeedStatus};
pub use settings::{SandboxSettings, SettingsError, run};
pub use traffic::{DEFAULT_REQUESTS_PER_SECOND, Fault, FaultKind};

/// v1's endpoint and key header, as ActiveCampaign names them (the sandbox's own copy: it
/// stands in for ActiveCampaign, so a typo in the client is not mirrored here).
pub const V1_PATH: &str = "/admin/api.php";
pub const API_TOKEN_HEADER: &str = "API-TOKEN";
use ac_webhook_sync::email::normalise_email;

/// The key the stand-in accepts unless told otherwise (matches `local/secret.json`).
pub const DEFAULT_API_KEY: &str = "local-dev-key";
pub const DEFAULT_PORT: u16 = 4599;
/// List statuses as ActiveCampaign numbers them.
pub const ACTIVE: u8 = 1;
pub const UNSUBSCRIBED: u8 = 2;
/// How many "ignored" notes the state view keeps.
const MAX_NOTES: usize = 100;
/// The `users/me` path (v3).
pub const USERS_ME_PATH: &str = "/api/3/users/me";
/// v1's `result_message` for a wrong or missing key (not localised in the sources).
pub const NOT_AUTHORIZED: &str = "You are not authorized to access this file";

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
    /// List id → status ([`ACTIVE`] or [`UNSUBSCRIBED`]).
    pub lists: BTreeMap<u64, u8>,
    /// Custom field id → value.
    pub fields: BTreeMap<u64, String>,
}

#[derive(Default)]
struct Store {
    contacts: BTreeMap<String, StoredContact>,
    next_id: u64,
    imports: BTreeMap<String, importer::StoredImport>,
    /// When recent imports were requested, for the 100-per-minute limit.
    import_times: VecDeque<std::time::Instant>,
    /// When the single-contact imports of the last minute were requested (20 allowed).
    single_import_times: VecDeque<std::time::Instant>,
    /// What was ignored (unknown custom fields), newest last, for the state view.
    notes: VecDeque<String>,
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

    fn note(&mut self, note: String) {
        if self.notes.len() == MAX_NOTES {
            self.notes.pop_front();
        }
        self.notes.push_back(note);
    }
}

#[derive(Clone)]
pub struct Sandbox {
    /// The account's key; changed at run time with [`Sandbox::set_api_key`].
    api_key: Arc<RwLock<String>>,
    language: Language,
    /// The HTTP status of v1's answer to a wrong key (200, as ActiveCampaign answers).
    bad_key_status: StatusCode,
    store: Arc<Mutex<Store>>,
    /// The account's lists and custom fields.
    account: Arc<Seed>,
    limiter: Option<Arc<traffic::RateLimiter>>,
    fault: Arc<Mutex<Option<Fault>>>,
    /// How the next bulk imports end, and which callbacks are never sent.
    import_faults: Arc<Mutex<importer::ImportFaults>>,
    quiet: bool,
}

impl Sandbox {
    /// An account with the bundled seed's lists and custom fields, no contacts, and no rate
    /// limit (see [`Sandbox::with_seed`] and [`Sandbox::with_rate_limit`]).
    pub fn new(api_key: impl Into<String>, language: Language) -> Self {
        Self {
            api_key: Arc::new(RwLock::new(api_key.into())),
            language,
            bad_key_status: StatusCode::OK,
            store: Arc::new(Mutex::new(Store::default())),
            account: Arc::new(Seed::bundled_account()),
            limiter: None,
            fault: Arc::new(Mutex::new(None)),
            import_faults: Arc::new(Mutex::new(importer::ImportFaults::default())),
            quiet: false,
        }
    }

    /// The account's lists and fields become the seed's, and its contacts and imports are added.
    pub fn with_seed(mut self, seed: Seed) -> Self {
        if let Ok(mut store) = self.store.lock() {
            for entry in &seed.contacts {
                let (contact, _) = store.upsert(&entry.email);
                contact.first_name.clone_from(&entry.first_name);
                contact.last_name.clone_from(&entry.last_name);
                contact.phone.clone_from(&entry.phone);
                contact.organization.clone_from(&entry.organization);
                contact.tags.extend(entry.tags.iter().cloned());
                contact.fields.extend(entry.fields.clone());
                for (list, status) in &entry.lists {
                    let status = match status {
                        SeedStatus::Active => ACTIVE,
                        SeedStatus::Unsubscribed => UNSUBSCRIBED,
                    };
                    contact.lists.insert(*list, status);
                }
            }
        }
        if let Ok(mut store) = self.store.lock() {
            for import in &seed.imports {
                store.imports.insert(
                    import.batch_id.clone(),
                    importer::StoredImport {
                        batch_id: import.batch_id.clone(),
                        contacts: import.contacts,
                        status: json!(import.status),
                        success: Vec::new(),
                        failure: Vec::new(),
                    },
                );
            }
        }
        self.account = Arc::new(Seed {
            contacts: Vec::new(),
            imports: Vec::new(),
            ..seed
        });
        self
    }

    /// Refuses API requests over `per_second` with 429 (0: no limit).
    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.limiter = (per_second > 0).then(|| Arc::new(traffic::RateLimiter::new(per_second)));
        self
    }

    /// v1 answers a wrong or missing key with `status` (and the same `result_code` 0 body)
    /// instead of ActiveCampaign's 200, e.g. 403 for clients written against that shape.
    pub fn with_bad_key_status(mut self, status: StatusCode) -> Self {
        self.bad_key_status = status;
        self
    }

    /// The status v1 answers a wrong key with.
    pub fn bad_key_status(&self) -> StatusCode {
        self.bad_key_status
    }

    /// Rotates the account's key: from now on only `key` is accepted.
    pub fn set_api_key(&self, key: impl Into<String>) {
        if let Ok(mut current) = self.api_key.write() {
            *current = key.into();
        }
    }

    /// Whether the request carries the account's key (`API-TOKEN` / `Api-Token`).
    fn key_ok(&self, headers: &HeaderMap) -> bool {
        let Ok(key) = self.api_key.read() else {
            return false;
        };
        headers
            .get(API_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k == key.as_str())
    }

    /// Switches a fault on (or off with `None`) for the next API requests.
    pub fn set_fault(&self, fault: Option<Fault>) {
        if let Ok(mut active) = self.fault.lock() {
            *active = fault;
        }
    }

    /// Do not print received contacts (tests).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    pub fn router(&self) -> Router {
        let api = Router::new()
            .route(V1_PATH, any(v1))
            .route(USERS_ME_PATH, get(users_me))
            .route(LISTS_PATH, get(v3_lists))
            .route(FIELDS_PATH, get(v3_fields))
            .route(importer::BULK_IMPORT_PATH, post(importer::bulk_import))
            .route(importer::IMPORT_INFO_PATH, get(importer::import_info))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                traffic::gate,
            ));
        Router::new()
            .merge(api)
            .route("/sandbox/contacts", get(views::contacts))
            .route("/sandbox/lists", get(views::lists))
            .route("/sandbox/tags", get(views::tags))
            .route("/sandbox/fields", get(views::fields))
            .route("/sandbox/imports", get(importer::imports))
            .route("/sandbox/state", get(views::state))
            .route(
                "/sandbox/import-faults",
                get(importer::import_faults)
                    .post(importer::set_import_faults)
                    .delete(importer::clear_import_faults),
            )
            .route(
                "/sandbox/faults",
                get(views::fault)
                    .post(views::set_fault)
                    .delete(views::clear_fault),
            )
            .route("/sandbox/api-key", post(views::set_api_key))
            // Not ActiveCampaign's: the local stack's captcha provider, and senders' APIs.
            .route(turnstile::SITEVERIFY_PATH, post(turnstile::siteverify))
            .route(
                senders::BIGCOMMERCE_ORDER_PATH,
                get(senders::bigcommerce_order),
            )
            .route(
                senders::BIGCOMMERCE_PRODUCTS_PATH,
                get(senders::bigcommerce_products),
            )
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

/// Serves the sandbox on a bound listener until the process ends.
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

/// v1's answer to a wrong or missing key: `result_code` 0, with the sandbox's bad-key status.
fn v1_not_authorized(sandbox: &Sandbox) -> Response {
    v1_json(
        sandbox.bad_key_status,
        json!({"result_code": 0, "result_message": NOT_AUTHORIZED, "result_output": "json"}),
    )
}

/// v3's answer to a wrong or missing key.
fn v3_forbidden() -> Response {
    v1_json(StatusCode::FORBIDDEN, json!({"message": "Forbidden"}))
}

fn refused(message: &str) -> Response {
    v1_json(
        StatusCode::OK,
        json!({"result_code": 0, "result_message": message, "result_output": "json"}),
    )
}

async fn v1(
    State(sandbox): State<Sandbox>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !sandbox.key_ok(&headers) {
        // HTTP 200 and result_code 0, as ActiveCampaign answers (activecampaign-api-php #8).
        return v1_not_authorized(&sandbox);
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

/// `GET /api/3/users/me`: the key's user, as v3 answers it.
async fn users_me(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    if !sandbox.key_ok(&headers) {
        return v3_forbidden();
    }
    v1_json(
        StatusCode::OK,
        json!({"user": {"id": "1", "username": "admin", "firstName": "Sandbox", "lastName": "Admin", "email": "admin@example.com"}}),
    )
}

const LISTS_PATH: &str = "/api/3/lists";
const FIELDS_PATH: &str = "/api/3/fields";

/// v3's paging: `limit` (20 unless asked, at most 100) from `offset`.
#[derive(serde::Deserialize)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

/// One page of `items`, with `meta.total` as ActiveCampaign gives it (a string).
fn v3_page(key: &str, items: Vec<Value>, page: &Page) -> Response {
    let total = items.len();
    let limit = page.limit.unwrap_or(20).clamp(1, 100);
    let items: Vec<Value> = items
        .into_iter()
        .skip(page.offset.unwrap_or(0))
        .take(limit)
        .collect();
    v1_json(
        StatusCode::OK,
        json!({ key: items, "meta": {"total": total.to_string()} }),
    )
}

/// `GET /api/3/lists`: the seed's lists, ids as strings, as v3 answers.
async fn v3_lists(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    axum::extract::Query(page): axum::extract::Query<Page>,
) -> Response {
    v3_collection(&sandbox, &headers, &page, "lists", |account| {
        account
            .lists
            .iter()
            .map(|l| json!({"id": l.id.to_string(), "stringid": l.name.to_lowercase().replace(' ', "-"), "name": l.name}))
            .collect()
    })
}

/// `GET /api/3/fields`: the seed's custom fields with their personalization tags.
async fn v3_fields(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    axum::extract::Query(page): axum::extract::Query<Page>,
) -> Response {
    v3_collection(&sandbox, &headers, &page, "fields", |account| {
        account
            .fields
            .iter()
            .map(|f| json!({"id": f.id.to_string(), "title": f.title, "type": "text", "perstag": f.perstag}))
            .collect()
    })
}

/// A v3 collection of the account for the right key: one page of what `items` lists.
fn v3_collection(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    page: &Page,
    key: &str,
    items: impl FnOnce(&Seed) -> Vec<Value>,
) -> Response {
    if !sandbox.key_ok(headers) {
        return v3_forbidden();
    }
    v3_page(key, items(&sandbox.account), page)
}

/// One `contact_sync` form, read: what to write, or why it is refused.
struct SyncForm {
    email: String,
    pairs: Vec<(String, String)>,
    /// List id → status.
    lists: BTreeMap<u64, u8>,
    /// Field id → value.
    fields: BTreeMap<u64, String>,
    /// `field[KEY,0]` keys the account has no field for.
    unknown_fields: Vec<String>,
}

fn contact_sync(sandbox: &Sandbox, headers: &HeaderMap, body: &[u8]) -> Response {
    let form = match read_sync_form(sandbox, headers, body) {
        Ok(form) => form,
        Err(message) => return refused(&message),
    };
    let Ok(mut store) = sandbox.store.lock() else {
        return v1_json(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
    };
    let get = |key: &str| {
        form.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let (contact, is_new) = store.upsert(&form.email);
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
        // Added to the contact's tags, never replacing them.
        contact.tags.extend(
            tags.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        );
    }
    contact.fields.extend(form.fields);
    // status=1 re-subscribes someone who unsubscribed, as ActiveCampaign documents.
    contact.lists.extend(form.lists);
    let id = contact.id;
    for key in &form.unknown_fields {
        store.note(format!(
            "contact_sync for contact {id}: no custom field {key}, ignored"
        ));
    }
    if !sandbox.quiet {
        println!("ActiveCampaign stand-in received contact_sync:");
        for (key, value) in &form.pairs {
            // Emails are masked in every log line, the stand-in's too.
            let value = if key == "email" {
                ac_webhook_sync::redact::mask_email(value)
            } else {
                value.clone()
            };
            println!("  {key} = {value}");
        }
        for key in &form.unknown_fields {
            println!("  (no custom field {key} in this account: ignored)");
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

/// Checks a `contact_sync` form and resolves its lists and fields against the account.
fn read_sync_form(sandbox: &Sandbox, headers: &HeaderMap, body: &[u8]) -> Result<SyncForm, String> {
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
        return Err(invalid_email.into());
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let email = get("email")
        .and_then(normalise_email)
        .ok_or(invalid_email)?;
    let mut form = SyncForm {
        email,
        lists: BTreeMap::new(),
        fields: BTreeMap::new(),
        unknown_fields: Vec::new(),
        pairs: Vec::new(),
    };
    for (key, value) in &pairs {
        if let Some(inner) = key
            .strip_prefix("field[")
            .and_then(|k| k.strip_suffix(",0]"))
        {
            // Unknown fields are skipped and the contact saved, as ActiveCampaign skips a
            // field it cannot match.
            match sandbox.account.field_by_key(inner) {
                Some(field) => {
                    form.fields.insert(field.id, value.clone());
                }
                None => form.unknown_fields.push(inner.to_string()),
            }
        }
        if let Some(id) = key.strip_prefix("p[").and_then(|k| k.strip_suffix(']')) {
            let list = id
                .parse::<u64>()
                .ok()
                .filter(|id| sandbox.account.list(*id).is_some())
                .ok_or_else(|| match sandbox.language {
                    Language::English => format!("List ID {id} does not exist."),
                    Language::Portuguese => format!("A lista de ID {id} não existe."),
                })?;
            // Blank or 1 is active (the documented default); 2 unsubscribes.
            let status = match get(&format!("status[{list}]")).map(str::trim) {
                Some("2") => UNSUBSCRIBED,
                _ => ACTIVE,
            };
            form.lists.insert(list, status);
        }
    }
    form.pairs = pairs;
    Ok(form)
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
