//! `u32 length ‖ metadata JSON ‖ body`: how the mailbox stores a message or event
//! as one value (a redb row, a JetStream message). The body is never copied into
//! the JSON, so a stored SOAP envelope comes back byte for byte.

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Room for the metadata JSON of a typical message; more grows the buffer once.
const META_ROOM: usize = 512;

pub fn frame<M: Serialize>(meta: &M, body: &[u8]) -> Bytes {
    // The JSON is written in place after a length slot filled in afterwards: one
    // buffer and no copy of the metadata, on every durable send.
    let mut out = BytesMut::with_capacity(4 + META_ROOM + body.len()).writer();
    out.get_mut().put_u32(0);
    if serde_json::to_writer(&mut out, meta).is_err() {
        out.get_mut().truncate(4);
    }
    let mut out = out.into_inner();
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.put_slice(body);
    out.freeze()
}

/// The metadata and body of a framed value; `None` for anything damaged (short,
/// a length past the end, metadata that is not the expected JSON).
pub fn unframe<M: DeserializeOwned>(payload: &Bytes) -> Option<(M, Bytes)> {
    let len = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let json = payload.get(4..4usize.checked_add(len)?)?;
    let meta = serde_json::from_slice(json).ok()?;
    Some((meta, payload.slice(4 + len..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn round_trips_and_refuses_every_damage() {
        let meta = json!({ "mid": "m-1", "headers": [["content-type", "text/xml"]] });
        let framed = frame(&meta, b"<body/>");
        assert_eq!(unframe::<Value>(&framed), Some((meta, Bytes::from_static(b"<body/>"))));
        for cut in 0..framed.len() - b"<body/>".len() {
            assert!(unframe::<Value>(&framed.slice(..cut)).is_none(), "cut at {cut}");
        }
        for len in [u32::MAX, u32::MAX - 3, framed.len() as u32] {
            let mut bad = framed.to_vec();
            bad[..4].copy_from_slice(&len.to_be_bytes());
            assert!(unframe::<Value>(&Bytes::from(bad)).is_none(), "length {len}");
        }
        assert!(unframe::<Value>(&Bytes::new()).is_none());
    }
}
