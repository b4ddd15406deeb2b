//! Identity spoofing: claiming another system than the certificate's, on every face.

use super::support::*;
use crate::common::*;

#[tokio::test]
async fn x_road_client_of_another_system_on_r1_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for (stem, claimed) in [("egov-portal", OTHER_CLIENT), ("akimat", CLIENT), ("egov-portal", PROVIDER)] {
        let client = gw.pki.client(Some(stem)).build().unwrap();
        let r = client.get(gw.tls_url(&format!("/r1/{REC}/x"))).header("X-Road-Client", claimed).send().await.unwrap();
        let (status, code, body) = answer(r).await;
        assert_eq!((status, code.as_str()), (403, "client.identity_mismatch"), "{stem} as {claimed}: {body}");
    }
    // A claim that is not a registered system, on the insecure (demo) listener.
    let raw = raw_exchange(
        gw.plain_addr(),
        format!("GET /r1/{REC}/x HTTP/1.1\r\nHost: gw\r\nX-Road-Client: KZ/GOV/999999999999/ghost\r\n\r\n").as_bytes(),
    )
    .await;
    // A raw X-Road client (no problem+json Accept): X-Road's status for server.clientproxy.*.
    assert_eq!(statuses(&raw), [500], "{raw}");
    assert_eq!(error_code(&raw).as_deref(), Some("client.identity_mismatch"));
    assert_eq!(rec.count(), 0, "the provider got nothing");
}

#[tokio::test]
async fn soap_client_of_another_system_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let (status, code, body) =
        post_soap(&gw, "egov-portal", envelope(OTHER_CLIENT, REC_SOAP, Some("spoof-1"), "900101300123")).await;
    assert_eq!((status, code.as_str()), (200, "client.identity_mismatch"), "{body}");
    assert!(xroad_fault(&body, "client.identity_mismatch"), "{body}");
    // Signed by the other system's own key, sent over this system's connection.
    let (key, chain) = signer(&gw, "akimat");
    let message = envelope(OTHER_CLIENT, REC_SIGNED_SOAP, Some("spoof-2"), "900101300123");
    let at = time::OffsetDateTime::now_utc().unix_timestamp();
    let signed =
        qaqpa_certs::xmldsig::sign_soap(message.as_bytes(), &key, &chain, qaqpa_certs::xmldsig::DigestAlg::Sha256, at)
            .unwrap();
    let (status, code, _) = post_soap(&gw, "egov-portal", String::from_utf8(signed).unwrap()).await;
    assert_eq!((status, code.as_str()), (200, "client.identity_mismatch"));
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // The honest envelope passes, byte for byte.
    let honest = envelope(CLIENT, REC_SOAP, Some("honest-1"), "900101300123");
    let (status, _, _) = post_soap(&gw, "egov-portal", honest.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(rec.parsed()[0].body, honest.as_bytes());
}

/// Issue 15, item 1: a SOAP envelope sent through the REST door. `/r1` is the REST
/// face; a SOAP service without a REST face (mediation) is reachable only through
/// `/soap`, where its envelope's identity and XML signature are checked. Neither a
/// spoofed envelope nor a caller's JWS in place of the XML signature gets through.
#[tokio::test]
async fn a_soap_envelope_through_the_rest_door_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    // An envelope whose client is another system and whose service is something else.
    let spoofed = envelope(OTHER_CLIENT, REC, Some("door-1"), "900101300123");
    for service in [REC_SOAP, REC_SIGNED_SOAP] {
        let r = gw
            .client()
            .post(gw.tls_url(&format!("/r1/{service}")))
            .header("X-Road-Client", CLIENT)
            .header("Content-Type", "text/xml; charset=utf-8")
            .body(spoofed.clone())
            .send()
            .await
            .unwrap();
        let (status, code, body) = answer(r).await;
        assert_eq!((status, code.as_str()), (400, "client.bad_request"), "{service}: {body}");
        assert!(body.contains("/soap"), "the refusal names the right door: {body}");
    }
    // A JWS made by the caller in place of the XML signature, for the signed service.
    let (key, chain) = signer(&gw, "egov-portal");
    let path = format!("/r1/{REC_SIGNED_SOAP}");
    let mut claims = serde_json::Map::new();
    for (n, v) in [
        ("x-road-client", CLIENT),
        ("x-road-service", REC_SIGNED_SOAP),
        ("x-road-id", "door-2"),
        ("htm", "POST"),
        ("htu", path.as_str()),
    ] {
        claims.insert(n.into(), v.into());
    }
    claims.insert("iat".into(), time::OffsetDateTime::now_utc().unix_timestamp().into());
    let token = qaqpa_certs::jws::sign_detached(&key, &chain, claims, spoofed.as_bytes()).unwrap();
    let r = gw
        .client()
        .post(gw.tls_url(&path))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Id", "door-2")
        .header("Qaqpa-Signature", token)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(spoofed.clone())
        .send()
        .await
        .unwrap();
    let (status, code, body) = answer(r).await;
    assert_eq!((status, code.as_str()), (400, "client.bad_request"), "{body}");
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // The same envelope at /soap meets the SOAP face's identity check.
    let (status, code, _) = post_soap(&gw, "egov-portal", spoofed).await;
    assert_eq!((status, code.as_str()), (200, "client.identity_mismatch"));
    assert_eq!(rec.count(), 0, "the provider got nothing");
}
