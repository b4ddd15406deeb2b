//! The Redis backend: cluster-wide rates and quotas. One Lua script does the whole
//! check atomically in one round trip (never read-then-write from the gateway),
//! with the GCRA arithmetic of `qaqpa_routing::limit` in microseconds (Lua numbers
//! are doubles: nanoseconds since 1970 would lose precision).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qaqpa_routing::limit::{QuotaPeriod, Rate};
use redis::aio::ConnectionManager;

use super::{period_end_ns, period_id, Check, Decision, LimitError};

const SCRIPT: &str = r#"
-- KEYS: consumer tat, pair tat, day quota, month quota
-- ARGV: now_us, c_interval, c_tolerance, p_interval, p_tolerance,
--       day_limit, month_limit, day_ttl_s, month_ttl_s   (0 = not applied),
--       use_now_us (1: the caller's now_us, for the test suite's synthetic clock)
-- The time is Redis's (TIME), so nodes whose clocks differ admit alike.
local now
if ARGV[10] == '1' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function quota_ok(key, limit)
  if limit <= 0 then return true end
  local used = tonumber(redis.call('GET', key) or '0')
  return used < limit
end
local day_limit, month_limit = tonumber(ARGV[6]), tonumber(ARGV[7])
if not quota_ok(KEYS[3], day_limit) then return {2, 0, 0, 0} end
if not quota_ok(KEYS[4], month_limit) then return {3, 0, 0, 0} end
local remaining, reset = -1, 0
local updates = {}
for i = 0, 1 do
  local interval, tolerance = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  if interval > 0 then
    local key = KEYS[1 + i]
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local allow_at = tat - tolerance
    if now < allow_at then return {1, allow_at - now, 0, 0} end
    local new_tat = tat + interval
    local r = math.floor((now + tolerance - tat) / interval)
    local burst_left = math.floor(tolerance / interval)
    if r > burst_left then r = burst_left end
    if remaining < 0 or r < remaining then remaining = r end
    if new_tat - now > reset then reset = new_tat - now end
    updates[#updates + 1] = {key, new_tat, new_tat - now + tolerance}
  end
end
for _, u in ipairs(updates) do
  -- A second of slack: a TAT read just after expiry would admit a request early
  -- (a stalled caller, or nodes whose clocks differ by up to that much).
  redis.call('SET', u[1], u[2], 'PX', math.ceil(u[3] / 1000) + 1000)
end
local left = -1
if day_limit > 0 then
  local used = redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[8]))
  left = day_limit - used
end
if month_limit > 0 then
  local used = redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[9]))
  local l = month_limit - used
  if left < 0 or l < left then left = l; return {0, remaining, reset, left, 1} end
end
return {0, remaining, reset, left, 0}
"#;

/// After a failure, Redis is skipped this long (a circuit): requests get the
/// fallback at once instead of each waiting out `redis_timeout`.
const CIRCUIT_OPEN: Duration = Duration::from_secs(1);

pub struct RedisBackend {
    target: crate::cluster::redis_target::RedisTarget,
    config: redis::aio::ConnectionManagerConfig,
    /// Set once a connection is made (the manager reconnects by itself to its
    /// server); behind Sentinel, dropped on a failure so the next connection goes to
    /// the master the sentinels name then.
    conn: std::sync::Mutex<Option<ConnectionManager>>,
    /// One connection attempt at a time; others do not wait for it.
    connecting: tokio::sync::Mutex<()>,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    /// Redis is skipped until this time (ns since the epoch): it failed recently.
    skip_until_ns: AtomicU64,
    /// Tests only: the GCRA runs on the caller's clock instead of Redis's `TIME`.
    caller_clock: bool,
}

impl RedisBackend {
    /// Connects (bounded by `timeout`); `prefix` namespaces keys (tests use a fresh one).
    /// Redis down at start is not fatal: the node starts and connects when it can
    /// (services apply their `limits_fail` meanwhile); only a malformed URL is.
    pub async fn connect(url: &str, timeout: Duration, prefix: &str) -> Result<Self, LimitError> {
        let target = crate::cluster::redis_target::RedisTarget::open(url).map_err(LimitError::Unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(timeout.max(Duration::from_millis(500)))
            .set_response_timeout(timeout)
            .set_number_of_retries(1);
        let this = Self {
            target,
            config,
            conn: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_owned(),
            timeout,
            skip_until_ns: AtomicU64::new(0),
            caller_clock: false,
        };
        if let Err(e) = this.connection().await {
            tracing::warn!("Redis (limits) is not reachable at start: {e}; services apply limits_fail until it is");
            this.trip();
        }
        Ok(this)
    }

    async fn connection(&self) -> Result<ConnectionManager, LimitError> {
        if let Some(c) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(c.clone());
        }
        let Ok(_one) = self.connecting.try_lock() else {
            return Err(LimitError::Unavailable("connecting to Redis".into()));
        };
        let within = self.timeout.max(Duration::from_secs(2));
        let made = tokio::time::timeout(within, async {
            let client = self.target.client(within).await.map_err(LimitError::Unavailable)?;
            ConnectionManager::new_with_config(client, self.config.clone())
                .await
                .map_err(|e| LimitError::Unavailable(e.to_string()))
        })
        .await
        .map_err(|_| LimitError::Unavailable("connect timed out".into()))??;
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(made.clone());
        Ok(made)
    }

    /// The GCRA on the caller's `now_ns` (the test suite's synthetic clock).
    #[cfg(test)]
    pub fn with_caller_clock(mut self) -> Self {
        self.caller_clock = true;
        self
    }

    fn trip(&self) {
        if self.target.follows_failover() {
            // The master may have moved (a demoted one answers READONLY): ask again.
            self.conn.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        self.skip_until_ns.store(super::now_ns() + CIRCUIT_OPEN.as_nanos() as u64, Ordering::Release);
    }

    /// Connected and not failed within the last second: `/readyz` asks.
    pub fn is_available(&self) -> bool {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).is_some()
            && super::now_ns() >= self.skip_until_ns.load(Ordering::Acquire)
    }

    /// Pings Redis while it counts as unavailable (every second, from housekeeping),
    /// so readiness and the circuit recover without traffic.
    pub async fn probe(&self) {
        if self.is_available() {
            return;
        }
        let ping = async {
            let mut conn = self.connection().await?;
            tokio::time::timeout(self.timeout, redis::cmd("PING").query_async::<String>(&mut conn))
                .await
                .map_err(|_| LimitError::Unavailable("PING timed out".into()))?
                .map_err(|e| LimitError::Unavailable(e.to_string()))
        };
        match ping.await {
            Ok(_) => {
                if self.skip_until_ns.swap(0, Ordering::AcqRel) != 0 {
                    tracing::info!("Redis (limits) answers again");
                }
            }
            Err(_) => self.trip(),
        }
    }

    /// One check in Redis; fails at once while the circuit is open.
    pub async fn check(&self, c: &Check) -> Result<Decision, LimitError> {
        if super::now_ns() < self.skip_until_ns.load(Ordering::Acquire) {
            return Err(LimitError::Unavailable("Redis failed within the last second".into()));
        }
        let result = self.check_now(c).await;
        if let Err(e) = &result {
            // Logged once per circuit interval at most: the next second skips Redis.
            tracing::warn!("Redis (limits): {e}; limits_fail applies for {CIRCUIT_OPEN:?}");
            self.trip();
        }
        result
    }

    async fn check_now(&self, c: &Check) -> Result<Decision, LimitError> {
        let now_us = c.now_ns / 1000;
        let (ci, ct) = rate_args(c.consumer_rate);
        let (pi, pt) = rate_args(c.pair_rate);
        let day = period_id(QuotaPeriod::Day, c.now_ns);
        let month = period_id(QuotaPeriod::Month, c.now_ns);
        let ttl = |p| period_end_ns(p, c.now_ns) / 1_000_000_000 + 86_400;
        let p = &self.prefix;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{p}:r:{:016x}", c.consumer_key))
            .key(format!("{p}:r:{:016x}", c.pair_key))
            .key(format!("{p}:qd:{:016x}:{day}", c.pair_key))
            .key(format!("{p}:qm:{:016x}:{month}", c.pair_key))
            .arg(now_us)
            .arg(ci)
            .arg(ct)
            .arg(pi)
            .arg(pt)
            .arg(c.quota_day.unwrap_or(0))
            .arg(c.quota_month.unwrap_or(0))
            .arg(ttl(QuotaPeriod::Day))
            .arg(ttl(QuotaPeriod::Month))
            .arg(u8::from(self.caller_clock));
        let mut conn = self.connection().await?;
        let reply: Vec<i64> = tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| LimitError::Unavailable(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| LimitError::Unavailable(e.to_string()))?;
        let get = |i: usize| reply.get(i).copied().unwrap_or(0);
        Ok(match get(0) {
            1 => Decision::RateLimited { retry_after_ns: get(1).max(0) as u64 * 1000 },
            2 => Decision::QuotaExhausted {
                period: QuotaPeriod::Day,
                retry_after_ns: period_end_ns(QuotaPeriod::Day, c.now_ns),
            },
            3 => Decision::QuotaExhausted {
                period: QuotaPeriod::Month,
                retry_after_ns: period_end_ns(QuotaPeriod::Month, c.now_ns),
            },
            _ => Decision::Allow {
                remaining: (get(1) >= 0).then_some(get(1) as u32),
                reset_ns: get(2).max(0) as u64 * 1000,
                quota_left: (get(3) >= 0).then(|| {
                    let period =
                        if get(4) == 1 || c.quota_day.is_none() { QuotaPeriod::Month } else { QuotaPeriod::Day };
                    (period, get(3) as u64)
                }),
            },
        })
    }
}

fn rate_args(rate: Option<Rate>) -> (u64, u64) {
    match rate {
        Some(r) => ((r.interval_ns / 1000).max(1), r.tolerance_ns() / 1000),
        None => (0, 0),
    }
}
