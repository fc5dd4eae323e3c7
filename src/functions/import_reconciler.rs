//! The import reconciler: a scheduled function that settles every import its callback did
//! not. A callback that answered `pending`, one that never came, one that arrived before the
//! record was written: each leaves a record open, and every few minutes this reads
//! `import/info` for those older than `RECONCILE_MIN_AGE_SECS` and settles them with the
//! callback's own rules (requeue a failed import's contacts, then record it once). The age of
//! the oldest import still open afterwards is a metric, with an alarm past an hour.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::import_callback::CallbackApp;
use crate::delivery::import_store::now_secs;
use crate::metrics;
use crate::secret::before_deadline;

/// The most imports one run settles (the rest wait for the next run): records hold their
/// contacts (up to 350 KB each), so this keeps a run near 20 MB.
const MAX_PER_RUN: usize = 50;

/// What one run came to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReconcileReport {
    pub open: usize,
    pub settled: usize,
    pub pending: usize,
    pub errors: usize,
    /// Age of the oldest import still open after the run (0 when none is).
    pub oldest_open_secs: u64,
}

pub struct Reconciler {
    callbacks: CallbackApp,
    min_age: Duration,
}

impl Reconciler {
    pub fn new(callbacks: CallbackApp, min_age: Duration) -> Self {
        Self { callbacks, min_age }
    }

    /// Settles every open import older than the minimum age, within `deadline`.
    pub async fn run(&self, deadline: Instant) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let Some(store) = self.callbacks.store() else {
            return report;
        };
        let open = match store.open_records(self.min_age, MAX_PER_RUN).await {
            Ok(open) => open,
            Err(error) => {
                tracing::error!(error = %error, "Import records unreadable; nothing reconciled.");
                report.errors += 1;
                return report;
            }
        };
        report.open = open.len();
        let secret = match before_deadline(deadline, self.callbacks.secrets().get()).await {
            Ok(secret) => secret,
            Err(error) => {
                tracing::error!(error = %error, "Secret unreadable; nothing reconciled.");
                report.errors += 1;
                report.oldest_open_secs = open
                    .first()
                    .map_or(0, |(_, at)| now_secs().saturating_sub(*at));
                emit(&report);
                return report;
            }
        };
        let mut oldest_left: Option<u64> = None;
        for (record, submitted_at) in open {
            let reference = record.reference.clone();
            let outcome = if Instant::now() >= deadline {
                Err(None)
            } else {
                self.callbacks
                    .settle_import(&reference, Some(record), None, &secret, deadline)
                    .await
                    .map_err(Some)
            };
            let settled = match &outcome {
                Ok(answer) => matches!(
                    answer["status"].as_str(),
                    Some("recorded" | "already_recorded")
                ),
                Err(_) => false,
            };
            match outcome {
                Ok(_) if settled => report.settled += 1,
                Ok(_) => report.pending += 1,
                Err(error) => {
                    report.errors += 1;
                    if let Some(error) = error {
                        tracing::warn!(reference = %reference, error = %error, "Import not reconciled this time.");
                    }
                }
            }
            if !settled {
                oldest_left = Some(oldest_left.map_or(submitted_at, |o| o.min(submitted_at)));
            }
        }
        report.oldest_open_secs = oldest_left.map_or(0, |at| now_secs().saturating_sub(at));
        tracing::info!(
            open = report.open,
            settled = report.settled,
            pending = report.pending,
            errors = report.errors,
            oldest_open_secs = report.oldest_open_secs,
            "Imports reconciled."
        );
        emit(&report);
        report
    }
}

fn emit(report: &ReconcileReport) {
    metrics::emit(metrics::oldest_open_import(report.oldest_open_secs));
}

impl ReconcileReport {
    pub fn to_json(&self) -> Value {
        json!({
            "open": self.open,
            "settled": self.settled,
            "pending": self.pending,
            "errors": self.errors,
            "oldest_open_secs": self.oldest_open_secs,
        })
    }
}
