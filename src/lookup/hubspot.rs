//! HubSpot contacts, for app webhooks (`contact.creation`, ...) that name contacts by id: a
//! private app's token (`sender_api.{route}.access_token`, with the `crm.objects.contacts.read`
//! scope) as `Authorization: Bearer`. One contact is `GET /crm/v3/objects/contacts/{id}`;
//! the several of one request are one `POST /crm/v3/objects/contacts/batch/read`, whose
//! 207 answer lists the ids that no longer exist (left out) beside the contacts found.
//! HubSpot's 429 (its per-second limit) is waited out by `Retry-After` when it sends one.
//! Contact: `properties.{email,firstname,lastname,phone|mobilephone,company}`, and
//! `hs_email_optout` as an opt-out. The payload a route maps is the contact object.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Api, Credentials, Lookup, LookupError, SenderApis, retry_after};
use crate::submission::{ContactFields, Product, is_affirmative, text_at, value_as_text};

pub const BASE_URL: &str = "https://api.hubapi.com";

/// The properties read: what a contact needs, and the opt-out.
pub const PROPERTIES: &[&str] = &[
    "email",
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "company",
    "hs_email_optout",
];

/// Contact ids are numbers: nothing else goes into a URL.
fn clean_id(id: &str) -> String {
    id.chars().filter(char::is_ascii_digit).collect()
}

pub(super) async fn fetch(
    apis: &SenderApis,
    lookup: &Lookup,
    route: &str,
    credentials: &Credentials,
    deadline: Instant,
) -> Result<Value, LookupError> {
    // A token is for one account, and an app installed in several sends all of their events
    // (contact ids are per account): only the configured account's contacts are looked up,
    // or without `portal_id` the first event's.
    let configured = credentials.get("portal_id").trim();
    let account = if configured.is_empty() {
        lookup.context.get("portal_id").and_then(Value::as_str)
    } else {
        Some(configured)
    };
    let same_account = |_: &str, object: Option<&super::NamedObject>| match (
        account,
        object.and_then(|o| o.account.as_deref()),
    ) {
        (Some(expected), Some(actual)) => expected == actual,
        _ => true,
    };
    let Some(kept) = lookup.retain(same_account) else {
        return Err(LookupError::OtherStore {
            api: Api::HubSpot.name(),
            route: route.to_string(),
            webhook: lookup
                .objects
                .values()
                .find_map(|o| o.account.clone())
                .or_else(|| {
                    lookup
                        .context
                        .get("portal_id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default(),
            configured: configured.to_string(),
        });
    };
    if kept.ids().count() < lookup.ids().count() {
        tracing::warn!(
            route,
            "HubSpot events of another account than sender_api's portal_id were left out: give each account its own route."
        );
    }
    let lookup = &kept;
    let bearer = format!("Bearer {}", credentials.get("access_token"));
    let headers = [("Authorization", bearer.as_str())];
    let base = apis.base(BASE_URL);
    let not_found = || LookupError::NotFound {
        api: Api::HubSpot.name(),
        object: lookup.object.clone(),
        id: std::iter::once(&lookup.id)
            .chain(&lookup.more_ids)
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    };
    if lookup.more_ids.is_empty() {
        let url = format!(
            "{base}/crm/v3/objects/contacts/{}?properties={}&archived=false",
            clean_id(&lookup.id),
            PROPERTIES.join(",")
        );
        let found = apis
            .get(Api::HubSpot, route, &url, &headers, deadline, retry_after)
            .await?;
        return found.filter(Value::is_object).ok_or_else(not_found);
    }
    let inputs: Vec<Value> = std::iter::once(&lookup.id)
        .chain(&lookup.more_ids)
        .map(|id| json!({ "id": clean_id(id) }))
        .collect();
    let body = json!({ "properties": PROPERTIES, "inputs": inputs });
    let url = format!("{base}/crm/v3/objects/contacts/batch/read?archived=false");
    let answer = apis
        .call(
            Api::HubSpot,
            route,
            &url,
            Some(&body),
            &headers,
            deadline,
            retry_after,
        )
        .await?
        .ok_or_else(not_found)?;
    let Some(results) = answer.get("results").and_then(Value::as_array) else {
        return Err(LookupError::Unreadable {
            api: Api::HubSpot.name(),
            what: "a batch read without results".into(),
        });
    };
    let found: Vec<Value> = results.iter().filter(|c| c.is_object()).cloned().collect();
    // A contact missing from the results is gone only when HubSpot says so; any other error
    // (or none at all) may pass, and the lookup is tried again.
    let gone: Vec<String> = answer
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| text_at(e, "category").as_deref() == Some("OBJECT_NOT_FOUND"))
        .filter_map(|e| e.pointer("/context/ids").and_then(Value::as_array))
        .flatten()
        .filter_map(value_as_text)
        .collect();
    let unexplained = lookup.ids().map(|id| clean_id(id)).find(|id| {
        !gone.contains(id)
            && !found
                .iter()
                .any(|c| text_at(c, "id").as_deref() == Some(id.as_str()))
    });
    if let Some(id) = unexplained {
        return Err(LookupError::Unavailable {
            api: Api::HubSpot.name(),
            reason: format!("the batch read did not return contact {id}, nor say it is gone"),
            retry_after: None,
        });
    }
    if found.is_empty() {
        return Err(not_found());
    }
    if found.len() < inputs.len() {
        tracing::info!(
            requested = inputs.len(),
            found = found.len(),
            "HubSpot found only some of the contacts; the others no longer exist."
        );
    }
    Ok(Value::Array(found))
}

/// The contact of one contact object, and its opt-out.
pub(super) fn interpret(found: Value) -> (ContactFields, Vec<Product>, Option<bool>, Value) {
    let property = |name: &str| text_at(&found, &format!("properties.{name}"));
    let contact = ContactFields {
        email: property("email"),
        first_name: property("firstname"),
        last_name: property("lastname"),
        phone: property("phone").or_else(|| property("mobilephone")),
        organization: property("company"),
        ..ContactFields::default()
    };
    // An opt-out can only say "no".
    let consent = found
        .pointer("/properties/hs_email_optout")
        .filter(|v| is_affirmative(v))
        .map(|_| false);
    (contact, Vec::new(), consent, found)
}

pub(super) fn describe(lookup: &Lookup) -> String {
    if lookup.more_ids.is_empty() {
        format!(
            "GET {BASE_URL}/crm/v3/objects/contacts/{}?properties={}&archived=false (Authorization: Bearer sender_api access_token)",
            clean_id(&lookup.id),
            PROPERTIES.join(",")
        )
    } else {
        format!(
            "POST {BASE_URL}/crm/v3/objects/contacts/batch/read?archived=false for contacts {}, {} (Authorization: Bearer sender_api access_token)",
            clean_id(&lookup.id),
            lookup
                .more_ids
                .iter()
                .map(|id| clean_id(id))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
