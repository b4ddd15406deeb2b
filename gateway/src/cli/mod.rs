//! The `qaqpa` command line.

pub mod certs;
pub mod config_publish;
pub mod log;
pub mod pki_files;
pub mod usage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use qaqpa_routing::SystemId;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use crate::{config, demo};

#[derive(Parser)]
#[command(name = "qaqpa", version, about = "Qaqpa integration gateway: a service bus for signed government exchanges")]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway with a config file.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file; prints every error with its key and line, exit 1 if any.
    CheckConfig { file: PathBuf },
    /// One configuration for a cluster: publish a checked, signed file to every node.
    #[command(subcommand)]
    Config(crate::cli::config_publish::ConfigCommand),
    /// Development PKI: a CA, the gateway's server certificate, client certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Run the whole bus on this machine: dev PKI, config, gateway and two demo systems.
    Demo(demo::DemoArgs),
    /// The message log: verify it offline, export evidence for one message.
    #[command(subcommand)]
    Log(crate::cli::log::LogCommand),
    /// The usage report (exchanges per consumer × service × day or month, the tariff
    /// basis) from a data directory's monitoring records, offline; CSV by default.
    Usage(crate::cli::usage::UsageArgs),
    /// Hash a ШЭП sender's password for `shep_password_hash` (Argon2id, PHC string).
    /// The password is read from standard input, never from the command line.
    ShepPassword,
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Create a CA, a server certificate for the gateway and one client certificate per system.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// A system id to issue a client certificate for (repeatable).
        #[arg(long = "system")]
        systems: Vec<String>,
        /// DNS name or IP address for the gateway certificate (repeatable).
        #[arg(long = "server-name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        server_names: Vec<String>,
        /// Replace an existing PKI in DIR.
        #[arg(long)]
        force: bool,
    },
    /// Issue one more certificate from the CA in DIR.
    Issue(IssueArgs),
    /// Sign a SOAP message (XMLDSig in its Header) or a payload (detached JWS).
    Sign(crate::cli::certs::SignArgs),
    /// Verify a signed SOAP message or a detached JWS; prints signer, chain, verdict (exit 1 if invalid).
    Verify(crate::cli::certs::VerifyArgs),
    /// Write a CRL (DIR/ca.crl, signed by the CA in DIR) revoking these certificates;
    /// name it in a listener's `tls.crls` and reload.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// Certificate files (PEM) to revoke, together with those already in DIR/ca.crl's list.
        #[arg(required = true)]
        certs: Vec<PathBuf>,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct IssueTarget {
    /// Issue a client certificate bound to this system id.
    #[arg(long)]
    system: Option<String>,
    /// Issue a server certificate for these DNS names / IP addresses (comma-separated).
    #[arg(long, value_delimiter = ',')]
    server: Option<Vec<String>>,
    /// Issue an admin-API operator certificate (SAN URI urn:qaqpa:operator:NAME) from
    /// the operators' CA in DIR (operator-ca.crt/.key); list NAME in [[operator]].
    #[arg(long)]
    operator: Option<String>,
}

#[derive(Args)]
pub struct IssueArgs {
    /// Directory holding ca.crt and ca.key; the new files are written there.
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    target: IssueTarget,
    /// File stem for the new files (default: the system's short name, or "server").
    #[arg(long)]
    name: Option<String>,
    /// Certify this existing key (PKCS#8 PEM: an RSA key from openssl, say) instead of
    /// generating one; with --system only. Only the certificate is written.
    #[arg(long)]
    key: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config: path } => {
            let config = config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
            runtime()?.block_on(async {
                let running = crate::server::start(config, Some(path)).await?;
                running.serve_until_signalled().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(c) => {
                // Warnings do not fail the check: the config starts, but says what it risks.
                for w in config::warnings(&c) {
                    match w.line {
                        Some(line) => eprintln!("warning: {}:{line}: {}: {}", file.display(), w.key, w.message),
                        None => eprintln!("warning: {}: {}: {}", file.display(), w.key, w.message),
                    }
                }
                println!(
                    "{}: ok ({} listeners, {} systems, {} services, {} access lists)",
                    file.display(),
                    c.listeners.len() + usize::from(c.admin.is_some()),
                    c.systems.len(),
                    c.services.len(),
                    c.access.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprint!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Certs(CertsCommand::Init { dir, systems, server_names, force }) => {
            let systems = parse_systems(&systems)?;
            pki_files::init(&dir, &systems, &server_names, force)?;
            println!("wrote {}/{{ca.crt,ca.key,gateway.crt,gateway.key}}", dir.display());
            for s in &systems {
                println!("wrote {}/{}.{{crt,key}} for {s}", dir.display(), s.short_name());
            }
            println!(
                "wrote {}/{{operator-ca.crt,operator-ca.key,operator.crt,operator.key}}: the admin listener's own CA and operator {}",
                dir.display(),
                pki_files::OPERATOR_NAME
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(CertsCommand::Issue(args)) if args.target.operator.is_some() => issue_operator(args),
        Command::Certs(CertsCommand::Issue(args)) => {
            let ca = pki_files::load_ca(&args.dir)?;
            let now = OffsetDateTime::now_utc();
            if let Some(key) = &args.key {
                let system =
                    args.target.system.as_deref().ok_or_else(|| anyhow::anyhow!("--key goes with --system"))?;
                let system = SystemId::parse(system).map_err(|e| anyhow::anyhow!("--system {system}: {e}"))?;
                let key_pem = std::fs::read_to_string(key).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
                let cert_pem = ca.issue_client_for_key(&system, &key_pem, now)?;
                let stem = args.name.unwrap_or_else(|| system.short_name().to_owned());
                let path = args.dir.join(format!("{stem}.crt"));
                pki_files::write_file(&path, &cert_pem, false)?;
                let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
                    .map_err(|_| anyhow::anyhow!("issued certificate unreadable"))?;
                println!("wrote {}", path.display());
                println!("cert_sha256 = \"{}\"", qaqpa_certs::fingerprint_hex(&qaqpa_certs::inspect(&der)?.sha256));
                return Ok(ExitCode::SUCCESS);
            }
            let (pair, stem) = match (&args.target.system, &args.target.server) {
                (Some(system), _) => {
                    let system = SystemId::parse(system).map_err(|e| anyhow::anyhow!("--system {system}: {e}"))?;
                    (ca.issue_client(&system, now)?, args.name.unwrap_or_else(|| system.short_name().to_owned()))
                }
                (None, Some(names)) => {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    (ca.issue_server(&names, now)?, args.name.unwrap_or_else(|| "server".to_owned()))
                }
                (None, None) => anyhow::bail!("give --system or --server"),
            };
            let (cert, key) = pki_files::write_pair(&args.dir, &stem, &pair)?;
            let fingerprint = qaqpa_certs::inspect(&pair.cert_der()?)?.sha256;
            println!("wrote {} and {}", cert.display(), key.display());
            println!("cert_sha256 = \"{}\"", qaqpa_certs::fingerprint_hex(&fingerprint));
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs(CertsCommand::Sign(args)) => crate::cli::certs::sign(args),
        Command::Certs(CertsCommand::Verify(args)) => crate::cli::certs::verify(args),
        Command::Certs(CertsCommand::Revoke { dir, certs }) => {
            let path = pki_files::revoke(&dir, &certs)?;
            println!("wrote {} ({} certificates revoked)", path.display(), certs.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Log(command) => crate::cli::log::run(command),
        Command::Usage(args) => crate::cli::usage::run(args),
        Command::Config(command) => crate::cli::config_publish::run(command),
        Command::Demo(args) => {
            runtime()?.block_on(demo::run(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ShepPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "give the password on standard input");
            println!("{}", shep_password_hash(password)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An Argon2id PHC string for `password` with a fresh random salt.
pub fn shep_password_hash(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash =
        argon2::Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(hash.to_string())
}

/// `certs issue --operator NAME`: from the operators' CA, never the agencies'.
fn issue_operator(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let name = args.target.operator.unwrap_or_default();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        anyhow::bail!("--operator {name:?}: 1–64 characters of [A-Za-z0-9._-]");
    }
    if args.key.is_some() {
        anyhow::bail!("--key goes with --system");
    }
    let ca = pki_files::load_operator_ca(&args.dir)?;
    let pair = ca.issue_operator(&name, OffsetDateTime::now_utc())?;
    let (cert, key) = pki_files::write_pair(&args.dir, args.name.as_deref().unwrap_or(&name), &pair)?;
    println!("wrote {} and {}", cert.display(), key.display());
    println!(
        "[[operator]] name = \"{name}\" (or fingerprint = \"{}\")",
        qaqpa_certs::fingerprint_hex(&qaqpa_certs::inspect(&pair.cert_der()?)?.sha256)
    );
    Ok(ExitCode::SUCCESS)
}

fn parse_systems(ids: &[String]) -> anyhow::Result<Vec<SystemId>> {
    ids.iter().map(|id| SystemId::parse(id).map_err(|e| anyhow::anyhow!("--system {id}: {e}"))).collect()
}
