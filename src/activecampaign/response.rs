//! Reading v1 API answers. Success is HTTP 2xx **and** `result_code` 1 (a number or a numeric
//! string). `result_message` is localised, so it is logged, never matched.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// What a 2xx v1 body says.
#[derive(Debug, Clone, PartialEq)]
pub enum V1Answer {
    Success {
        body: Value,
    },
    /// `result_code` 0: ActiveCampaign refused the data; retrying cannot help.
    Refused {
        message: String,
    },
    /// Empty or not JSON: the contact may or may not be saved (sync is idempotent, so retry).
    Unknown,
}

#[derive(Debug, Deserialize)]
struct V1Envelope {
    result_code: Option<Value>,
    result_message: Option<Value>,
}

fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn parse_v1(body: &[u8]) -> V1Answer {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return V1Answer::Unknown;
    };
    let Ok(envelope) = V1Envelope::deserialize(&value) else {
        return V1Answer::Unknown;
    };
    match envelope.result_code.as_ref().and_then(as_integer) {
        Some(1) => V1Answer::Success { body: value },
        Some(_) => V1Answer::Refused {
            message: envelope
                .result_message
                .as_ref()
                .and_then(|m| m.as_str().map(str::to_string))
                .unwrap_or_default(),
        },
        None => V1Answer::Unknown,
    }
}

/// `subscriber_id` of a successful `contact_sync`.
pub fn subscriber_id(body: &Value) -> Option<u64> {
    body.get("subscriber_id")
        .and_then(as_integer)
        .and_then(|id| u64::try_from(id).ok())
}

/// A contact's status on one list, as `contact_view_email` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberStatus {
    /// 0: waiting for a double opt-in confirmation.
    Unconfirmed,
    /// 1.
    Active,
    /// 2.
    Unsubscribed,
    /// 3.
    Bounced,
    /// Listed, but with a status this client does not read.
    Unknown,
}

impl SubscriberStatus {
    /// Whether `status=1` may be sent without the route being an explicit opt-in: only for a
    /// contact already active there. Anything else (unsubscribed, bounced, unconfirmed, or
    /// unreadable) would be overwritten by a subscribe.
    pub fn allows_subscribe(self) -> bool {
        self == SubscriberStatus::Active
    }
}

/// List statuses from a `contact_view_email` answer: `lists` is an object (or array) whose
/// entries carry `listid` and `status` (0 unconfirmed, 1 active, 2 unsubscribed, 3 bounced).
/// An entry whose status does not read as one of those is [`SubscriberStatus::Unknown`], so
/// the caller protects it like any status that a subscribe would overwrite.
pub fn list_statuses(body: &Value) -> BTreeMap<u64, SubscriberStatus> {
    let mut statuses = BTreeMap::new();
    let entries: Vec<&Value> = match body.get("lists") {
        Some(Value::Object(map)) => map.values().collect(),
        Some(Value::Array(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    for entry in entries {
        let id = entry.get("listid").and_then(as_integer);
        let status = match entry.get("status").and_then(as_integer) {
            Some(0) => SubscriberStatus::Unconfirmed,
            Some(1) => SubscriberStatus::Active,
            Some(2) => SubscriberStatus::Unsubscribed,
            Some(3) => SubscriberStatus::Bounced,
            _ => SubscriberStatus::Unknown,
        };
        if let Some(id) = id.and_then(|id| u64::try_from(id).ok()) {
            statuses.insert(id, status);
        }
    }
    statuses
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_codes_as_numbers_or_strings() {
        let ok =
            br#"{"subscriber_id":"17","result_code":"1","result_message":"Contato atualizado"}"#;
        let V1Answer::Success { body } = parse_v1(ok) else {
            panic!()
        };
        assert_eq!(subscriber_id(&body), Some(17));
        assert_eq!(
            parse_v1(
                br#"{"result_code":0,"result_message":"Contact Email Address is not valid."}"#
            ),
            V1Answer::Refused {
                message: "Contact Email Address is not valid.".into()
            }
        );
        assert_eq!(parse_v1(b""), V1Answer::Unknown);
        assert_eq!(parse_v1(b"<html>"), V1Answer::Unknown);
        assert_eq!(parse_v1(b"[1]"), V1Answer::Unknown);
        assert_eq!(parse_v1(br#"{"result_code":null}"#), V1Answer::Unknown);
    }

    #[test]
    fn list_statuses_tolerate_shapes() {
        let body = json!({"lists": {"3": {"listid": "3", "status": "2"}, "4": {"listid": 4, "status": 1}, "5": {"listid": "5"},
                                    "6": {"listid": "6", "status": "0"}, "7": {"listid": 7, "status": 3}}});
        let statuses = list_statuses(&body);
        assert_eq!(statuses.get(&3), Some(&SubscriberStatus::Unsubscribed));
        assert_eq!(statuses.get(&4), Some(&SubscriberStatus::Active));
        assert_eq!(statuses.get(&5), Some(&SubscriberStatus::Unknown));
        assert_eq!(statuses.get(&6), Some(&SubscriberStatus::Unconfirmed));
        assert_eq!(statuses.get(&7), Some(&SubscriberStatus::Bounced));
        assert!(
            statuses.values().filter(|s| s.allows_subscribe()).count() == 1,
            "only an active contact may be sent status=1"
        );
        assert!(list_statuses(&json!({"lists": "x"})).is_empty());
    }
}
