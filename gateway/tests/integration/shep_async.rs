//! ШЭП AsyncChannel (issue 18, docs/shep.md#asyncchannel) through real sockets:
//! durable acceptance, a resend recognised, pull and push delivery, the provider's
//! reply correlated by correlationId, delivery states from getMessageStatus.

use std::time::Duration;

use qaqpa_gateway::demo::{self, DEMO_IIN, REST_SYSTEM, SHEP_PASSWORD, SHEP_SENDER};

use super::shep::{post, Demo};
use crate::common;

/// AsyncChannel `getMessageStatus` for one of the sender's messages.
fn status_query(message_id: &str, sender: &str) -> String {
    format!(
        concat!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>"#,
            r#"<typ:getMessageStatus xmlns:typ="http://bip.bee.kz/AsyncChannel/v10/Types"><request>"#,
            "<messageId>{id}</messageId><sender>{sender}</sender></request></typ:getMessageStatus></soapenv:Body></soapenv:Envelope>"
        ),
        id = message_id,
        sender = sender
    )
}

fn state_of(answer: &str) -> &str {
    answer.split("<code>").nth(1).and_then(|s| s.split('<').next()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_channel_queues_recognises_a_resend_and_correlates_the_reply() {
    let d = Demo::start().await;
    let request_id = "5024113e-b70b-479d-8ac7-8c65103e3338";
    let (status, _, body) = d.post("/bip-async/", demo::sample_async(request_id, DEMO_IIN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<ns2:sendMessageResponse") && body.contains("<code>ON_DELIVERY</code>"), "{body}");
    assert!(body.contains("<message>accepted</message>"), "{body}");
    let (status, _, again) = d.post("/bip-async/", demo::sample_async(request_id, DEMO_IIN)).await;
    assert_eq!(status, 200, "{again}");
    assert!(again.contains("duplicate messageId"), "{again}");
    let portal_sender = format!("<senderId>{SHEP_SENDER}</senderId><password>{SHEP_PASSWORD}</password>");
    let (_, _, asked) = d.post("/bip-async/", status_query(request_id, &portal_sender)).await;
    assert_eq!(state_of(&asked), "ON_DELIVERY", "{asked}");
    assert!(asked.contains("<ns2:getMessageStatusResponse"), "{asked}");
    let (status, code, _) = d.post("/bip-async/", status_query("never-sent", &portal_sender)).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.unknown_message")));

    // The register takes it from its pull mailbox (the demo's plain listener trusts the claim).
    let plain = reqwest::Client::new();
    let taken = plain
        .get(d.plain(&format!("/a1/inbox/{REST_SYSTEM}?wait=5s")))
        .header("x-road-client", REST_SYSTEM)
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 200);
    let envelope = taken.text().await.unwrap();
    assert!(envelope.contains("<typ:sendMessage") && envelope.contains("<address>Astana</address>"), "{envelope}");

    // Its answer, as a ШЭП provider sends one: RESPONSE, correlationId = the request's id.
    let answer = demo::sample_async("reply-1", DEMO_IIN)
        .replace("<messageType>REQUEST</messageType>", "<messageType>RESPONSE</messageType>")
        .replace(
            "<messageId>reply-1</messageId>",
            &format!("<messageId>reply-1</messageId><correlationId>{request_id}</correlationId>"),
        )
        .replace(
            &format!("<senderId>{SHEP_SENDER}</senderId><password>{SHEP_PASSWORD}</password>"),
            "<senderId>population_register</senderId>",
        )
        .replace("<address>Astana</address>", "<done>true</done>");
    let (status, _, body) = post(&plain, &d.plain("/bip-async/"), answer.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<code>DELIVERED</code>"), "{body}");
    let (_, _, asked) = d.post("/bip-async/", status_query(request_id, &portal_sender)).await;
    assert_eq!(state_of(&asked), "DELIVERED", "{asked}");
    // A reply to nothing is refused.
    let stray = answer.replace(request_id, "no-such-request").replace("reply-1", "reply-2");
    let (status, code, body) = post(&plain, &d.plain("/bip-async/"), stray).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.unknown_message")), "{body}");

    // The portal collects the answer from its outbox.
    let outbox = d
        .client()
        .get(d.url(&format!("/a1/outbox/{}?wait=5s", demo::CLIENT_SYSTEM)))
        .header("x-road-client", demo::CLIENT_SYSTEM)
        .send()
        .await
        .unwrap();
    assert_eq!(outbox.status(), 200);
    let reply = outbox.text().await.unwrap();
    assert!(reply.contains("<done>true</done>") && reply.contains(request_id), "{reply}");
}

/// AsyncChannel push: the gateway delivers the stored envelope, as it was sent, to
/// the provider's AsyncChannel endpoint (here the common provider's `/mirror`, whose
/// answer is what it received); the answer waits in the client's outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_channel_pushes_the_envelope_to_the_provider_endpoint() {
    let service = format!("{}/shep-push/v1", common::PROVIDER);
    let gw = common::TestGateway::start_with("header_read_timeout = \"5s\"", |_, text| {
        let text = text.replacen(
            &format!("[[system]]\nid = \"{}\"\n", common::CLIENT),
            &format!("[[system]]\nid = \"{}\"\nshep_sender = \"portal\"\n", common::CLIENT),
            1,
        );
        let upstream = text.split("upstream = [\"http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
        format!(
            concat!(
                "{text}\n[[service]]\nid = \"{service}\"\nkind = \"soap\"\nupstream = [\"http://{upstream}/base/mirror\"]\n",
                "timeout = \"5s\"\nmailbox = \"push\"\nshep_service_id = \"Push_Service\"\n\n",
                "[[access]]\nservice = \"{service}\"\nclients = [\"{c}\"]\n\n",
                "[[service]]\nid = \"{service}-down\"\nkind = \"soap\"\nupstream = [\"http://127.0.0.1:9/bip-async/\"]\n",
                "timeout = \"1s\"\nconnect_timeout = \"1s\"\nmailbox = \"push\"\nshep_service_id = \"Down_Service\"\n\n",
                "[[access]]\nservice = \"{service}-down\"\nclients = [\"{c}\"]\n"
            ),
            text = text,
            service = service,
            upstream = upstream,
            c = common::CLIENT,
        )
    })
    .await;
    let message =
        demo::sample_async("push-1", DEMO_IIN).replace("PopulationRegister_AddressChange", "Push_Service").replace(
            &format!("<senderId>{SHEP_SENDER}</senderId><password>{SHEP_PASSWORD}</password>"),
            "<senderId>portal</senderId>",
        );
    let (status, _, body) = post(&gw.client(), &gw.tls_url("/bip-async/"), message.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<code>ON_DELIVERY</code>"), "{body}");
    let outbox = gw
        .client()
        .get(gw.tls_url(&format!("/a1/outbox/{}?wait=10s", common::CLIENT)))
        .header("x-road-client", common::CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(outbox.status(), 200);
    assert_eq!(outbox.headers()["x-road-id"], "push-1");
    assert_eq!(outbox.text().await.unwrap(), message, "the provider's endpoint got the envelope as sent");

    // An endpoint that does not answer: the message is not delivered (retried, then
    // stopped), and getMessageStatus says so.
    let down = message.replace("Push_Service", "Down_Service").replace("push-1", "push-2");
    let (status, _, body) = post(&gw.client(), &gw.tls_url("/bip-async/"), down).await;
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let state = loop {
        let (_, _, asked) =
            post(&gw.client(), &gw.tls_url("/bip-async/"), status_query("push-2", "<senderId>portal</senderId>")).await;
        let state = state_of(&asked).to_owned();
        if state != "ON_DELIVERY" || std::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(state == "NOT_DELIVERED" || state == "DELIVERY_STOPPED", "{state}");
}
