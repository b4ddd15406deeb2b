//! A certificate revoked while its connection is open (issue 15 item 10): after a
//! reload with the new CRL, the same connection's next request never reaches the
//! provider, over HTTP/1.1 (closed, or refused with `Connection: close`), HTTP/2
//! and HTTP/3 (GOAWAY, or refused); a connection with an unrevoked certificate of
//! the same system keeps working.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::common::*;
use crate::operations::{h3_client, h3_exchange, rustls_client};

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls(gw: &TestGateway, stem: &str, alpn: &[u8]) -> Tls {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(rustls_client(&gw.pki, stem, alpn)));
    let tcp = tokio::net::TcpStream::connect(gw.running.data_addrs[0]).await.unwrap();
    connector.connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

fn request(version: http::Version) -> http::Request<Empty<Bytes>> {
    // HTTP/1.1 in origin form with Host; HTTP/2 with :scheme and :authority.
    let (uri, host) = match version {
        http::Version::HTTP_11 => (format!("/r1/{SERVICE}/echo/x"), Some("localhost")),
        _ => (format!("https://localhost/r1/{SERVICE}/echo/x"), None),
    };
    let mut req = http::Request::get(uri).header("x-road-client", CLIENT).version(version);
    if let Some(host) = host {
        req = req.header("host", host);
    }
    req.body(Empty::new()).unwrap()
}

/// The status of a request on an open HTTP/1.1 or HTTP/2 connection, or the error
/// if the connection is gone.
async fn send<S>(sender: &mut S, version: http::Version) -> Result<u16, String>
where
    S: Sender,
{
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send(request(version)))
        .await
        .map_err(|_| "timed out".to_owned())??;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// hyper's HTTP/1.1 and HTTP/2 senders, alike for [`send`].
trait Sender {
    async fn send(&mut self, req: http::Request<Empty<Bytes>>)
        -> Result<http::Response<hyper::body::Incoming>, String>;
}

impl Sender for hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    async fn send(
        &mut self,
        req: http::Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        self.ready().await.map_err(|e| e.to_string())?;
        self.send_request(req).await.map_err(|e| e.to_string())
    }
}

impl Sender for hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    async fn send(
        &mut self,
        req: http::Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        self.ready().await.map_err(|e| e.to_string())?;
        self.send_request(req).await.map_err(|e| e.to_string())
    }
}

async fn h1(gw: &TestGateway, stem: &str) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let (sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(tls(gw, stem, b"http/1.1").await)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn h2(gw: &TestGateway, stem: &str) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let io = TokioIo::new(tls(gw, stem, b"h2").await);
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
    tokio::spawn(conn);
    sender
}

fn h3_request() -> http::Request<()> {
    http::Request::get(format!("https://localhost/r1/{SERVICE}/echo/x"))
        .header("x-road-client", CLIENT)
        .body(())
        .unwrap()
}

/// Refused on the connection: closed (an error) or 403 `client.access_denied`.
fn refused(outcome: &Result<u16, String>) -> bool {
    matches!(outcome, Err(_) | Ok(403))
}

#[tokio::test]
async fn a_revoked_certificate_loses_its_open_http1_http2_and_http3_connections_on_reload() {
    let gw = TestGateway::start_with("header_read_timeout = \"5s\"", |pki, text| {
        let dir = pki.path("");
        let ca = qaqpa_gateway::cli::pki_files::load_ca(&dir).unwrap();
        let now = time::OffsetDateTime::now_utc();
        // A second certificate of the same system: not revoked, its connection stays.
        let system = qaqpa_routing::SystemId::parse(CLIENT).unwrap();
        qaqpa_gateway::cli::pki_files::write_pair(&dir, "egov-portal-2", &ca.issue_client(&system, now).unwrap())
            .unwrap();
        std::fs::write(pki.path("ca.crl"), ca.revocation_list(&[], now, time::Duration::days(1)).unwrap()).unwrap();
        let text = text.replacen(r#"client_ca = "pki/ca.crt" }"#, r#"client_ca = "pki/ca.crt", crls = ["pki/ca.crl"] }"#, 1);
        let data_tls = r#"tls = { cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/ca.crt", crls = ["pki/ca.crl"] }"#;
        assert!(text.contains(data_tls));
        text.replacen(data_tls, &format!("{data_tls}\nhttp = [\"h1\", \"h2\", \"h3\"]"), 1)
    })
    .await;
    let (v1, v2) = (http::Version::HTTP_11, http::Version::HTTP_2);
    let mut http1 = h1(&gw, "egov-portal").await;
    let mut http2 = h2(&gw, "egov-portal").await;
    let mut http3 = h3_client(&gw.pki, "egov-portal", gw.running.data_addrs[0]).await.unwrap();
    let mut kept = h1(&gw, "egov-portal-2").await;
    assert_eq!(send(&mut http1, v1).await, Ok(200));
    assert_eq!(send(&mut http2, v2).await, Ok(200));
    let (response, _) = h3_exchange(&mut http3, h3_request(), None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(send(&mut kept, v1).await, Ok(200));
    let seen = gw.provider.seen.requests.load(Ordering::SeqCst);
    assert_eq!(seen, 4);

    qaqpa_gateway::cli::pki_files::revoke(&gw.pki.path(""), &[gw.pki.path("egov-portal.crt")]).unwrap();
    let r = reqwest::Client::new().post(gw.admin_url("/admin/v1/reload")).send().await.unwrap();
    let reloaded: serde_json::Value = r.json().await.unwrap();
    assert_eq!(reloaded["connections_revoked"], 3, "HTTP/1.1, HTTP/2 and HTTP/3: {reloaded}");

    let outcome = send(&mut http1, v1).await;
    assert!(refused(&outcome), "HTTP/1.1 after revocation: {outcome:?}");
    let outcome = send(&mut http2, v2).await;
    assert!(refused(&outcome), "HTTP/2 after revocation: {outcome:?}");
    let outcome = h3_exchange(&mut http3, h3_request(), None).await.map(|(r, _)| r.status().as_u16());
    assert!(refused(&outcome), "HTTP/3 after revocation: {outcome:?}");
    assert_eq!(gw.provider.seen.requests.load(Ordering::SeqCst), seen, "the provider got nothing more");

    // Closed, not only refused: a second try finds no connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(send(&mut http1, v1).await.is_err(), "HTTP/1.1 connection closed");
    assert!(send(&mut http2, v2).await.is_err(), "HTTP/2 connection gone away");
    assert!(h3_exchange(&mut http3, h3_request(), None).await.is_err(), "HTTP/3 connection closed");

    // The unrevoked certificate's connection carries on.
    assert_eq!(send(&mut kept, v1).await, Ok(200));
    assert_eq!(gw.provider.seen.requests.load(Ordering::SeqCst), seen + 1);
}
