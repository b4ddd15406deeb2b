//! `qaqpa certs sign` and `qaqpa certs verify`: the operator's hands on the same
//! XMLDSig and JWS code the gateway runs, for checking a message offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use qaqpa_certs::jws;
use qaqpa_certs::keys::SigningKey;
use qaqpa_certs::trust::TrustStore;
use qaqpa_certs::xmldsig::{self, DigestAlg};
use rustls_pki_types::CertificateDer;

#[derive(Clone, Copy, ValueEnum)]
pub enum Digest {
    Sha256,
    Sha512,
}

#[derive(Args)]
pub struct SignArgs {
    /// The signer's private key (PKCS#8 PEM: RSA, ECDSA P-256 or Ed25519).
    #[arg(long)]
    key: PathBuf,
    /// The signer's certificate (PEM; more certificates in the file go into the chain).
    #[arg(long)]
    cert: PathBuf,
    /// Reference digest for XMLDSig.
    #[arg(long, value_enum, default_value_t = Digest::Sha256)]
    digest: Digest,
    /// Sign FILE's bytes as a detached JWS (prints the token) instead of XMLDSig.
    #[arg(long)]
    jws: bool,
    /// Where to write the signed message (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A SOAP message to sign, or any payload with --jws.
    file: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// A detached JWS over FILE (the token, or a file holding it); without it FILE is
    /// a signed SOAP message.
    #[arg(long)]
    jws: Option<String>,
    /// Trusted CA certificates (PEM); without it the chain is shown but not judged.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// CRLs (PEM) to check the chain against.
    #[arg(long)]
    crl: Vec<PathBuf>,
    file: PathBuf,
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let key = SigningKey::from_pem(&read(&args.key)?).map_err(|e| anyhow::anyhow!("{}: {e}", args.key.display()))?;
    let chain: Vec<Vec<u8>> = crate::tls::load_certs(&args.cert)?.into_iter().map(|c| c.to_vec()).collect();
    let message = read(&args.file)?;
    let signed = if args.jws {
        let mut claims = serde_json::Map::new();
        claims.insert("iat".into(), now_unix().into());
        let mut token = jws::sign_detached(&key, &chain, claims, &message)?.into_bytes();
        token.push(b'\n');
        token
    } else {
        let digest = match args.digest {
            Digest::Sha256 => DigestAlg::Sha256,
            Digest::Sha512 => DigestAlg::Sha512,
        };
        xmldsig::sign_soap(&message, &key, &chain, digest, now_unix())?
    };
    match &args.out {
        Some(path) => std::fs::write(path, signed).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => std::io::Write::write_all(&mut std::io::stdout(), &signed)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what the signature says and the verdict; exit 1 when it does not hold.
pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let message = read(&args.file)?;
    let verified = match &args.jws {
        Some(token) => {
            let token = match std::fs::read_to_string(token) {
                Ok(text) => text,
                Err(_) => token.clone(),
            };
            jws::verify_detached(&token, &message)
                .map(|v| {
                    let iat = v.header.get("iat").and_then(serde_json::Value::as_i64);
                    (format!("JWS {}", v.alg.jws_name()), v.chain, iat)
                })
                .map_err(|e| e.to_string())
        }
        None => xmldsig::verify_soap(&message)
            .map(|v| (format!("XMLDSig {}", v.alg.xmldsig_uri()), v.chain, Some(v.created)))
            .map_err(|e| e.to_string()),
    };
    let (kind, chain, created) = match verified {
        Ok(v) => v,
        Err(why) => {
            println!("verdict: INVALID: {why}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("signature: {kind}");
    if let Some(created) = created {
        let at = time::OffsetDateTime::from_unix_timestamp(created)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| created.to_string());
        println!("signed at: {at}");
    }
    for (i, der) in chain.iter().enumerate() {
        let what = if i == 0 { "signer" } else { "chain " };
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, c)) => {
                println!("{what}: {} (issuer {}, serial {})", c.subject(), c.issuer(), c.raw_serial_as_string())
            }
            Err(_) => println!("{what}: (not X.509)"),
        }
    }
    if let Ok(identity) = qaqpa_certs::inspect(&chain[0]) {
        let system = identity.san_system.map_or("(no urn:qaqpa: SAN)".to_owned(), |s| s.to_string());
        println!("system: {system}");
        println!("cert_sha256: {}", qaqpa_certs::fingerprint_hex(&identity.sha256));
    }
    let Some(ca) = &args.ca else {
        println!("verdict: signature valid; chain not checked (give --ca)");
        return Ok(ExitCode::SUCCESS);
    };
    let anchors = crate::tls::load_certs(ca)?;
    let crls = crate::tls::load_crls(&args.crl)?;
    let store = TrustStore::new(&anchors, &crls)?;
    let chain: Vec<CertificateDer<'_>> = chain.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
    match store.verify(&chain, now_unix().max(0) as u64) {
        Ok(()) => {
            println!("verdict: VALID");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("verdict: INVALID: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
