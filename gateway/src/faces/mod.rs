//! Faces: one wire protocol each. A face recognises its requests (the dispatcher
//! asks), reads its envelope, and renders answers and errors in its own format;
//! below it runs the one exchange of [`crate::exchange`].

pub mod async_events;
pub mod async_mailbox;
pub mod async_soap;
pub mod contracts;
pub mod shep_async;
pub mod shep_sync;
pub mod shep_verify;
pub mod smev3;
pub mod xroad_rest;
pub mod xroad_soap;

/// A SOAP face's envelope bytes, whole: refused past `limit` by the declared length
/// at once, else while reading (never buffered beyond it); `too_large` is the face's
/// wording of the refusal.
pub(crate) async fn read_envelope_bytes(
    headers: &http::HeaderMap,
    body: crate::body::client::ClientBody,
    limit: usize,
    too_large: impl Fn() -> crate::error::GatewayError,
) -> Result<bytes::Bytes, crate::error::GatewayError> {
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    crate::body::collect_bounded(body, limit).await.map_err(|e| match e {
        crate::body::Collect::TooLarge => too_large(),
        crate::body::Collect::CutOff => {
            crate::error::GatewayError::new(qaqpa_adapters::ErrorCode::BadRequest, "the request body was cut off")
        }
    })
}

/// A query string's parameters, percent-decoded (`+` as space); the last of a
/// repeated name wins.
pub fn query_params(query: &str) -> std::collections::HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (!k.is_empty()).then(|| (decode(k), decode(v)))
        })
        .collect()
}
