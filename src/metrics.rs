//! Metrics in CloudWatch's embedded metric format: one JSON line on stdout that CloudWatch
//! Logs turns into metrics, with no API call and no extra permission.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub(crate) const NAMESPACE: &str = "AcWebhookSync";
pub(crate) const IMPORTED_CONTACTS: &str = "ImportedContacts";
pub(crate) const FAILED_CONTACTS: &str = "FailedContacts";
pub(crate) const FAILED_IMPORTS: &str = "FailedImports";
/// Contacts ActiveCampaign refused (`result_code` 0 with a good key, or named by the importer).
pub(crate) const REJECTED_CONTACTS: &str = "RejectedContacts";

/// Batches handed back because the whole account was failing (key refused, ActiveCampaign
/// or Secrets Manager unavailable): an outage while it happens, before any dead letter.
pub(crate) const ACCOUNT_UNAVAILABLE: &str = "ActiveCampaignUnavailable";

/// One account-wide failure of a sync-worker batch (no route: it is the account's).
pub(crate) fn account_unavailable() -> Value {
    by_route("queue", &[(ACCOUNT_UNAVAILABLE, 1)])
}

/// Deliveries made without deduplication because the idempotency store could not be reached.
pub(crate) const DEDUPE_UNAVAILABLE: &str = "DedupeUnavailable";

pub(crate) fn dedupe_unavailable() -> Value {
    by_route("dedupe", &[(DEDUPE_UNAVAILABLE, 1)])
}

/// Duplicate deliveries answered from their first answer (nothing synced again).
pub(crate) const DUPLICATES: &str = "DuplicateDeliveries";

pub(crate) fn duplicates(route: &str) -> Value {
    by_route(route, &[(DUPLICATES, 1)])
}

/// Public-route defences, each counted by route: a filled honeypot (answered as a success),
/// a post from another origin or with a failed captcha (403), a captcha not verified because
/// its provider was down (delivered anyway, on `on_outage = "accept"` routes), a source
/// address over its limit (429).
pub(crate) const HONEYPOT_FILLED: &str = "HoneypotFilled";
pub(crate) const ORIGIN_REFUSED: &str = "OriginRefused";
pub(crate) const CAPTCHA_REFUSED: &str = "CaptchaRefused";
pub(crate) const CAPTCHA_UNVERIFIED: &str = "CaptchaUnverified";
pub(crate) const RATE_LIMITED: &str = "RateLimited";

pub(crate) fn defence(route: &str, name: &str) -> Value {
    by_route(route, &[(name, 1)])
}

/// Age of the oldest bulk import still not settled after a reconciler run.
pub(crate) const OLDEST_OPEN_IMPORT: &str = "OldestOpenImportSeconds";

pub(crate) fn oldest_open_import(seconds: u64) -> Value {
    by_route("imports", &[(OLDEST_OPEN_IMPORT, seconds as usize)])
}

/// Writes a metric line to stdout, where CloudWatch Logs picks it up.
pub(crate) fn emit(line: Value) {
    println!("{line}");
}

/// The metric of contacts refused on one route.
pub(crate) fn rejected_contacts(route: &str, count: usize) -> Value {
    by_route(route, &[(REJECTED_CONTACTS, count)])
}

/// One embedded-metric line of counts, by route and in total.
fn by_route(route: &str, counts: &[(&str, usize)]) -> Value {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let names: Vec<Value> = counts
        .iter()
        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
        .collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                // Per route, and in total (alarms watch the total).
                "Dimensions": [["Route"], []],
                "Metrics": names
            }]
        },
        "Route": route,
    });
    for (name, count) in counts {
        line[*name] = json!(count);
    }
    line
}

/// Contacts of a failed or interrupted import sent back through the queue.
pub(crate) const REQUEUED_CONTACTS: &str = "RequeuedContacts";
/// Contacts of an import that failed too many times, sent to the dead-letter queue.
pub(crate) const DEAD_LETTERED_CONTACTS: &str = "DeadLetteredContacts";

/// How one settled import ended, contact by contact.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ImportCounts {
    /// Imported (0 for a failed or interrupted import: its contacts are sent back).
    pub succeeded: usize,
    /// Named by the importer as failing (their data is at fault).
    pub failed: usize,
    pub requeued: usize,
    pub dead_lettered: usize,
    pub import_failed: bool,
}

/// The metrics of one settled import, by route.
pub(crate) fn import_outcome(route: &str, counts: ImportCounts) -> Value {
    by_route(
        route,
        &[
            (IMPORTED_CONTACTS, counts.succeeded),
            (FAILED_CONTACTS, counts.failed),
            (REQUEUED_CONTACTS, counts.requeued),
            (DEAD_LETTERED_CONTACTS, counts.dead_lettered),
            (FAILED_IMPORTS, usize::from(counts.import_failed)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_metric_format_shape() {
        let line = import_outcome(
            "shop",
            ImportCounts {
                succeeded: 248,
                failed: 2,
                ..Default::default()
            },
        );
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Route"], []])
        );
        assert_eq!(line["ImportedContacts"], 248);
        assert_eq!(line["FailedContacts"], 2);
        assert_eq!(line["FailedImports"], 0);
        assert!(line["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }
}
