//! Issue 15 items 3 and 7: once-only protocol headers, and `Connection` naming them.

use super::support::*;
use crate::common::*;

/// Item 3: the client's own X-Road-Client, then another system's, over mTLS.
#[tokio::test]
async fn two_x_road_client_headers_over_mtls_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for (first, second) in [(CLIENT, OTHER_CLIENT), (OTHER_CLIENT, CLIENT), (CLIENT, CLIENT)] {
        let r = gw
            .client()
            .get(gw.tls_url(&format!("/r1/{REC}/x")))
            .header("X-Road-Client", first)
            .header("X-Road-Client", second)
            .send()
            .await
            .unwrap();
        let (status, code, body) = answer(r).await;
        assert_eq!((status, code.as_str()), (400, "client.bad_request"), "{first} then {second}: {body}");
        assert!(body.contains("X-Road-Client header may appear only once"), "{body}");
    }
    // The same over a raw TLS socket, so no client library merges the lines.
    let raw =
        tls_exchange(&gw, "egov-portal", get("/x", &format!("X-Road-Client: {OTHER_CLIENT}\r\n")).as_bytes()).await;
    assert_eq!(statuses(&raw), [400], "{raw}");
    assert_eq!(error_code(&raw).as_deref(), Some("client.bad_request"));
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // One header: served.
    let r = gw.client().get(gw.tls_url(&format!("/r1/{REC}/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(rec.parsed()[0].all("x-road-client"), [CLIENT]);
}

/// Item 3: every once-only field, repeated, on the plain listener.
#[tokio::test]
async fn every_once_only_header_repeated_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for (name, a, b) in [
        ("X-Road-Id", "id-1", "id-2"),
        ("X-Road-UserId", "KZ900101300123", "KZ111111111111"),
        ("X-Road-Issue", "case-1", "case-2"),
        ("Qaqpa-Signature", "a..b", "c..d"),
        ("X-Road-Request-Hash", "aGFzaA==", "b3RoZXI="),
        ("Host", "gw", "evil.example"),
    ] {
        let raw = raw_exchange(gw.plain_addr(), get("/x", &format!("{name}: {a}\r\n{name}: {b}\r\n")).as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{name}: {raw}");
        assert_eq!(error_code(&raw).as_deref(), Some("client.bad_request"), "{name}");
        assert!(raw.contains(&format!("the {name} header may appear only once")), "{name}: {raw}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
}

/// Item 3: a second, unsigned X-Road-UserId beside the signed one.
#[tokio::test]
async fn second_unsigned_user_id_on_a_jws_signed_service_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let (key, chain) = signer(&gw, "egov-portal");
    let path = format!("/r1/{REC_SIGNED_REST}/person");
    let body = br#"{"iin":"900101300123"}"#;
    let token = |id: &str| {
        let mut claims = serde_json::Map::new();
        for (n, v) in [
            ("x-road-client", CLIENT),
            ("x-road-service", REC_SIGNED_REST),
            ("x-road-id", id),
            ("htm", "POST"),
            ("htu", path.as_str()),
            ("x-road-userid", "KZ900101300123"),
        ] {
            claims.insert(n.into(), v.into());
        }
        claims.insert("iat".into(), time::OffsetDateTime::now_utc().unix_timestamp().into());
        qaqpa_certs::jws::sign_detached(&key, &chain, claims, body).unwrap()
    };
    let send = |id: &'static str, second: Option<&'static str>| {
        let mut b = gw
            .client()
            .post(gw.tls_url(&path))
            .header("X-Road-Client", CLIENT)
            .header("X-Road-Id", id)
            .header("X-Road-UserId", "KZ900101300123")
            .header("Qaqpa-Signature", token(id));
        if let Some(second) = second {
            b = b.header("X-Road-UserId", second);
        }
        b.body(&body[..]).send()
    };
    let (status, code, text) = answer(send("jws-ok", None).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (200, ""), "{text}");
    let (status, code, text) = answer(send("jws-dup", Some("KZ111111111111")).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "client.bad_request"), "{text}");
    let seen = rec.parsed();
    assert_eq!(seen.len(), 1, "only the signed request reached the provider");
    assert_eq!(seen[0].all("x-road-userid"), ["KZ900101300123"]);
    assert_eq!(seen[0].body, body);
}

/// Item 7: `Connection` naming a protocol header is refused, not obeyed.
#[tokio::test]
async fn connection_naming_protocol_headers_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for connection in ["X-Road-Client, Qaqpa-Signature", "x-road-id", "keep-alive, X-Road-UserId", "Qaqpa-Anything"] {
        let raw = tls_exchange(
            &gw,
            "egov-portal",
            format!(
                "GET /r1/{REC}/x HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\r\nX-Road-Id: c-1\r\nConnection: {connection}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(statuses(&raw), [400], "{connection}: {raw}");
        assert_eq!(error_code(&raw).as_deref(), Some("client.bad_request"), "{connection}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // An ordinary header named by Connection is dropped as hop-by-hop; the protocol
    // headers arrive.
    let raw = tls_exchange(
        &gw,
        "egov-portal",
        format!(
            "GET /r1/{REC}/x HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\r\nX-Road-Id: c-2\r\nX-Hop: 1\r\nConnection: x-hop, close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    let seen = rec.parsed();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].all("x-road-client"), [CLIENT]);
    assert_eq!(seen[0].all("x-road-id"), ["c-2"]);
    assert!(seen[0].all("x-hop").is_empty(), "{:?}", seen[0].headers);
}
