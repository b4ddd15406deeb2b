//! When a failed delivery is tried again: exponential backoff with jitter, so that
//! messages that failed together (a provider went down) do not all come back in the
//! same instant when it returns. Pure: the random draw is passed in.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second attempt (before jitter).
    pub base: Duration,
    /// No delay exceeds this (before jitter).
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failed` attempts (1 = the first attempt failed): `base · 2^(failed-1)`
    /// capped at `max`, then scaled into `[½, 1]` of itself by `random` ("equal jitter":
    /// never less than half, so a retry storm cannot collapse to zero delay).
    pub fn delay(&self, failed: u32, random: u64) -> Duration {
        let exp = failed.saturating_sub(1).min(40);
        let full = self.base.saturating_mul(1u32 << exp.min(31)).min(self.max);
        let nanos = full.as_nanos().min(u64::MAX as u128) as u64;
        let half = nanos / 2;
        let jitter = if half == 0 { 0 } else { random % (half + 1) };
        Duration::from_nanos(half + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };

    #[test]
    fn doubles_per_failure_within_half_to_full() {
        for failed in 1..=6u32 {
            let full = Duration::from_secs(1 << (failed - 1));
            assert_eq!(B.delay(failed, 0), full / 2, "least jitter is half of {full:?}");
            let top = B.delay(failed, full.as_nanos() as u64 / 2);
            assert_eq!(top, full, "most jitter is the whole delay");
        }
    }

    #[test]
    fn caps_at_max_even_for_huge_attempt_counts() {
        for failed in [7, 10, 31, 32, 1000, u32::MAX] {
            let d = B.delay(failed, 30_000_000_000);
            assert_eq!(d, Duration::from_secs(60), "attempt {failed}");
            assert!(B.delay(failed, 7) >= Duration::from_secs(30));
        }
    }

    #[test]
    fn spreads_retries_that_failed_together() {
        let delays: std::collections::HashSet<_> = (0..100u64).map(|r| B.delay(3, r * 20_000_003)).collect();
        assert!(delays.len() > 50, "jitter spreads 100 retries over {} distinct delays", delays.len());
    }

    #[test]
    fn zero_base_means_at_once() {
        let b = Backoff { base: Duration::ZERO, max: Duration::ZERO };
        assert_eq!(b.delay(5, 12345), Duration::ZERO);
    }
}
