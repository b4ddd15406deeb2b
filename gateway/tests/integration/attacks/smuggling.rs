//! Issue 15 item 8 and request smuggling probes over raw sockets: every framing
//! ambiguity is refused before anything is forwarded, and the bodies that are
//! forwarded are exactly the ones the gateway framed.

use super::support::*;
use crate::common::*;

fn post(framing: &str, body: &str) -> String {
    format!("POST /r1/{REC}/in HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\r\n{framing}\r\n{body}")
}

const SMUGGLED: &str = "GET /r1/KZ/GOV/000000000001/population-register/rec/v1/smuggled HTTP/1.1\r\nHost: gw\r\nX-Road-Client: KZ/GOV/000000000003/egov-portal\r\n\r\n";

/// Item 8: a coding stacked under `chunked` (the gateway would un-chunk and pass on
/// gzip bytes as if plain).
#[tokio::test]
async fn transfer_encoding_other_than_chunked_is_refused_before_forwarding() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for te in ["gzip, chunked", "identity, chunked", "chunked, chunked"] {
        let request = post(&format!("Transfer-Encoding: {te}\r\n"), "5\r\nhello\r\n0\r\n\r\n");
        let raw = raw_exchange(gw.plain_addr(), request.as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{te}: {raw}");
        assert_eq!(error_code(&raw).as_deref(), Some("client.bad_request"), "{te}");
        let raw = tls_exchange(&gw, "egov-portal", request.as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{te} over mTLS: {raw}");
    }
    // Two Transfer-Encoding lines, the last one chunked.
    let raw = raw_exchange(
        gw.plain_addr(),
        post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(statuses(&raw), [400], "{raw}");
    assert_eq!(rec.count(), 0, "the provider got nothing");
}

/// Item 8: HTTP/1.1 without Host, or with two.
#[tokio::test]
async fn missing_or_repeated_host_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let no_host = format!("GET /r1/{REC}/x HTTP/1.1\r\nX-Road-Client: {CLIENT}\r\n\r\n");
    let two_hosts = format!("GET /r1/{REC}/x HTTP/1.1\r\nHost: gw\r\nHost: other\r\nX-Road-Client: {CLIENT}\r\n\r\n");
    for (what, request) in [("no Host", no_host), ("two Hosts", two_hosts)] {
        let raw = raw_exchange(gw.plain_addr(), request.as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{what}: {raw}");
        assert_eq!(error_code(&raw).as_deref(), Some("client.bad_request"), "{what}");
        let raw = tls_exchange(&gw, "egov-portal", request.as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{what} over mTLS: {raw}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
}

/// CL.TE: hyper frames by chunked and drops Content-Length, then closes the
/// connection, so what follows the chunked body is never read as a request.
#[tokio::test]
async fn content_length_with_chunked_uses_chunked_and_closes() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let body = format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}");
    let framing = format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", body.len());
    let raw = raw_all(gw.plain_addr(), post(&framing, &body).as_bytes()).await;
    assert_eq!(statuses(&raw), [200], "one answer only: {raw}");
    let seen = rec.parsed();
    assert_eq!(seen.len(), 1, "the smuggled request never reached the provider");
    assert_eq!(seen[0].target(), "/up/in");
    assert_eq!(seen[0].body, b"hello");
}

/// TE.CL and obfuscated Transfer-Encoding spellings.
#[tokio::test]
async fn obfuscated_transfer_encodings_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let body = format!("0\r\n\r\n{SMUGGLED}");
    for framing in [
        "Transfer-Encoding: xchunked\r\n".to_owned(),
        "Transfer-Encoding: chunked , identity\r\n".to_owned(),
        "Transfer-Encoding : chunked\r\n".to_owned(),
        "Transfer-Encoding: chunked\x0b\r\n".to_owned(),
        format!("X-Pad: 1\r\n Transfer-Encoding: chunked\r\nContent-Length: {}\r\n", body.len()),
        format!("Transfer-Encoding: identity\r\nContent-Length: {}\r\n", body.len()),
    ] {
        let raw = raw_exchange(gw.plain_addr(), post(&framing, &body).as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{framing:?}: {raw}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // Optional whitespace around the value is just chunked.
    let raw = raw_exchange(
        gw.plain_addr(),
        post("Transfer-Encoding:   chunked  \r\nConnection: close\r\n", "5\r\nhello\r\n0\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    assert_eq!(rec.parsed()[0].body, b"hello");
}

#[tokio::test]
async fn duplicate_content_length_is_refused_or_collapsed() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let raw =
        raw_exchange(gw.plain_addr(), post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!").as_bytes()).await;
    assert_eq!(statuses(&raw), [400], "{raw}");
    let raw = raw_exchange(gw.plain_addr(), post("Content-Length: 5, 6\r\n", "hello!").as_bytes()).await;
    assert_eq!(statuses(&raw), [400], "{raw}");
    assert_eq!(rec.count(), 0);
    // Equal values are one length (RFC 9110 §8.6): forwarded once, with that body.
    let raw = raw_exchange(
        gw.plain_addr(),
        post("Content-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n", "hello").as_bytes(),
    )
    .await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    let seen = rec.parsed();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].all("content-length"), ["5"]);
    assert_eq!(seen[0].body, b"hello");
}

#[tokio::test]
async fn obs_fold_nul_and_cr_in_headers_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    for (what, extra) in [
        ("obs-fold continuation", "X-Road-UserId: KZ900101300123\r\n  KZ111111111111\r\n"),
        ("obs-fold with a tab", "X-Road-Issue: a\r\n\tb\r\n"),
        ("NUL in a value", "X-Road-Issue: a\0b\r\n"),
        ("bare CR in a value", "X-Road-Issue: a\rX-Injected: 1\r\n"),
    ] {
        let raw = raw_exchange(gw.plain_addr(), get("/x", extra).as_bytes()).await;
        assert_eq!(statuses(&raw), [400], "{what}: {raw}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
}

/// Bare LF line endings: httparse reads them as line ends (RFC 9112 §2.2 allows a
/// recipient to), so the request is one ordinary request; what the provider gets is
/// re-framed with CRLF by the gateway, never the client's bytes.
#[tokio::test]
async fn bare_lf_line_endings_are_one_request_reframed() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let request = format!(
        "POST /r1/{REC}/lf HTTP/1.1\nHost: gw\nX-Road-Client: {CLIENT}\nContent-Length: 5\nConnection: close\n\nhello"
    );
    let raw = raw_exchange(gw.plain_addr(), request.as_bytes()).await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    let seen = rec.parsed();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target(), "/up/lf");
    assert_eq!(seen[0].body, b"hello");
    let raw_req = &rec.requests()[0];
    let head_end = raw_req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(!raw_req[..head_end].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'), "CRLF re-framed");
    // A bare LF smuggling a second header line inside a value is not possible:
    // "a\nX-Road-Client: other" is two lines, so a second X-Road-Client.
    let request = format!(
        "GET /r1/{REC}/lf2 HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\nX-Road-Client: {OTHER_CLIENT}\r\n\r\n"
    );
    let raw = raw_exchange(gw.plain_addr(), request.as_bytes()).await;
    assert_eq!(statuses(&raw), [400], "{raw}");
    assert!(rec.parsed().iter().all(|r| r.target() != "/up/lf2"));
}

/// Pipelining after a body: the next request is read where the body ends, and is
/// checked like any other.
#[tokio::test]
async fn pipelined_requests_after_a_body_are_each_checked() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let first = post("Content-Length: 5\r\n", "hello");
    let second = format!("GET /r1/{REC}/second HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\r\n\r\n");
    let third = format!(
        "GET /r1/{REC}/third HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\r\nX-Road-Client: {OTHER_CLIENT}\r\n\r\n"
    );
    let raw = raw_all(gw.plain_addr(), format!("{first}{second}{third}").as_bytes()).await;
    assert_eq!(statuses(&raw), [200, 200, 400], "{raw}");
    let seen = rec.parsed();
    assert_eq!(seen.iter().map(|r| r.target()).collect::<Vec<_>>(), ["/up/in", "/up/second"]);
    assert_eq!(seen[0].body, b"hello");
    assert!(seen[1].body.is_empty());
}

/// A refusal of what a well-framed request says (a SOAP Body that does not match
/// its service code) keeps the HTTP/1.1 connection: the client's next request on
/// it is answered, as X-Road answers it. A refusal of the head itself closes the
/// connection, so nothing after an ambiguous head is ever read as a request.
#[tokio::test]
async fn only_a_refused_head_closes_the_connection() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let mismatched = envelope(CLIENT, REC_SOAP, Some("mismatch-1"), "900101300123").replace("p:rec-soap", "p:other");
    assert!(mismatched.contains("<p:other "), "the Body names another operation: {mismatched}");
    let soap = format!(
        "POST /soap HTTP/1.1\r\nHost: gw\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"\"\r\nContent-Length: {}\r\n\r\n{mismatched}",
        mismatched.len()
    );
    let next = format!(
        "GET /r1/{REC}/after-fault HTTP/1.1\r\nHost: gw\r\nX-Road-Client: {CLIENT}\r\nConnection: close\r\n\r\n"
    );
    let raw = tls_exchange(&gw, "egov-portal", format!("{soap}{next}").as_bytes()).await;
    assert_eq!(statuses(&raw), [200, 200], "{raw}");
    assert_eq!(error_code(&raw).as_deref(), Some("client.bad_request"), "the first answer is the fault: {raw}");
    assert!(raw.contains("client.inconsistent_headers"), "{raw}");
    let second = raw[1..].find("HTTP/1.1 ").map_or(raw.len(), |i| i + 1);
    assert!(!raw[..second].to_ascii_lowercase().contains("connection: close"), "the fault keeps the connection: {raw}");
    assert_eq!(rec.parsed().iter().map(|r| r.target().to_owned()).collect::<Vec<_>>(), ["/up/after-fault"]);

    // Two Host fields: refused, the connection closed, the next request never read.
    let ambiguous = format!("GET /r1/{REC}/x HTTP/1.1\r\nHost: gw\r\nHost: other\r\n\r\n");
    let raw = tls_exchange(&gw, "egov-portal", format!("{ambiguous}{next}").as_bytes()).await;
    assert_eq!(statuses(&raw), [400], "{raw}");
    assert!(raw.to_ascii_lowercase().contains("connection: close"), "{raw}");
    assert_eq!(rec.count(), 1, "nothing more reached the provider");
}
