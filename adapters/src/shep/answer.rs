//! What the gateway reads of a SyncChannel provider's answer when it built the
//! request itself (a REST or X-Road SOAP client calling a ШЭП-speaking provider):
//! the status, where `responseData/data` lies, or the fault. And the namespace
//! declarations a fragment needs when it is moved into another envelope (an X-Road
//! Body's `tax:GetDebt` whose `tax` prefix is declared on the Envelope).

use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{ShepError, MAX_FIELD_LEN, SYNC_TYPES_NS};
use crate::soap::{self, Envelope};

/// A SyncChannel answer: `SendMessageResponse`, or a SOAP fault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncAnswer {
    /// `responseInfo/status/code` and `message`.
    pub status_code: Option<String>,
    pub status_message: Option<String>,
    /// Byte range of the content of `responseData/data`.
    pub data: Option<Range<usize>>,
    /// Byte range of the whole `data` element.
    pub data_element: Option<Range<usize>>,
    /// The answer is a SOAP fault.
    pub fault: Option<AnswerFault>,
}

/// A provider's fault: `faultcode`, `faultstring`, and ШЭП's `errorCode` /
/// `errorMessage` from the detail when it has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFault {
    pub code: String,
    pub string: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Reads the answer whose envelope the hardened SOAP reader has already read.
pub fn read_sync_answer(input: &[u8], envelope: &Envelope) -> Result<SyncAnswer, ShepError> {
    let fault = match envelope.operation.as_ref() {
        Some((ns, local)) if ns == SYNC_TYPES_NS && local == "SendMessageResponse" => false,
        Some((ns, local)) if ns == envelope.version.namespace() && local == "Fault" => true,
        Some((ns, local)) => return Err(ShepError::NotShep(format!("{{{ns}}}{local}"))),
        None => return Err(ShepError::NotShep("nothing".into())),
    };
    let base = envelope.body.start;
    let mut reader = Reader::from_reader(&input[envelope.body.clone()]);
    reader.config_mut().check_end_names = true;
    let mut path: Vec<String> = Vec::new();
    let mut answer = SyncAnswer::default();
    let mut faulted = AnswerFault::default();
    // Depth of the `data` element while inside it, and where its content starts.
    let mut data: Option<(usize, usize)> = None;
    let mut text = String::new();
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| ShepError::Malformed(e.to_string()))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                text.clear();
                if data.is_some() {
                    if !empty {
                        path.push(String::new());
                    }
                    continue;
                }
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                path.push(local);
                if !fault && is(&path, &["SendMessageResponse", "response", "responseData", "data"]) {
                    if answer.data_element.is_some() {
                        return Err(ShepError::Duplicate("data"));
                    }
                    answer.data_element = Some(base + before..base + after);
                    answer.data = Some(base + after..base + after);
                    if !empty {
                        data = Some((path.len(), base + after));
                    }
                }
                if empty {
                    path.pop();
                }
            }
            Event::End(_) => {
                if let Some((depth, start)) = data {
                    if path.len() == depth {
                        answer.data = Some(start..base + before);
                        if let Some(el) = answer.data_element.as_mut() {
                            el.end = base + after;
                        }
                        data = None;
                    }
                    path.pop();
                    continue;
                }
                let value = std::mem::take(&mut text).trim().to_owned();
                if fault {
                    match path.as_slice() {
                        [_, f] if f == "faultcode" => faulted.code = value,
                        [_, f] if f == "faultstring" => faulted.string = value,
                        [_, d, _, f] if d == "detail" && f == "errorCode" => faulted.error_code = Some(value),
                        [_, d, _, f] if d == "detail" && f == "errorMessage" => faulted.error_message = Some(value),
                        _ => {}
                    }
                } else if is(&path, &["SendMessageResponse", "response", "responseInfo", "status", "code"]) {
                    answer.status_code = Some(value);
                } else if is(&path, &["SendMessageResponse", "response", "responseInfo", "status", "message"]) {
                    answer.status_message = Some(value);
                }
                path.pop();
            }
            Event::Text(ref t) if data.is_none() => {
                let s = t.xml_content().map_err(|e| ShepError::Malformed(e.to_string()))?;
                bounded_push(&mut text, &s);
            }
            Event::CData(ref t) if data.is_none() => bounded_push(&mut text, &String::from_utf8_lossy(t)),
            Event::GeneralRef(ref r) if data.is_none() => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(|e| ShepError::Malformed(e.to_string()))?
                } else {
                    soap::predefined_entity(r.as_ref())
                };
                if let Some(c) = c {
                    bounded_push(&mut text, c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if fault {
        answer.fault = Some(faulted);
    }
    Ok(answer)
}

fn is(path: &[String], want: &[&str]) -> bool {
    path.len() == want.len() && path.iter().zip(want).all(|(a, b)| a == b)
}

/// Status texts are for messages: past the field limit they are cut, not refused.
fn bounded_push(text: &mut String, s: &str) {
    for c in s.chars() {
        if text.len() + c.len_utf8() > MAX_FIELD_LEN {
            return;
        }
        text.push(c);
    }
}

/// The content of `data`, or of the one `…Response` element that is all of it.
pub fn response_content(answer: &[u8], data: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let mut reader = Reader::from_reader(&answer[data.clone()]);
    let mut depth = 0usize;
    let (mut inner, mut elements) = (None, 0);
    loop {
        let before = reader.buffer_position() as usize;
        let Ok(event) = reader.read_event() else { return data };
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(e) => {
                if depth == 0 {
                    elements += 1;
                    let named = e.local_name().as_ref().ends_with(b"Response");
                    inner = named.then_some((data.start + after, 0));
                }
                depth += 1;
            }
            Event::End(_) => {
                depth -= 1;
                if depth == 0 {
                    if let Some((start, _)) = inner {
                        inner = Some((start, data.start + before));
                    }
                }
            }
            Event::Empty(_) if depth == 0 => {
                elements += 1;
                inner = None;
            }
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => return data,
            Event::Eof => break,
            _ => {}
        }
    }
    match inner {
        Some((start, end)) if elements == 1 && end >= start => start..end,
        _ => data,
    }
}

/// The namespace declarations in scope at byte offset `at` of `input` (just after
/// an element's start tag): those of every element open there, the innermost
/// winning, in document order. `("", uri)` is a default namespace. The input has
/// passed the hardened reader, so this reads a bounded, well-formed prefix.
pub fn namespaces_in_scope(input: &[u8], at: usize) -> Vec<(String, String)> {
    let mut reader = Reader::from_reader(&input[..at.min(input.len())]);
    let mut open: Vec<Vec<(String, String)>> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let declared = e
                    .attributes()
                    .filter_map(Result::ok)
                    .filter_map(|a| {
                        let key = a.key.as_ref();
                        let prefix = match key {
                            b"xmlns" => "",
                            _ => std::str::from_utf8(key.strip_prefix(b"xmlns:")?).ok()?,
                        };
                        let uri = a.unescape_value().ok()?.into_owned();
                        Some((prefix.to_owned(), uri))
                    })
                    .collect();
                open.push(declared);
            }
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (prefix, uri) in open.into_iter().flatten() {
        out.retain(|(p, _)| *p != prefix);
        out.push((prefix, uri));
    }
    out
}

/// `fragment` (an element moved out of its document) with `xmlns="uri"` declared on
/// its first element when that element declares no default namespace of its own:
/// what its unprefixed names meant where it came from. Unchanged when it does, or
/// when it does not start with an element.
pub fn with_default_namespace(fragment: &str, uri: &str) -> String {
    let mut reader = Reader::from_reader(fragment.as_bytes());
    loop {
        let event = reader.read_event();
        let end = reader.buffer_position() as usize;
        let (e, empty) = match event {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::Text(_) | Event::Comment(_)) => continue,
            _ => return fragment.to_owned(),
        };
        if e.attributes().filter_map(Result::ok).any(|a| a.key.as_ref() == b"xmlns") {
            return fragment.to_owned();
        }
        let close = if empty { end - 2 } else { end - 1 };
        let uri = soap::escape(uri).replace('"', "&quot;");
        return format!(r#"{} xmlns="{uri}"{}"#, &fragment[..close], &fragment[close..]);
    }
}

/// Declarations as attributes (` xmlns:p="uri"`), the default one left out when
/// `with_default` is false (an unqualified ШЭП element such as `data` must stay
/// in no namespace).
pub fn declarations(namespaces: &[(String, String)], with_default: bool) -> String {
    let mut out = String::new();
    for (prefix, uri) in namespaces {
        let uri = soap::escape(uri).replace('"', "&quot;");
        match prefix.as_str() {
            "" if with_default => out.push_str(&format!(r#" xmlns="{uri}""#)),
            "" => {}
            p => out.push_str(&format!(r#" xmlns:{p}="{uri}""#)),
        }
    }
    out
}
