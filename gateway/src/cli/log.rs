//! `qaqpa log verify` and `qaqpa log export`: the auditor's tools, offline, on the
//! files alone (and the gateway's certificate).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use qaqpa_certs::msglog;

#[derive(Subcommand)]
pub enum LogCommand {
    /// Check a message log directory (every chain link, sequence and seal) or an
    /// evidence bundle; prints the first bad record, exit 1 if any.
    Verify {
        /// A log directory (DATA_DIR/log) or an evidence bundle from `log export`.
        path: PathBuf,
        /// The gateway's signing certificate (PEM); without it every seal must be
        /// by the first seal's certificate.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// The head the gateway published (`GET /admin/v1/log/head`, or the
        /// `qaqpa_message_log_head_batch` metric), as BATCH:HASH: the log must
        /// still hold that seal, so batches deleted from its end are found.
        #[arg(long, value_name = "BATCH:HASH")]
        expect_head: Option<msglog::Head>,
    },
    /// Write the evidence for one message: every record that names it (an
    /// exchange, or each step of an asynchronous message's life), each with its
    /// batch's seal and the Merkle proof between them.
    Export {
        /// A log directory (DATA_DIR/log); repeat it for each node's log of a
        /// cluster (a message sent on one node may be taken on another).
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        /// The message id: the sender's (X-Road-Id) or the bus's (Qaqpa-Message-Id).
        #[arg(long)]
        id: String,
        /// The sending system, when two clients used the same message id (a
        /// sender's id is unique per client only).
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn signer(cert: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(match cert {
        Some(path) => Some(crate::tls::load_certs(path)?.remove(0).to_vec()),
        None => None,
    })
}

pub fn run(command: LogCommand) -> anyhow::Result<ExitCode> {
    match command {
        LogCommand::Verify { path, cert, expect_head } => {
            let signer = signer(cert.as_deref())?;
            if path.is_file() {
                return verify_bundle_file(&path, signer.as_deref());
            }
            let segments = crate::observe::message_log::read_segments(&path)?;
            anyhow::ensure!(!segments.is_empty(), "{}: no seg-*.log files", path.display());
            let watch = expect_head.as_ref().map(|h| h.batch);
            let summary = match msglog::verify_watching(&segments, signer.as_deref(), watch) {
                Ok(s) => s,
                Err(fault) => {
                    println!("INVALID: {fault}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            if let Some(expected) = &expect_head {
                if let Err(why) = msglog::check_head(&summary, expected) {
                    println!("INVALID: against the published head {expected}: {why}");
                    return Ok(ExitCode::FAILURE);
                }
            }
            let head = summary.head.as_ref().map_or_else(|| "none".to_owned(), |h| h.to_string());
            println!(
                "VALID: {} records in {} sealed batches, {} segments; head {head}",
                summary.records,
                summary.seals,
                segments.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        LogCommand::Export { dir, id, client, out } => {
            let bundle = crate::observe::message_log::find_evidence(&dir, &id, client.as_deref())?;
            anyhow::ensure!(!bundle.evidence.is_empty(), "no sealed record of message {id} in {dir:?}");
            std::fs::write(&out, serde_json::to_vec_pretty(&bundle)?)?;
            println!("wrote {} ({} records)", out.display(), bundle.evidence.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks an evidence bundle from `log export` (or a single evidence item) alone,
/// and prints the message's life, one line per record.
fn verify_bundle_file(path: &Path, signer: Option<&[u8]>) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path)?;
    let bundle = match serde_json::from_slice::<msglog::Bundle>(&bytes) {
        Ok(bundle) => bundle,
        Err(_) => {
            let item: msglog::Evidence = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: not an evidence bundle: {e}", path.display()))?;
            let id = serde_json::from_str::<msglog::Line>(&item.record)
                .ok()
                .and_then(|l| if let msglog::Line::Record(r) = l { Some(r.id) } else { None })
                .unwrap_or_default();
            msglog::Bundle { id, evidence: vec![item] }
        }
    };
    match msglog::verify_bundle(&bundle, signer) {
        Ok(records) => {
            println!("VALID: {} sealed records name {}", records.len(), bundle.id);
            for r in records {
                let step = match (&r.event, &r.bus_id) {
                    (Some(event), Some(bus)) => format!(" {event} of {bus}"),
                    (Some(event), None) => format!(" {event}"),
                    (None, _) => String::new(),
                };
                let attempt = r.attempt.map_or_else(String::new, |a| format!(" attempt {a}"));
                println!(
                    "  record {} on {}:{step}{attempt} (exchange {} from {} to {}, status {})",
                    r.seq, r.node, r.id, r.client, r.service, r.status
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("INVALID: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}
