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
