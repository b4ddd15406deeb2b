//! ШЭП (issue 18, docs/shep.md) through real sockets: legacy SyncChannel and
//! AsyncChannel messages shaped like the public ones, sent over mTLS to the demo
//! (the population register is REST, the tax system X-Road SOAP) and to a provider
//! that speaks SyncChannel itself; zeep loads both WSDLs and calls them; hostile
//! variants are refused as ШЭП faults with their stable codes.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use qaqpa_gateway::demo::{self, upstreams, DemoArgs, DEMO_IIN, SHEP_PASSWORD, SHEP_SENDER};
use qaqpa_gateway::server::Running;

pub(super) struct Demo {
    dir: tempfile::TempDir,
    running: Running,
}

impl Demo {
    pub(super) async fn start() -> Self {
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

    fn pki(&self, file: &str) -> String {
        self.dir.path().join("pki").join(file).display().to_string()
    }

    pub(super) fn client(&self) -> reqwest::Client {
        crate::common::mtls_client_builder(std::path::Path::new(&self.pki("")), "egov-portal")
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running.data_addrs[0].port())
    }

    pub(super) fn plain(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.data_addrs[1])
    }

    pub(super) async fn post(&self, path: &str, body: String) -> (u16, Option<String>, String) {
        post(&self.client(), &self.url(path), body).await
    }
}

pub(super) async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Option<String>, String) {
    let r = client.post(url).header("content-type", "text/xml; charset=utf-8").body(body).send().await.unwrap();
    let code = r.headers().get("x-road-error").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), code, r.text().await.unwrap())
}

const MID: &str = "6f1c2a3e-0d4b-4f7e-9a51-3c2b1d0e9f88";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_channel_reaches_the_rest_register_and_the_xroad_soap_provider() {
    let d = Demo::start().await;
    let (status, code, body) = d.post("/bip-sync/", demo::sample_sync(MID, DEMO_IIN)).await;
    assert_eq!((status, code), (200, None), "{body}");
    assert!(body.contains("<ns2:SendMessageResponse xmlns:ns2=\"http://bip.bee.kz/SyncChannel/v10/Types\">"), "{body}");
    assert!(body.contains(&format!("<correlationId>{MID}</correlationId>")), "{body}");
    assert!(body.contains("<status><code>SCSS001</code>"), "{body}");
    assert!(body.contains("<surname>Abenova</surname>") && body.contains("<iin>900101300123</iin>"), "{body}");

    // The tax system speaks X-Road SOAP: data's content is its operation.
    let debt = demo::sample_sync("debt-1", DEMO_IIN)
        .replace("PopulationRegister_Person", "LegacyTax_Debt")
        .replace(
            "<data><iin>900101300123</iin></data>",
            "<data><tax:GetDebt xmlns:tax=\"http://legacy-tax.gov.kz/debt\"><tax:iin>900101300123</tax:iin></tax:GetDebt></data>",
        );
    let (status, _, body) = d.post("/bip-sync", debt).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<code>SCSS001</code>") && body.contains("12500"), "{body}");
    assert!(body.contains("<correlationId>debt-1</correlationId>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_wrong_sync_calls_are_refused_as_shep_faults() {
    let d = Demo::start().await;
    let good = demo::sample_sync(MID, DEMO_IIN);
    let cut = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replacen(from, to, 1)
    };
    let cases = [
        (cut(&format!("<messageId>{MID}</messageId>"), ""), "client.bad_request", "messageId is required"),
        (cut("<serviceId>PopulationRegister_Person</serviceId>", ""), "client.bad_request", "serviceId is required"),
        (cut("<senderId>egov_portal</senderId>", ""), "client.bad_request", "senderId is required"),
        (cut("PopulationRegister_Person", "Nobody_Service"), "client.unknown_service", "Nobody_Service"),
        (cut("<senderId>egov_portal", "<senderId>stranger"), "client.identity_mismatch", "not a registered"),
        // The register's senderId with the portal's certificate.
        (cut("<senderId>egov_portal", "<senderId>population_register"), "client.identity_mismatch", "certificate"),
        (cut(SHEP_PASSWORD, "guessed-password"), "client.identity_mismatch", "password"),
        (cut(&format!("<password>{SHEP_PASSWORD}</password>"), ""), "client.identity_mismatch", "password"),
        (
            format!("<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{good}"),
            "client.bad_xml",
            "DOCTYPE",
        ),
        (cut("900101300123", "&x;"), "client.bad_xml", "entity"),
        (cut("</sender>", "</sender><serviceId>LegacyTax_Debt</serviceId>"), "client.bad_request", "twice"),
        (cut("<iin>", &format!("<iin>{}", "9".repeat(11 << 20))), "client.too_large", "exceeds"),
    ];
    for (body, expected, says) in cases {
        let short = body.chars().take(300).collect::<String>();
        let (status, code, text) = d.post("/bip-sync/", body).await;
        assert_eq!((status, code.as_deref()), (500, Some(expected)), "{short}\n{text}");
        assert!(text.contains("<faultcode>SOAP-ENV:Client</faultcode>"), "{text}");
        assert!(text.contains(&format!("<errorCode>{expected}</errorCode>")), "{text}");
        assert!(text.contains(says), "{says}: {text}");
        assert!(!text.contains(SHEP_PASSWORD) && !text.contains("guessed-password"), "a password leaked: {text}");
    }
    // The gateway still serves after all that.
    let (status, _, body) = d.post("/bip-sync/", good.clone()).await;
    assert_eq!(status, 200, "{body}");
    // A remembered good password does not open the door to a wrong one.
    let wrong = good.replacen(SHEP_PASSWORD, "guessed-password", 1).replacen(MID, "after-success", 1);
    let (status, code, _) = d.post("/bip-sync/", wrong).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.identity_mismatch")));
    let again = good.replacen(MID, "after-success-2", 1);
    assert_eq!(d.post("/bip-sync/", again).await.0, 200);
}

/// A provider that speaks SyncChannel itself gets the message byte for byte (the
/// common provider's `/mirror` answers with what it received).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shep_provider_gets_send_message_as_it_was_sent() {
    let gw = common::TestGateway::start_with("header_read_timeout = \"5s\"", |_, text| {
        let text = common::with_system_keys(&text, common::CLIENT, "shep_sender = \"portal\"\n");
        let upstream = text.split("upstream = [\"http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
        format!(
            "{text}\n[[service]]\nid = \"{p}/shep-mirror/v1\"\nkind = \"soap\"\nupstream = [\"http://{upstream}/base/mirror\"]\nshep_service_id = \"Mirror_Service\"\nshep_provider = true\n\n[[access]]\nservice = \"{p}/shep-mirror/v1\"\nclients = [\"{c}\"]\n",
            p = common::PROVIDER,
            c = common::CLIENT,
        )
    })
    .await;
    let message = qaqpa_adapters_sample().replace("PopulationRegister_Person", "Mirror_Service").replace(
        &format!("<senderId>{SHEP_SENDER}</senderId><password>{SHEP_PASSWORD}</password>"),
        "<senderId>portal</senderId>",
    );
    let (status, code, body) = post(&gw.client(), &gw.tls_url("/bip-sync/"), message.clone()).await;
    assert_eq!((status, code), (200, None), "{body}");
    assert_eq!(body, message, "forwarded as is and answered as is");
    // Over a service without access the same sender is refused.
    let other = gw.pki.client(Some("akimat")).build().unwrap();
    let (status, code, _) = post(&other, &gw.tls_url("/bip-sync/"), message).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.identity_mismatch")));
}

fn qaqpa_adapters_sample() -> String {
    demo::sample_sync(MID, DEMO_IIN)
}

/// zeep, as a legacy system generated from the WSDLs the gateway serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_loads_both_wsdls_and_calls_them() {
    if !common::python_has("zeep") {
        return;
    }
    let d = Demo::start().await;
    let wsdl = d.client().get(d.url("/bip-sync/?wsdl")).send().await.unwrap().text().await.unwrap();
    let port = d.running.data_addrs[0].port();
    assert!(wsdl.contains(&format!("location=\"https://localhost:{port}/bip-sync/\"")), "{wsdl}");
    let args: Vec<String> = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/zeep_shep.py").into(),
        format!("https://localhost:{port}"),
        d.pki("ca.crt"),
        d.pki("egov-portal.crt"),
        d.pki("egov-portal.key"),
        SHEP_SENDER.into(),
        SHEP_PASSWORD.into(),
        DEMO_IIN.into(),
    ];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "zeep failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sync"]["status"], "SCSS001", "{r}");
    assert_eq!(r["sync"]["correlationId"], r["sync"]["expected_correlation"], "{r}");
    assert_eq!(r["sync"]["sessionId"], "{zeep-session}", "{r}");
    assert_eq!(r["sync"]["fields"]["surname"], "Abenova", "{r}");
    assert_eq!(r["async"]["status"], "ON_DELIVERY", "{r}");
    assert_eq!(r["async"]["messageId"], r["async"]["expected"], "{r}");
    // sendDeliveryNotification is in the WSDL; the portal provides nothing, so the
    // gateway read it and refused it with a fault zeep parses.
    assert_eq!(r["notify"]["errorCode"], "client.access_denied", "{r}");
}

/// A provider that speaks only SyncChannel: records what it gets, answers with the
/// debt of the IIN it finds in `data` (status SCSS001), status ERR001 for IIN 0, and a
/// ШЭП fault (HTTP 500) for IIN `fault`.
pub(super) async fn start_shep_provider() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let text = String::from_utf8_lossy(&body).into_owned();
                        let iin = text.split("iin>").nth(1).and_then(|t| t.split('<').next()).unwrap_or("").to_owned();
                        seen.lock().unwrap().push(text);
                        if iin == "fault" {
                            let fault = qaqpa_adapters::shep::fault(
                                false,
                                qaqpa_adapters::ErrorCode::BadRequest,
                                "the provider refuses this IIN",
                                "2026-12-01T10:00:00Z",
                                None,
                            );
                            let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(fault)));
                            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                            return Ok::<_, std::convert::Infallible>(r);
                        }
                        let code = if iin == "0" { "ERR001" } else { "SCSS001" };
                        let answer = format!(
                            concat!(
                                r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>"#,
                                r#"<ns2:SendMessageResponse xmlns:ns2="http://bip.bee.kz/SyncChannel/v10/Types"><response>"#,
                                "<responseInfo><messageId>r-1</messageId><responseDate>2026-12-01T10:00:00Z</responseDate>",
                                "<status><code>{code}</code><message>as the provider says</message></status></responseInfo>",
                                "<responseData><data><GetDebtResponse><iin>{iin}</iin><amount>12500</amount></GetDebtResponse></data>",
                                "</responseData></response></ns2:SendMessageResponse></S:Body></S:Envelope>"
                            ),
                            code = code,
                            iin = iin
                        );
                        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(answer),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A gateway whose `service` is provided by the SyncChannel-only provider at `shep`
/// (CLIENT is the ШЭП sender `portal` and may call it); `rest` is the service's
/// `[service.rest]` section, if it has a REST face.
pub(crate) async fn gateway_for_shep_provider(
    shep: std::net::SocketAddr,
    service: &str,
    rest: &str,
) -> common::TestGateway {
    common::TestGateway::start_with("header_read_timeout = \"5s\"", |_, text| {
        let text = common::with_system_keys(&text, common::CLIENT, "shep_sender = \"portal\"\n");
        format!(
            concat!(
                "{text}\n[[service]]\nid = \"{service}\"\nkind = \"soap\"\nupstream = [\"http://{shep}/bip-sync/\"]\n",
                "shep_service_id = \"Tax_Debt\"\nshep_provider = true\n\n{rest}",
                "[[access]]\nservice = \"{service}\"\nclients = [\"{client}\"]\n"
            ),
            text = text,
            service = service,
            shep = shep,
            rest = rest,
            client = common::CLIENT,
        )
    })
    .await
}

/// The reverse direction: a REST client calls a service whose provider speaks only
/// SyncChannel; the gateway builds the `SendMessage` and unwraps the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_client_reaches_a_provider_that_speaks_only_sync_channel() {
    let (shep, seen) = start_shep_provider().await;
    let service = format!("{}/shep-tax/v1", common::PROVIDER);
    let rest = concat!(
        "[service.rest]\nnamespace = \"urn:tax\"\n\n",
        "[[service.rest.operation]]\nname = \"GetDebt\"\nmethod = \"GET\"\npath = \"/{iin}\"\n\n",
    );
    let gw = gateway_for_shep_provider(shep, &service, rest).await;
    let r = gw
        .client()
        .get(gw.tls_url(&format!("/r1/{service}/900101300123")))
        .header("x-road-client", common::CLIENT)
        .header("x-road-id", "rest-to-shep-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!((json["iin"].as_str(), json["amount"].as_str()), (Some("900101300123"), Some("12500")), "{json}");
    let sent = seen.lock().unwrap().pop().unwrap();
    let m = qaqpa_adapters::shep::read(sent.as_bytes(), None, &Default::default()).unwrap();
    assert_eq!(m.service_id.as_deref(), Some("Tax_Debt"));
    assert_eq!(m.sender_id(), Some("portal"));
    assert_eq!(m.message_id.as_deref(), Some("rest-to-shep-1"));
    assert!(sent[m.data.unwrap()].starts_with("<GetDebt xmlns=\"urn:tax\""), "{sent}");
    // A ШЭП status other than SCSS001 is the provider's failure.
    let r = gw
        .client()
        .get(gw.tls_url(&format!("/r1/{service}/0")))
        .header("x-road-client", common::CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("ERR001"));
}

/// A service that requires signatures takes a ШЭП message only with a valid
/// WS-Security signature over its Body by the client system's own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_security_signatures_are_verified_for_signed_services() {
    let gw = common::TestGateway::start_with("header_read_timeout = \"5s\"", |_, text| {
        let text = common::with_system_keys(&text, common::CLIENT, "shep_sender = \"portal\"\n");
        let text = common::with_system_keys(&text, common::OTHER_CLIENT, "shep_sender = \"akimat\"\n");
        let upstream = text.split("upstream = [\"http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
        format!(
            concat!(
                "{text}\n[signatures]\ntrust_anchors = \"pki/ca.crt\"\nmax_clock_skew = \"5m\"\n\n",
                "[[service]]\nid = \"{p}/shep-signed/v1\"\nkind = \"soap\"\nupstream = [\"http://{upstream}/base/mirror\"]\n",
                "shep_service_id = \"Signed_Service\"\nshep_provider = true\nsignature = \"verify\"\n\n",
                "[[access]]\nservice = \"{p}/shep-signed/v1\"\nclients = [\"{c}\", \"{o}\"]\n"
            ),
            text = text,
            p = common::PROVIDER,
            upstream = upstream,
            c = common::CLIENT,
            o = common::OTHER_CLIENT,
        )
    })
    .await;
    let message = |id: &str| {
        demo::sample_sync(id, DEMO_IIN)
            .replace("PopulationRegister_Person", "Signed_Service")
            .replace(
                &format!("<senderId>{SHEP_SENDER}</senderId><password>{SHEP_PASSWORD}</password>"),
                "<senderId>portal</senderId>",
            )
            .replace("<soapenv:Header/>", "<soapenv:Header></soapenv:Header>")
    };
    let sign = |stem: &str, text: &str| sign_wsse(&gw.pki, stem, text);
    let portal = gw.client();
    let url = gw.tls_url("/bip-sync/");
    let signed = sign("egov-portal", &message("signed-1"));
    assert!(signed.contains("<wsse:Security") && signed.contains("wsu:Id="), "{signed}");
    let (status, code, body) = post(&portal, &url, signed.clone()).await;
    assert_eq!((status, code), (200, None), "{body}");
    assert_eq!(body, signed, "the provider got the signed message as it was signed");
    // The same signed message again is a replay.
    let (status, code, _) = post(&portal, &url, signed.clone()).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.replay")));
    // The certificate as ШЭП clients send it: wsse:SecurityTokenReference/KeyIdentifier
    // (KeyInfo is outside SignedInfo, so the signature still holds).
    let signed = sign("egov-portal", &message("signed-key-id"));
    let start = signed.find("<ds:X509Data><ds:X509Certificate>").unwrap();
    let end = signed.find("</ds:X509Certificate></ds:X509Data>").unwrap();
    let cert = &signed[start + "<ds:X509Data><ds:X509Certificate>".len()..end];
    let key_id = format!(
        concat!(
            "<wsse:SecurityTokenReference><wsse:KeyIdentifier ",
            "EncodingType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\" ",
            "ValueType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3\">{}",
            "</wsse:KeyIdentifier></wsse:SecurityTokenReference>"
        ),
        cert
    );
    let with_key_id =
        format!("{}{key_id}{}", &signed[..start], &signed[end + "</ds:X509Certificate></ds:X509Data>".len()..]);
    let (status, code, body) = post(&portal, &url, with_key_id).await;
    assert_eq!((status, code), (200, None), "{body}");
    // Unsigned, changed after signing, or signed by another system: refused.
    let tampered = sign("egov-portal", &message("signed-2")).replace(DEMO_IIN, "000000000000");
    let foreign = sign("akimat", &message("signed-3"));
    for (body, says) in [(message("plain-1"), "not signed"), (tampered, "digest"), (foreign, "does not belong")] {
        let (status, code, text) = post(&portal, &url, body).await;
        assert_eq!((status, code.as_deref()), (500, Some("client.bad_signature")), "{text}");
        assert!(text.contains(says), "{says}: {text}");
    }
}

/// Signed as ШЭП clients sign: `ds:Signature` inside `wsse:Security`, the Body by its
/// `wsu:Id`, with the key and chain of `stem` in the test PKI.
pub(super) fn sign_wsse(pki: &common::Pki, stem: &str, text: &str) -> String {
    use qaqpa_certs::keys::SigningKey;
    use qaqpa_certs::xmldsig::{self, DigestAlg};
    let key = SigningKey::from_pem(&pki.read(&format!("{stem}.key"))).unwrap();
    let chain: Vec<Vec<u8>> = qaqpa_gateway::tls::load_certs(&pki.path(&format!("{stem}.crt")))
        .unwrap()
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed =
        String::from_utf8(xmldsig::sign_soap(text.as_bytes(), &key, &chain, DigestAlg::Sha256, now).unwrap()).unwrap();
    let start = signed.find("<ds:Signature").unwrap();
    let end = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    format!(
        "{}<wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\">{}</wsse:Security>{}",
        &signed[..start],
        &signed[start..end],
        &signed[end..]
    )
}
