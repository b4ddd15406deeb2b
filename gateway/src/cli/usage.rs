//! `qaqpa usage`: the usage report (the tariff basis) from a data directory, offline,
//! the same figures as `GET /admin/v1/usage` (docs/operations.md#usage-report).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::observe::usage::{self, Group};

#[derive(Clone, Copy, ValueEnum)]
pub enum UsageGroup {
    Day,
    Month,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum UsageFormat {
    Csv,
    Json,
}

#[derive(Args)]
pub struct UsageArgs {
    /// The gateway's data directory (its `storage.data_dir`); repeat it for each node of a cluster.
    #[arg(long = "data-dir", required = true)]
    data_dirs: Vec<PathBuf>,
    /// Start of the period (RFC 3339 or Unix seconds), included; default: 31 days before --to.
    #[arg(long)]
    from: Option<String>,
    /// End of the period (RFC 3339 or Unix seconds), excluded; default: now.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, value_enum, default_value_t = UsageGroup::Day)]
    group: UsageGroup,
    #[arg(long, value_enum, default_value_t = UsageFormat::Csv)]
    format: UsageFormat,
}

fn time_us(v: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = v.parse::<i64>() {
        return secs.checked_mul(1_000_000).ok_or_else(|| anyhow::anyhow!("{v}: out of range"));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| anyhow::anyhow!("{v}: give RFC 3339 or Unix seconds"))?;
    Ok((t.unix_timestamp_nanos() / 1000) as i64)
}

pub fn run(args: UsageArgs) -> anyhow::Result<ExitCode> {
    let to = args.to.as_deref().map(time_us).transpose()?.unwrap_or_else(crate::observe::monitoring::now_us);
    let from = args.from.as_deref().map(time_us).transpose()?.unwrap_or(to.saturating_sub(31 * 24 * 3600 * 1_000_000));
    anyhow::ensure!(from < to, "--from must be before --to");
    let dirs: Vec<PathBuf> = args.data_dirs.iter().map(|d| d.join("monitoring")).collect();
    for dir in &dirs {
        anyhow::ensure!(dir.is_dir(), "{}: no monitoring records here (is it a data directory?)", dir.display());
    }
    let group = match args.group {
        UsageGroup::Day => Group::Day,
        UsageGroup::Month => Group::Month,
    };
    let refs: Vec<&std::path::Path> = dirs.iter().map(PathBuf::as_path).collect();
    let rows = usage::report(&refs, Some(from), Some(to), group)?;
    match args.format {
        UsageFormat::Csv => print!("{}", usage::csv(&rows)),
        UsageFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(ExitCode::SUCCESS)
}
