//! HTTP/2 variants of the header attacks: hyper's h2 refuses connection-specific
//! fields (the stream is reset) and uppercase field names (the connection goes
//! away) as malformed (RFC 9113 §8.2); the head check refuses repeated protocol
//! fields with 400, as on HTTP/1.1.

use super::support::*;
use crate::common::*;

#[tokio::test]
async fn duplicate_x_road_client_over_h2_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    // mTLS with h2 by ALPN.
    let r = gw
        .client()
        .get(gw.tls_url(&format!("/r1/{REC}/x")))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Client", OTHER_CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let (status, code, _) = answer(r).await;
    assert_eq!((status, code.as_str()), (400, "client.bad_request"));
    // h2c prior knowledge on the insecure listener.
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let r = h2c
        .get(format!("http://{}/r1/{REC}/x", gw.plain_addr()))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Client", OTHER_CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let (status, code, _) = answer(r).await;
    assert_eq!((status, code.as_str()), (400, "client.bad_request"));
    // Raw frames: two literal fields, nothing merged by a client library.
    let frames =
        h2_raw(gw.plain_addr(), &format!("/r1/{REC}/x"), &[("x-road-client", CLIENT), ("x-road-client", OTHER_CLIENT)])
            .await;
    assert!(h2_status(&frames, H2_400), "{frames:?}");
    assert_eq!(rec.count(), 0, "the provider got nothing");
}

#[tokio::test]
async fn connection_specific_fields_in_h2_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let path = format!("/r1/{REC}/x");
    for (name, value) in [
        ("connection", "x-road-client"),
        ("connection", "close"),
        ("transfer-encoding", "chunked"),
        ("keep-alive", "timeout=5"),
        ("upgrade", "h2c"),
        ("te", "gzip"),
    ] {
        let frames = h2_raw(gw.plain_addr(), &path, &[("x-road-client", CLIENT), (name, value)]).await;
        assert!(h2_reset(&frames), "{name}: {value}: {frames:?}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // The same frames without them are served (the raw client is sound).
    let frames = h2_raw(gw.plain_addr(), &path, &[("x-road-client", CLIENT)]).await;
    assert!(h2_status(&frames, H2_200), "{frames:?}");
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn uppercase_field_names_in_h2_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let path = format!("/r1/{REC}/x");
    for fields in [
        vec![("X-Road-Client", CLIENT)],
        vec![("x-road-client", CLIENT), ("X-Road-Client", OTHER_CLIENT)],
        vec![("x-road-client", CLIENT), ("X-ROAD-USERID", "KZ111111111111")],
    ] {
        let frames = h2_raw(gw.plain_addr(), &path, &fields).await;
        assert!(h2_goaway(&frames), "{fields:?}: {frames:?}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
}
