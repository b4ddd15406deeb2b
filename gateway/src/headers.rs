//! Header rules of the REST protocol (docs/protocol.md) and of a well-behaved proxy
//! (RFC 9110 §7.6: hop-by-hop fields end at each hop), and the head check every
//! data request passes before any face sees it ([`check_head`], issue 15).

use std::net::SocketAddr;

use base64::Engine;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha512};

pub const X_ROAD_CLIENT: &str = "x-road-client";
/// The detached JWS over a REST request (docs/signatures.md).
pub const QAQPA_SIGNATURE: &str = "qaqpa-signature";
pub const X_ROAD_ID: &str = "x-road-id";
pub const X_ROAD_USER_ID: &str = "x-road-userid";
pub const X_ROAD_ISSUE: &str = "x-road-issue";
pub const X_ROAD_REQUEST_HASH: &str = "x-road-request-hash";

pub const X_ROAD_SERVICE: &str = "x-road-service";

/// Longest client-chosen message id (docs/protocol.md#identifiers).
pub const MAX_MESSAGE_ID_LEN: usize = 128;

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Why a request head is refused before any stage reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// A field that may appear once appears more than once (its name). Two readers
    /// of one request must not pick different lines: the gateway checks the first
    /// `X-Road-Client`, a provider may take the last.
    Repeated(&'static str),
    /// `Connection` names a protocol field: a hop-by-hop strip would drop a field
    /// the gateway verified (or added) on the way to the provider.
    ConnectionNamesProtocolField,
    /// `Transfer-Encoding` other than one plain `chunked`: the gateway would decode
    /// the chunking and forward still-encoded bytes as if they were the body.
    TransferEncoding,
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2).
    MissingHost,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Repeated(name) => write!(f, "the {name} header may appear only once"),
            Self::ConnectionNamesProtocolField => {
                f.write_str("the Connection header may not name an X-Road-* or Qaqpa-* header")
            }
            Self::TransferEncoding => f.write_str("only Transfer-Encoding: chunked is accepted"),
            Self::MissingHost => f.write_str("an HTTP/1.1 request needs exactly one Host header"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Fields that may appear once, as the error names them (docs/protocol.md's protocol
/// headers, and the framing and routing fields of HTTP itself).
const ONCE: [(&str, &str); 9] = [
    (X_ROAD_CLIENT, "X-Road-Client"),
    (X_ROAD_ID, "X-Road-Id"),
    (X_ROAD_USER_ID, "X-Road-UserId"),
    (X_ROAD_ISSUE, "X-Road-Issue"),
    (X_ROAD_SERVICE, "X-Road-Service"),
    (X_ROAD_REQUEST_HASH, "X-Road-Request-Hash"),
    (QAQPA_SIGNATURE, "Qaqpa-Signature"),
    ("content-length", "Content-Length"),
    ("host", "Host"),
];

/// Checks a data request's head before any face reads it: each once-only field
/// once, `Connection` naming no protocol field, `Transfer-Encoding` exactly
/// `chunked` when present, and `Host` on HTTP/1.1. One pass over the fields, no
/// allocation: it runs on every request.
pub fn check_head<B>(req: &http::Request<B>) -> Result<(), HeadError> {
    let mut seen = 0u16;
    let mut te_lines = 0;
    for (name, value) in req.headers() {
        let name = name.as_str();
        if let Some(i) = ONCE.iter().position(|(n, _)| *n == name) {
            if seen & (1 << i) != 0 {
                return Err(HeadError::Repeated(ONCE[i].1));
            }
            seen |= 1 << i;
        } else if name == header::CONNECTION.as_str() {
            if value.as_bytes().split(|&b| b == b',').any(|token| is_protocol_field(trim(token))) {
                return Err(HeadError::ConnectionNamesProtocolField);
            }
        } else if name == header::TRANSFER_ENCODING.as_str() {
            te_lines += 1;
            if te_lines > 1 || !trim(value.as_bytes()).eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::TransferEncoding);
            }
        }
    }
    let host = ONCE.iter().position(|(n, _)| *n == "host").map_or(0, |i| 1 << i);
    if req.version() == http::Version::HTTP_11 && seen & host == 0 {
        return Err(HeadError::MissingHost);
    }
    Ok(())
}

/// `X-Road-*` and `Qaqpa-*` (any case): the fields the protocol gives meaning to.
fn is_protocol_field(token: &[u8]) -> bool {
    let starts = |prefix: &[u8]| token.len() >= prefix.len() && token[..prefix.len()].eq_ignore_ascii_case(prefix);
    starts(b"x-road-") || starts(b"qaqpa-")
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// Removes hop-by-hop fields, including those the `Connection` field names.
/// `Transfer-Encoding` goes too: hyper frames each hop's body itself. Protocol
/// fields are never hop-by-hop, whatever `Connection` says ([`check_head`] refuses
/// such a request; this is the second line for paths that do not pass it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !is_protocol_field(name.as_bytes()))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::PROXY_AUTHENTICATE);
}

/// Appends this hop to `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`
/// (RFC 7239), keeping what earlier hops wrote.
pub fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr, tls: bool) {
    use std::io::Write;
    let proto = if tls { "https" } else { "http" };
    // Formatted on the stack: every forwarded request carries these, and a
    // `String` per value was two allocations each (issue 20). An IPv4 address is
    // put together from its octets: `Display` for it cost ~1k instructions a time.
    let mut buf = [0u8; 96];
    let mut ip = [0u8; 48];
    let ip = match peer.ip() {
        std::net::IpAddr::V4(v4) => {
            let mut len = 0;
            let mut number = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    ip[len] = b'.';
                    len += 1;
                }
                let digits = number.format(octet).as_bytes();
                ip[len..len + digits.len()].copy_from_slice(digits);
                len += digits.len();
            }
            &ip[..len]
        }
        std::net::IpAddr::V6(v6) => {
            let mut cursor = std::io::Cursor::new(&mut ip[..]);
            let _ = write!(cursor, "\"[{v6}]\"");
            let len = cursor.position() as usize;
            &ip[..len]
        }
    };
    // `X-Forwarded-For` takes the bare address, `Forwarded` the quoted IPv6 form.
    let bare = ip.strip_prefix(b"\"[").and_then(|v| v.strip_suffix(b"]\"")).unwrap_or(ip);
    append_list(headers, HeaderName::from_static("x-forwarded-for"), bare);
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
    let len = [&b"for="[..], ip, b";proto=", proto.as_bytes()].iter().fold(0, |at, part| {
        buf[at..at + part.len()].copy_from_slice(part);
        at + part.len()
    });
    append_list(headers, header::FORWARDED, &buf[..len]);
}

fn append_list(headers: &mut HeaderMap, name: HeaderName, value: &[u8]) {
    let value = match headers.get(&name).map(HeaderValue::as_bytes) {
        Some(existing) if !existing.is_empty() => HeaderValue::from_bytes(&[existing, b", ", value].concat()),
        _ => HeaderValue::from_bytes(value),
    };
    if let Ok(v) = value {
        headers.insert(name, v);
    }
}

/// The message id: the client's `X-Road-Id` when valid, else a fresh UUIDv7.
pub fn message_id(headers: &HeaderMap) -> Result<String, &'static str> {
    match headers.get(X_ROAD_ID) {
        None => Ok(uuid::Uuid::now_v7().to_string()),
        Some(v) => {
            let id = v.to_str().map_err(|_| "X-Road-Id must be printable ASCII")?;
            if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN {
                return Err("X-Road-Id must be 1 to 128 characters");
            }
            if !id.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                return Err("X-Road-Id must be printable ASCII without spaces");
            }
            Ok(id.to_owned())
        }
    }
}

/// `X-Road-Request-Id`: the id X-Road's consumer side gives each exchange (a UUID),
/// sent to the provider and returned to the client.
pub const X_ROAD_REQUEST_ID: &str = "x-road-request-id";

/// Fields X-Road leaves out of the REST request it hashes and forwards
/// (`RestMessage.SKIPPED_HEADERS`, plus `x-road-request-id` and
/// `x-road-request-hash`, which `RestRequest` replaces with its own).
pub const XROAD_SKIPPED: [&str; 15] = [
    "transfer-encoding",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "connection",
    "user-agent",
    "host",
    "content-length",
    "server",
    "expect",
    X_ROAD_REQUEST_ID,
    X_ROAD_REQUEST_HASH,
];

/// The REST request as X-Road serializes it for its hash (`RestRequest.toByteArray`,
/// `RestMessage.serializeHeaders`): `VERB CRLF rawPath[?rawQuery] CRLF`, then
/// `Name:Value CRLF` for each client field in arrival order except
/// [`XROAD_SKIPPED`], then `x-road-request-id:ID CRLF` and, when the client sent no
/// `X-Road-Id`, `x-road-id:ID CRLF` (`RestMessage.setQueryId`). Names are as the
/// gateway receives them: lower case (HTTP/2's form; hyper folds HTTP/1.1 names).
pub fn xroad_request_head(req: &http::request::Parts, request_id: &str, message_id: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(req.method.as_str().as_bytes());
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &req.headers {
        if XROAD_SKIPPED.contains(&name.as_str()) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.push(b':');
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(X_ROAD_REQUEST_ID.as_bytes());
    head.push(b':');
    head.extend_from_slice(request_id.as_bytes());
    head.extend_from_slice(b"\r\n");
    if !req.headers.contains_key(X_ROAD_ID) {
        head.extend_from_slice(X_ROAD_ID.as_bytes());
        head.push(b':');
        head.extend_from_slice(message_id.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head
}

/// SHA-512 of [`xroad_request_head`].
pub fn request_head_digest(req: &http::request::Parts, request_id: &str, message_id: &str) -> [u8; 64] {
    Sha512::digest(xroad_request_head(req, request_id, message_id)).into()
}

/// `X-Road-Request-Hash` as X-Road computes it (`ServerRestMessageProcessor`,
/// `ClientRestMessageProcessor.checkConsistency`): base64(SHA-512(SHA-512(head) ‖
/// SHA-512(body))), or base64(SHA-512(head)) when the request has no body.
pub fn xroad_request_hash(head: &[u8; 64], body: &[u8; 64]) -> HeaderValue {
    // Computed once: it used to cost a SHA-512 per forwarded request.
    static EMPTY: std::sync::LazyLock<[u8; 64]> = std::sync::LazyLock::new(|| Sha512::digest(b"").into());
    if *body == *EMPTY {
        return base64_value(head);
    }
    request_hash(head, body)
}

/// `base64(SHA-512(SHA-512(head) ‖ SHA-512(body)))`.
pub fn request_hash(head: &[u8; 64], body: &[u8; 64]) -> HeaderValue {
    let mut h = Sha512::new();
    h.update(head);
    h.update(body);
    base64_value(&h.finalize())
}

/// A 64-byte digest as a base64 header value, encoded on the stack (one
/// allocation, the value's own).
fn base64_value(digest: &[u8]) -> HeaderValue {
    let mut out = [0u8; 88];
    let n = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut out).unwrap_or(0);
    HeaderValue::from_bytes(&out[..n]).expect("base64 is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn strips_hop_by_hop_and_connection_named_fields() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn protocol_fields_named_by_connection_stay() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("X-Road-Client, qaqpa-signature, x-other"));
        h.insert(X_ROAD_CLIENT, HeaderValue::from_static("KZ/GOV/1/a"));
        h.insert(QAQPA_SIGNATURE, HeaderValue::from_static("sig"));
        h.insert("x-other", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert!(h.contains_key(X_ROAD_CLIENT) && h.contains_key(QAQPA_SIGNATURE));
    }

    #[test]
    fn head_check_refuses_repeats_protocol_connection_odd_framing_and_no_host() {
        let req = |lines: &[(&str, &str)]| {
            let mut b = Request::post("/r1/x");
            for (n, v) in lines {
                b = b.header(*n, *v);
            }
            b.body(()).unwrap()
        };
        let host = ("host", "gw");
        let ok = req(&[host, ("x-road-client", "A"), ("transfer-encoding", " Chunked "), ("connection", "keep-alive")]);
        assert_eq!(check_head(&ok), Ok(()));
        for (name, shown) in ONCE {
            let twice = req(&[host, (name, "1"), (name, "2")]);
            let want = if name == "host" { HeadError::Repeated("Host") } else { HeadError::Repeated(shown) };
            assert_eq!(check_head(&twice), Err(want), "{name}");
        }
        for connection in ["X-Road-Client", "close, qaqpa-signature", "x-road-userid ,keep-alive"] {
            let r = req(&[host, ("connection", connection)]);
            assert_eq!(check_head(&r), Err(HeadError::ConnectionNamesProtocolField), "{connection}");
        }
        for te in ["gzip, chunked", "chunked, chunked", "identity", "xchunked", ""] {
            let r = req(&[host, ("transfer-encoding", te)]);
            assert_eq!(check_head(&r), Err(HeadError::TransferEncoding), "{te}");
        }
        let two_te = req(&[host, ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]);
        assert_eq!(check_head(&two_te), Err(HeadError::TransferEncoding));
        assert_eq!(check_head(&req(&[])), Err(HeadError::MissingHost));
        let mut h2 = req(&[]);
        *h2.version_mut() = http::Version::HTTP_2;
        assert_eq!(check_head(&h2), Ok(()), "HTTP/2 carries :authority instead");
    }

    #[test]
    fn appends_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_forwarded(&mut h, "127.0.0.1:5000".parse().unwrap(), true);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h[header::FORWARDED], "for=127.0.0.1;proto=https");
        add_forwarded(&mut h, "[::1]:5000".parse().unwrap(), false);
        assert_eq!(h[header::FORWARDED], "for=127.0.0.1;proto=https, for=\"[::1]\";proto=http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1, ::1", "IPv6 bare in X-Forwarded-For");
        for (addr, shown) in
            [("192.168.10.254:1", "192.168.10.254"), ("0.0.0.0:1", "0.0.0.0"), ("[2001:db8::7]:1", "2001:db8::7")]
        {
            let mut h = HeaderMap::new();
            add_forwarded(&mut h, addr.parse().unwrap(), false);
            assert_eq!(h["x-forwarded-for"], shown);
            let quoted = if shown.contains(':') { format!("\"[{shown}]\"") } else { shown.to_owned() };
            assert_eq!(h[header::FORWARDED], format!("for={quoted};proto=http").as_str());
        }
    }

    #[test]
    fn message_ids() {
        let mut h = HeaderMap::new();
        let generated = message_id(&h).unwrap();
        assert_eq!(uuid::Uuid::parse_str(&generated).unwrap().get_version_num(), 7);
        h.insert(X_ROAD_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(message_id(&h).unwrap(), "abc-123");
        h.insert(X_ROAD_ID, HeaderValue::from_str(&"a".repeat(129)).unwrap());
        assert!(message_id(&h).is_err());
        h.insert(X_ROAD_ID, HeaderValue::from_static("a b"));
        assert!(message_id(&h).is_err());
        h.insert(X_ROAD_ID, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert!(message_id(&h).is_err());
    }

    #[test]
    fn request_head_is_x_road_s_serialization() {
        let req = Request::get("/r1/KZ/GOV/1/sub/svc/path?q=1&r=%20")
            .header("accept", "application/json")
            .header("user-agent", "curl/8")
            .header("host", "gw")
            .header("x-road-request-id", "forged")
            .header("x-road-client", "KZ/GOV/2/c")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let head = xroad_request_head(&req, "r-1", "KZ-m1");
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET\r\n/r1/KZ/GOV/1/sub/svc/path?q=1&r=%20\r\naccept:application/json\r\nx-road-client:KZ/GOV/2/c\r\nx-road-request-id:r-1\r\nx-road-id:KZ-m1\r\n"
        );
        // A client's own X-Road-Id is hashed where it came, and not added again.
        let with_id = Request::post("/r1/a").header("x-road-id", "mine").body(()).unwrap().into_parts().0;
        let head = String::from_utf8(xroad_request_head(&with_id, "r-2", "mine")).unwrap();
        assert_eq!(head, "POST\r\n/r1/a\r\nx-road-id:mine\r\nx-road-request-id:r-2\r\n");
    }

    #[test]
    fn request_hash_skips_the_body_digest_when_there_is_no_body() {
        let a = Request::get("/r1/x?q=1").header("x-road-client", "A").body(()).unwrap().into_parts().0;
        let b = Request::get("/r1/x?q=2").header("x-road-client", "A").body(()).unwrap().into_parts().0;
        let (ha, hb) = (request_head_digest(&a, "r", "m"), request_head_digest(&b, "r", "m"));
        assert_ne!(ha, hb);
        let empty: [u8; 64] = Sha512::digest(b"").into();
        let body = [2u8; 64];
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(xroad_request_hash(&ha, &empty), b64.encode(ha).as_str());
        let mut both = Sha512::new();
        both.update(ha);
        both.update(body);
        assert_eq!(xroad_request_hash(&ha, &body), b64.encode(both.finalize()).as_str());
        assert_eq!(request_hash(&ha, &body).len(), 88);
    }
}
