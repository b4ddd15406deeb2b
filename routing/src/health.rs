//! Upstream endpoint health: a circuit breaker per endpoint (closed → open after
//! consecutive failures → half-open single probe after a pause → closed on success),
//! active health checks that eject an endpoint after consecutive failed probes and
//! bring it back after consecutive good ones (independent of the breaker, which is
//! passive outlier detection from real traffic),
//! power-of-two-choices balancing by requests in flight among endpoints that admit
//! traffic, and a retry budget so retries cannot multiply an outage. Pure: time and
//! randomness are passed in.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long an open breaker refuses traffic before letting one probe through.
    pub open_for_ns: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failures_to_open: 5, open_for_ns: 10_000_000_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// How many consecutive active-check results change an endpoint's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeThresholds {
    pub unhealthy: u32,
    pub healthy: u32,
}

#[derive(Debug, Default)]
pub struct Endpoint {
    in_flight: AtomicU32,
    failures: AtomicU32,
    /// When the breaker opened (0: closed).
    opened_at: AtomicU64,
    probing: AtomicBool,
    /// Taken out of rotation by the active health check.
    ejected: AtomicBool,
    /// Consecutive active-check results of the same kind: > 0 passes, < 0 failures.
    streak: AtomicI64,
}

/// Counts a request in flight to an endpoint until dropped.
pub struct InFlight<'a>(&'a Endpoint);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Endpoint {
    pub fn state(&self, cfg: &BreakerConfig, now: u64) -> BreakerState {
        match self.opened_at.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            at if now < at.saturating_add(cfg.open_for_ns) => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the active health check has taken this endpoint out of rotation.
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Acquire)
    }

    /// Records one active health check; returns the new standing when it changed
    /// (`Some(true)`: back in rotation, `Some(false)`: ejected). A recovered endpoint
    /// also gets a closed breaker: the check proved it answers again.
    pub fn on_probe(&self, passed: bool, t: &ProbeThresholds) -> Option<bool> {
        let streak = match self.streak.load(Ordering::Acquire) {
            s if passed => s.max(0) + 1,
            s => s.min(0) - 1,
        };
        self.streak.store(streak, Ordering::Release);
        let ejected = self.is_ejected();
        if ejected && streak >= i64::from(t.healthy) {
            self.ejected.store(false, Ordering::Release);
            self.on_success();
            Some(true)
        } else if !ejected && -streak >= i64::from(t.unhealthy) {
            self.ejected.store(true, Ordering::Release);
            Some(false)
        } else {
            None
        }
    }

    /// Whether a request may go here now; in half-open state only one probe at a time.
    fn admits(&self, cfg: &BreakerConfig, now: u64) -> bool {
        if self.is_ejected() {
            return false;
        }
        match self.state(cfg, now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
            }
        }
    }

    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    pub fn on_success(&self) {
        // Reads first: the common case (healthy, closed) writes nothing.
        if self.failures.load(Ordering::Acquire) != 0 {
            self.failures.store(0, Ordering::Release);
        }
        if self.opened_at.load(Ordering::Acquire) != 0 {
            self.opened_at.store(0, Ordering::Release);
        }
        if self.probing.load(Ordering::Acquire) {
            self.probing.store(false, Ordering::Release);
        }
    }

    pub fn on_failure(&self, cfg: &BreakerConfig, now: u64) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let probe_failed = self.probing.swap(false, Ordering::AcqRel);
        if probe_failed || failures >= cfg.failures_to_open {
            self.opened_at.store(now.max(1), Ordering::Release);
        }
    }
}

/// Picks an endpoint: two random candidates, the one with fewer requests in flight
/// first; when neither admits traffic, the first other endpoint that does. `None`
/// when every breaker is open. `exclude` skips one (the one a retry is leaving).
pub fn pick(
    endpoints: &[Endpoint],
    cfg: &BreakerConfig,
    now: u64,
    random: u64,
    exclude: Option<usize>,
) -> Option<usize> {
    pick_by(endpoints, |e| e, cfg, now, random, exclude)
}

/// [`pick`] over any items that carry an [`Endpoint`].
pub fn pick_by<T>(
    items: &[T],
    endpoint: impl Fn(&T) -> &Endpoint,
    cfg: &BreakerConfig,
    now: u64,
    random: u64,
    exclude: Option<usize>,
) -> Option<usize> {
    let n = items.len();
    if n == 0 {
        return None;
    }
    let endpoints = |i: usize| endpoint(&items[i]);
    let a = (random % n as u64) as usize;
    let b = if n > 1 { (a + 1 + ((random >> 32) % (n as u64 - 1)) as usize) % n } else { a };
    let (first, second) = if endpoints(b).in_flight() < endpoints(a).in_flight() { (b, a) } else { (a, b) };
    let candidates = [first, second].into_iter().chain((0..n).map(|i| (a + i) % n));
    // Which endpoints were tried: a bit set, allocation-free up to 128 endpoints.
    let mut tried = [0u64; 2];
    let mut seen = |i: usize| {
        let (word, bit) = ((i / 64) % 2, 1u64 << (i % 64));
        let was = tried[word] & bit != 0;
        tried[word] |= bit;
        was
    };
    for (step, i) in candidates.enumerate() {
        // Past 128 endpoints the bit set aliases; the scan still ends after n + 2 steps.
        if step > n + 1 {
            break;
        }
        if Some(i) == exclude || (seen(i) && n <= 128) {
            continue;
        }
        if endpoints(i).admits(cfg, now) {
            return Some(i);
        }
    }
    None
}

/// Retries may add at most `ratio` of the requests (plus a small reserve), so a
/// failing provider sees at most that much extra load from the gateway.
#[derive(Debug)]
pub struct RetryBudget {
    /// Balance in thousandths of a retry.
    balance: AtomicI64,
    per_request: i64,
    cap: i64,
}

impl RetryBudget {
    /// `ratio` in percent of requests; starts with `reserve` retries available.
    pub fn new(ratio_percent: u32, reserve: u32) -> Self {
        let reserve = i64::from(reserve) * 1000;
        Self { balance: AtomicI64::new(reserve), per_request: i64::from(ratio_percent) * 10, cap: reserve.max(1000) }
    }

    pub fn deposit(&self) {
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| Some((b + self.per_request).min(self.cap)));
    }

    pub fn try_withdraw(&self) -> bool {
        self.balance.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| (b >= 1000).then_some(b - 1000)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: BreakerConfig = BreakerConfig { failures_to_open: 3, open_for_ns: 1000 };

    #[test]
    fn breaker_opens_probes_and_closes() {
        let e = Endpoint::default();
        assert_eq!(e.state(&CFG, 0), BreakerState::Closed);
        e.on_failure(&CFG, 10);
        e.on_failure(&CFG, 11);
        assert_eq!(e.state(&CFG, 12), BreakerState::Closed);
        e.on_failure(&CFG, 12);
        assert_eq!(e.state(&CFG, 13), BreakerState::Open);
        assert!(!e.admits(&CFG, 500));
        // After the pause, exactly one probe.
        assert_eq!(e.state(&CFG, 1012), BreakerState::HalfOpen);
        assert!(e.admits(&CFG, 1012));
        assert!(!e.admits(&CFG, 1013), "one probe at a time");
        // A failed probe opens it again at once; a good one closes it.
        e.on_failure(&CFG, 1014);
        assert_eq!(e.state(&CFG, 1015), BreakerState::Open);
        assert!(e.admits(&CFG, 2014));
        e.on_success();
        assert_eq!(e.state(&CFG, 2015), BreakerState::Closed);
        assert!(e.admits(&CFG, 2015) && e.admits(&CFG, 2015));
    }

    #[test]
    fn p2c_prefers_the_less_loaded_and_skips_open_breakers() {
        let eps: Vec<Endpoint> = (0..3).map(|_| Endpoint::default()).collect();
        let _busy: Vec<_> = (0..5).map(|_| eps[0].enter()).collect();
        // Candidates 0 and 1: 1 has fewer in flight.
        assert_eq!(pick(&eps, &CFG, 0, 0, None), Some(1));
        for _ in 0..3 {
            eps[1].on_failure(&CFG, 0);
        }
        // 1 is open: the pick falls to the less loaded of the rest.
        let picked = pick(&eps, &CFG, 1, 0, None);
        assert!(picked == Some(0) || picked == Some(2));
        assert_ne!(pick(&eps, &CFG, 1, 7, Some(2)), Some(2), "a retry leaves the failed endpoint");
        for i in [0, 2] {
            for _ in 0..3 {
                eps[i].on_failure(&CFG, 0);
            }
        }
        assert_eq!(pick(&eps, &CFG, 1, 0, None), None, "every breaker open");
        assert_eq!(pick(&[], &CFG, 0, 0, None), None);
        // Spread: with equal load every endpoint gets picked.
        let fresh: Vec<Endpoint> = (0..4).map(|_| Endpoint::default()).collect();
        let mut seen = [0; 4];
        let mut r = 0x1234_5678_9abc_def0u64;
        for _ in 0..400 {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            seen[pick(&fresh, &CFG, 0, r, None).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn active_checks_eject_and_restore_after_their_streaks() {
        let t = ProbeThresholds { unhealthy: 2, healthy: 3 };
        let eps: Vec<Endpoint> = (0..2).map(|_| Endpoint::default()).collect();
        let e = &eps[0];
        assert_eq!(e.on_probe(false, &t), None, "one failure is not a streak");
        assert_eq!(e.on_probe(true, &t), None);
        assert_eq!(e.on_probe(false, &t), None, "a pass reset the failures");
        assert_eq!(e.on_probe(false, &t), Some(false), "two in a row eject");
        assert!(e.is_ejected());
        assert_eq!(e.on_probe(false, &t), None, "already out");
        // Ejected: never picked, even as the only candidate left.
        for r in 0..20 {
            assert_eq!(pick(&eps, &CFG, 0, r, None), Some(1));
        }
        assert_eq!(pick(&eps, &CFG, 0, 0, Some(1)), None);
        assert_eq!(e.on_probe(true, &t), None);
        assert_eq!(e.on_probe(true, &t), None);
        // A breaker opened meanwhile by traffic is closed by the recovery.
        for _ in 0..3 {
            e.on_failure(&CFG, 5);
        }
        assert_eq!(e.on_probe(true, &t), Some(true), "three passes restore");
        assert!(!e.is_ejected());
        assert_eq!(e.state(&CFG, 6), BreakerState::Closed);
        assert_eq!(pick(&eps, &CFG, 6, 0, Some(1)), Some(0));
    }

    #[test]
    fn retry_budget_allows_a_share_of_requests() {
        let b = RetryBudget::new(20, 2);
        assert!(b.try_withdraw() && b.try_withdraw());
        assert!(!b.try_withdraw(), "reserve spent");
        for _ in 0..5 {
            b.deposit();
        }
        assert!(b.try_withdraw(), "5 requests at 20 % earn one retry");
        assert!(!b.try_withdraw());
        for _ in 0..1000 {
            b.deposit();
        }
        assert!(b.try_withdraw() && b.try_withdraw() && !b.try_withdraw(), "capped at the reserve");
    }
}
