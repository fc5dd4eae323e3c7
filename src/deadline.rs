//! How long an invocation may keep working, tolerant of `cargo lambda watch`, whose
//! deadline header is the constant 600000 ms (1970), already in the past.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time kept back to answer the sender after the last ActiveCampaign attempt.
pub(crate) const DEFAULT_MARGIN: Duration = Duration::from_millis(500);

/// The time left: `deadline − now − margin` when the deadline is in the future, otherwise
/// the configured `fallback` budget. Always capped at `cap`.
pub(crate) fn remaining_budget(
    deadline_epoch_ms: u64,
    now: SystemTime,
    fallback: Duration,
    margin: Duration,
    cap: Duration,
) -> Duration {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let budget = if deadline_epoch_ms > now_ms {
        Duration::from_millis(deadline_epoch_ms - now_ms).saturating_sub(margin)
    } else {
        fallback
    };
    budget.min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FALLBACK: Duration = Duration::from_secs(20);
    const CAP: Duration = Duration::from_secs(25);

    #[test]
    fn real_deadline_minus_margin() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let deadline = 1_700_000_000_000 + 3_000;
        assert_eq!(
            remaining_budget(deadline, now, FALLBACK, DEFAULT_MARGIN, CAP),
            Duration::from_millis(2_500)
        );
    }

    #[test]
    fn watch_quirk_and_unit_test_contexts_use_the_fallback() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            remaining_budget(600_000, now, FALLBACK, DEFAULT_MARGIN, CAP),
            FALLBACK
        );
        assert_eq!(
            remaining_budget(0, now, FALLBACK, DEFAULT_MARGIN, CAP),
            FALLBACK
        );
    }

    #[test]
    fn capped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let far = 1_700_000_000_000 + 900_000;
        assert_eq!(
            remaining_budget(far, now, FALLBACK, DEFAULT_MARGIN, CAP),
            CAP
        );
    }
}
