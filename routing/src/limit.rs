//! Rate limiting by GCRA (the generic cell rate algorithm) and the arithmetic of
//! quotas. Pure: the caller passes the time in nanoseconds since any fixed epoch, so
//! tests drive a fake clock and the Redis backend can run the same arithmetic in Lua.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next
//! request; a request is allowed when it arrives no earlier than `TAT - tolerance`.
//! That is one atomic word per key: no buckets to refill, no background task.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// A rate with a burst: `burst` requests may arrive at once, then one every
/// `interval_ns` on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Nanoseconds between requests at the steady rate.
    pub interval_ns: u64,
    /// Requests allowed back to back from idle (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `count` requests per `period_ns`, with `burst`.
    pub fn new(count: u64, period_ns: u64, burst: u32) -> Option<Self> {
        if count == 0 || period_ns == 0 || burst == 0 {
            return None;
        }
        Some(Self { interval_ns: (period_ns / count).max(1), burst })
    }

    /// How far ahead of now the TAT may run: room for `burst - 1` extra requests.
    pub fn tolerance_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst - 1))
    }

    /// Requests per second, for the `RateLimit-Policy` header.
    pub fn per_second(&self) -> f64 {
        1e9 / self.interval_ns as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        /// Requests that could still be made right now.
        remaining: u32,
        /// Nanoseconds until the limiter is back to a full burst.
        reset_ns: u64,
    },
    Deny {
        /// Nanoseconds until a request would be allowed.
        retry_after_ns: u64,
    },
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }
}

/// One GCRA step: the verdict and the new TAT to store (unchanged on deny, so a
/// rejected request costs the client nothing).
pub fn gcra(rate: Rate, tat: u64, now: u64) -> (Verdict, u64) {
    let tolerance = rate.tolerance_ns();
    let tat = tat.max(now);
    let allow_at = tat.saturating_sub(tolerance);
    if now < allow_at {
        return (Verdict::Deny { retry_after_ns: allow_at - now }, tat);
    }
    let new_tat = tat + rate.interval_ns;
    let slack = (now + tolerance).saturating_sub(tat);
    let remaining = (slack / rate.interval_ns).min(u64::from(rate.burst - 1)) as u32;
    (Verdict::Allow { remaining, reset_ns: new_tat - now }, new_tat)
}

/// GCRA state for many keys in memory, lock-free per key (a CAS loop on one word),
/// sharded across keys by dashmap.
#[derive(Default)]
pub struct LocalLimiter {
    tats: DashMap<u64, AtomicU64>,
}

impl LocalLimiter {
    pub fn check(&self, key: u64, rate: Rate, now: u64) -> Verdict {
        if let Some(tat) = self.tats.get(&key) {
            return cas_step(&tat, rate, now);
        }
        let tat = self.tats.entry(key).or_insert_with(|| AtomicU64::new(0));
        cas_step(&tat, rate, now)
    }

    /// Drops keys idle long enough to be back at a full burst, so memory stays
    /// proportional to the keys active recently.
    pub fn evict_idle(&self, now: u64) {
        self.tats.retain(|_, tat| tat.load(Ordering::Relaxed) > now);
    }

    pub fn len(&self) -> usize {
        self.tats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }
}

fn cas_step(tat: &AtomicU64, rate: Rate, now: u64) -> Verdict {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        let (verdict, new_tat) = gcra(rate, current, now);
        if !verdict.is_allowed() {
            return verdict;
        }
        match tat.compare_exchange_weak(current, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return verdict,
            Err(seen) => current = seen,
        }
    }
}

/// Additive-increase / multiplicative-decrease limit on requests in flight, driven
/// by a measure of queueing delay (the gateway feeds it event-loop lag). Over the
/// target the limit shrinks to 90 % of what is in flight; under it the limit grows
/// by one per sample. Requests over the limit are shed at once instead of queueing.
#[derive(Debug, Clone)]
pub struct Aimd {
    pub min: u32,
    pub max: u32,
    pub target_delay_ns: u64,
    limit: u32,
}

impl Aimd {
    pub fn new(min: u32, max: u32, target_delay_ns: u64) -> Self {
        Self { min, max, target_delay_ns, limit: max }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Feeds one delay sample taken with `in_flight` requests running.
    pub fn sample(&mut self, delay_ns: u64, in_flight: u32) -> u32 {
        self.limit = if delay_ns > self.target_delay_ns {
            ((u64::from(in_flight.min(self.limit)) * 9 / 10) as u32).max(self.min)
        } else {
            self.limit.saturating_add(1).min(self.max)
        };
        self.limit
    }
}

/// Calendar periods of quotas, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaPeriod {
    Day,
    Month,
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }
}

/// Whether one more request fits `limit` given `used`; a refused request is not
/// counted, so a client locked out by its quota does not dig itself deeper.
pub fn quota_allows(used: u64, limit: u64) -> bool {
    used < limit
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_steady_rate_exact_sequence() {
        // 10 per second (one per 100 ms), burst 3.
        let rate = Rate::new(10, 1000 * MS, 3).unwrap();
        let limiter = LocalLimiter::default();
        let at = |t_ms: u64| limiter.check(7, rate, 1_000_000 * MS + t_ms * MS);
        // Burst of 3 at t=0, the 4th is refused with the time to wait.
        assert_eq!(at(0), Verdict::Allow { remaining: 2, reset_ns: 100 * MS });
        assert_eq!(at(0), Verdict::Allow { remaining: 1, reset_ns: 200 * MS });
        assert_eq!(at(0), Verdict::Allow { remaining: 0, reset_ns: 300 * MS });
        assert_eq!(at(0), Verdict::Deny { retry_after_ns: 100 * MS });
        assert_eq!(at(50), Verdict::Deny { retry_after_ns: 50 * MS });
        // Then exactly one every 100 ms.
        assert!(at(100).is_allowed());
        assert_eq!(at(100), Verdict::Deny { retry_after_ns: 100 * MS });
        assert!(at(200).is_allowed());
        assert!(!at(299).is_allowed());
        assert!(at(300).is_allowed());
        // Idle for a second: the full burst is back, no more.
        assert!(at(1300).is_allowed());
        assert!(at(1300).is_allowed());
        assert!(at(1300).is_allowed());
        assert!(!at(1300).is_allowed());
        // Other keys are independent.
        assert!(limiter.check(8, rate, 1_000_000 * MS).is_allowed());
    }

    #[test]
    fn denials_do_not_consume() {
        let rate = Rate::new(1, 1000 * MS, 1).unwrap();
        let limiter = LocalLimiter::default();
        assert!(limiter.check(1, rate, 0).is_allowed());
        for t in 1..100 {
            assert!(!limiter.check(1, rate, t * MS).is_allowed());
        }
        assert!(
            limiter.check(1, rate, 1000 * MS).is_allowed(),
            "hammering while refused must not push the next slot out"
        );
    }

    #[test]
    fn two_threads_hammering_one_key_never_exceed_the_limit() {
        let rate = Rate::new(100, 1000 * MS, 10).unwrap();
        let limiter = std::sync::Arc::new(LocalLimiter::default());
        // Fake time advances 1 s over 10,000 attempts per thread: at most
        // burst + 100 allowed in that second, whatever the interleaving.
        let allowed: u64 = (0..2)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..10_000u64).filter(|i| limiter.check(1, rate, i * 100_000).is_allowed()).count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert!(allowed <= 10 + 100, "allowed {allowed}");
        assert!(allowed >= 100, "allowed only {allowed}");
    }

    #[test]
    fn eviction_keeps_only_active_keys() {
        let rate = Rate::new(1, 1000 * MS, 1).unwrap();
        let limiter = LocalLimiter::default();
        limiter.check(1, rate, 0);
        limiter.check(2, rate, 5000 * MS);
        limiter.evict_idle(2000 * MS);
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn rate_construction() {
        assert_eq!(Rate::new(0, 1, 1), None);
        assert_eq!(Rate::new(1, 1, 0), None);
        let r = Rate::new(50, 1_000_000_000, 1).unwrap();
        assert_eq!(r.interval_ns, 20 * MS);
        assert!((r.per_second() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn aimd_sheds_under_delay_and_recovers() {
        let mut a = Aimd::new(4, 100, 20 * MS);
        assert_eq!(a.limit(), 100);
        assert_eq!(a.sample(50 * MS, 80), 72);
        assert_eq!(a.sample(50 * MS, 72), 64);
        assert_eq!(a.sample(50 * MS, 2), 4, "never below min");
        assert_eq!(a.sample(MS, 4), 5);
        for _ in 0..200 {
            a.sample(0, 0);
        }
        assert_eq!(a.limit(), 100, "never above max");
    }

    #[test]
    fn quota_arithmetic() {
        assert!(quota_allows(0, 1));
        assert!(!quota_allows(1, 1));
        assert!(!quota_allows(0, 0));
    }
}
