//! X-Road conformance (issue 17): X-Road's own proxy test messages
//! (`xroad_conformance/queries/`, vendored with PROVENANCE.md), rewritten to this
//! config's identifiers, sent through the real gateway over mTLS, each get the
//! answer X-Road gives them: forwarded to the provider unchanged (and the answer
//! back with X-Road's `requestHash`), or refused with the fault code X-Road's own
//! test suite expects (`proxy-core/src/test/java/.../testsuite/testcases/*.java`).
//! The REST face is held to X-Road's request hash (an independent Python
//! implementation of the formula), its answer headers and its error format.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha512};

use crate::common::{self, TestGateway, CLIENT, PROVIDER, SERVICE};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/xroad_conformance");
/// The services X-Road's test messages call, registered under the test provider.
const CODES_ALLOWED: [&str; 2] = ["getState", "testQuery"];
const CODE_NOT_ALLOWED: &str = "test";

fn query(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/queries/{name}")).unwrap()
}

/// A SOAP provider that answers with whatever the test put in `answer`, and keeps
/// the last request it received.
#[derive(Default)]
struct SoapProvider {
    answer: Mutex<String>,
    /// The HTTP status it answers with (0: 200).
    status: Mutex<u16>,
    last: Mutex<Option<(http::HeaderMap, Bytes)>>,
}

async fn start_soap_provider() -> (SocketAddr, Arc<SoapProvider>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(SoapProvider::default());
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let state = shared.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<Incoming>| {
                    let state = state.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        *state.last.lock().unwrap() = Some((parts.headers, body));
                        let answer = state.answer.lock().unwrap().clone();
                        let mut r = http::Response::new(Full::new(Bytes::from(answer)));
                        let status = *state.status.lock().unwrap();
                        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                        r.headers_mut()
                            .insert("content-type", http::HeaderValue::from_static("text/xml; charset=utf-8"));
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, state)
}

async fn start() -> (TestGateway, Arc<SoapProvider>) {
    let (addr, provider) = start_soap_provider().await;
    let gateway = TestGateway::start_with("header_read_timeout = \"5s\"", |_, mut text| {
        for code in CODES_ALLOWED.iter().chain([&CODE_NOT_ALLOWED]) {
            text.push_str(&format!(
                "\n[[service]]\nid = \"{PROVIDER}/{code}\"\nkind = \"soap\"\nupstream = [\"http://{addr}/soap\"]\n"
            ));
        }
        for code in CODES_ALLOWED {
            text.push_str(&format!("\n[[access]]\nservice = \"{PROVIDER}/{code}\"\nclients = [\"{CLIENT}\"]\n"));
        }
        text
    })
    .await;
    (gateway, provider)
}

/// An X-Road client: mTLS as the test client, no `Accept` of its own.
fn xroad_client(gw: &TestGateway) -> reqwest::Client {
    crate::common::mtls_client_builder(&gw.pki.path(""), "egov-portal")
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Rewrites every X-Road `client` and `service` element to this config's
/// identifiers (client: the test client's subsystem; service: the test provider's
/// subsystem with the message's own service code and version), keeping the
/// message's prefixes, attributes and everything else byte for byte. A client whose
/// member code is `keep_member` stays as X-Road's test wrote it.
fn rewrite(doc: &str, keep_member: Option<&str>) -> String {
    let client: Vec<&str> = CLIENT.split('/').collect();
    let provider: Vec<&str> = PROVIDER.split('/').collect();
    let mut out = String::with_capacity(doc.len() + 256);
    let mut rest = doc;
    while let Some(lt) = rest.find('<') {
        let after = &rest[lt + 1..];
        let qname_len = after.find(|c: char| c.is_whitespace() || c == '>' || c == '/').unwrap_or(after.len());
        let qname = &after[..qname_len];
        let local = qname.rsplit(':').next().unwrap_or("");
        let tag_end = after.find('>').map(|i| lt + 1 + i);
        let is_identifier = matches!(local, "client" | "service") && !qname.starts_with('/');
        let (Some(tag_end), true) = (tag_end, is_identifier) else {
            out.push_str(&rest[..lt + 1]);
            rest = &rest[lt + 1..];
            continue;
        };
        let close = format!("</{qname}>");
        let Some(close_at) = rest[tag_end..].find(&close).map(|i| tag_end + i) else {
            out.push_str(&rest[..lt + 1]);
            rest = &rest[lt + 1..];
            continue;
        };
        let start_tag = &rest[lt..=tag_end];
        let inner = &rest[tag_end + 1..close_at];
        let p = inner
            .find("xRoadInstance")
            .and_then(|i| inner[..i].rfind('<').map(|lt| &inner[lt + 1..i]))
            .unwrap_or("id:");
        let text_of = |part: &str| {
            let open = format!("<{p}{part}>");
            inner.find(&open).map(|i| &inner[i + open.len()..]).and_then(|t| t.find('<').map(|e| t[..e].to_owned()))
        };
        let keep = local == "client" && keep_member.is_some_and(|m| text_of("memberCode").as_deref() == Some(m));
        out.push_str(&rest[..lt]);
        if keep {
            out.push_str(&rest[lt..close_at + close.len()]);
        } else {
            let part = |name: &str, value: &str| format!("<{p}{name}>{value}</{p}{name}>");
            let ids = if local == "client" { &client } else { &provider };
            let mut new_inner = [("xRoadInstance", 0), ("memberClass", 1), ("memberCode", 2), ("subsystemCode", 3)]
                .iter()
                .map(|(name, i)| part(name, ids[*i]))
                .collect::<String>();
            if local == "service" {
                for name in ["serviceCode", "serviceVersion"] {
                    if let Some(v) = text_of(name) {
                        new_inner.push_str(&part(name, &v));
                    }
                }
            }
            out.push_str(&start_tag.replace("\"MEMBER\"", "\"SUBSYSTEM\""));
            out.push_str(&new_inner);
            out.push_str(&close);
        }
        rest = &rest[close_at + close.len()..];
    }
    out.push_str(rest);
    out
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn post_soap(client: &reqwest::Client, gw: &TestGateway, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client.post(gw.tls_url("/soap")).header("content-type", "text/xml; charset=utf-8");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let r = req.body(body.to_owned()).send().await.unwrap();
    Answer { status: r.status().as_u16(), headers: r.headers().clone(), body: r.text().await.unwrap() }
}

fn fault_code(body: &str) -> Option<&str> {
    let start = body.find("<faultcode>")? + "<faultcode>".len();
    Some(&body[start..start + body[start..].find('<')?])
}

/// Asserts X-Road's fault for `code`: HTTP 200, `faultcode` and `X-Road-Error` the
/// X-Road code, `detail/faultDetail` the message id the answer names.
fn assert_fault(what: &str, a: &Answer, code: &str) {
    assert_eq!(a.status, 200, "{what}: X-Road answers faults with 200: {}", a.body);
    assert_eq!(fault_code(&a.body), Some(code), "{what}: {}", a.body);
    assert_eq!(a.headers["x-road-error"], code, "{what}");
    let id = a.headers["x-road-id"].to_str().unwrap();
    assert!(
        a.body.contains(&format!("<detail><faultDetail xmlns=\"\">{id}</faultDetail></detail>")),
        "{what}: {}",
        a.body
    );
    assert!(a.headers["content-type"].to_str().unwrap().starts_with("text/xml"), "{what}");
}

/// X-Road's proxy test cases on the client side: (message, X-Road's fault code, the
/// testcase class that expects it). `None`: X-Road forwards the message.
const REQUESTS: [(&str, Option<&str>, &str); 19] = [
    ("getstate.query", None, "NormalMessage"),
    ("getstate-subsystem.query", None, "NormalSubsystem"),
    ("getstate-defaultnamespace.query", None, "DefaultNamespaceMessage"),
    ("simple.query", None, "CommentMessage"),
    ("cdata.query", None, "CDATAMessage"),
    ("nowhitespace.query", None, "NoWhitespaceMessage"),
    ("missing-userId.query", None, "MissingUserIdHeader"),
    ("split-header.query", None, "SplitHeaderMessage"),
    ("faulty-header2.query", Some("client.duplicate_header_field"), "FaultyHeader"),
    ("malformed-body1.query", Some("client.invalid_body"), "MalformedBody1"),
    ("malformed-body2.query", Some("client.invalid_body"), "MalformedBody2"),
    ("malformed-body3.query", Some("client.inconsistent_headers"), "MalformedBody3"),
    ("malformed-protocolVersion.query", Some("client.invalid_protocol_version"), "MalformedProtocolVersionHeader"),
    ("missing-protocolVersion.query", Some("client.missing_header_field"), "MissingProtocolVersionHeader"),
    ("missing-body.query", Some("client.missing_body"), "MissingBody"),
    ("no-header.query", Some("client.missing_header"), "MissingHeader"),
    ("missingobjecttype.query", Some("client.invalid_xml"), "MissingObjectTypeMessage"),
    ("empty.query", Some("client.invalid_soap"), "EmptyQuery"),
    ("notAllowed.query", Some("server.serverproxy.access_denied"), "NotAllowed"),
];

#[tokio::test]
async fn x_road_test_messages_get_x_road_s_answers() {
    let (gw, provider) = start().await;
    let client = xroad_client(&gw);
    for (file, expected, case) in REQUESTS {
        let request = rewrite(&query(file), None);
        let what = format!("{file} ({case})");
        *provider.answer.lock().unwrap() = rewrite(&query("getstate.answer"), None)
            .replace("411d6755661409fed365ad8135f8210be07613da", &header_id(&request).unwrap_or_default())
            .replace("<id:serviceCode>getState<", &format!("<id:serviceCode>{}<", service_code(&request)));
        provider.last.lock().unwrap().take();
        let a = post_soap(&client, &gw, &request, &[]).await;
        match expected {
            Some(code) => {
                assert_fault(&what, &a, code);
                assert!(provider.last.lock().unwrap().is_none(), "{what}: refused before the provider");
            }
            None => {
                assert_eq!(a.status, 200, "{what}: {}", a.body);
                assert!(a.headers.get("x-road-error").is_none(), "{what}: {}", a.body);
                let (_, forwarded) = provider.last.lock().unwrap().take().expect("forwarded");
                assert_eq!(forwarded, request.as_bytes(), "{what}: the provider gets the message unchanged");
                let hash = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(request.as_bytes()));
                let element = format!(
                    r#"<xrd:requestHash xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" algorithmId="http://www.w3.org/2001/04/xmlenc#sha512">{hash}</xrd:requestHash>"#
                );
                assert!(a.body.contains(&element), "{what}: X-Road's requestHash in the answer: {}", a.body);
                // X-Road's REST header is not a SOAP answer's (its hash is in the Header).
                assert!(a.headers.get("x-road-request-hash").is_none(), "{what}: {:?}", a.headers);
                let answer = provider.answer.lock().unwrap().clone();
                assert_eq!(a.body.replace(&element, ""), answer, "{what}: nothing else in the answer changes");
            }
        }
    }
}

fn header_id(doc: &str) -> Option<String> {
    let start = doc.find(":id>")? + 4;
    Some(doc[start..start + doc[start..].find('<')?].to_owned())
}

fn service_code(doc: &str) -> String {
    doc.find("serviceCode>")
        .map(|i| &doc[i + "serviceCode>".len()..])
        .and_then(|t| t.find('<').map(|e| t[..e].to_owned()))
        .unwrap_or_default()
}

#[tokio::test]
async fn x_road_transport_rules_and_provider_answers() {
    let (gw, provider) = start().await;
    let client = xroad_client(&gw);
    let request = rewrite(&query("getstate.query"), None);
    *provider.answer.lock().unwrap() = rewrite(&query("getstate.answer"), None);

    // MissingOrg: a client member X-Road does not know (Qaqpa registers subsystems).
    let a = post_soap(&client, &gw, &rewrite(&query("missing-org.query"), Some("this-org-does-not-exist")), &[]).await;
    assert_fault("missing-org.query (MissingOrg)", &a, "server.clientproxy.unknown_member");
    // SoapActionMalformedHeader / SoapActionHeader / SoapActionEmptyHeader.
    let a = post_soap(&client, &gw, &request, &[("soapaction", "getState")]).await;
    assert_fault("malformed SOAPAction", &a, "client.invalid_soap_action");
    for ok in ["", "\"\"", "\"http://x-road.eu/getState\""] {
        let a = post_soap(&client, &gw, &request, &[("soapaction", ok)]).await;
        assert_eq!((a.status, fault_code(&a.body)), (200, None), "SOAPAction {ok:?}: {}", a.body);
    }
    // FaultyRequestContentType.
    let r = client
        .post(gw.tls_url("/soap"))
        .header("content-type", "application/json")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    let a = Answer { status: r.status().as_u16(), headers: r.headers().clone(), body: r.text().await.unwrap() };
    assert_fault("FaultyRequestContentType", &a, "client.invalid_content_type");
    // WrongHttpMethod: the SOAP endpoint with GET (X-Road's REST-shaped error: no envelope to answer in).
    let r = client.get(gw.tls_url("/soap")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["x-road-error"].to_str().unwrap()),
        (400, "client.invalid_http_method")
    );
    // UnknownService: a service code nobody registered.
    let unknown = request.replace("getState", "getNothing");
    let a = post_soap(&client, &gw, &unknown, &[]).await;
    assert_fault("UnknownService", &a, "server.serverproxy.unknown_service");

    // ResponseWithRequestHash: a requestHash the provider wrote itself ("foo") names
    // another request, so the answer is refused as X-Road's client side refuses it
    // (checkRequestHash); the request's own hash written by the provider stays.
    let own = rewrite(&query("requesthash.answer"), None);
    *provider.answer.lock().unwrap() = own.clone();
    let a = post_soap(&client, &gw, &request, &[]).await;
    assert_fault("provider's wrong requestHash", &a, "server.serverproxy.service_failed.inconsistent_response");
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(request.as_bytes()));
    let right = own.replace(">foo<", &format!(">{hash}<"));
    assert_ne!(right, own);
    *provider.answer.lock().unwrap() = right.clone();
    let a = post_soap(&client, &gw, &request, &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, right.as_str()));
    // An answer to another message (X-Road's SoapUtils.checkConsistency).
    *provider.answer.lock().unwrap() =
        rewrite(&query("getstate.answer"), None).replace("411d6755661409fed365ad8135f8210be07613da", "another-id");
    let a = post_soap(&client, &gw, &request, &[]).await;
    assert_fault("inconsistent answer", &a, "server.serverproxy.service_failed.inconsistent_response");
    // An answer without an X-Road header (MissingHeaderResponse).
    *provider.answer.lock().unwrap() = query("no-header.query");
    let a = post_soap(&client, &gw, &request, &[]).await;
    assert_fault("answer without header", &a, "server.serverproxy.service_failed.invalid_soap");
    // ServiceHttpError: an HTTP error without a SOAP fault.
    *provider.status.lock().unwrap() = 503;
    *provider.answer.lock().unwrap() = "busy".into();
    let a = post_soap(&client, &gw, &request, &[]).await;
    assert_fault("ServiceHttpError", &a, "server.serverproxy.service_failed.http_error");
    *provider.status.lock().unwrap() = 200;
    // The provider's own SOAP fault passes as it sent it (ServiceReturnsFault).
    let fault = qaqpa_adapters::xroad::soap11_fault("CODE", "the provider failed", "x");
    *provider.answer.lock().unwrap() = fault.clone();
    let a = post_soap(&client, &gw, &request, &[]).await;
    assert_eq!(a.body, fault);

    // SOAP 1.2 stays Qaqpa's extra, with X-Road's checks and Qaqpa's fault.
    let v12 = request.replace("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope");
    let r = client
        .post(gw.tls_url("/soap"))
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(v12.replace("<xroad:protocolVersion>4.0", "<xroad:protocolVersion>3.1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-road-error"], "client.invalid_protocol_version");
    assert_eq!(r.headers()["qaqpa-error"], "client.bad_request");
}

/// X-Road's own REST examples (pr-rest §6.2-6.5: GET, PUT, POST, DELETE; vendored in
/// xroad_conformance/protocols/) and two more calls through `/r1`:
/// X-Road-Request-Hash recomputed by an independent Python implementation of
/// X-Road's formula (xroad_conformance/request_hash.py).
#[tokio::test]
async fn rest_request_hash_equals_x_road_s_formula() {
    if !python3_present() {
        return;
    }
    let gw = TestGateway::start().await;
    let port = gw.running.data_addrs[0].port().to_string();
    // X-Road's own RestRequest.java (vendored in java/x-road, with stand-ins for the
    // libraries it imports) computes the hash too, where a JDK is installed.
    let classes = tempfile::tempdir().unwrap();
    let out = classes.path().to_owned();
    let java = match jdk_present() {
        true => Some(tokio::task::spawn_blocking(move || compile_x_road_java(&out)).await.unwrap()),
        false => None,
    };
    let mut command = std::process::Command::new("python3");
    if let Some(classpath) = &java {
        command.env("XROAD_JAVA_CLASSPATH", classpath);
    }
    command
        .arg(format!("{DATA}/request_hash.py"))
        .args(["localhost", &port])
        .arg(gw.pki.path("ca.crt"))
        .arg(gw.pki.path("egov-portal.crt"))
        .arg(gw.pki.path("egov-portal.key"))
        .args([SERVICE, CLIENT]);
    // Off the runtime: the gateway serves the script on this test's runtime.
    let out = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("matches X-Road's formula").count(), 6, "{stdout}");
    if java.is_some() {
        assert_eq!(stdout.matches("X-Road's own RestRequest.java computes the same hash").count(), 6, "{stdout}");
    }
}

fn jdk_present() -> bool {
    let found = std::process::Command::new("javac").arg("-version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: javac (a JDK) is required");
        eprintln!("SKIPPED: no JDK; X-Road's RestRequest.java does not run");
    }
    found
}

/// Compiles X-Road's RestMessage/RestRequest and the stand-ins into `out`.
fn compile_x_road_java(out: &std::path::Path) -> std::path::PathBuf {
    fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "java") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(std::path::Path::new(&format!("{DATA}/java")), &mut files);
    let status = std::process::Command::new("javac").arg("-d").arg(out).args(&files).status().unwrap();
    assert!(status.success(), "javac failed on X-Road's RestRequest.java");
    out.to_owned()
}

fn python3_present() -> bool {
    let found = std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI: python3 is required");
        eprintln!("SKIPPED: python3 is not installed");
    }
    found
}

#[tokio::test]
async fn rest_answers_and_errors_are_x_road_s() {
    let gw = TestGateway::start().await;
    let client = xroad_client(&gw);
    let r = client
        .get(gw.tls_url(&format!("/r1/{SERVICE}/echo/v2/pets/1124")))
        .header("accept", "application/json")
        .header("user-agent", "x-road-client/1")
        .header("x-road-client", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["x-road-client"], CLIENT);
    assert_eq!(h["x-road-service"], SERVICE);
    let request_id = h["x-road-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&request_id).is_ok(), "{request_id}");
    assert!(h.contains_key("x-road-id") && h["x-road-request-hash"].len() == 88);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-road-request-id"], request_id.as_str(), "the provider gets the request id");
    assert!(seen["headers"].get("user-agent").is_none(), "X-Road strips User-Agent: {seen}");

    // Errors: X-Road's JSON by default, XML when Accept asks, problem+json by name.
    let unknown = gw.tls_url("/r1/KZ/GOV/000000000001/population-register/nothing");
    let r = client.get(&unknown).header("x-road-client", CLIENT).send().await.unwrap();
    assert_eq!(r.status(), 500, "X-Road: server.* is 500");
    assert_eq!(r.headers()["x-road-error"], "server.serverproxy.unknown_service");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let id = r.headers()["x-road-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["type"], "server.serverproxy.unknown_service");
    assert_eq!(body["detail"], id.as_str());
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    // A member-level client (X-Road's 3-part X-Road-Client): a member Qaqpa does not know.
    let r = client.get(&unknown).header("x-road-client", "KZ/GOV/000000000003").send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["x-road-error"].to_str().unwrap()),
        (500, "server.clientproxy.unknown_member")
    );
    let r = client.get(&unknown).header("x-road-client", "KZ/GOV").header("accept", "text/*").send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-road-error"].to_str().unwrap()), (400, "client.bad_request"));
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let xml = r.text().await.unwrap();
    assert!(xml.contains("<error><type>client.bad_request</type><message>"), "{xml}");
    let r = client
        .get(&unknown)
        .header("x-road-client", CLIENT)
        .header("accept", common::PROBLEM_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "Qaqpa's own status under problem+json");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(r.headers()["qaqpa-error"], "client.unknown_service");
    assert_eq!(r.headers()["x-road-error"], "server.serverproxy.unknown_service");
}

#[test]
fn rewrite_keeps_everything_but_the_identifiers() {
    let doc = query("getstate.query");
    let out = rewrite(&doc, None);
    assert!(out.contains(r#"<xroad:client id:objectType="SUBSYSTEM">"#), "{out}");
    assert!(out.contains("<id:memberCode>000000000003</id:memberCode><id:subsystemCode>egov-portal</id:subsystemCode>"));
    assert!(out
        .contains("<id:subsystemCode>population-register</id:subsystemCode><id:serviceCode>getState</id:serviceCode>"));
    assert!(out.contains("<xroad:getState>aäõ</xroad:getState>"));
    let doc = query("getstate-defaultnamespace.query");
    let out = rewrite(&doc, None);
    assert!(out.contains("<memberCode>000000000003</memberCode><subsystemCode>egov-portal</subsystemCode>"), "{out}");
    assert!(!out.contains("EE</"), "{out}");
}
