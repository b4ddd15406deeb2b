//! Hostile ШЭП calls never reach the provider (issue 18): against a provider that
//! speaks SyncChannel and records every byte it receives, each refused variant
//! (missing fields, wrong sender, bad password, XXE, oversize, unsigned, tampered or
//! foreign signature, replay) leaves it with nothing, and the good call arrives
//! byte for byte.

use qaqpa_gateway::demo::{self, DEMO_IIN, SHEP_PASSWORD, SHEP_SENDER};

use super::shep::{post, sign_wsse, start_shep_provider};
use crate::common;

const PASSWORD: &str = "portal-secret-18";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_calls_leave_the_recording_provider_with_nothing() {
    let (shep, seen) = start_shep_provider().await;
    let hash = qaqpa_gateway::cli::shep_password_hash(PASSWORD).unwrap();
    let gw = common::TestGateway::start_with("header_read_timeout = \"5s\"", |_, text| {
        let text = common::with_system_keys(&text, common::CLIENT, &format!("shep_sender = \"portal\"\nshep_password_hash = \"{hash}\"\n"));
        let text = common::with_system_keys(&text, common::OTHER_CLIENT, "shep_sender = \"akimat\"\n");
        format!(
            concat!(
                "{text}\n[signatures]\ntrust_anchors = \"pki/ca.crt\"\nmax_clock_skew = \"5m\"\n\n",
                "[[service]]\nid = \"{p}/shep-recorded/v1\"\nkind = \"soap\"\nupstream = [\"http://{shep}/bip-sync/\"]\n",
                "shep_service_id = \"Recorded_Service\"\nshep_provider = true\nsignature = \"verify\"\n\n",
                "[[access]]\nservice = \"{p}/shep-recorded/v1\"\nclients = [\"{c}\", \"{o}\"]\n"
            ),
            text = text,
            p = common::PROVIDER,
            shep = shep,
            c = common::CLIENT,
            o = common::OTHER_CLIENT,
        )
    })
    .await;
    let message = |id: &str| {
        demo::sample_sync(id, DEMO_IIN)
            .replace("PopulationRegister_Person", "Recorded_Service")
            .replace(
                &format!("<senderId>{SHEP_SENDER}</senderId><password>{SHEP_PASSWORD}</password>"),
                &format!("<senderId>portal</senderId><password>{PASSWORD}</password>"),
            )
            .replace("<soapenv:Header/>", "<soapenv:Header></soapenv:Header>")
    };
    let signed = |id: &str| sign_wsse(&gw.pki, "egov-portal", &message(id));
    let (portal, url) = (gw.client(), gw.tls_url("/bip-sync/"));
    let good = signed("good-1");

    // Each variant is signed after the change (so only the change is wrong), unless
    // the signature is what is wrong.
    let edit = |id: &str, from: &str, to: &str| {
        let text = message(id);
        assert!(text.contains(from), "{from}");
        sign_wsse(&gw.pki, "egov-portal", &text.replacen(from, to, 1))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("no messageId", edit("h-1", "<messageId>h-1</messageId>", ""), "client.bad_request"),
        ("no serviceId", edit("h-2", "<serviceId>Recorded_Service</serviceId>", ""), "client.bad_request"),
        ("no senderId", edit("h-3", "<senderId>portal</senderId>", ""), "client.bad_request"),
        ("unknown sender", edit("h-4", "<senderId>portal", "<senderId>stranger"), "client.identity_mismatch"),
        ("another system's sender", edit("h-5", "<senderId>portal", "<senderId>akimat"), "client.identity_mismatch"),
        ("wrong password", edit("h-6", PASSWORD, "guessed"), "client.identity_mismatch"),
        ("no password", edit("h-7", &format!("<password>{PASSWORD}</password>"), ""), "client.identity_mismatch"),
        ("serviceId twice", edit("h-8", "</sender>", "</sender><serviceId>Other</serviceId>"), "client.bad_request"),
        (
            "XXE",
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
                message("h-9")
            ),
            "client.bad_xml",
        ),
        (
            "oversize",
            message("h-10").replacen("<iin>", &format!("<iin>{}", "9".repeat(11 << 20)), 1),
            "client.too_large",
        ),
        ("unsigned", message("h-11"), "client.bad_signature"),
        ("tampered", signed("h-12").replace(DEMO_IIN, "000000000000"), "client.bad_signature"),
        ("signed by another system", sign_wsse(&gw.pki, "akimat", &message("h-13")), "client.bad_signature"),
    ];
    for (what, body, expected) in cases {
        let (status, code, text) = post(&portal, &url, body).await;
        assert_eq!((status, code.as_deref()), (500, Some(expected)), "{what}: {text}");
        assert!(!text.contains(PASSWORD), "{what}: the password leaked: {text}");
        assert!(seen.lock().unwrap().is_empty(), "{what} reached the provider");
    }

    // The good one arrives byte for byte; sent again it is a replay and does not.
    let (status, code, body) = post(&portal, &url, good.clone()).await;
    assert_eq!((status, code), (200, None), "{body}");
    assert!(body.contains("<code>SCSS001</code>"), "the provider's answer, unchanged: {body}");
    let (status, code, _) = post(&portal, &url, good.clone()).await;
    assert_eq!((status, code.as_deref()), (500, Some("client.replay")));
    let received = seen.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "only the good call reached the provider");
    assert_eq!(received[0], good, "byte for byte, signature and password as the client sent them");
}
