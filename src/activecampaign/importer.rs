//! The Bulk Contact Importer (`POST /api/3/import/bulk_import`): up to 250 contacts and about
//! 350 KB per request, 100 requests per minute, one bad contact rejecting the whole request.

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::AcError;
use super::client::{API_TOKEN_HEADER, Account, ActiveCampaignClient, Attempt, classify_status};
use super::contact_sync::{ContactSync, FieldKey, ListStatus};
use secrecy::ExposeSecret;

pub const BULK_IMPORT_PATH: &str = "/api/3/import/bulk_import";
pub const IMPORT_INFO_PATH: &str = "/api/3/import/info";
/// Fewer contacts than this go through `contact_sync` (ActiveCampaign's suggested minimum).
pub const MIN_BULK_CONTACTS: usize = 10;
pub const MAX_CONTACTS_PER_IMPORT: usize = 250;
/// Kept below the documented 400,000-byte limit, as peers do.
pub const MAX_IMPORT_BYTES: usize = 350_000;
pub use super::client::DEFAULT_IMPORTS_PER_SECOND;
/// How the importer says it is over its rate limit (with HTTP 400, not 429).
const RATE_LIMIT_MESSAGE: &str = "rate limit";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkField {
    pub id: u64,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListRef {
    pub listid: u64,
}

/// One contact as the importer takes it (snake_case names, tags by name, fields by id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkContact {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_acct_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<BulkField>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<ListRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsubscribe: Vec<ListRef>,
    pub exclude_automations: bool,
}

/// Converts a `contact_sync` into an importer contact, or says why it must go through
/// `contact_sync` instead (the importer has no personalization tags, responder options,
/// subscription dates or forms, and never re-subscribes).
pub fn to_bulk_contact(
    contact: &ContactSync,
    exclude_automations: bool,
) -> Result<BulkContact, &'static str> {
    if contact.form.is_some() {
        return Err("a subscription form applies");
    }
    let mut fields = Vec::with_capacity(contact.fields.len());
    for field in &contact.fields {
        match field.key {
            FieldKey::Id(id) => fields.push(BulkField {
                id,
                value: field.value.clone(),
            }),
            FieldKey::PersTag(_) => return Err("a custom field is named by personalization tag"),
        }
    }
    let mut subscribe = Vec::new();
    let mut unsubscribe = Vec::new();
    for list in &contact.lists {
        if list.instant_responders.is_some()
            || list.no_responders.is_some()
            || list.last_message.is_some()
            || list.sdate.is_some()
        {
            return Err("a list has responder options or a subscription date");
        }
        match list.status {
            // An explicit opt-in may re-subscribe; the importer cannot.
            ListStatus::Active if list.may_resubscribe => return Err("an opt-in may re-subscribe"),
            ListStatus::Active => subscribe.push(ListRef {
                listid: list.list_id,
            }),
            ListStatus::Unsubscribed => unsubscribe.push(ListRef {
                listid: list.list_id,
            }),
        }
    }
    Ok(BulkContact {
        email: contact.email.clone(),
        first_name: contact.first_name.clone(),
        last_name: contact.last_name.clone(),
        phone: contact.phone.clone(),
        customer_acct_name: contact.organization.clone(),
        tags: contact.tags.clone(),
        fields,
        subscribe,
        unsubscribe,
        exclude_automations,
    })
}

/// Splits contacts into requests of at most 250 contacts and about 350 KB, balanced: as few
/// requests as those limits allow, of near-equal size (251 contacts are 126 + 125, not
/// 250 + 1, since the importer allows only 20 single-contact requests a minute).
pub fn chunk(contacts: Vec<BulkContact>) -> Vec<Vec<BulkContact>> {
    let sizes = contacts.iter().map(json_size).collect();
    chunk_sized(contacts, sizes)
}

/// The bytes a value takes as JSON, with its separator.
pub fn json_size(value: &impl Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len()) + 1
}

/// [`chunk`], with each contact's size given: the larger of its request size and of what
/// else must hold the chunk (an import record in DynamoDB, whose items are at most 400 KB).
pub fn chunk_sized(contacts: Vec<BulkContact>, sizes: Vec<usize>) -> Vec<Vec<BulkContact>> {
    // Room for the envelope (`{"contacts":[…],"callback":{…}}`).
    balanced_chunks(
        contacts,
        sizes,
        MAX_CONTACTS_PER_IMPORT,
        MAX_IMPORT_BYTES - 2_000,
    )
}

/// Splits `items` (each `sizes[i]` bytes) into as few parts as `max_items` and `max_bytes`
/// allow, of near-equal size.
pub fn balanced_chunks<T>(
    items: Vec<T>,
    sizes: Vec<usize>,
    max_items: usize,
    max_bytes: usize,
) -> Vec<Vec<T>> {
    if items.is_empty() {
        return Vec::new();
    }
    let total: usize = sizes.iter().sum();
    let parts = items
        .len()
        .div_ceil(max_items.max(1))
        .max(total.div_ceil(max_bytes.max(1)))
        .max(1);
    let target = items.len().div_ceil(parts);
    let mut chunks = Vec::with_capacity(parts);
    let mut current = Vec::with_capacity(target);
    let mut size = 0;
    for (item, item_size) in items.into_iter().zip(sizes) {
        if !current.is_empty() && (current.len() == target || size + item_size > max_bytes) {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += item_size;
        current.push(item);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// Where the importer reports completion; the token lets only this deployment's callbacks in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportCallback {
    pub url: String,
    #[serde(rename = "requestType")]
    pub request_type: String,
    pub detailed_results: String,
    pub params: Vec<KeyValue>,
    pub headers: Vec<KeyValue>,
}

#[derive(Serialize)]
struct BulkRequest<'a> {
    contacts: &'a [BulkContact],
    #[serde(skip_serializing_if = "Option::is_none")]
    callback: Option<&'a ImportCallback>,
    // Where ActiveCampaign reads it is not settled: it is sent per contact and here.
    exclude_automations: bool,
}

/// The JSON body of one `bulk_import` request.
pub fn request_body(
    contacts: &[BulkContact],
    callback: Option<&ImportCallback>,
    exclude_automations: bool,
) -> Value {
    serde_json::to_value(BulkRequest {
        contacts,
        callback,
        exclude_automations,
    })
    .unwrap_or(Value::Null)
}

/// The importer's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportAnswer {
    Queued {
        batch_id: String,
        queued_contacts: usize,
    },
    /// Validation refused the whole request; `failures` name contacts (by index or email).
    Invalid {
        failures: Vec<ImportFailure>,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportFailure {
    /// The index the importer gave (its base is undocumented), when it gave one.
    pub index: Option<usize>,
    pub reason: String,
}

/// Reads an importer body case-insensitively (`Success` and `success` both occur).
fn get_ci<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    body.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn as_usize(value: &Value) -> Option<usize> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Interprets one answer of `bulk_import`.
pub(crate) fn classify_import(
    status: reqwest::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Attempt<ImportAnswer> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = get_ci(&json, "message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if status == reqwest::StatusCode::BAD_REQUEST {
        if message.to_ascii_lowercase().contains(RATE_LIMIT_MESSAGE) {
            // Another importer shares the account's 100/min: back off like any other retry.
            return Attempt::Retry {
                reason: "bulk import rate limit exceeded".into(),
                after: None,
            };
        }
        let failures: Vec<ImportFailure> = get_ci(&json, "failureReasons")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|item| ImportFailure {
                        index: get_ci(item, "contact").and_then(as_usize),
                        reason: get_ci(item, "failureReason")
                            .and_then(Value::as_str)
                            .or(item.as_str())
                            .unwrap_or("refused")
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if body.trim_ascii().is_empty() {
            // An empty 400 is not the importer's validation answer (that names the failures):
            // nothing was queued, so the same chunk is sent again rather than split, which
            // would spend the single-contact quota. Any other 400 (a proxy's page that may
            // answer one contact's content every time) is split as a refusal.
            return Attempt::Retry {
                reason: "bulk import answered 400 with an empty body".into(),
                after: None,
            };
        }
        return Attempt::Done(ImportAnswer::Invalid { failures, message });
    }
    if let Some(attempt) = classify_status(status, headers) {
        return attempt;
    }
    let success = get_ci(&json, "success").and_then(as_usize) == Some(1);
    let batch_id = get_ci(&json, "batchId")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty());
    match (success, batch_id) {
        (true, Some(batch_id)) => Attempt::Done(ImportAnswer::Queued {
            batch_id: batch_id.to_string(),
            queued_contacts: get_ci(&json, "queued_contacts")
                .and_then(as_usize)
                .unwrap_or(0),
        }),
        _ => Attempt::Retry {
            reason: "bulk import answer without success and batchId".into(),
            after: None,
        },
    }
}

/// A batch's progress (`GET /api/3/import/info`), the source of truth for its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportInfo {
    pub status: ImportStatus,
    /// Ids of contacts the import created.
    pub success: Vec<String>,
    /// Emails of contacts that failed.
    pub failure: Vec<String>,
}

/// `status` of `import/info`: `false` right after submission, then waiting, claimed, active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportStatus {
    NotStarted,
    Waiting,
    Claimed,
    Active,
    Completed,
    Failed,
    Interrupted,
    Unknown(String),
}

impl ImportStatus {
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ImportStatus::Completed | ImportStatus::Failed | ImportStatus::Interrupted
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            ImportStatus::NotStarted => "false",
            ImportStatus::Waiting => "waiting",
            ImportStatus::Claimed => "claimed",
            ImportStatus::Active => "active",
            ImportStatus::Completed => "completed",
            ImportStatus::Failed => "failed",
            ImportStatus::Interrupted => "interrupted",
            ImportStatus::Unknown(other) => other,
        }
    }

    fn from_value(value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Bool(false)) | Some(Value::Null) => ImportStatus::NotStarted,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "waiting" => ImportStatus::Waiting,
                "claimed" => ImportStatus::Claimed,
                "active" => ImportStatus::Active,
                "completed" => ImportStatus::Completed,
                "failed" => ImportStatus::Failed,
                "interrupted" => ImportStatus::Interrupted,
                "false" | "" => ImportStatus::NotStarted,
                _ => ImportStatus::Unknown(s.clone()),
            },
            Some(other) => ImportStatus::Unknown(other.to_string()),
        }
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn classify_info(
    status: reqwest::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Attempt<ImportInfo> {
    if let Some(attempt) = classify_status(status, headers) {
        return attempt;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(json) if json.is_object() => Attempt::Done(ImportInfo {
            status: ImportStatus::from_value(get_ci(&json, "status")),
            success: strings(get_ci(&json, "success")),
            failure: strings(get_ci(&json, "failure")),
        }),
        _ => Attempt::Retry {
            reason: "import/info answer is not JSON".into(),
            after: None,
        },
    }
}

impl ActiveCampaignClient {
    /// `GET /api/3/import/info?batchId=…`.
    pub async fn import_info(
        &self,
        account: Account<'_>,
        batch_id: &str,
        deadline: Instant,
    ) -> Result<ImportInfo, AcError> {
        let mut url = format!(
            "{}{IMPORT_INFO_PATH}?batchId=",
            account.api_url.trim_end_matches('/')
        );
        url.extend(form_urlencoded::byte_serialize(batch_id.as_bytes()));
        self.call(
            self.pacer(),
            deadline,
            || {
                self.http()
                    .get(&url)
                    .header(API_TOKEN_HEADER, account.api_key.expose_secret())
            },
            classify_info,
        )
        .await
    }

    /// Submits one chunk (at most 250 contacts, about 350 KB).
    pub async fn bulk_import(
        &self,
        account: Account<'_>,
        contacts: &[BulkContact],
        callback: Option<&ImportCallback>,
        exclude_automations: bool,
        deadline: Instant,
    ) -> Result<ImportAnswer, AcError> {
        let url = format!(
            "{}{BULK_IMPORT_PATH}",
            account.api_url.trim_end_matches('/')
        );
        let body = serde_json::to_vec(&request_body(contacts, callback, exclude_automations))
            .map_err(|e| AcError::Unavailable {
                reason: e.to_string(),
                retry_after: None,
            })?;
        self.call(
            self.bulk_pacer(),
            deadline,
            || {
                self.http()
                    .post(&url)
                    .header(API_TOKEN_HEADER, account.api_key.expose_secret())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            },
            classify_import,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activecampaign::contact_sync::{FieldValue, ListMembership};

    fn contact(i: usize) -> ContactSync {
        ContactSync {
            email: format!("person{i}@example.com"),
            first_name: Some("P".into()),
            tags: vec!["import".into()],
            fields: vec![FieldValue {
                key: FieldKey::Id(4),
                value: "x".into(),
            }],
            lists: vec![ListMembership {
                list_id: 2,
                status: ListStatus::Active,
                instant_responders: None,
                no_responders: None,
                last_message: None,
                sdate: None,
                may_resubscribe: false,
            }],
            ..ContactSync::default()
        }
    }

    #[test]
    fn converts_or_explains() {
        let bulk = to_bulk_contact(&contact(1), true).unwrap();
        assert_eq!(
            serde_json::to_value(&bulk).unwrap(),
            serde_json::json!({"email": "person1@example.com", "first_name": "P", "tags": ["import"],
                "fields": [{"id": 4, "value": "x"}], "subscribe": [{"listid": 2}], "exclude_automations": true})
        );
        let mut tagged = contact(2);
        tagged.fields[0].key = FieldKey::PersTag("%X%".into());
        assert!(to_bulk_contact(&tagged, false).is_err());
        let mut opt_in = contact(3);
        opt_in.lists[0].may_resubscribe = true;
        assert!(to_bulk_contact(&opt_in, false).is_err());
    }

    #[test]
    fn chunks_by_count_and_size() {
        let many: Vec<BulkContact> = (0..600)
            .map(|i| to_bulk_contact(&contact(i), false).unwrap())
            .collect();
        let sizes: Vec<usize> = chunk(many).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![200, 200, 200], "balanced");
        for (n, expected) in [
            (251, vec![126, 125]),
            (250, vec![250]),
            (253, vec![127, 126]),
            (501, vec![167, 167, 167]),
            (10, vec![10]),
        ] {
            let contacts = (0..n)
                .map(|i| to_bulk_contact(&contact(i), false).unwrap())
                .collect();
            let sizes: Vec<usize> = chunk(contacts).iter().map(Vec::len).collect();
            assert_eq!(sizes, expected, "{n} contacts");
        }
        let mut big = contact(0);
        big.tags = (0..40)
            .map(|t| format!("{t}-{}", "x".repeat(240)))
            .collect();
        let heavy: Vec<BulkContact> = (0..250)
            .map(|_| to_bulk_contact(&big, false).unwrap())
            .collect();
        let chunks = chunk(heavy);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(serde_json::to_vec(c).unwrap().len() < MAX_IMPORT_BYTES);
        }
    }

    #[test]
    fn import_info_statuses() {
        let headers = http::HeaderMap::new();
        let info =
            |body: &str| match classify_info(reqwest::StatusCode::OK, &headers, body.as_bytes()) {
                Attempt::Done(info) => info,
                _ => panic!("not done"),
            };
        assert_eq!(info(r#"{"status":false}"#).status, ImportStatus::NotStarted);
        assert!(!info(r#"{"status":"active"}"#).status.is_final());
        let done = info(r#"{"status":"completed","success":["123","124"],"failure":["bad@x"]}"#);
        assert!(done.status.is_final());
        assert_eq!(done.success, vec!["123", "124"]);
        assert_eq!(done.failure, vec!["bad@x"]);
        assert_eq!(
            info(r#"{"status":"interrupted"}"#).status,
            ImportStatus::Interrupted
        );
        assert!(matches!(
            classify_info(reqwest::StatusCode::OK, &headers, b"<html>"),
            Attempt::Retry { .. }
        ));
    }

    #[test]
    fn answers() {
        let headers = http::HeaderMap::new();
        let ok = classify_import(reqwest::StatusCode::OK, &headers, br#"{"Success":1,"queued_contacts":2,"batchId":"b-1","message":"Contact import queued"}"#);
        assert!(
            matches!(ok, Attempt::Done(ImportAnswer::Queued { ref batch_id, queued_contacts: 2 }) if batch_id == "b-1")
        );
        let created = classify_import(
            reqwest::StatusCode::CREATED,
            &headers,
            br#"{"success":"1","batchId":"b-2"}"#,
        );
        assert!(matches!(
            created,
            Attempt::Done(ImportAnswer::Queued { .. })
        ));
        let limited = classify_import(reqwest::StatusCode::BAD_REQUEST, &headers, br#"{"success":0,"message":"Rate limit exceeded.","failureReasons":["Up to 100 imports may be requested per minute."]}"#);
        assert!(matches!(limited, Attempt::Retry { .. }));
        let invalid = classify_import(reqwest::StatusCode::BAD_REQUEST, &headers, br#"{"success":0,"message":"JSON payload did not pass validation.","failureReasons":[{"contact":3,"failureReason":"Field 'email' incorrect format"}]}"#);
        let Attempt::Done(ImportAnswer::Invalid { failures, .. }) = invalid else {
            panic!()
        };
        assert_eq!(
            failures,
            vec![ImportFailure {
                index: Some(3),
                reason: "Field 'email' incorrect format".into()
            }]
        );
        assert!(matches!(
            classify_import(reqwest::StatusCode::OK, &headers, b""),
            Attempt::Retry { .. }
        ));
        for empty in [&b""[..], b" \n"] {
            assert!(matches!(
                classify_import(reqwest::StatusCode::BAD_REQUEST, &headers, empty),
                Attempt::Retry { .. }
            ));
        }
        for reasonless in [&b"{}"[..], b"<html>Bad Request</html>"] {
            assert!(
                matches!(
                    classify_import(reqwest::StatusCode::BAD_REQUEST, &headers, reasonless),
                    Attempt::Done(ImportAnswer::Invalid { .. })
                ),
                "{}",
                String::from_utf8_lossy(reasonless)
            );
        }
        assert!(matches!(
            classify_import(reqwest::StatusCode::FORBIDDEN, &headers, b"{}"),
            Attempt::Fail(AcError::Unauthorized { status: 403 })
        ));
    }
}
