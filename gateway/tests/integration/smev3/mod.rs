//! The SMEV 3 face (docs/smev3.md) through the real gateway over mTLS: messages
//! shaped like the public samples (prefixes `S`/`ns`/`ns2`, the signed part
//! `SIGNED_BY_CALLER` beside `CallerInformationSystemSignature`), signed with the
//! systems' dev keys; the whole send → take → answer → collect → ack cycle on both
//! stores, the bus's signatures checked, hostile variants refused with the faults
//! schema's elements, mediation both ways, and a SIGKILL between `SendRequest`'s
//! answer and `GetRequest`.

mod hostile;
mod mediation;

use crate::common;

use std::time::{Duration, Instant};

use common::async_bus::{free_addr, store_keys, Backend};
use common::*;
use qaqpa_certs::keys::SigningKey;
use qaqpa_certs::xmldsig::{self, DigestAlg, KeySigner, StandardSuite};

const ADDRESS: &str = "KZ/GOV/000000000001/population-register/address-change/v1";
const SYNC: &str = "KZ/GOV/000000000001/population-register/address-check/v1";
const KIND: &str = "urn://x-artefacts-qaqpa-demo/address-change/1.0.0";
const SYNC_KIND: &str = "urn://x-artefacts-qaqpa-demo/address-check/1.0.0";
const SYNC_SOAP: &str = "KZ/GOV/000000000001/population-register/debt-check/v1";
const SOAP_KIND: &str = "urn://x-artefacts-qaqpa-demo/debt-check/1.0.0";
const T: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1";
const B: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1";
const F: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/faults/1.1";

/// The `[signatures]` table and the SMEV 3 services, appended to the test config.
fn smev_config(store: &str) -> String {
    format!(
        r#"
[signatures]
trust_anchors = "pki/ca.crt"
cert = "pki/gateway.crt"
key = "pki/gateway.key"

[[service]]
id = "{ADDRESS}"
kind = "rest"
upstream = ["http://127.0.0.1:9/unused"]
mailbox = "pull"
smev_kinds = ["{KIND}"]

[[access]]
service = "{ADDRESS}"
clients = ["{CLIENT}"]

[mailbox]
visibility_timeout = "2s"
max_message_bytes = 8388608
{store}"#
    )
}

/// A system's signing key and certificate chain from the dev PKI.
struct Keys {
    key: SigningKey,
    chain: Vec<Vec<u8>>,
}

impl Keys {
    fn of(pki: &Pki, stem: &str) -> Self {
        let key = SigningKey::from_pem(&pki.read(&format!("{stem}.key"))).unwrap();
        let chain = qaqpa_gateway::tls::load_certs(&pki.path(&format!("{stem}.crt")))
            .unwrap()
            .into_iter()
            .map(|c| c.to_vec())
            .collect();
        Self { key, chain }
    }
}

fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:ns=\"{T}\" xmlns:ns2=\"{B}\"><S:Header/><S:Body>{body}</S:Body></S:Envelope>"
    )
}

/// `{op}Request` with `signed` (which has `Id="SIGNED_BY_CALLER"`) and its signature
/// by `keys` over `#reference`.
fn signed_call(op: &str, signed: &str, keys: &Keys, reference: &str) -> String {
    let unsigned = envelope(&format!(
        "<ns:{op}Request>{signed}<ns:CallerInformationSystemSignature>@@</ns:CallerInformationSystemSignature></ns:{op}Request>"
    ));
    let signer = KeySigner { key: &keys.key, chain: &keys.chain, digest: DigestAlg::Sha256 };
    let signature = xmldsig::sign_detached(unsigned.replace("@@", "").as_bytes(), reference, &signer).unwrap();
    unsigned.replace("@@", &signature)
}

fn content(person: &str) -> String {
    format!("<ac:AddressChangeRequest xmlns:ac=\"{KIND}\"><ac:Person>{person}</ac:Person><ac:City>Astana</ac:City></ac:AddressChangeRequest>")
}

fn send_request(id: &str, content: &str, keys: &Keys) -> String {
    signed_call(
        "SendRequest",
        &format!("<ns:SenderProvidedRequestData Id=\"SIGNED_BY_CALLER\">\n  <ns:MessageID>{id}</ns:MessageID>\n  <ns2:MessagePrimaryContent>{content}</ns2:MessagePrimaryContent>\n  <ns:TestMessage/>\n</ns:SenderProvidedRequestData>"),
        keys,
        "SIGNED_BY_CALLER",
    )
}

fn selector(op: &str, kind: Option<&str>, keys: &Keys) -> String {
    let ns = kind.map(|k| format!("<ns2:NamespaceURI>{k}</ns2:NamespaceURI>")).unwrap_or_default();
    signed_call(
        op,
        &format!("<ns2:MessageTypeSelector Id=\"SIGNED_BY_CALLER\">{ns}<ns2:Timestamp>2026-12-02T00:00:00Z</ns2:Timestamp></ns2:MessageTypeSelector>"),
        keys,
        "SIGNED_BY_CALLER",
    )
}

fn send_response(id: &str, to: &str, content: &str, keys: &Keys) -> String {
    signed_call(
        "SendResponse",
        &format!("<ns:SenderProvidedResponseData Id=\"SIGNED_BY_CALLER\"><ns:MessageID>{id}</ns:MessageID><ns:To>{to}</ns:To><ns2:MessagePrimaryContent>{content}</ns2:MessagePrimaryContent></ns:SenderProvidedResponseData>"),
        keys,
        "SIGNED_BY_CALLER",
    )
}

fn ack(target: &str, keys: &Keys) -> String {
    signed_call(
        "Ack",
        &format!("<ns2:AckTargetMessage Id=\"SIGNED_BY_CALLER\" accepted=\"true\">{target}</ns2:AckTargetMessage>"),
        keys,
        "SIGNED_BY_CALLER",
    )
}

/// The text between `open` and `close`.
fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(&text[start..end])
}

/// Checks the bus's `SMEVSignature` in an answer: made by the gateway's certificate.
fn assert_smev_signed(answer: &str, gateway_cert: &[u8]) {
    let at = answer.find("<s:SMEVSignature>").expect("an SMEVSignature") + "<s:SMEVSignature>".len();
    let v = xmldsig::verify_detached(answer.as_bytes(), at, &StandardSuite).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(v.id, "SIGNED_BY_SMEV");
    assert_eq!(v.chain[0], gateway_cert);
}

struct Smev {
    url: String,
    client: reqwest::Client,
    provider: reqwest::Client,
    client_keys: Keys,
    provider_keys: Keys,
    other_keys: Keys,
    gateway_cert: Vec<u8>,
}

impl Smev {
    fn new(pki: &Pki, url: String) -> Self {
        Self {
            url,
            client: pki.client(Some("egov-portal")).build().unwrap(),
            provider: pki.client(Some("population-register")).build().unwrap(),
            client_keys: Keys::of(pki, "egov-portal"),
            provider_keys: Keys::of(pki, "population-register"),
            other_keys: Keys::of(pki, "akimat"),
            gateway_cert: qaqpa_gateway::tls::load_certs(&pki.path("gateway.crt")).unwrap()[0].to_vec(),
        }
    }

    async fn post(&self, as_provider: bool, body: String) -> (u16, String) {
        let http = if as_provider { &self.provider } else { &self.client };
        let r = http
            .post(&self.url)
            .header("content-type", "text/xml; charset=utf-8")
            .header("SOAPAction", "urn:x")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Expects a fault with this schema element and stable code.
    async fn refused(&self, as_provider: bool, body: String, element: &str, code: &str) {
        let (status, text) = self.post(as_provider, body).await;
        assert_eq!(status, 500, "expected {element}: {text}");
        assert!(
            text.contains(&format!("<f:{element} xmlns:f=\"{F}\"><f:Code>{code}</f:Code>")),
            "{element}/{code}: {text}"
        );
    }
}

fn uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}

both_backends!(the_whole_cycle_send_take_answer_collect_ack);

async fn the_whole_cycle_send_take_answer_collect_ack(backend: Backend) {
    let Some(store) = store_keys(backend) else { return };
    let gw = TestGateway::start_with("", |_, text| format!("{text}{}", smev_config(&store))).await;
    let s = Smev::new(&gw.pki, gw.tls_url("/smev3/"));

    // The requester sends; the bus answers with its signed MessageMetadata.
    let request_id = uuid();
    let (status, text) = s.post(false, send_request(&request_id, &content("900101300123"), &s.client_keys)).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("<s:SendRequestResponse") && text.contains(&format!("<s:MessageId>{request_id}</s:MessageId>"))
    );
    assert!(text.contains("<s:Status>requestIsQueued</s:Status>"), "{text}");
    assert_smev_signed(&text, &s.gateway_cert);

    // The provider takes it: the sender's data and signature as sent, ReplyTo, the bus's signature.
    let (status, taken) = s.post(true, selector("GetRequest", Some(KIND), &s.provider_keys)).await;
    assert_eq!(status, 200, "{taken}");
    assert!(taken.contains(&format!("<ns:MessageID>{request_id}</ns:MessageID>")), "{taken}");
    assert!(taken.contains("<ac:Person>900101300123</ac:Person>"), "{taken}");
    assert_smev_signed(&taken, &s.gateway_cert);
    let at = taken.find("<s:SenderInformationSystemSignature>").unwrap() + "<s:SenderInformationSystemSignature>".len();
    let sender = xmldsig::verify_detached(taken.as_bytes(), at, &StandardSuite).unwrap();
    assert_eq!((sender.id.as_str(), &sender.chain[0]), ("SIGNED_BY_CALLER", &s.client_keys.chain[0]));
    let reply_to = between(&taken, "<s:ReplyTo>", "</s:ReplyTo>").unwrap().to_owned();

    // Acknowledged, it is not handed out again (not even after the visibility timeout).
    let (status, text) = s.post(true, ack(&request_id, &s.provider_keys)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("AckResponse"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, empty) = s.post(true, selector("GetRequest", Some(KIND), &s.provider_keys)).await;
    assert!(!empty.contains("RequestMessage"), "{empty}");

    // The provider answers later, to ReplyTo.
    let response_id = uuid();
    let answer = "<ac:AddressChangeResponse xmlns:ac=\"urn://x-artefacts-qaqpa-demo/address-change/1.0.0\"><ac:Accepted>true</ac:Accepted></ac:AddressChangeResponse>";
    let (status, text) = s.post(true, send_response(&response_id, &reply_to, answer, &s.provider_keys)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<s:SendResponseResponse") && text.contains("<s:MessageType>RESPONSE</s:MessageType>"));
    assert_smev_signed(&text, &s.gateway_cert);
    // The same response again is refused as already sent.
    s.refused(
        true,
        send_response(&response_id, &reply_to, answer, &s.provider_keys),
        "MessageIsAlreadySent",
        "client.replay",
    )
    .await;

    // The requester collects it, then acknowledges it by the response's MessageID.
    let (status, collected) = s.post(false, selector("GetResponse", None, &s.client_keys)).await;
    assert_eq!(status, 200, "{collected}");
    assert!(collected.contains(&format!("<s:OriginalMessageId>{request_id}</s:OriginalMessageId>")), "{collected}");
    assert!(collected.contains("<ac:Accepted>true</ac:Accepted>"), "{collected}");
    assert_smev_signed(&collected, &s.gateway_cert);
    let (status, text) = s.post(false, ack(&response_id, &s.client_keys)).await;
    assert_eq!(status, 200, "{text}");
    let (_, empty) = s.post(false, selector("GetResponse", None, &s.client_keys)).await;
    assert!(!empty.contains("ResponseMessage"), "{empty}");
    // Nothing is left to acknowledge.
    s.refused(false, ack(&response_id, &s.client_keys), "TargetMessageIsNotFound", "client.unknown_message").await;
    // GetStatus: the bus refuses synchronously, so no status message is ever queued.
    let status_call = signed_call(
        "GetStatus",
        "<ns2:Timestamp Id=\"SIGNED_BY_CALLER\">2026-12-02T00:00:00Z</ns2:Timestamp>",
        &s.client_keys,
        "SIGNED_BY_CALLER",
    );
    let (status, text) = s.post(false, status_call).await;
    assert!(status == 200 && text.contains("<s:GetStatusResponse"), "{text}");
}

both_backends!(an_unacknowledged_request_comes_back);

async fn an_unacknowledged_request_comes_back(backend: Backend) {
    let Some(store) = store_keys(backend) else { return };
    let gw = TestGateway::start_with("", |_, text| format!("{text}{}", smev_config(&store))).await;
    let s = Smev::new(&gw.pki, gw.tls_url("/smev3/"));
    let id = uuid();
    assert_eq!(s.post(false, send_request(&id, &content("1"), &s.client_keys)).await.0, 200);
    let (_, first) = s.post(true, selector("GetRequest", None, &s.provider_keys)).await;
    assert!(first.contains(&id), "{first}");
    let (_, none) = s.post(true, selector("GetRequest", None, &s.provider_keys)).await;
    assert!(!none.contains("RequestMessage"), "leased: {none}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, again) = s.post(true, selector("GetRequest", None, &s.provider_keys)).await;
        if again.contains(&id) {
            break;
        }
        assert!(Instant::now() < deadline, "not redelivered after the visibility timeout");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pki_client(gw: &TestGateway, stem: &str) -> reqwest::Client {
    gw.pki.client(Some(stem)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wsdl_and_schemas_are_served() {
    let gw = TestGateway::start_with("", |_, text| format!("{text}{}", smev_config(""))).await;
    let http = pki_client(&gw, "egov-portal");
    let wsdl = http.get(gw.tls_url("/smev3/?wsdl")).send().await.unwrap().text().await.unwrap();
    assert!(wsdl.contains("<wsdl:operation name=\"SendRequest\">") && wsdl.contains(&gw.tls_url("/smev3/")), "{wsdl}");
    for name in ["types", "basic", "faults"] {
        for v in ["1.1", "1.2"] {
            let r = http.get(gw.tls_url(&format!("/smev3/smev-message-exchange-{name}-{v}.xsd"))).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains(&format!("/{v}\"")));
        }
    }
    assert_eq!(http.get(gw.tls_url("/smev3/nothing.xsd")).send().await.unwrap().status(), 404);
}

both_backends!(kill_9_after_send_request_loses_nothing);

async fn kill_9_after_send_request_loses_nothing(backend: Backend) {
    let Some(store) = store_keys(backend) else { return };
    let pki = Pki::new();
    let (data, plain, admin) = (free_addr(), free_addr(), free_addr());
    let text = config_text(free_addr(), free_addr(), free_addr(), "")
        .replacen("127.0.0.1:0", &data.to_string(), 1)
        .replacen("127.0.0.1:0", &plain.to_string(), 1)
        .replacen("127.0.0.1:0", &admin.to_string(), 1);
    let config = write_config(pki.dir.path(), &format!("{text}{}", smev_config(&store)));
    let mut child = run_gateway(&config);
    wait_ready(admin).await;
    let s = Smev::new(&pki, format!("https://localhost:{}/smev3/", data.port()));
    let ids: Vec<String> = (0..20).map(|_| uuid()).collect();
    for id in &ids {
        let (status, text) = s.post(false, send_request(id, &content(id), &s.client_keys)).await;
        assert_eq!(status, 200, "{text}");
    }
    child.0.kill().unwrap(); // SIGKILL right after the answers: no drain, no shutdown hook
    child.0.wait().unwrap();

    let _child = run_gateway(&config);
    wait_ready(admin).await;
    let mut delivered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered.len() < ids.len() {
        assert!(Instant::now() < deadline, "only {} of {} after the restart", delivered.len(), ids.len());
        let (_, taken) = s.post(true, selector("GetRequest", Some(KIND), &s.provider_keys)).await;
        match between(&taken, "<ns:MessageID>", "</ns:MessageID>") {
            Some(id) => {
                let id = id.to_owned();
                assert_eq!(s.post(true, ack(&id, &s.provider_keys)).await.0, 200);
                delivered.push(id);
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    delivered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(delivered, expected, "every accepted SendRequest is delivered once");
}

/// zeep loads the WSDL and schemas the gateway serves and runs the whole cycle,
/// signing with a SMEV transform of its own (tests/interop/zeep_smev3.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_runs_the_cycle_from_the_served_wsdl() {
    if !common::python_has("zeep") || !common::python_has("cryptography") {
        return;
    }
    let gw = TestGateway::start_with("", |_, text| format!("{text}{}", smev_config(""))).await;
    let pki = |f: &str| gw.pki.path(f).display().to_string();
    let args: Vec<String> = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/zeep_smev3.py").into(),
        gw.tls_url("/smev3/?wsdl"),
        pki("ca.crt"),
        pki("egov-portal.crt"),
        pki("egov-portal.key"),
        pki("population-register.crt"),
        pki("population-register.key"),
        KIND.into(),
    ];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "zeep failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let request_id = r["sent"]["request_id"].as_str().unwrap();
    assert_eq!(
        (r["sent"]["id"].as_str(), r["sent"]["status"].as_str()),
        (Some(request_id), Some("requestIsQueued")),
        "{r}"
    );
    assert_eq!((r["taken"]["id"].as_str(), r["taken"]["sender"].as_str()), (Some(request_id), Some(CLIENT)), "{r}");
    assert!(r["taken"]["content"].as_str().unwrap().contains("900101300123"), "{r}");
    assert_eq!(r["answered"], "RESPONSE");
    assert_eq!(r["collected"]["original"].as_str(), Some(request_id), "{r}");
    assert!(r["collected"]["content"].as_str().unwrap().contains("<ac:Accepted>true</ac:Accepted>"), "{r}");
    assert!(r["after_ack"].is_null(), "{r}");
}
