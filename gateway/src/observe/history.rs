//! Per-service history for the console's charts (docs/operations.md#console): per
//! interval the exchange count, outcome classes, refusals, shedding and a latency
//! histogram with fixed buckets (so intervals merge exactly). Two resolutions: 10 s
//! for the last hour, 5 min for the last 7 days.
//!
//! Fed by the monitoring writer task from the records it appends, never on the
//! request path. Kept in memory and appended as deltas to two small files in
//! `DATA_DIR/monitoring/history/` every few seconds; on start the deltas are summed
//! back, so the history survives a restart (losing at most the last few seconds).
//! A file that has grown to several times what it holds is rewritten whole.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::monitoring::Record;

/// Outcome class of one exchange, as the console and the usage report count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ok,
    ClientError,
    ServerError,
    /// Refused by a rate limit or a quota (`client.rate_limited`, `client.quota_exhausted`).
    Refused,
    /// Shed under overload (`server.overloaded`).
    Shed,
}

impl Class {
    pub fn of(r: &Record) -> Self {
        match r.code.as_deref() {
            Some("client.rate_limited" | "client.quota_exhausted") => Class::Refused,
            Some("server.overloaded") => Class::Shed,
            Some(c) if c.starts_with("server.") => Class::ServerError,
            Some(c) if c.starts_with("client.") => Class::ClientError,
            _ if r.status >= 500 => Class::ServerError,
            _ if r.status >= 400 => Class::ClientError,
            _ => Class::Ok,
        }
    }
}

/// Latency buckets: bucket `i` holds durations up to `BASE_US * 2^(i/4)`, from 50 µs
/// to about 2 minutes; the last one holds everything longer.
const BASE_US: f64 = 50.0;
const BUCKETS: u16 = 88;

fn bucket_of(us: u64) -> u16 {
    if (us as f64) <= BASE_US {
        return 0;
    }
    let i = ((us as f64 / BASE_US).log2() * 4.0).ceil();
    (i as u16).min(BUCKETS - 1)
}

/// A representative duration of bucket `i` in ms: the geometric middle of its bounds
/// (within 10 % of any duration in it).
fn bucket_ms(i: u16) -> f64 {
    let upper = BASE_US * 2f64.powf(f64::from(i) / 4.0);
    if i == 0 {
        return upper / 1000.0;
    }
    upper * 2f64.powf(-1.0 / 8.0) / 1000.0
}

/// One service's figures over one interval.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Agg {
    #[serde(rename = "n")]
    pub count: u64,
    #[serde(rename = "ce", default)]
    pub client_errors: u64,
    #[serde(rename = "se", default)]
    pub server_errors: u64,
    #[serde(rename = "r", default)]
    pub refused: u64,
    #[serde(rename = "sh", default)]
    pub shed: u64,
    /// Status 5xx of any kind (shedding included): what the SLA calls unavailable.
    #[serde(rename = "x5", default)]
    pub status_5xx: u64,
    /// Latency bucket → exchanges.
    #[serde(rename = "h", default)]
    pub hist: BTreeMap<u16, u64>,
}

impl Agg {
    fn add(&mut self, r: &Record) {
        self.count += 1;
        match Class::of(r) {
            Class::Ok => {}
            Class::ClientError => self.client_errors += 1,
            Class::ServerError => self.server_errors += 1,
            Class::Refused => self.refused += 1,
            Class::Shed => self.shed += 1,
        }
        self.status_5xx += u64::from(r.status >= 500);
        *self.hist.entry(bucket_of(r.duration_us)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Agg) {
        self.count += other.count;
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
        self.refused += other.refused;
        self.shed += other.shed;
        self.status_5xx += other.status_5xx;
        for (b, n) in &other.hist {
            *self.hist.entry(*b).or_default() += n;
        }
    }

    /// The latency (ms) under which a share `p` of the exchanges finished, from the histogram.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let total: u64 = self.hist.values().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in &self.hist {
            seen += n;
            if seen >= rank {
                return Some(bucket_ms(*b));
            }
        }
        None
    }
}

#[derive(Serialize, Deserialize)]
struct Line {
    t: i64,
    s: String,
    // Not flattened: serde's flatten cannot read back the histogram's integer keys.
    a: Agg,
}

/// One resolution: interval length, how long it is kept, its file.
struct Ring {
    step_s: i64,
    keep_s: i64,
    file: PathBuf,
    slots: BTreeMap<(i64, String), Agg>,
    /// What came since the last write to the file.
    pending: BTreeMap<(i64, String), Agg>,
    lines_in_file: usize,
}

impl Ring {
    fn open(file: PathBuf, step_s: i64, keep_s: i64, now_s: i64) -> Self {
        let mut ring =
            Self { step_s, keep_s, file, slots: BTreeMap::new(), pending: BTreeMap::new(), lines_in_file: 0 };
        if let Ok(f) = std::fs::File::open(&ring.file) {
            for line in std::io::BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                ring.lines_in_file += 1;
                // A torn last line (a crash mid-write) is skipped, like monitoring records.
                let Ok(l) = serde_json::from_str::<Line>(&line) else { continue };
                ring.slots.entry((l.t, l.s)).or_default().merge(&l.a);
            }
        }
        ring.prune(now_s);
        ring
    }

    fn add(&mut self, r: &Record) {
        let t = (r.request_in / 1_000_000).div_euclid(self.step_s) * self.step_s;
        self.slots.entry((t, r.service.clone())).or_default().add(r);
        self.pending.entry((t, r.service.clone())).or_default().add(r);
    }

    fn prune(&mut self, now_s: i64) {
        let oldest = now_s - self.keep_s;
        self.slots.retain(|(t, _), _| *t + self.step_s > oldest);
    }

    /// Appends the deltas since the last write; rewrites the file whole once it holds
    /// far more lines than the slots kept.
    fn persist(&mut self, now_s: i64) -> std::io::Result<()> {
        self.prune(now_s);
        if self.lines_in_file + self.pending.len() > 2 * self.slots.len() + 1000 {
            let tmp = self.file.with_extension("tmp");
            let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            for ((t, s), agg) in &self.slots {
                write_line(&mut w, *t, s, agg)?;
            }
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &self.file)?;
            self.lines_in_file = self.slots.len();
            self.pending.clear();
            return Ok(());
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&self.file)?;
        let mut w = std::io::BufWriter::new(f);
        for ((t, s), agg) in std::mem::take(&mut self.pending) {
            write_line(&mut w, t, &s, &agg)?;
            self.lines_in_file += 1;
        }
        w.flush()
    }
}

fn write_line(w: &mut impl Write, t: i64, s: &str, agg: &Agg) -> std::io::Result<()> {
    let line = Line { t, s: s.to_owned(), a: agg.clone() };
    serde_json::to_writer(&mut *w, &line)?;
    w.write_all(b"\n")
}

/// The last hour at 10 s and the last 7 days at 5 min.
pub struct History {
    fine: Ring,
    coarse: Ring,
}

/// Which span a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Week,
}

impl Range {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1h" => Some(Range::Hour),
            "7d" => Some(Range::Week),
            _ => None,
        }
    }
}

pub const FINE_STEP_S: i64 = 10;
pub const COARSE_STEP_S: i64 = 300;
const HOUR_S: i64 = 3600;
const WEEK_S: i64 = 7 * 24 * 3600;

impl History {
    pub fn open(dir: &Path, now_s: i64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            fine: Ring::open(dir.join("10s.ndjson"), FINE_STEP_S, HOUR_S, now_s),
            coarse: Ring::open(dir.join("5m.ndjson"), COARSE_STEP_S, WEEK_S, now_s),
        })
    }

    pub fn add(&mut self, r: &Record) {
        self.fine.add(r);
        self.coarse.add(r);
    }

    pub fn persist(&mut self, now_s: i64) -> std::io::Result<()> {
        self.fine.persist(now_s)?;
        self.coarse.persist(now_s)
    }

    /// Every interval of `range` up to `now_s`, oldest first, for one service (or all
    /// merged): (interval start, figures); intervals without traffic are empty.
    pub fn series(&self, service: Option<&str>, range: Range, now_s: i64) -> (i64, Vec<(i64, Agg)>) {
        let ring = match range {
            Range::Hour => &self.fine,
            Range::Week => &self.coarse,
        };
        let step = ring.step_s;
        let last = now_s.div_euclid(step) * step;
        let first = last - (ring.keep_s / step - 1) * step;
        let mut out: Vec<(i64, Agg)> = Vec::with_capacity(((last - first) / step + 1) as usize);
        let mut t = first;
        while t <= last {
            out.push((t, Agg::default()));
            t += step;
        }
        for ((t, s), agg) in ring.slots.range((first, String::new())..) {
            if service.is_some_and(|want| want != s) || *t > last {
                continue;
            }
            if let Some(slot) = out.get_mut(((t - first) / step) as usize) {
                slot.1.merge(agg);
            }
        }
        (step, out)
    }

    /// The 5-minute intervals of one service from `from_s` on (for the error budget).
    pub fn coarse_since(&self, service: &str, from_s: i64) -> Vec<(i64, Agg)> {
        self.coarse
            .slots
            .range((from_s.div_euclid(COARSE_STEP_S) * COARSE_STEP_S, String::new())..)
            .filter(|((_, s), _)| s == service)
            .map(|((t, _), a)| (*t, a.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(service: &str, at_s: i64, status: u16, code: Option<&str>, us: u64) -> Record {
        Record {
            id: "x".into(),
            client: "c".into(),
            service: service.into(),
            node: "n".into(),
            request_in: at_s * 1_000_000,
            request_out: None,
            response_in: None,
            response_out: at_s * 1_000_000,
            request_bytes: 0,
            response_bytes: 0,
            status,
            code: code.map(str::to_owned),
            duration_us: us,
            signed: false,
        }
    }

    #[test]
    fn buckets_estimate_within_ten_percent() {
        for us in [60u64, 900, 1_000, 12_345, 250_000, 3_000_000] {
            let est = bucket_ms(bucket_of(us)) * 1000.0;
            assert!((est / us as f64 - 1.0).abs() < 0.1, "{us} µs estimated as {est}");
        }
    }

    #[test]
    fn survives_reopening_and_merges_deltas() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000;
        let mut h = History::open(dir.path(), now).unwrap();
        for i in 0..100 {
            h.add(&record("s", now - 5, 200, None, 1_000 + i));
        }
        h.add(&record("s", now - 5, 429, Some("client.rate_limited"), 10));
        h.add(&record("s", now - 5, 503, Some("server.overloaded"), 10));
        h.add(&record("s", now - 5, 502, Some("server.upstream_unavailable"), 10));
        h.add(&record("t", now - 5, 404, None, 10));
        h.persist(now).unwrap();
        h.add(&record("s", now - 1, 200, None, 100_000));
        h.persist(now).unwrap();
        drop(h);
        let h = History::open(dir.path(), now + 1).unwrap();
        let (step, fine) = h.series(Some("s"), Range::Hour, now + 1);
        assert_eq!((step, fine.len()), (10, 360));
        let total: u64 = fine.iter().map(|(_, a)| a.count).sum();
        assert_eq!(total, 104);
        let all: Agg = fine.iter().fold(Agg::default(), |mut m, (_, a)| {
            m.merge(a);
            m
        });
        assert_eq!((all.refused, all.shed, all.server_errors, all.client_errors, all.status_5xx), (1, 1, 1, 0, 2));
        let p50 = all.percentile_ms(0.5).unwrap();
        assert!((0.9..1.2).contains(&p50), "p50 {p50}");
        assert!(all.percentile_ms(1.0).unwrap() > 90.0);
        let (step, week) = h.series(None, Range::Week, now + 1);
        assert_eq!((step, week.len()), (300, 2016));
        assert_eq!(week.iter().map(|(_, a)| a.count).sum::<u64>(), 105);
        // An hour later the fine ring has let them go; the coarse one keeps them.
        let later = History::open(dir.path(), now + 3700).unwrap();
        assert_eq!(later.series(Some("s"), Range::Hour, now + 3700).1.iter().map(|(_, a)| a.count).sum::<u64>(), 0);
        assert_eq!(later.coarse_since("s", now - 600).iter().map(|(_, a)| a.count).sum::<u64>(), 104);
    }
}
