//! The in-memory backend: GCRA state in [`LocalLimiter`], quota counters in a
//! sharded map, persisted to `DATA_DIR/quotas.tsv` every second and on shutdown.
//! A crash loses at most the last second of counts (it under-counts, never locks
//! a client out by mistake).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use qaqpa_routing::limit::{quota_allows, LocalLimiter, QuotaPeriod, Verdict};

use super::{period_end_ns, period_id, Check, Decision};

#[derive(Default)]
pub struct LocalBackend {
    rates: LocalLimiter,
    quotas: DashMap<(u64, QuotaPeriod, u32), AtomicU64>,
    dirty: AtomicBool,
}

impl LocalBackend {
    pub fn check(&self, c: &Check) -> Decision {
        let now = c.now_ns;
        // Quotas are read first and charged last, so a request refused by a rate
        // does not spend quota and one refused by quota does not spend rate.
        let quota_periods = [(QuotaPeriod::Day, c.quota_day), (QuotaPeriod::Month, c.quota_month)]
            .into_iter()
            .filter_map(|(p, l)| Some((p, l?)));
        for (period, limit) in quota_periods.clone() {
            if !quota_allows(self.used(c.pair_key, period, now), limit) {
                return Decision::QuotaExhausted { period, retry_after_ns: period_end_ns(period, now) };
            }
        }
        let mut remaining: Option<u32> = None;
        let mut reset_ns = 0;
        for (key, rate) in [(c.consumer_key, c.consumer_rate), (c.pair_key, c.pair_rate)] {
            let Some(rate) = rate else { continue };
            match self.rates.check(key, rate, now) {
                Verdict::Deny { retry_after_ns } => return Decision::RateLimited { retry_after_ns },
                Verdict::Allow { remaining: r, reset_ns: t } => {
                    remaining = Some(remaining.map_or(r, |m| m.min(r)));
                    reset_ns = reset_ns.max(t);
                }
            }
        }
        let mut quota_left = None;
        for (period, limit) in quota_periods {
            let used = self.charge(c.pair_key, period, now);
            let left = limit.saturating_sub(used);
            if quota_left.is_none_or(|(_, l)| left < l) {
                quota_left = Some((period, left));
            }
        }
        Decision::Allow { remaining, reset_ns, quota_left }
    }

    fn used(&self, key: u64, period: QuotaPeriod, now: u64) -> u64 {
        self.quotas.get(&(key, period, period_id(period, now))).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn charge(&self, key: u64, period: QuotaPeriod, now: u64) -> u64 {
        self.dirty.store(true, Ordering::Relaxed);
        let slot = self.quotas.entry((key, period, period_id(period, now))).or_insert_with(|| AtomicU64::new(0));
        slot.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Forgets rate state of idle keys and quota counters of past periods.
    pub fn housekeep(&self, now: u64) {
        self.rates.evict_idle(now);
        self.quotas.retain(|(_, period, id), _| *id >= period_id(*period, now));
    }

    /// Loads counters written by [`save`](Self::save); unknown lines are skipped.
    pub fn load(&self, path: &Path, now: u64) -> std::io::Result<usize> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for line in text.lines() {
            let mut f = line.split('\t');
            let (Some(key), Some(period), Some(id), Some(count)) = (f.next(), f.next(), f.next(), f.next()) else {
                continue;
            };
            let period = match period {
                "day" => QuotaPeriod::Day,
                "month" => QuotaPeriod::Month,
                _ => continue,
            };
            let (Ok(key), Ok(id), Ok(count)) = (u64::from_str_radix(key, 16), id.parse::<u32>(), count.parse::<u64>())
            else {
                continue;
            };
            if id == period_id(period, now) {
                self.quotas.insert((key, period, id), AtomicU64::new(count));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Writes the counters atomically (temp file, fsync, rename) if they changed.
    pub fn save(&self, path: &Path) -> std::io::Result<bool> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(false);
        }
        let mut out = String::new();
        for entry in self.quotas.iter() {
            let (key, period, id) = entry.key();
            out.push_str(&format!(
                "{key:016x}\t{}\t{id}\t{}\n",
                period.as_str(),
                entry.value().load(Ordering::Relaxed)
            ));
        }
        let tmp: PathBuf = path.with_extension("tsv.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(out.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(true)
    }
}
