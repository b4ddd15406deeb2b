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
        let text = common::with_system_keys(&text, common::CLIENT, "shep_sender = \"portal\"\n");
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

/// `sendDeliveryNotification` by a provider that pulls, and `getMessageStatus`
/// following it, on the embedded store and on NATS JetStream: accepted is
/// DELIVERED, not accepted with RESEND is NOT_DELIVERED and comes back, NOT_RESEND
/// is DELIVERY_STOPPED; only the provider holding the message may say so; each
/// notification is a step in the message log under the request's messageId.
async fn notifications_change_what_get_message_status_reports(backend: common::async_bus::Backend) {
    let Some(store) = common::async_bus::store_keys(backend) else { return };
    let service = format!("{}/shep-notices/v1", common::PROVIDER);
    let gw = common::TestGateway::start_with("", |_, text| {
        let text = common::with_system_keys(&text, common::CLIENT, "shep_sender = \"portal\"\n");
        let text = common::with_system_keys(&text, common::PROVIDER, "shep_sender = \"register\"\n");
        format!(
            concat!(
                "{text}\n[[service]]\nid = \"{service}\"\nkind = \"rest\"\nupstream = [\"http://127.0.0.1:9/unused\"]\n",
                "mailbox = \"pull\"\nshep_service_id = \"Notice_Service\"\n\n",
                "[[access]]\nservice = \"{service}\"\nclients = [\"{c}\"]\n\n",
                "[mailbox]\nvisibility_timeout = \"30s\"\nmax_attempts = 4\nretry_base = \"4s\"\nretry_max = \"4s\"\n{store}"
            ),
            text = text,
            service = service,
            c = common::CLIENT,
            store = store,
        )
    })
    .await;
    let (portal, register) = (gw.client(), gw.pki.client(Some("population-register")).build().unwrap());
    let url = gw.tls_url("/bip-async/");
    let sent_by_portal = |id: &str| {
        demo::sample_async(id, DEMO_IIN).replace("PopulationRegister_AddressChange", "Notice_Service").replace(
            &format!("<senderId>{SHEP_SENDER}</senderId><password>{SHEP_PASSWORD}</password>"),
            "<senderId>portal</senderId>",
        )
    };
    let state = |id: &str| {
        let (portal, url, query) = (portal.clone(), url.clone(), status_query(id, "<senderId>portal</senderId>"));
        async move {
            let (_, _, answer) = post(&portal, &url, query).await;
            state_of(&answer).to_owned()
        }
    };
    let ids = ["note-1", "note-2", "note-3"];
    for id in ids {
        let (status, _, body) = post(&portal, &url, sent_by_portal(id)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(state(id).await, "ON_DELIVERY");
    }
    // The register takes all three by pull.
    let inbox = gw.tls_url(&format!("/a1/inbox/{}?wait=5s", common::PROVIDER));
    let take = || async {
        let r = register.get(&inbox).header("x-road-client", common::PROVIDER).send().await.unwrap();
        let id = r.headers().get("x-road-id").map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), id)
    };
    let mut taken = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while taken.len() < ids.len() && std::time::Instant::now() < deadline {
        if let (200, Some(id)) = take().await {
            taken.push(id);
        }
    }
    taken.sort();
    assert_eq!(taken, ids, "all three taken");
    assert_eq!(state("note-1").await, "ON_DELIVERY", "taken is still on delivery");

    let notification = |id: &str, receive: &str, resend: &str, sender: &str| {
        format!(
            concat!(
                r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>"#,
                r#"<typ:sendDeliveryNotification xmlns:typ="http://bip.bee.kz/AsyncChannel/v10/Types"><request>"#,
                "<notification><messageId>{id}</messageId><serviceId>Notice_Service</serviceId>",
                "<notificationDate>2026-12-01T10:00:05+05:00</notificationDate><deliveryStatus>",
                "<receiveStatus>{receive}</receiveStatus><statusDate>2026-12-01T10:00:05+05:00</statusDate>",
                "<resendMessage>{resend}</resendMessage><error><errorCode>E42</errorCode>",
                "<errorMessage>cannot read it</errorMessage></error></deliveryStatus></notification>",
                "<requestDate>2026-12-01T10:00:05+05:00</requestDate><sender><senderId>{sender}</senderId></sender>",
                "</request></typ:sendDeliveryNotification></soapenv:Body></soapenv:Envelope>"
            ),
            id = id,
            receive = receive,
            resend = resend,
            sender = sender
        )
    };
    // Only the provider of the service may notify, and only of what it holds.
    let (status, code, _) = post(&portal, &url, notification("note-2", "MESSAGE_ACCEPTED", "", "portal")).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.access_denied")));
    let (status, code, _) = post(&register, &url, notification("never", "MESSAGE_ACCEPTED", "", "register")).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.unknown_message")));
    let (status, code, _) = post(&register, &url, notification("note-2", "MAYBE", "", "register")).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.bad_request")));
    assert_eq!(state("note-2").await, "ON_DELIVERY", "refused notifications change nothing");

    let (status, _, body) = post(&register, &url, notification("note-1", "MESSAGE_ACCEPTED", "", "register")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<ns2:sendDeliveryNotificationResponse") && body.contains("<notificationId>"), "{body}");
    assert_eq!(state("note-1").await, "DELIVERED");
    let (status, code, _) = post(&register, &url, notification("note-1", "MESSAGE_ACCEPTED", "", "register")).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.unknown_message")), "finished already");

    let refused = notification("note-2", "MESSAGE_NOT_ACCTEPTED", "RESEND", "register");
    assert_eq!(post(&register, &url, refused).await.0, 200);
    assert_eq!(state("note-2").await, "NOT_DELIVERED");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let again = loop {
        match take().await {
            (200, Some(id)) => break Some(id),
            _ if std::time::Instant::now() > deadline => break None,
            _ => {}
        }
    };
    assert_eq!(again.as_deref(), Some("note-2"), "delivered again after the backoff");

    let stopped = notification("note-3", "MESSAGE_NOT_ACCTEPTED", "NOT_RESEND", "register");
    assert_eq!(post(&register, &url, stopped).await.0, 200);
    assert_eq!(state("note-3").await, "DELIVERY_STOPPED");

    // Each notification is in the message log, under the request's messageId.
    let log = gw.pki.dir.path().join("data/log");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let logged = |id: &str, event: &str| {
        let text: String = std::fs::read_dir(&log)
            .map(|d| d.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect())
            .unwrap_or_default();
        let (id, event) = (format!("\"id\":\"{id}\""), format!("\"event\":\"{event}\""));
        text.lines().any(|l| l.contains(&id) && l.contains(&event))
    };
    let all = || logged("note-1", "ack") && logged("note-2", "refuse") && logged("note-3", "refuse");
    while !all() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(all(), "notifications are logged steps of their messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_notifications_on_the_embedded_store() {
    notifications_change_what_get_message_status_reports(common::async_bus::Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_notifications_and_status_on_nats() {
    notifications_change_what_get_message_status_reports(common::async_bus::Backend::Nats).await;
}
