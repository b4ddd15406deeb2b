//! `qaqpa config publish`: one configuration for a cluster. The file is checked as
//! `check-config` checks it (a refusal publishes nothing), signed with an operator's
//! key, checked against the file's own `[cluster] config_signers` (what every node
//! will check), and written as the next version to the JetStream key-value bucket
//! the nodes watch (docs/operations.md#cluster).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cluster::{self, ClusterError};
use crate::config;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE, sign it and publish it to the nodes with `config_source = "nats"`.
    Publish(PublishArgs),
}

#[derive(Args)]
pub struct PublishArgs {
    /// The cluster's configuration file (its registry is what the nodes take).
    pub file: PathBuf,
    /// The operator's private key (PKCS#8 PEM) that signs it.
    #[arg(long)]
    pub key: PathBuf,
    /// The operator's certificate (PEM, leaf first; chains to `config_signers`).
    #[arg(long)]
    pub cert: PathBuf,
    /// NATS servers (comma-separated); default: FILE's `[mailbox] nats_url`.
    #[arg(long)]
    pub nats: Option<String>,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Publish(args) => publish(args),
    }
}

fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let config = match config::load(&args.file) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            eprintln!("nothing published");
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in config::warnings(&config) {
        eprintln!("warning: {}: {w}", args.file.display());
    }
    let Some((url, bucket, replicas)) = cluster::nats::bucket_of(&config) else {
        eprintln!("{}: [cluster] config_source is not \"nats\"; nothing published", args.file.display());
        return Ok(ExitCode::FAILURE);
    };
    let url = args.nats.unwrap_or(url);
    let text = std::fs::read_to_string(&args.file)?;
    let key = std::fs::read(&args.key).map_err(|e| anyhow::anyhow!("--key {}: {e}", args.key.display()))?;
    let cert = std::fs::read(&args.cert).map_err(|e| anyhow::anyhow!("--cert {}: {e}", args.cert.display()))?;
    let signers_path = config.cluster.signers.clone().unwrap_or_default();
    let signers = std::fs::read(&signers_path)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    let sign = |version: u64| -> Result<cluster::Published, ClusterError> {
        let doc = cluster::sign(&text, version, &key, &cert)?;
        // What every node checks, checked first: a signer the nodes refuse publishes nothing.
        doc.verify(&signers, now)?;
        Ok(doc)
    };
    let published = tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let store =
            tokio::time::timeout(std::time::Duration::from_secs(30), cluster::nats::open(&url, &bucket, replicas))
                .await
                .map_err(|_| ClusterError::Nats(format!("timed out reaching {url}")))??;
        cluster::nats::publish(&store, sign).await
    });
    match published {
        Ok(doc) => {
            println!(
                "published {} as version {} (sha256 {}) to {bucket} on {url}",
                args.file.display(),
                doc.version,
                doc.hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}; nothing published", args.file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
