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
/// transform), appending the result to `out`. Reads the document from its start to
/// learn the element's namespace context.
pub fn canonicalize(
    doc: &[u8],
    start: usize,
    exclude: Option<usize>,
    options: &C14nOptions,
    out: &mut Vec<u8>,
) -> Result<(), C14nError> {
    run(doc, 0, Vec::new(), start, exclude, options, out)
}

/// The same, given the namespace declarations in scope at the element (prefix and
/// URI, outermost first, as its ancestors declare them): reads only the element's
/// own bytes, so several elements of one document cost one pass between them.
pub fn canonicalize_in_context(
    doc: &[u8],
    start: usize,
    inherited: &[(String, String)],
    exclude: Option<usize>,
    options: &C14nOptions,
    out: &mut Vec<u8>,
) -> Result<(), C14nError> {
    let scope = inherited.iter().map(|(prefix, uri)| Binding { prefix: prefix.clone(), uri: uri.clone() }).collect();
    run(doc, start.min(doc.len()), scope, start, exclude, options, out)
}

fn run(
    doc: &[u8],
    from: usize,
    mut scope: Vec<Binding>,
    start: usize,
    exclude: Option<usize>,
    options: &C14nOptions,
    out: &mut Vec<u8>,
) -> Result<(), C14nError> {
    let mut reader = Reader::from_reader(&doc[from..]);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = true;
    config.trim_text(false);
    // Bindings in document scope (`scope`), with the scope length at each open element.
    let mut scope_marks: Vec<usize> = Vec::new();
    // What the output has declared so far, per open output element.
    let mut rendered: Vec<Binding> = Vec::new();
    let mut rendered_marks: Vec<usize> = Vec::new();
    // Depth (in open elements) of the apex and of an excluded subtree, once entered.
    let mut apex_depth: Option<usize> = None;
    let mut excluded_depth: Option<usize> = None;
    let malformed = |reader: &Reader<&[u8]>, e: &dyn std::fmt::Display| C14nError::Malformed {
        at: from + reader.error_position() as usize,
        message: e.to_string(),
    };
    loop {
        let at = from + reader.buffer_position() as usize;
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
    if e.attributes_raw().iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
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
    if !raw.iter().any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r')) {
        return Ok(String::from_utf8_lossy(raw).into_owned());
    }
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

/// Adds `prefix`'s declaration to those the element outputs, if it is not there yet
/// and the output context lacks it (an inclusive-list prefix out of scope is skipped).
fn consider<'a>(
    prefix: &'a str,
    inclusive: bool,
    scope: &'a [Binding],
    rendered: &[Binding],
    declarations: &mut Vec<(&'a str, &'a str)>,
) -> Result<(), C14nError> {
    if prefix == "xml" || declarations.iter().any(|(p, _)| *p == prefix) {
        return Ok(());
    }
    let uri = lookup(scope, prefix).unwrap_or("");
    if uri.is_empty() && !prefix.is_empty() {
        return if inclusive { Ok(()) } else { Err(C14nError::UnboundPrefix(prefix.to_owned())) };
    }
    if lookup(rendered, prefix).unwrap_or("") != uri {
        declarations.push((prefix, uri));
    }
    Ok(())
}

fn render_start(
    e: &BytesStart<'_>,
    attributes: &[(String, String)],
    scope: &[Binding],
    rendered: &mut Vec<Binding>,
    options: &C14nOptions,
    out: &mut Vec<u8>,
) -> Result<(), C14nError> {
    let name = std::str::from_utf8(e.name().into_inner())
        .map_err(|_| C14nError::Malformed { at: 0, message: "element name is not UTF-8".into() })?;
    // Declarations to output (allocated only when there is one): the namespaces
    // visibly utilized — the element's own prefix, its prefixed attributes' — and
    // the inclusive list's, where the output does not have them already.
    let mut declarations: Vec<(&str, &str)> = Vec::new();
    consider(prefix_of(name), false, scope, rendered, &mut declarations)?;
    let mut plain: Vec<(&str, &str, &str, &str)> = Vec::new(); // (namespace URI, local name, qname, value)
    for (attr, value) in attributes {
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
            consider(prefix, false, scope, rendered, &mut declarations)?;
        }
        let local = attr.split_once(':').map_or(attr.as_str(), |(_, l)| l);
        plain.push((uri, local, attr, value));
    }
    for p in &options.inclusive_prefixes {
        consider(if p == "#default" { "" } else { p.as_str() }, true, scope, rendered, &mut declarations)?;
    }
    // Sorted by prefix, the default (empty) first.
    if declarations.len() > 1 {
        declarations.sort_unstable_by(|a, b| a.0.cmp(b.0));
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
    if plain.len() > 1 {
        plain.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    }
    for (_, _, qname, value) in plain {
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
    let mut run = 0;
    for (i, &b) in text.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&text[run..i]);
        out.extend_from_slice(replacement);
        run = i + 1;
    }
    out.extend_from_slice(&text[run..]);
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
