//! The usage report, the tariff basis (docs/operations.md#usage-report): exchanges per
//! consumer × service × day or month, by outcome class, with signed counts and bytes.
//! Counted from the monitoring records on disk, the durable account of every
//! exchange, so it is the same after a restart, from the admin API or offline
//! (`qaqpa usage --data-dir`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use super::history::Class;
use super::monitoring::{scan, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Day,
    Month,
}

impl Group {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(Group::Day),
            "month" => Some(Group::Month),
            _ => None,
        }
    }

    /// The period (UTC) a request that came in at `us` is billed in.
    fn period(self, us: i64) -> String {
        let t = OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        match self {
            Group::Day => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
            Group::Month => format!("{:04}-{:02}", t.year(), u8::from(t.month())),
        }
    }
}

/// One consumer's use of one service in one period.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UsageRow {
    pub period: String,
    pub client: String,
    pub service: String,
    pub exchanges: u64,
    pub ok: u64,
    pub client_error: u64,
    pub server_error: u64,
    /// Refused by a rate limit or quota, or shed under overload.
    pub refused: u64,
    pub signed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

pub const CSV_HEADER: &str =
    "period,client,service,exchanges,ok,client_error,server_error,refused,signed,bytes_in,bytes_out";

impl UsageRow {
    fn add(&mut self, r: &Record) {
        self.exchanges += 1;
        match Class::of(r) {
            Class::Ok => self.ok += 1,
            Class::ClientError => self.client_error += 1,
            Class::ServerError => self.server_error += 1,
            Class::Refused | Class::Shed => self.refused += 1,
        }
        self.signed += u64::from(r.signed);
        self.bytes_in += r.request_bytes;
        self.bytes_out += r.response_bytes;
    }

    pub fn csv_line(&self) -> String {
        // Ids of systems and services hold no commas or quotes (routing checks them);
        // quote anyway so a stray one cannot shift columns.
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            self.period,
            q(&self.client),
            q(&self.service),
            self.exchanges,
            self.ok,
            self.client_error,
            self.server_error,
            self.refused,
            self.signed,
            self.bytes_in,
            self.bytes_out
        )
    }
}

/// Sums records into rows ordered by period, client, service.
#[derive(Default)]
pub struct Usage {
    rows: BTreeMap<(String, String, String), UsageRow>,
}

impl Usage {
    pub fn add(&mut self, group: Group, r: &Record) {
        let period = group.period(r.request_in);
        self.rows
            .entry((period.clone(), r.client.clone(), r.service.clone()))
            .or_insert_with(|| UsageRow {
                period,
                client: r.client.clone(),
                service: r.service.clone(),
                ..UsageRow::default()
            })
            .add(r);
    }

    pub fn rows(self) -> Vec<UsageRow> {
        self.rows.into_values().collect()
    }
}

/// The report over the monitoring directories `dirs` (one per node of a cluster),
/// requests in `[from, to)` µs.
pub fn report(dirs: &[&Path], from: Option<i64>, to: Option<i64>, group: Group) -> std::io::Result<Vec<UsageRow>> {
    let mut usage = Usage::default();
    for dir in dirs {
        scan(dir, from, to, |r| {
            usage.add(group, &r);
            true
        })?;
    }
    Ok(usage.rows())
}

pub fn csv(rows: &[UsageRow]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&r.csv_line());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_by_period_and_class() {
        let at = |s: &str| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
        let rec = |t: &str, client: &str, status: u16, code: Option<&str>, signed: bool| Record {
            id: "i".into(),
            client: client.into(),
            service: "S".into(),
            node: "n".into(),
            request_in: (at(t).unix_timestamp_nanos() / 1000) as i64,
            request_out: None,
            response_in: None,
            response_out: 0,
            request_bytes: 10,
            response_bytes: 100,
            status,
            code: code.map(str::to_owned),
            duration_us: 5,
            signed,
        };
        let mut u = Usage::default();
        for r in [
            rec("2026-01-31T23:59:59Z", "A", 200, None, true),
            rec("2026-02-01T00:00:00Z", "A", 404, None, false),
            rec("2026-02-01T10:00:00Z", "A", 502, Some("server.upstream_unavailable"), false),
            rec("2026-02-01T10:00:00Z", "A", 429, Some("client.rate_limited"), false),
            rec("2026-02-01T10:00:00Z", "B", 503, Some("server.overloaded"), false),
        ] {
            u.add(Group::Month, &r);
        }
        let rows = u.rows();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].period.as_str(), rows[0].exchanges, rows[0].ok, rows[0].signed), ("2026-01", 1, 1, 1));
        let feb_a = &rows[1];
        assert_eq!((feb_a.client_error, feb_a.server_error, feb_a.refused, feb_a.bytes_in), (1, 1, 1, 30));
        assert_eq!((rows[2].client.as_str(), rows[2].refused), ("B", 1));
        assert_eq!(rows[2].csv_line(), "2026-02,\"B\",\"S\",1,0,0,0,1,0,10,100");
    }
}
