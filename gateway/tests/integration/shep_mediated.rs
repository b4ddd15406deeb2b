//! ШЭП in the mediated direction (issue 18, docs/shep.md#delivery): an X-Road SOAP
//! client calls, over mTLS, a service whose provider speaks only SyncChannel. The
//! recording provider checks the `SendMessage` the gateway built; the client gets
//! an X-Road answer (its header echoed, `requestHash`) or an X-Road fault.

use base64::Engine;
use sha2::{Digest, Sha512};

use super::shep::{gateway_for_shep_provider, start_shep_provider};
use crate::common;

const TAX_NS: &str = "http://legacy-tax.gov.kz/debt";

/// A legacy X-Road 4.0 `GetDebt` call (the `tax` prefix declared on the Envelope, as
/// X-Road clients write it) to `{PROVIDER}/GetDebt/v1`.
fn get_debt(id: &str, iin: &str) -> String {
    qaqpa_gateway::demo::upstreams::sample_get_debt(iin)
        .replace(
            "000000000002</id:memberCode><id:subsystemCode>legacy-tax",
            "000000000001</id:memberCode><id:subsystemCode>population-register",
        )
        .replace(&format!("<xrd:id>demo-debt-{iin}</xrd:id>"), &format!("<xrd:id>{id}</xrd:id>"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xroad_soap_client_reaches_a_provider_that_speaks_only_sync_channel() {
    let (shep, seen) = start_shep_provider().await;
    let service = format!("{}/GetDebt/v1", common::PROVIDER);
    let gw = gateway_for_shep_provider(shep, &service, "").await;
    let post = |body: String| {
        let (client, url) = (gw.client(), gw.tls_url("/soap"));
        async move {
            let r = client.post(url).header("content-type", "text/xml; charset=utf-8").body(body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    let request = get_debt("xroad-to-shep-1", "900101300123");
    let (status, body) = post(request.clone()).await;
    assert_eq!(status, 200, "{body}");

    // What the provider received: a SendMessage built from the X-Road call.
    let sent = seen.lock().unwrap().pop().expect("the provider was called");
    let m = qaqpa_adapters::shep::read(sent.as_bytes(), None, &Default::default()).unwrap();
    assert_eq!(m.operation, "SendMessage");
    assert_eq!(m.service_id.as_deref(), Some("Tax_Debt"));
    assert_eq!(m.sender_id(), Some("portal"), "the client system's shep_sender");
    assert_eq!(m.message_id.as_deref(), Some("xroad-to-shep-1"), "the X-Road id");
    assert!(m.sender.as_ref().unwrap().password.is_none(), "no password is invented");
    assert_eq!(&sent[m.data.clone().unwrap()], "<tax:GetDebt><tax:iin>900101300123</tax:iin></tax:GetDebt>");
    let data_tag = &sent[m.data_element.clone().unwrap()];
    let tag = &data_tag[..data_tag.find('>').unwrap() + 1];
    assert_eq!(tag, format!("<data xmlns:tax=\"{TAX_NS}\">"), "the prefix the operation uses, no other: {sent}");
    assert!(!data_tag.starts_with("<data xmlns=\""), "data stays unqualified: {sent}");
    assert!(!sent.contains("xrd:client"), "the X-Road header is not forwarded: {sent}");

    // What the client got: X-Road's answer, its header echoed, the request hash added.
    let answer = qaqpa_adapters::soap::read_envelope(body.as_bytes(), None, &Default::default()).unwrap();
    assert_eq!(answer.operation, Some((TAX_NS.to_owned(), "GetDebtResponse".to_owned())), "{body}");
    assert_eq!(answer.header.id.as_deref(), Some("xroad-to-shep-1"));
    assert_eq!(answer.header.client.as_ref().and_then(|c| c.system_id()).as_deref(), Some(common::CLIENT));
    assert_eq!(answer.header.service.as_ref().and_then(|s| s.service_id()).as_deref(), Some(service.as_str()));
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(request.as_bytes()));
    assert!(body.contains(&format!("{hash}</")), "requestHash = base64(SHA-512(request)): {body}");
    let fields = qaqpa_adapters::mapping::xml_to_json(
        &body.as_bytes()[answer.body.clone()],
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    let debt = &fields["GetDebtResponse"];
    assert_eq!((debt["iin"].as_str(), debt["amount"].as_str()), (Some("900101300123"), Some("12500")), "{body}");

    // A default namespace declared on the Body cannot go on `data` (unqualified): it
    // goes on the operation element, which keeps its namespace.
    let defaulted = get_debt("xroad-to-shep-default", "900101300123")
        .replace("<soapenv:Body>", &format!("<soapenv:Body xmlns=\"{TAX_NS}\">"))
        .replace(
            "<tax:GetDebt><tax:iin>900101300123</tax:iin></tax:GetDebt>",
            "<GetDebt><iin>900101300123</iin></GetDebt>",
        );
    let (status, body) = post(defaulted).await;
    assert_eq!(status, 200, "{body}");
    let sent = seen.lock().unwrap().pop().expect("the provider was called");
    let m = qaqpa_adapters::shep::read(sent.as_bytes(), None, &Default::default()).unwrap();
    let data = &sent[m.data.clone().unwrap()];
    assert_eq!(data, format!("<GetDebt xmlns=\"{TAX_NS}\"><iin>900101300123</iin></GetDebt>"), "{sent}");
    let data_tag = &sent[m.data_element.clone().unwrap()];
    assert!(data_tag.starts_with("<data") && !data_tag.starts_with("<data xmlns=\""), "data stays unqualified: {sent}");
    assert!(!data_tag[..data_tag.find('>').unwrap()].contains(" xmlns=\""), "{sent}");

    // A ШЭП status other than SCSS001, and a ШЭП fault, are X-Road faults.
    for (iin, says) in [("0", "ERR001"), ("fault", "the provider refuses this IIN")] {
        let (status, body) = post(get_debt(&format!("xroad-to-shep-{iin}"), iin)).await;
        assert_eq!(status, 200, "X-Road sends its faults with 200: {body}");
        assert!(common::xroad_fault(&body, "server.upstream_unavailable"), "{body}");
        assert!(body.contains(says), "{says}: {body}");
        assert!(body.contains(&format!("xroad-to-shep-{iin}")), "the fault names the message: {body}");
    }
    assert_eq!(seen.lock().unwrap().len(), 2, "each call reached the provider once");
}
