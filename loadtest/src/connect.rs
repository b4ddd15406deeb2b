//! Connections to the target: TCP or TLS (optionally with a client certificate),
//! then HTTP/1.1 or HTTP/2 (ALPN over TLS, prior knowledge over TCP).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

#[derive(Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Clone)]
pub struct Connector {
    pub authority: String,
    pub server_name: ServerName<'static>,
    pub h2: bool,
    pub tls: Option<TlsConnector>,
}

impl Connector {
    pub fn new(authority: String, host: &str, h2: bool, tls: Option<&TlsFiles>) -> anyhow::Result<Self> {
        let tls = match tls {
            None => None,
            Some(files) => Some(TlsConnector::from(Arc::new(client_config(files, h2)?))),
        };
        Ok(Self { authority, server_name: ServerName::try_from(host.to_owned())?, h2, tls })
    }

    pub async fn connect(&self) -> anyhow::Result<Sender> {
        let tcp = tokio::net::TcpStream::connect(&self.authority).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => handshake(tcp, self.h2).await,
            Some(tls) => handshake(tls.connect(self.server_name.clone(), tcp).await?, self.h2).await,
        }
    }
}

fn client_config(files: &TlsFiles, h2: bool) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = files.ca.as_ref().ok_or_else(|| anyhow::anyhow!("https needs --ca"))?;
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key)?)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => anyhow::bail!("--cert and --key go together"),
    };
    config.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    Ok(config)
}

async fn handshake<I>(io: I, h2: bool) -> anyhow::Result<Sender>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    Ok(if h2 {
        let (send, conn) = http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        Sender::H2(send)
    } else {
        let (send, conn) = http1::handshake(io).await?;
        tokio::spawn(conn);
        Sender::H1(send)
    })
}

pub enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Sends one request and drains its response; returns status and `X-Road-Error`.
    pub async fn send(&mut self, req: http::Request<Full<Bytes>>) -> Result<(u16, Option<String>), String> {
        let resp = match self {
            Sender::H1(s) => {
                s.ready().await.map_err(|e| format!("connection: {e}"))?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await.map_err(|e| format!("connection: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        // Qaqpa's stable code (the X-Road faces put X-Road's in X-Road-Error).
        let code = ["qaqpa-error", "x-road-error"]
            .iter()
            .find_map(|name| resp.headers().get(*name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        resp.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
        Ok((status, code))
    }
}
