//! Mediation's typed contracts, JSON styles and exact numbers through the real
//! gateway over mTLS (docs/mapping.md): the demo's config with its two providers
//! replaced by providers of this module: a REST register whose OpenAPI document
//! types the register's SOAP face (nested objects, arrays, integers, decimals, an
//! attribute), and a SOAP tax system answering decimals that must keep their digits,
//! both faces in the named JSON style. zeep (python3) reads the typed WSDL.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use qaqpa_gateway::demo::{self, DemoArgs, REST_SERVICE, SOAP_SERVICE};
use qaqpa_gateway::server::Running;

use crate::common;

/// The register's answer, members in an order other than its schema's, one the
/// schema does not name.
const PERSON: &str = r#"{"surname":"Abenova","iin":"900101300123","unlisted":"left out","age":36,
 "debt":{"value":12500.50,"currency":"KZT"},"phones":["+7 701 000 0001"],
 "address":{"city":"Astana","zip":"010000"},"name":"Aigerim"}"#;

const OPENAPI: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "register", "version": "1"},
  "paths": {"/{iin}": {"get": {
    "parameters": [{"name": "iin", "in": "path", "required": true, "schema": {"type": "string"}}],
    "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Person"}}}}}
  }}},
  "components": {"schemas": {
    "Person": {"type": "object", "required": ["iin", "surname"], "properties": {
      "iin": {"type": "string"}, "surname": {"type": "string"}, "name": {"type": "string"},
      "age": {"type": "integer"},
      "debt": {"$ref": "#/components/schemas/Amount"},
      "phones": {"type": "array", "items": {"type": "string"}},
      "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}
    }},
    "Amount": {"type": "object", "properties": {
      "currency": {"type": "string", "xml": {"attribute": true}},
      "value": {"type": "number"}
    }}
  }}
}"##;

type Seen = Arc<Mutex<Vec<String>>>;

/// A loopback HTTP/1.1 server answering with `answer(request body)`, keeping the
/// bodies it received.
async fn serve(answer: fn(&str) -> (&'static str, String)) -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let text = String::from_utf8_lossy(&body).into_owned();
                        seen.lock().unwrap().push(text.clone());
                        let (content_type, out) = answer(&text);
                        let mut r = Response::new(Full::new(Bytes::from(out)));
                        r.headers_mut().insert("content-type", http::HeaderValue::from_static(content_type));
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    (addr, seen)
}

/// The SOAP tax system: answers GetDebt with decimals and echoes PayDebt's fields.
fn tax(request: &str) -> (&'static str, String) {
    let envelope = qaqpa_adapters::soap::read_envelope(request.as_bytes(), None, &Default::default()).unwrap();
    let header = envelope.header_element.map(|r| &request[r]).unwrap_or_default();
    let body = &request[envelope.body.clone()];
    let answer = if body.contains("PayDebt") {
        // The fields the gateway wrote, back as the answer.
        let inner = body.split_once('>').map(|(_, rest)| rest).unwrap_or_default();
        let inner = inner.rsplit_once("</").map(|(fields, _)| fields).unwrap_or_default();
        format!("<tax:PayDebtResponse>{inner}</tax:PayDebtResponse>")
    } else {
        concat!(
            "<tax:GetDebtResponse><tax:iin>900101300123</tax:iin>",
            r#"<tax:amount currency="KZT">12500.50</tax:amount><tax:rate>0.999</tax:rate>"#,
            "<tax:penalty>123456789012345678901234.10</tax:penalty></tax:GetDebtResponse>"
        )
        .to_owned()
    };
    // The echoed header keeps the prefix the gateway gave it.
    let e = header.strip_prefix('<').and_then(|h| h.split_once(':')).map_or("soapenv", |(p, _)| p);
    let xml = format!(
        r#"<{e}:Envelope xmlns:{e}="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:tax="http://legacy-tax.gov.kz/debt">{header}<{e}:Body>{answer}</{e}:Body></{e}:Envelope>"#
    );
    ("text/xml; charset=utf-8", xml)
}

fn register(_: &str) -> (&'static str, String) {
    ("application/json", PERSON.to_owned())
}

struct Gateway {
    dir: tempfile::TempDir,
    running: Running,
    tax_seen: Seen,
}

impl Gateway {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args = DemoArgs {
            dir: dir.path().to_owned(),
            bind: "127.0.0.1".parse().unwrap(),
            data_port: 0,
            plain_port: 0,
            admin_port: 0,
        };
        let (rest, _) = serve(register).await;
        let (soap, tax_seen) = serve(tax).await;
        let path = demo::write_files(&args, rest, soap).unwrap();
        std::fs::write(dir.path().join("openapi/population-register.json"), OPENAPI).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // Both faces in the named style; the tax face gains a POST operation (one
        // its WSDL does not have: this provider has no WSDL here).
        let text = text
            .replacen("wsdl = \"wsdl/legacy-tax.wsdl\"\n", "", 1)
            .replacen(
                "namespace = \"http://population-register.gov.kz/person\"",
                "namespace = \"http://population-register.gov.kz/person\"\njson_style = \"named\"",
                1,
            )
            .replacen(
                "types = { amount = \"number\" }",
                "types = { amount = \"number\", rate = \"number\", penalty = \"number\" }\njson_style = \"named\"\nattributes = [\"currency\"]",
                1,
            )
            .replacen(
                "soap_action = \"http://legacy-tax.gov.kz/debt/GetDebt\"",
                "soap_action = \"http://legacy-tax.gov.kz/debt/GetDebt\"\n\n[[service.rest.operation]]\nname = \"PayDebt\"\nmethod = \"POST\"\npath = \"/{iin}/payments\"",
                1,
            );
        assert!(text.matches("json_style = \"named\"").count() == 2 && text.contains("PayDebt"), "{text}");
        std::fs::write(&path, text).unwrap();
        let config = qaqpa_gateway::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let running = qaqpa_gateway::server::start(config, Some(path)).await.unwrap();
        Self { dir, running, tax_seen }
    }

    fn pki(&self, file: &str) -> String {
        self.dir.path().join("pki").join(file).display().to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running.data_addrs[0].port())
    }

    fn client(&self) -> reqwest::Client {
        crate::common::mtls_client_builder(std::path::Path::new(&self.pki("")), "egov-portal")
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }
}

#[tokio::test]
async fn named_style_and_exact_numbers_through_the_rest_face() {
    let gw = Gateway::start().await;
    let client = gw.client();
    let r = client
        .get(gw.url(&format!("/r1/{SOAP_SERVICE}/900101300123")))
        .header("X-Road-Client", "KZ/GOV/000000000003/egov-portal")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    // The exact text: the digits as the provider wrote them, attributes and text as named fields.
    assert_eq!(
        text,
        r#"{"iin":"900101300123","amount":{"currency":"KZT","value":12500.50},"rate":0.999,"penalty":123456789012345678901234.10}"#
    );
    // JSON → XML in the named style: the listed attribute is an attribute, the text field its text.
    let r = client
        .post(gw.url(&format!("/r1/{SOAP_SERVICE}/900101300123/payments")))
        .header("X-Road-Client", "KZ/GOV/000000000003/egov-portal")
        .header("content-type", "application/json")
        .body(r#"{"amount":{"currency":"KZT","value":250.75},"note":"June"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = gw.tax_seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        sent.contains(r#"<iin>900101300123</iin><amount currency="KZT">250.75</amount><note>June</note></PayDebt>"#),
        "{sent}"
    );
    // And back again: the same JSON (path parameter first).
    let echoed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        echoed,
        serde_json::json!({"iin": "900101300123", "amount": {"currency": "KZT", "value": 250.75}, "note": "June"})
    );
    gw.running.shutdown().await;
}

#[tokio::test]
async fn typed_wsdl_from_openapi_gives_zeep_fields() {
    let gw = Gateway::start().await;
    let wsdl =
        gw.client().get(gw.url(&format!("/soap/{REST_SERVICE}?wsdl"))).send().await.unwrap().text().await.unwrap();
    assert!(wsdl.contains(r#"<xs:element name="age" type="xs:integer" minOccurs="0" nillable="true"/>"#), "{wsdl}");
    assert!(wsdl.contains(r#"<xs:extension base="xs:decimal"><xs:attribute name="currency" type="xs:string"/>"#));
    assert!(!wsdl.contains("<xs:any "), "typed operations leave nothing untyped: {wsdl}");
    if !common::python_has("zeep") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/zeep_typed.py");
    let args = vec![
        script.to_owned(),
        gw.url(&format!("/soap/{REST_SERVICE}?wsdl")),
        gw.pki("ca.crt"),
        gw.pki("egov-portal.crt"),
        gw.pki("egov-portal.key"),
    ];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "zeep failed: {}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // zeep read every field by name, typed: an int, a Decimal, a list, a nested object.
    assert_eq!(
        answer,
        serde_json::json!({
            "iin": "900101300123", "surname": "Abenova", "name": "Aigerim",
            "age": 36, "age_type": "int",
            "debt": {"currency": "KZT", "value": "12500.5"}, "debt_type": "Decimal",
            "phones": ["+7 701 000 0001"],
            "address": {"city": "Astana", "zip": "010000"}
        }),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    gw.running.shutdown().await;
}
