//! The two demo systems: a REST population register and a legacy SOAP tax system.
//! Real HTTP servers on loopback, so the gateway talks to them exactly as it would
//! to agency systems. Tests reuse them as fixtures.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running demo system.
pub struct DemoServer {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl DemoServer {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

type Handler =
    fn(Request<Incoming>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>;

async fn serve(addr: SocketAddr, handler: Handler) -> std::io::Result<DemoServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            tokio::select! {
                Ok((stream, _)) = listener.accept() => {
                    let builder = builder.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| async move { Ok::<_, Infallible>(handler(req).await) });
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    });
                }
                _ = &mut stopped => break,
            }
        }
    });
    Ok(DemoServer { addr, stop, task })
}

struct Person {
    iin: &'static str,
    surname: &'static str,
    name: &'static str,
    birth_date: &'static str,
    region: &'static str,
    debt_tenge: u64,
}

/// Invented people; any likeness to real IINs is accidental.
const PEOPLE: [Person; 3] = [
    Person {
        iin: "900101300123",
        surname: "Abenova",
        name: "Aigerim",
        birth_date: "1990-01-01",
        region: "Astana",
        debt_tenge: 12_500,
    },
    Person {
        iin: "851231400456",
        surname: "Serikbayev",
        name: "Daniyar",
        birth_date: "1985-12-31",
        region: "Almaty",
        debt_tenge: 0,
    },
    Person {
        iin: "020704500789",
        surname: "Ivanova",
        name: "Olga",
        birth_date: "2002-07-04",
        region: "Karaganda",
        debt_tenge: 310,
    },
];

fn find(iin: &str) -> Option<&'static Person> {
    PEOPLE.iter().find(|p| p.iin == iin)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

/// REST register: `GET /persons/{iin}` → JSON record, 404 for an unknown IIN.
pub async fn start_rest(addr: SocketAddr) -> std::io::Result<DemoServer> {
    serve(addr, |req| Box::pin(async move { person(req) })).await
}

fn person(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(iin) = req.uri().path().strip_prefix("/persons/") else {
        return respond(StatusCode::NOT_FOUND, "application/json", r#"{"error":"no such resource"}"#.into());
    };
    if req.method() != http::Method::GET {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "application/json", r#"{"error":"GET only"}"#.into());
    }
    match find(iin) {
        Some(p) => respond(
            StatusCode::OK,
            "application/json",
            serde_json::json!({
                "iin": p.iin, "surname": p.surname, "name": p.name,
                "birthDate": p.birth_date, "region": p.region,
            })
            .to_string(),
        ),
        None => respond(StatusCode::NOT_FOUND, "application/json", r#"{"error":"person not found"}"#.into()),
    }
}

/// Legacy SOAP 1.1 tax system: operation `GetDebt(iin)` → amount owed.
pub async fn start_soap(addr: SocketAddr) -> std::io::Result<DemoServer> {
    serve(addr, |req| Box::pin(get_debt(req))).await
}

/// A `GetDebt` request with the X-Road 4.0 header, as a legacy system sends it.
pub fn sample_get_debt(iin: &str) -> String {
    format!(
        concat!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:tax="http://legacy-tax.gov.kz/debt">"#,
            r#"<soapenv:Header>"#,
            r#"<xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000003</id:memberCode><id:subsystemCode>egov-portal</id:subsystemCode></xrd:client>"#,
            r#"<xrd:service id:objectType="SERVICE"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000002</id:memberCode><id:subsystemCode>legacy-tax</id:subsystemCode><id:serviceCode>GetDebt</id:serviceCode><id:serviceVersion>v1</id:serviceVersion></xrd:service>"#,
            r#"<xrd:id>demo-debt-{iin}</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion>"#,
            r#"</soapenv:Header>"#,
            r#"<soapenv:Body><tax:GetDebt><tax:iin>{iin}</tax:iin></tax:GetDebt></soapenv:Body></soapenv:Envelope>"#
        ),
        iin = iin
    )
}

/// A `person` request (the service code as the Body element) for the register's SOAP face.
pub fn sample_get_person(iin: &str) -> String {
    sample_get_debt(iin)
        .replace(
            "000000000002</id:memberCode><id:subsystemCode>legacy-tax",
            "000000000001</id:memberCode><id:subsystemCode>population-register",
        )
        .replace("<id:serviceCode>GetDebt</id:serviceCode>", "<id:serviceCode>person</id:serviceCode>")
        .replace("<xrd:id>demo-debt-", "<xrd:id>demo-person-")
        .replace("xmlns:tax=\"http://legacy-tax.gov.kz/debt\"", "xmlns:p=\"http://population-register.gov.kz/person\"")
        .replace("<tax:GetDebt><tax:iin>", "<p:person><p:iin>")
        .replace("</tax:iin></tax:GetDebt>", "</p:iin></p:person>")
}

async fn get_debt(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return soap_fault("soapenv:Client", "request too large"),
    };
    let Ok(envelope) = qaqpa_adapters::soap::read_envelope(&body, None, &Default::default()) else {
        return soap_fault("soapenv:Client", "not a SOAP envelope");
    };
    let text = std::str::from_utf8(&body[envelope.body.clone()]).unwrap_or("");
    // The legacy system's own idea of parsing its one operation.
    let iin = text
        .find("iin>")
        .map(|i| &text[i + 4..])
        .and_then(|rest| rest.find('<').map(|end| rest[..end].trim().to_owned()));
    let version = envelope.version;
    // X-Road providers answer with the request's header.
    let header = envelope.header_element.map(|r| String::from_utf8_lossy(&body[r]).into_owned()).unwrap_or_default();
    let prefix_ns = match version {
        qaqpa_adapters::soap::SoapVersion::V11 => qaqpa_adapters::soap::SOAP11_NS,
        qaqpa_adapters::soap::SoapVersion::V12 => qaqpa_adapters::soap::SOAP12_NS,
    };
    // The echoed header keeps its own prefix; declare the usual ones it may use.
    let (env_prefix, header) = header_prefix(&header);
    match iin.as_deref().and_then(find) {
        Some(p) => respond(
            StatusCode::OK,
            version.content_type(),
            format!(
                r#"<{e}:Envelope xmlns:{e}="{ns}" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:tax="http://legacy-tax.gov.kz/debt">{header}<{e}:Body><tax:GetDebtResponse><tax:iin>{}</tax:iin><tax:amount currency="KZT">{}</tax:amount></tax:GetDebtResponse></{e}:Body></{e}:Envelope>"#,
                p.iin,
                p.debt_tenge,
                e = env_prefix,
                ns = prefix_ns,
            ),
        ),
        None => soap_fault("soapenv:Client", "unknown taxpayer"),
    }
}

/// The envelope prefix the request's Header element used (so the echo stays valid).
fn header_prefix(header: &str) -> (String, &str) {
    let prefix = header
        .strip_prefix('<')
        .and_then(|h| h.split_once(':'))
        .map(|(p, _)| p.to_owned())
        .filter(|p| !p.contains(['>', ' ', '/']))
        .unwrap_or_else(|| "soapenv".to_owned());
    (prefix, header)
}

fn soap_fault(code: &str, message: &str) -> Response<Full<Bytes>> {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/xml; charset=utf-8",
        format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>{code}</faultcode><faultstring>{message}</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
        ),
    )
}
