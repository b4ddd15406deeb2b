//! Client certificates the data listener must not accept: another CA's, expired,
//! revoked (CRL), none.

use super::support::*;
use crate::common::*;

#[tokio::test]
async fn foreign_ca_expired_revoked_and_missing_certificates_cannot_connect() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for stem in [Some("foreign"), Some("expired"), Some("revoked"), None] {
        let client = gw.pki.client(stem).build().unwrap();
        let err = client
            .get(gw.tls_url(&format!("/r1/{REC}/x")))
            .header("X-Road-Client", CLIENT)
            .send()
            .await
            .expect_err(&format!("{stem:?} must not get through"));
        assert!(err.is_connect() || err.is_request(), "{stem:?}: {err:?}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
    let r = gw.client().get(gw.tls_url(&format!("/r1/{REC}/x"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(rec.count(), 1);
}
