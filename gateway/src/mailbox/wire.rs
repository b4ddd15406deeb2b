//! How a stored asynchronous message travels over HTTP, for the faces that take and
//! give messages and for the push worker alike: the headers that name it and the
//! client headers kept with it.

use http::{HeaderMap, HeaderValue};

pub const MESSAGE_ID: &str = "qaqpa-message-id";
pub const ATTEMPT: &str = "qaqpa-attempt";
pub const STATUS: &str = "qaqpa-status";
/// An event's topic and sequence number.
pub const TOPIC: &str = "qaqpa-topic";
pub const SEQ: &str = "qaqpa-event-seq";
/// Headers kept with an async message and given back on delivery.
const CARRIED: [&str; 4] = ["content-type", "x-road-userid", "x-road-issue", "soapaction"];

pub fn put_carried(h: &mut HeaderMap, carried: &[(String, String)]) {
    for (name, value) in carried {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            h.insert(name, value);
        }
    }
}

/// The client headers a message keeps.
pub fn carried(headers: &HeaderMap) -> Vec<(String, String)> {
    pick(headers, &CARRIED)
}

pub fn pick(headers: &HeaderMap, names: &[&str]) -> Vec<(String, String)> {
    names.iter().filter_map(|name| Some(((*name).to_owned(), headers.get(*name)?.to_str().ok()?.to_owned()))).collect()
}
