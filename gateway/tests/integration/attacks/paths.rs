//! Issue 15 item 6: `/r1` path spellings a provider could read as another path.

use super::support::*;
use crate::common::*;

#[tokio::test]
async fn encoded_and_parameter_path_tricks_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for (tail, why) in [
        ("/v1/..;/admin", "';' parameter"),
        ("/%2e%2e;x", "percent-encoded"),
        ("/..%2f..%2fadmin", "percent-encoded"),
        ("/a%2Fb", "percent-encoded"),
        ("/%252e%252e/admin", "percent-encoded"),
        ("/%c0%ae%c0%ae/admin", "not valid UTF-8"),
        ("/%C0%AE", "not valid UTF-8"),
        ("/a%5cb", "control character, a backslash"),
        ("/a%5Cb", "control character, a backslash"),
        ("/x;jsessionid=1", "';' parameter"),
        ("/..", "'.' or '..' segment"),
        ("/a%00b", "control character"),
    ] {
        let raw = raw_exchange(gw.plain_addr(), get(tail, "").as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{tail}: {raw}");
        assert_eq!(error_code(&raw).as_deref(), Some("client.bad_request"), "{tail}");
        assert!(raw.contains(why), "{tail}: {raw}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // Ordinary escapes (a space, Cyrillic in UTF-8) and a query with ';' go through
    // byte for byte.
    let raw = raw_exchange(gw.plain_addr(), get("/a%20b/%D0%90%D0%B9?q=1;2", "").as_bytes()).await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    assert_eq!(rec.parsed()[0].target(), "/up/a%20b/%D0%90%D0%B9?q=1;2");
}
