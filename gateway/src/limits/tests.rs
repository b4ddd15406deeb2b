//! One behavioural suite, run against the in-memory backend and a real Redis
//! (`QAQPA_TEST_REDIS`, default redis://127.0.0.1:6379; in CI an unreachable Redis
//! fails the test instead of skipping it).

use qaqpa_routing::limit::{QuotaPeriod, Rate};

use super::local::LocalBackend;
use super::redis::RedisBackend;
use super::*;

const MS: u64 = 1_000_000;
/// 2030-01-15T00:00:00Z: mid-month, so day and month boundaries are far.
const T0: u64 = 1_894_665_600 * 1_000_000_000;

enum Backend {
    Local(LocalBackend),
    Redis(Box<RedisBackend>),
}

impl Backend {
    async fn check(&self, c: &Check) -> Decision {
        match self {
            Backend::Local(b) => b.check(c),
            Backend::Redis(b) => b.check(c).await.unwrap(),
        }
    }
}

fn check(pair: Option<Rate>, consumer: Option<Rate>, day: Option<u64>, month: Option<u64>, t_ms: u64) -> Check {
    Check {
        pair_key: 11,
        pair_rate: pair,
        consumer_key: 22,
        consumer_rate: consumer,
        quota_day: day,
        quota_month: month,
        now_ns: T0 + t_ms * MS,
    }
}

/// The GCRA runs on Redis's clock: a node whose clock is 10 minutes ahead does not
/// find a 1/min limit's state expired (on the caller's clock it would admit).
async fn skew_does_not_shift_admissions(b: &RedisBackend) {
    let rate = Rate::new(1, 60_000 * MS, 1);
    let now = now_ns();
    let on = |now_ns| Check { pair_key: 77, ..check(rate, None, None, None, 0) }.with_now(now_ns);
    assert!(matches!(b.check(&on(now)).await.unwrap(), Decision::Allow { .. }));
    let ahead = b.check(&on(now + 600_000 * MS)).await.unwrap();
    assert!(matches!(ahead, Decision::RateLimited { .. }), "a skewed node's clock is not the time: {ahead:?}");
}

impl Check {
    fn with_now(self, now_ns: u64) -> Self {
        Self { now_ns, ..self }
    }
}

async fn suite(b: Backend) {
    // Burst 2 at 10/s, then one per 100 ms; denials name the wait.
    let rate = Rate::new(10, 1000 * MS, 2);
    let allowed = |d: Decision| matches!(d, Decision::Allow { .. });
    assert_eq!(
        b.check(&check(rate, None, None, None, 0)).await,
        Decision::Allow { remaining: Some(1), reset_ns: 100 * MS, quota_left: None }
    );
    assert_eq!(
        b.check(&check(rate, None, None, None, 0)).await,
        Decision::Allow { remaining: Some(0), reset_ns: 200 * MS, quota_left: None }
    );
    assert_eq!(b.check(&check(rate, None, None, None, 0)).await, Decision::RateLimited { retry_after_ns: 100 * MS });
    assert_eq!(b.check(&check(rate, None, None, None, 40)).await, Decision::RateLimited { retry_after_ns: 60 * MS });
    assert!(allowed(b.check(&check(rate, None, None, None, 100)).await));
    assert!(!allowed(b.check(&check(rate, None, None, None, 150)).await));
    assert!(allowed(b.check(&check(rate, None, None, None, 200)).await));

    // The consumer-wide rate applies on top of the pair's.
    let slow = Rate::new(1, 1000 * MS, 1);
    assert!(allowed(b.check(&check(None, slow, None, None, 10_000)).await));
    assert_eq!(
        b.check(&check(None, slow, None, None, 10_500)).await,
        Decision::RateLimited { retry_after_ns: 500 * MS }
    );

    // Quotas: 3 a day; refusals by rate spend no quota; then exhausted until midnight.
    let quota_rate = Rate::new(1000, 1000 * MS, 1);
    let mut t = 20_000;
    let mut spent = 0;
    while spent < 3 {
        let d = b.check(&Check { pair_key: 33, ..check(quota_rate, None, Some(3), Some(100), t) }).await;
        if let Decision::Allow { quota_left, .. } = d {
            spent += 1;
            assert_eq!(quota_left, Some((QuotaPeriod::Day, 3 - spent)));
        }
        // A second check in the same millisecond is refused by the rate (or, once
        // the quota is spent, by the quota), and costs nothing.
        let again = b.check(&Check { pair_key: 33, ..check(quota_rate, None, Some(3), Some(100), t) }).await;
        let expected_quota = spent == 3 && matches!(again, Decision::QuotaExhausted { .. });
        assert!(matches!(again, Decision::RateLimited { .. }) || expected_quota, "{again:?}");
        t += 10;
    }
    let d = b.check(&Check { pair_key: 33, ..check(quota_rate, None, Some(3), Some(100), t) }).await;
    let Decision::QuotaExhausted { period, retry_after_ns } = d else { panic!("{d:?}") };
    assert_eq!(period, QuotaPeriod::Day);
    assert_eq!(retry_after_ns, 86_400_000 * MS - t * MS);
    // The next day it opens again; the month quota keeps counting.
    let next_day = 86_400_000 + 1;
    let d = b.check(&Check { pair_key: 33, ..check(quota_rate, None, Some(3), Some(4), next_day) }).await;
    assert_eq!(d, Decision::Allow { remaining: Some(0), reset_ns: MS, quota_left: Some((QuotaPeriod::Month, 0)) });
    let d = b.check(&Check { pair_key: 33, ..check(quota_rate, None, Some(3), Some(4), next_day + 10) }).await;
    assert!(matches!(d, Decision::QuotaExhausted { period: QuotaPeriod::Month, .. }), "{d:?}");
}

#[tokio::test]
async fn local_backend_passes_the_suite() {
    suite(Backend::Local(LocalBackend::default())).await;
}

#[tokio::test]
async fn redis_backend_passes_the_suite() {
    let url = std::env::var("QAQPA_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("qaqpa-test-{}", uuid::Uuid::now_v7());
    match RedisBackend::connect(&url, std::time::Duration::from_secs(1), &prefix).await {
        Ok(b) if b.is_available() => {
            skew_does_not_shift_admissions(&b).await;
            suite(Backend::Redis(Box::new(b.with_caller_clock()))).await
        }
        Ok(_) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI: Redis at {url} is required"),
        Ok(_) => eprintln!("SKIPPED: Redis at {url} unreachable; set QAQPA_TEST_REDIS or start redis-server"),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI: Redis at {url} is required: {e}"),
        Err(e) => eprintln!("SKIPPED: Redis at {url} unreachable ({e}); set QAQPA_TEST_REDIS or start redis-server"),
    }
}

#[test]
fn quota_counters_survive_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quotas.tsv");
    let a = LocalBackend::default();
    for i in 0..5 {
        a.check(&check(None, None, Some(10), None, i));
    }
    assert!(a.save(&path).unwrap());
    assert!(!a.save(&path).unwrap(), "nothing changed, nothing written");
    let b = LocalBackend::default();
    assert_eq!(b.load(&path, T0).unwrap(), 1);
    let d = b.check(&check(None, None, Some(10), None, 100));
    assert_eq!(d, Decision::Allow { remaining: None, reset_ns: 0, quota_left: Some((QuotaPeriod::Day, 4)) });
    // A counter from a past day is not carried over.
    assert_eq!(LocalBackend::default().load(&path, T0 + 86_400_000 * MS).unwrap(), 0);
}

#[test]
fn periods() {
    assert_eq!(period_id(QuotaPeriod::Day, T0), 1_894_665_600 / 86_400);
    assert_eq!(period_id(QuotaPeriod::Month, T0), 2030 * 12);
    assert_eq!(period_end_ns(QuotaPeriod::Day, T0), 86_400 * 1_000_000_000);
    assert_eq!(period_end_ns(QuotaPeriod::Month, T0), 17 * 86_400 * 1_000_000_000);
    assert_eq!(retry_after_secs(1), 1);
    assert_eq!(retry_after_secs(1_500_000_000), 2);
    assert_ne!(stable_key("a"), stable_key("b"));
    assert_eq!(stable_key("KZ/GOV/1/a"), stable_key("KZ/GOV/1/a"));
}
