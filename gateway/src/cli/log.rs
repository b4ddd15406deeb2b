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
    /// Write the evidence for one message: its record, its batch's seal and the
    /// Merkle proof between them.
    Export {
        #[arg(long)]
        dir: PathBuf,
        /// The message id.
        #[arg(long)]
        id: String,
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
                let evidence: msglog::Evidence = serde_json::from_slice(&std::fs::read(&path)?)
                    .map_err(|e| anyhow::anyhow!("{}: not an evidence bundle: {e}", path.display()))?;
                return Ok(match msglog::verify_evidence(&evidence, signer.as_deref()) {
                    Ok(r) => {
                        println!(
                            "VALID: record {} (message {} from {} to {}, status {}) is sealed",
                            r.seq, r.id, r.client, r.service, r.status
                        );
                        ExitCode::SUCCESS
                    }
                    Err(why) => {
                        println!("INVALID: {why}");
                        ExitCode::FAILURE
                    }
                });
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
        LogCommand::Export { dir, id, out } => {
            let evidence = crate::observe::message_log::find_evidence(&dir, &id)?
                .ok_or_else(|| anyhow::anyhow!("no sealed record of message {id} in {}", dir.display()))?;
            std::fs::write(&out, serde_json::to_vec_pretty(&evidence)?)?;
            println!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
