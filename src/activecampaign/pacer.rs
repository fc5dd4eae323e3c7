//! Spaces requests to ActiveCampaign (5 per second per account) and lets a 429's
//! `Retry-After` hold back every request of this container, not only the one that got it.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// ActiveCampaign's documented limit: 5 requests per second per account.
pub(super) const DEFAULT_REQUESTS_PER_SECOND: f64 = 5.0;

#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl Pacer {
    pub(crate) fn new(requests_per_second: f64) -> Self {
        let rate = if requests_per_second.is_finite() && requests_per_second > 0.0 {
            requests_per_second
        } else {
            DEFAULT_REQUESTS_PER_SECOND
        };
        Self {
            interval: Duration::from_secs_f64(1.0 / rate),
            next_slot: Mutex::new(None),
        }
    }

    /// Waits for the next free slot. When that slot is later than `deadline`, returns how long
    /// it is away instead (the real wait, e.g. a long `Retry-After`), without waiting or
    /// taking it.
    pub(crate) async fn acquire(&self, deadline: Instant) -> Result<(), Duration> {
        let at = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            if at > deadline {
                return Err(at - now);
            }
            *next = Some(at + self.interval);
            at
        };
        // A free slot is taken at once: tokio's timer rounds every sleep up to its next
        // millisecond tick, which added about 1 ms to each warm ActiveCampaign call.
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        Ok(())
    }

    /// How long until the next free slot (zero when one is free now).
    pub(crate) async fn wait(&self) -> Duration {
        let next = self.next_slot.lock().await;
        next.map_or(Duration::ZERO, |n| {
            n.saturating_duration_since(Instant::now())
        })
    }

    /// Holds every later request back until `until` (a 429's `Retry-After`).
    pub(crate) async fn pause_until(&self, until: Instant) {
        let mut next = self.next_slot.lock().await;
        if next.is_none_or(|n| n < until) {
            *next = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_and_honours_pauses() {
        let pacer = Pacer::new(5.0);
        let start = Instant::now();
        let far = start + Duration::from_secs(60);
        for _ in 0..6 {
            assert!(pacer.acquire(far).await.is_ok());
        }
        // Six requests at 5/s: the sixth starts one second after the first.
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        pacer
            .pause_until(Instant::now() + Duration::from_secs(30))
            .await;
        // Refused with the real wait, not a guess.
        assert_eq!(
            pacer
                .acquire(Instant::now() + Duration::from_secs(10))
                .await,
            Err(Duration::from_secs(30))
        );
        assert_eq!(pacer.wait().await, Duration::from_secs(30));
        assert!(pacer.acquire(far).await.is_ok());
        assert_eq!(Instant::now() - start, Duration::from_secs(31));
    }
}
