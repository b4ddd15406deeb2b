//! W3C Exclusive XML Canonicalization 1.0 (with and without comments, with an
//! InclusiveNamespaces PrefixList) of one element's subtree, over the quick-xml event
//! stream of the whole document (the element's namespace context comes from its
//! ancestors).
//!
//! Written here rather than taken from a crate: the maintained pure-Rust XML security
//! crates bring their own XML trees and crypto stacks, while the gateway needs only
//! this one transform over the buffer it already holds, on the same parser as its
//! envelope reader. Documents with a DOCTYPE or entity references beyond the five
//! predefined ones are refused (the gateway never expands entities).

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum C14nError {
    #[error("malformed XML at byte {at}: {message}")]
    Malformed { at: usize, message: String },
    #[error("no element starts at byte {0}")]
    NoElement(usize),
    #[error("a DOCTYPE is not allowed")]
    Doctype,
    #[error("undeclared namespace prefix {0:?}")]
    UnboundPrefix(String),
    #[error("unknown entity &{0};")]
    Entity(String),
}

/// Which flavour of exclusive canonicalization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct C14nOptions {
    pub with_comments: bool,
    /// InclusiveNamespaces PrefixList: prefixes treated as by inclusive c14n
    /// (`#default` for the default namespace).
    pub inclusive_prefixes: Vec<String>,
}

/// A namespace binding in scope: prefix ("" for the default) and URI ("" undeclares).
#[derive(Clone)]
struct Binding {
    prefix: String,
    uri: String,
}

/// Canonicalizes the element whose start tag begins at byte `start` of `doc`, leaving
/// out the subtree of the element starting at `exclude` (the enveloped-signature
/// transform), appending the result to `out`.
pub fn canonicalize(
    doc: &[u8],
    start: usize,
    exclude: Option<usize>,
    options: &C14nOptions,
    out: &mut Vec<u8>,
) -> Result<(), C14nError> {
    let mut reader = Reader::from_reader(doc);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = true;
    config.trim_text(false);
    // Bindings in document scope, with the scope length at each open element.
    let mut scope: Vec<Binding> = Vec::new();
    let mut scope_marks: Vec<usize> = Vec::new();
    // What the output has declared so far, per open output element.
    let mut rendered: Vec<Binding> = Vec::new();
    let mut rendered_marks: Vec<usize> = Vec::new();
    // Depth (in open elements) of the apex and of an excluded subtree, once entered.
    let mut apex_depth: Option<usize> = None;
    let mut excluded_depth: Option<usize> = None;
    let malformed = |reader: &Reader<&[u8]>, e: &dyn std::fmt::Display| C14nError::Malformed {
        at: reader.error_position() as usize,
        message: e.to_string(),
    };
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| malformed(&reader, &e))?;
        let depth = scope_marks.len();
        let inside = apex_depth.is_some() && excluded_depth.is_none();
        match event {
            Event::Start(e) => {
                scope_marks.push(scope.len());
                let attributes = read_attributes(&e, &reader)?;
                for (name, value) in &attributes {
                    if let Some(prefix) = declared_prefix(name) {
                        scope.push(Binding { prefix: prefix.to_owned(), uri: value.clone() });
                    }
                }
                if apex_depth.is_none() && at == start {
                    apex_depth = Some(depth);
                } else if apex_depth.is_none() && at > start {
                    return Err(C14nError::NoElement(start));
                }
                if excluded_depth.is_none() && Some(at) == exclude && apex_depth.is_some() {
                    excluded_depth = Some(depth);
                }
                if apex_depth.is_some() && excluded_depth.is_none() {
                    rendered_marks.push(rendered.len());
                    render_start(&e, &attributes, &scope, &mut rendered, options, out)?;
                }
            }
            Event::End(e) => {
                let Some(mark) = scope_marks.pop() else {
                    return Err(malformed(&reader, &"end tag without a start"));
                };
                scope.truncate(mark);
                let closing = depth - 1;
                if excluded_depth == Some(closing) {
                    excluded_depth = None;
                    continue;
                }
                if inside {
                    if let Some(mark) = rendered_marks.pop() {
                        rendered.truncate(mark);
                    }
                    out.extend_from_slice(b"</");
                    out.extend_from_slice(e.name().as_ref());
                    out.push(b'>');
                    if apex_depth == Some(closing) {
                        return Ok(());
                    }
                }
            }
            Event::Text(t) if inside => escape_text(&normalize_newlines(&t), out),
            Event::CData(t) if inside => escape_text(&normalize_newlines(&t), out),
            Event::GeneralRef(r) if inside => {
                let c = match r.resolve_char_ref().map_err(|e| malformed(&reader, &e))? {
                    Some(c) => c,
                    None => qaqpa_adapters::soap::predefined_entity(&r)
                        .ok_or_else(|| C14nError::Entity(String::from_utf8_lossy(&r).into_owned()))?,
                };
                let mut buf = [0u8; 4];
                escape_text(c.encode_utf8(&mut buf).as_bytes(), out);
            }
            Event::Comment(c) if inside && options.with_comments => {
                out.extend_from_slice(b"<!--");
                out.extend_from_slice(&normalize_newlines(&c));
                out.extend_from_slice(b"-->");
            }
            Event::PI(p) if inside => {
                out.extend_from_slice(b"<?");
                out.extend_from_slice(&normalize_newlines(&p));
                out.extend_from_slice(b"?>");
            }
            Event::DocType(_) => return Err(C14nError::Doctype),
            Event::Eof => return Err(C14nError::NoElement(start)),
            _ => {}
        }
    }
}

/// A start tag's attributes (namespace declarations included) with values unescaped
/// and normalized as an XML processor reports them.
pub(crate) fn read_attributes(e: &BytesStart<'_>, reader: &Reader<&[u8]>) -> Result<Vec<(String, String)>, C14nError> {
    let mut out = Vec::new();
    for attr in e.attributes() {
        let attr = attr
            .map_err(|err| C14nError::Malformed { at: reader.buffer_position() as usize, message: err.to_string() })?;
        let name = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        out.push((name, attribute_value(&attr.value)?));
    }
    Ok(out)
}

/// Attribute-value normalization for CDATA attributes (XML 1.0 §3.3.3): literal
/// whitespace becomes a space, references become their character.
fn attribute_value(raw: &[u8]) -> Result<String, C14nError> {
    let text = String::from_utf8_lossy(&normalize_newlines(raw)).replace(['\t', '\n'], " ");
    let mut value = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(amp) = rest.find('&') {
        value.push_str(&rest[..amp]);
        let tail = &rest[amp + 1..];
        let semi = tail.find(';').ok_or_else(|| C14nError::Entity(tail.chars().take(16).collect()))?;
        let name = &tail[..semi];
        let c = if let Some(hex) = name.strip_prefix("#x") {
            u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
        } else if let Some(dec) = name.strip_prefix('#') {
            dec.parse::<u32>().ok().and_then(char::from_u32)
        } else {
            qaqpa_adapters::soap::predefined_entity(name.as_bytes())
        };
        value.push(c.ok_or_else(|| C14nError::Entity(name.to_owned()))?);
        rest = &tail[semi + 1..];
    }
    value.push_str(rest);
    Ok(value)
}

/// The prefix an attribute declares (`xmlns` → "", `xmlns:p` → "p"), if it is a declaration.
fn declared_prefix(name: &str) -> Option<&str> {
    if name == "xmlns" {
        Some("")
    } else {
        name.strip_prefix("xmlns:")
    }
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

fn lookup<'a>(bindings: &'a [Binding], prefix: &str) -> Option<&'a str> {
    bindings.iter().rev().find(|b| b.prefix == prefix).map(|b| b.uri.as_str())
}

fn render_start(
    e: &BytesStart<'_>,
    attributes: &[(String, String)],
    scope: &[Binding],
    rendered: &mut Vec<Binding>,
    options: &C14nOptions,
    out: &mut Vec<u8>,
) -> Result<(), C14nError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    // Prefixes visibly utilized: the element's own, and those of its prefixed attributes.
    let mut utilized: Vec<&str> = vec![prefix_of(&name)];
    let mut plain: Vec<(&str, &str, &str)> = Vec::new(); // (namespace URI, local name, qname)
    for (attr, _) in attributes {
        if declared_prefix(attr).is_some() {
            continue;
        }
        let prefix = prefix_of(attr);
        let uri = match prefix {
            "" => "",
            "xml" => "http://www.w3.org/XML/1998/namespace",
            p => lookup(scope, p).filter(|u| !u.is_empty()).ok_or_else(|| C14nError::UnboundPrefix(p.to_owned()))?,
        };
        if !prefix.is_empty() {
            utilized.push(prefix);
        }
        let local = attr.split_once(':').map_or(attr.as_str(), |(_, l)| l);
        plain.push((uri, local, attr));
    }
    for p in &options.inclusive_prefixes {
        utilized.push(if p == "#default" { "" } else { p.as_str() });
    }
    // Declarations to output: sorted by prefix, the default first.
    let mut declarations: BTreeMap<&str, &str> = BTreeMap::new();
    for prefix in utilized {
        if prefix == "xml" || declarations.contains_key(prefix) {
            continue;
        }
        let uri = lookup(scope, prefix).unwrap_or("");
        if uri.is_empty() && !prefix.is_empty() {
            // A prefix in the inclusive list but not in scope: nothing to declare.
            if options.inclusive_prefixes.iter().any(|p| p == prefix) {
                continue;
            }
            return Err(C14nError::UnboundPrefix(prefix.to_owned()));
        }
        let already = lookup(rendered, prefix).unwrap_or("");
        if already != uri {
            declarations.insert(prefix, uri);
        }
    }
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    for (prefix, uri) in &declarations {
        if prefix.is_empty() {
            out.extend_from_slice(b" xmlns=\"");
        } else {
            out.extend_from_slice(b" xmlns:");
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(b"=\"");
        }
        escape_attribute(uri, out);
        out.push(b'"');
    }
    for (prefix, uri) in declarations {
        rendered.push(Binding { prefix: prefix.to_owned(), uri: uri.to_owned() });
    }
    plain.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (_, _, qname) in plain {
        let value = attributes.iter().find(|(n, _)| n == qname).map_or("", |(_, v)| v.as_str());
        out.push(b' ');
        out.extend_from_slice(qname.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_attribute(value, out);
        out.push(b'"');
    }
    out.push(b'>');
    Ok(())
}

/// XML 1.0 §2.11: CR LF and lone CR in literal content read as LF.
fn normalize_newlines(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !raw.contains(&b'\r') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\r' {
            out.push(b'\n');
            if raw.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(raw[i]);
        }
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

fn escape_text(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

fn escape_attribute(value: &str, out: &mut Vec<u8>) {
    for &b in value.as_bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#x9;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests;
