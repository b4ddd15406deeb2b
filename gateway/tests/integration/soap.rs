//! SOAP through real sockets: the demo's legacy tax system behind the gateway,
//! called over mTLS by reqwest (raw envelopes, SOAP 1.1 and 1.2) and by the Python
//! zeep client from the served WSDL; hostile XML refused with its exact code while
//! the gateway keeps serving.

use crate::common;

use base64::Engine;
use std::net::SocketAddr;
use std::time::Duration;

use qaqpa_gateway::demo::{self, upstreams, DemoArgs, REST_SERVICE, SOAP_SERVICE};
use qaqpa_gateway::server::Running;

struct Demo {
    dir: tempfile::TempDir,
    running: Running,
}

impl Demo {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args = DemoArgs {
            dir: dir.path().to_owned(),
            bind: "127.0.0.1".parse().unwrap(),
            data_port: 0,
            plain_port: 0,
            admin_port: 0,
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let rest = upstreams::start_rest(any).await.unwrap();
        let soap = upstreams::start_soap(any).await.unwrap();
        let path = demo::write_files(&args, rest.addr, soap.addr).unwrap();
        let config = qaqpa_gateway::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let running = qaqpa_gateway::server::start(config, Some(path)).await.unwrap();
        std::mem::forget((rest, soap)); // the demo systems live as long as the test
        Self { dir, running }
    }

    fn pki(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join("pki").join(file)
    }

    fn client(&self, http1: bool) -> reqwest::Client {
        let mut b = crate::common::mtls_client_builder(&self.pki(""), "egov-portal").timeout(Duration::from_secs(60));
        if http1 {
            b = b.http1_only();
        }
        b.build().unwrap()
    }

    /// A client presenting the demo's operator certificate (the admin listener's CA).
    fn operator(&self) -> reqwest::Client {
        let read = |f: &str| std::fs::read(self.pki(f)).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.crt")).unwrap())
            .identity(reqwest::Identity::from_pem(&[read("operator.crt"), read("operator.key")].concat()).unwrap())
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running.data_addrs[0].port())
    }
}

const V11: &str = "text/xml; charset=utf-8";
const V12: &str = "application/soap+xml; charset=utf-8";
const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

fn as_soap12(envelope: &str) -> String {
    envelope.replace("http://schemas.xmlsoap.org/soap/envelope/", SOAP12_NS)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String, String) {
    let r = client.post(url).header("Content-Type", content_type).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let code = r.headers().get("qaqpa-error").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, code, r.text().await.unwrap())
}

#[tokio::test]
async fn soap_11_and_12_reach_the_legacy_system_unchanged_and_errors_are_faults() {
    let demo = Demo::start().await;
    let client = demo.client(false);
    let soap = demo.url("/soap");
    let request = upstreams::sample_get_debt("900101300123");

    let (status, code, body) = post(&client, &soap, V11, request.clone()).await;
    assert_eq!((status, code.as_str()), (200, ""), "{body}");
    assert!(body.contains("<tax:amount currency=\"KZT\">12500</tax:amount>"), "{body}");
    assert!(body.contains("<id:subsystemCode>egov-portal</id:subsystemCode>"), "the request header comes back: {body}");

    let (status, _, body) = post(&client, &soap, V12, as_soap12(&request)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(SOAP12_NS), "a SOAP 1.2 answer: {body}");

    // POST / with a SOAP content type is the same endpoint.
    let (status, _, _) = post(&client, &demo.url("/"), V11, request.clone()).await;
    assert_eq!(status, 200);

    // Claiming another client than the certificate's system.
    let other = request.replace(
        "000000000003</id:memberCode><id:subsystemCode>egov-portal",
        "000000000001</id:memberCode><id:subsystemCode>population-register",
    );
    let (status, code, body) = post(&client, &soap, V11, other).await;
    // X-Road's fault: HTTP 200, faultcode X-Road's code (docs/protocol.md).
    assert_eq!((status, code.as_str()), (200, "client.identity_mismatch"));
    assert!(body.contains("<faultcode>server.clientproxy.ssl_authentication_failed</faultcode>"), "{body}");

    let unknown = request
        .replace("<id:serviceCode>GetDebt</id:serviceCode>", "<id:serviceCode>Get</id:serviceCode>")
        .replace("GetDebt/v1", "Get/v1");
    let (status, code, _) = post(&client, &soap, V11, unknown.clone()).await;
    assert_eq!((status, code.as_str()), (200, "client.unknown_service"));
    // SOAP 1.2 faults of the sender are 400, with the code as Subcode.
    let (status, code, body) = post(&client, &soap, V12, as_soap12(&unknown)).await;
    assert_eq!((status, code.as_str()), (400, "client.unknown_service"));
    assert!(body.contains("<env:Value>qaqpa:client.unknown_service</env:Value>"), "{body}");

    // A REST service named in a SOAP header.
    let rest = request
        .replace(
            "000000000002</id:memberCode><id:subsystemCode>legacy-tax",
            "000000000001</id:memberCode><id:subsystemCode>population-register",
        )
        .replace("<id:serviceCode>GetDebt</id:serviceCode>", "<id:serviceCode>person</id:serviceCode>")
        .replace("GetDebt>", "personDebt>");
    let (_, code, _) = post(&client, &soap, V11, rest).await;
    assert_eq!(code, "client.bad_request");

    // A message id from the X-Road header is the exchange's id.
    let with_id = request.replace("<xrd:id>demo-debt-900101300123</xrd:id>", "<xrd:id>soap-msg-7</xrd:id>");
    let r = client.post(&soap).header("Content-Type", V11).body(with_id).send().await.unwrap();
    assert_eq!(r.headers()["x-road-id"], "soap-msg-7");
    demo.running.shutdown().await;
}

#[tokio::test]
async fn hostile_xml_gets_its_exact_code_and_the_next_request_works() {
    let demo = Demo::start().await;
    let client = demo.client(false);
    let soap = demo.url("/soap");
    let good = upstreams::sample_get_debt("900101300123");
    let with_body = |body: &str| good.replace("<tax:GetDebt><tax:iin>900101300123</tax:iin></tax:GetDebt>", body);
    let base62 = |mut n: u32| {
        let digits = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut s = String::from("a");
        loop {
            s.push(digits[(n % 62) as usize] as char);
            n /= 62;
            if n == 0 {
                return s;
            }
        }
    };
    let million_attrs =
        format!("<x {}/>", (0..1_000_000).map(|i| format!("{}=\"\"", base62(i))).collect::<Vec<_>>().join(" "));
    let cases: Vec<(&str, String, &str)> = vec![
        ("XXE reading /etc/passwd", format!("<!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}", with_body("<a>&x;</a>")), "client.bad_xml"),
        ("external DTD", format!("<!DOCTYPE e SYSTEM \"http://127.0.0.1:9/evil.dtd\">{good}"), "client.bad_xml"),
        (
            "billion laughs",
            format!(
                "<!DOCTYPE e [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>{}",
                with_body("<a>&c;</a>")
            ),
            "client.bad_xml",
        ),
        (
            "quadratic blowup",
            format!("<!DOCTYPE e [<!ENTITY a \"{}\">]>{}", "x".repeat(50_000), with_body(&format!("<a>{}</a>", "&a;".repeat(50_000)))),
            "client.bad_xml",
        ),
        ("10,000-deep nesting", with_body(&format!("{}{}", "<d>".repeat(10_000), "</d>".repeat(10_000))), "client.bad_xml"),
        ("1 M attributes", with_body(&million_attrs), "client.bad_xml"),
        ("truncated envelope", good[..good.len() - 40].to_owned(), "client.bad_xml"),
        ("two Bodies", good.replace("</soapenv:Body>", "</soapenv:Body><soapenv:Body/>"), "client.bad_xml"),
        (
            "Header after the Body",
            good.replace("</soapenv:Envelope>", "<soapenv:Header/></soapenv:Envelope>"),
            "client.bad_xml",
        ),
        ("a NUL character", good.replace("<tax:iin>", "<tax:iin>\u{0}"), "client.bad_xml"),
    ];
    for (what, body, want) in cases {
        let (status, code, text) = post(&client, &soap, V11, body).await;
        assert_eq!((status, code.as_str()), (200, want), "{what}: {text:.300}");
        // X-Road calls every unreadable message client.invalid_soap.
        assert!(text.contains("<faultcode>client.invalid_soap</faultcode>"), "{what}: {text:.300}");
        if what == "truncated envelope" {
            assert!(text.contains("line") && text.contains("column"), "{what} names line and column: {text}");
        }
        let (status, _, _) = post(&client, &soap, V11, good.clone()).await;
        assert_eq!(status, 200, "after {what}");
    }

    let mut latin1 = good.clone().into_bytes();
    latin1.extend_from_slice(b"<!-- \xe9 -->");
    let (status, code, _) = post(&client, &soap, V11, latin1).await;
    assert_eq!((status, code.as_str()), (200, "client.bad_xml"), "not UTF-8");

    // 200 MiB streamed without a length: refused once 10 MiB have arrived.
    let chunk = bytes::Bytes::from(vec![b' '; 1024 * 1024]);
    let stream = futures_util::stream::iter((0..200).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let r = client.post(&soap).header("Content-Type", V11).body(reqwest::Body::wrap_stream(stream)).send().await;
    match r {
        Ok(r) => assert_eq!(r.headers()["qaqpa-error"], "client.too_large"),
        Err(e) => panic!("the gateway should answer before the client finishes sending: {e}"),
    }
    // Declared 200 MiB: refused before reading any of it (raw HTTP/1.1 on the
    // plaintext demo listener, so nothing but the head is sent).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(demo.running.data_addrs[1]).await.unwrap();
        let head = format!(
            "POST /soap HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
            200u64 << 20
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(answer.contains("qaqpa-error: client.too_large"), "{answer}");
    }
    let (status, _, _) = post(&client, &soap, V11, good.clone()).await;
    assert_eq!(status, 200, "after the big bodies");
    demo.running.shutdown().await;
}

#[tokio::test]
async fn zeep_loads_the_wsdl_from_the_gateway_and_calls_over_soap_11_and_12() {
    if !common::python_has("zeep") {
        return;
    }
    let demo = Demo::start().await;
    let wsdl = demo.url(&format!("/soap/{SOAP_SERVICE}?wsdl"));
    let person_wsdl = demo.url(&format!("/soap/{REST_SERVICE}?wsdl"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/zeep_client.py");
    let args: Vec<String> = vec![
        script.into(),
        wsdl,
        person_wsdl,
        demo.pki("ca.crt").display().to_string(),
        demo.pki("egov-portal.crt").display().to_string(),
        demo.pki("egov-portal.key").display().to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "zeep failed: {}", String::from_utf8_lossy(&out.stderr));
    let answers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for version in ["soap11", "soap12"] {
        assert_eq!(answers[version]["iin"], "900101300123", "{answers}");
        assert_eq!(answers[version]["amount"], "12500", "{answers}");
        assert_eq!(answers[version]["currency"], "KZT", "{answers}");
    }
    // The register's SOAP face is typed from its OpenAPI document: fields by name.
    assert_eq!(
        answers["person"],
        serde_json::json!({"iin": "900101300123", "surname": "Abenova", "name": "Aigerim", "birthDate": "1990-01-01", "region": "Astana"}),
        "{answers}"
    );
    // The exchanges are on record under zeep's message ids.
    let admin = demo.running.admin_addr.unwrap();
    let records: serde_json::Value = demo
        .operator()
        .get(format!(
            "https://localhost:{}/admin/v1/monitoring?service={}",
            admin.port(),
            SOAP_SERVICE.replace('/', "%2F")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<_> = records.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert!(ids.contains(&"zeep-soap11".to_owned()) && ids.contains(&"zeep-soap12".to_owned()), "{ids:?}");
    demo.running.shutdown().await;
}

#[tokio::test]
async fn mediation_both_ways_and_generated_contracts() {
    let demo = Demo::start().await;
    let client = demo.client(false);
    let rest =
        |path: String| client.get(demo.url(&path)).header("X-Road-Client", "KZ/GOV/000000000003/egov-portal").send();

    // REST client → SOAP provider.
    let r = rest(format!("/r1/{SOAP_SERVICE}/900101300123")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let debt: serde_json::Value = r.json().await.unwrap();
    assert_eq!(debt, serde_json::json!({"iin": "900101300123", "amount": {"@currency": "KZT", "#text": 12500}}));
    // The provider's SOAP fault becomes problem+json with its message.
    let r = rest(format!("/r1/{SOAP_SERVICE}/000000000000")).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["qaqpa-error"], "client.bad_request");
    // An X-Road client (no problem+json Accept) reads X-Road's error body.
    let error: serde_json::Value = r.json().await.unwrap();
    assert_eq!(error["type"], "client.bad_request");
    assert!(error["message"].as_str().unwrap().contains("unknown taxpayer"), "{error}");
    // No REST operation for this path.
    let r = rest(format!("/r1/{SOAP_SERVICE}/a/b")).await.unwrap();
    assert_eq!(r.headers()["qaqpa-error"], "client.bad_request");

    // SOAP client → REST provider, in SOAP 1.1 and 1.2.
    let soap = demo.url("/soap");
    let (status, code, body) = post(&client, &soap, V11, upstreams::sample_get_person("900101300123")).await;
    assert_eq!((status, code.as_str()), (200, ""), "{body}");
    assert!(body.contains("<personResponse xmlns=\"http://population-register.gov.kz/person\""), "{body}");
    assert!(body.contains("<surname>Abenova</surname>"), "{body}");
    assert!(body.contains("<id:serviceCode>person</id:serviceCode>"), "the X-Road header comes back: {body}");
    let hash = base64::engine::general_purpose::STANDARD
        .encode(<sha2::Sha512 as sha2::Digest>::digest(upstreams::sample_get_person("900101300123").as_bytes()));
    assert!(body.contains(&format!("sha512\">{hash}</xrd:requestHash>")), "X-Road's requestHash: {body}");
    let (status, _, body) = post(&client, &soap, V12, as_soap12(&upstreams::sample_get_person("851231400456"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(SOAP12_NS) && body.contains("<surname>Serikbayev</surname>"), "{body}");
    // The provider's 404 becomes a fault naming it.
    let (status, code, body) = post(&client, &soap, V11, upstreams::sample_get_person("000000000000")).await;
    assert_eq!((status, code.as_str()), (200, "client.bad_request"));
    assert!(body.contains("404") && body.contains("person not found"), "{body}");
    // An operation the SOAP face does not have (its name starts with the service
    // code, so X-Road's header-and-body check passes and mediation refuses it).
    let wrong = upstreams::sample_get_person("1").replace("person>", "personPets>");
    let (_, code, body) = post(&client, &soap, V11, wrong).await;
    assert_eq!(code, "client.bad_request");
    assert!(body.contains("<faultcode>client.bad_request</faultcode>"), "{body}");
    // One whose name does not: X-Road's check refuses it first.
    let wrong = upstreams::sample_get_person("1").replace("person>", "pets>");
    let (_, _, body) = post(&client, &soap, V11, wrong).await;
    assert!(body.contains("<faultcode>client.inconsistent_headers</faultcode>"), "{body}");

    // Contracts: OpenAPI for the SOAP service's REST face, WSDL for the REST service's SOAP face.
    let doc: serde_json::Value = rest(format!("/r1/{SOAP_SERVICE}/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["paths"]["/{iin}"]["get"]["operationId"], "GetDebt");
    let port = demo.running.data_addrs[0].port();
    assert_eq!(doc["servers"][0]["url"], format!("https://localhost:{port}/r1/{SOAP_SERVICE}"));
    let wsdl = client.get(demo.url(&format!("/soap/{REST_SERVICE}?wsdl"))).send().await.unwrap().text().await.unwrap();
    assert!(wsdl.contains("<wsdl:operation name=\"person\">"), "{wsdl}");
    assert!(wsdl.contains(&format!("location=\"https://localhost:{port}/soap\"")), "{wsdl}");
    demo.running.shutdown().await;
}
