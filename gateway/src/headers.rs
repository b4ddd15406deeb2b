//! Header rules of the REST protocol (DESIGN §4) and of a well-behaved proxy
//! (RFC 9110 §7.6: hop-by-hop fields end at each hop).

use std::net::SocketAddr;

use base64::Engine;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha512};

pub const X_ROAD_CLIENT: &str = "x-road-client";
pub const X_ROAD_ID: &str = "x-road-id";
pub const X_ROAD_USER_ID: &str = "x-road-userid";
pub const X_ROAD_ISSUE: &str = "x-road-issue";
pub const X_ROAD_REQUEST_HASH: &str = "x-road-request-hash";

/// Longest client-chosen message id (DESIGN §3).
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

/// Removes hop-by-hop fields, including those the `Connection` field names.
/// `Transfer-Encoding` goes too: hyper frames each hop's body itself.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
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
    let ip = peer.ip();
    let proto = if tls { "https" } else { "http" };
    append_list(headers, HeaderName::from_static("x-forwarded-for"), &ip.to_string());
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(proto));
    let node = match ip {
        std::net::IpAddr::V4(v4) => format!("for={v4};proto={proto}"),
        std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto={proto}"),
    };
    append_list(headers, header::FORWARDED, &node);
}

fn append_list(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {value}"),
        _ => value.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
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

/// SHA-512 over the request as received: `METHOD SP target LF` then each header
/// field as `name: value LF` in arrival order (names lower-case, as HTTP/2 sends them).
/// Together with the body digest it forms `X-Road-Request-Hash`.
pub fn request_head_digest(req: &http::request::Parts) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(req.method.as_str());
    h.update(b" ");
    h.update(req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    h.update(b"\n");
    for (name, value) in &req.headers {
        h.update(name.as_str());
        h.update(b": ");
        h.update(value.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

/// `base64(SHA-512(SHA-512(head) ‖ SHA-512(body)))`.
pub fn request_hash(head: &[u8; 64], body: &[u8; 64]) -> HeaderValue {
    let mut h = Sha512::new();
    h.update(head);
    h.update(body);
    let encoded = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    HeaderValue::from_str(&encoded).expect("base64 is a valid header value")
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
    fn appends_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_forwarded(&mut h, "127.0.0.1:5000".parse().unwrap(), true);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h[header::FORWARDED], "for=127.0.0.1;proto=https");
        add_forwarded(&mut h, "[::1]:5000".parse().unwrap(), false);
        assert_eq!(h[header::FORWARDED], "for=127.0.0.1;proto=https, for=\"[::1]\";proto=http");
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
    fn request_hash_depends_on_head_and_body() {
        let a = Request::get("/r1/x?q=1").header("x-road-client", "A").body(()).unwrap().into_parts().0;
        let b = Request::get("/r1/x?q=2").header("x-road-client", "A").body(()).unwrap().into_parts().0;
        let (ha, hb) = (request_head_digest(&a), request_head_digest(&b));
        assert_ne!(ha, hb);
        let body1 = [1u8; 64];
        let body2 = [2u8; 64];
        assert_ne!(request_hash(&ha, &body1), request_hash(&ha, &body2));
        assert_eq!(request_hash(&ha, &body1), request_hash(&ha, &body1));
        assert_eq!(request_hash(&ha, &body1).len(), 88);
    }
}
