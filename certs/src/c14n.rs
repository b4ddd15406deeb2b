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

use std::borrow::Cow;

pub(crate) mod scan;
use scan::{ScanError, Scanner, Token};

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

/// Where canonical bytes go. A `Vec` keeps them; a running digest
/// (`xmldsig`'s) hashes them as they are produced, so a Reference's canonical
/// form is never held in memory (issue 21: the copy cost as much as the hash).
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A namespace binding in scope: prefix ("" for the default) and URI ("" undeclares).
/// Both borrow from the document (or the caller's inherited list): no string is
/// built per element; only a URI written with a character reference is owned.
#[derive(Clone)]
struct Binding<'a> {
    prefix: &'a str,
    uri: Cow<'a, str>,
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
    canonicalize_into(doc, start, inherited, exclude, options, out)
}

/// [`canonicalize_in_context`] into any [`Sink`] (a digest: digesting while
/// canonicalizing, with no intermediate buffer).
pub fn canonicalize_into<S: Sink + ?Sized>(
    doc: &[u8],
    start: usize,
    inherited: &[(String, String)],
    exclude: Option<usize>,
    options: &C14nOptions,
    out: &mut S,
) -> Result<(), C14nError> {
    let scope = inherited.iter().map(|(prefix, uri)| Binding { prefix, uri: Cow::Borrowed(uri) }).collect();
    run(doc, start.min(doc.len()), scope, start, exclude, options, out)
}

fn run<'a, S: Sink + ?Sized>(
    doc: &'a [u8],
    from: usize,
    mut scope: Vec<Binding<'a>>,
    start: usize,
    exclude: Option<usize>,
    options: &C14nOptions,
    out: &mut S,
) -> Result<(), C14nError> {
    let out = &mut Verbatim { doc, from: 0, to: 0, out };
    let mut scanner = Scanner::new(doc, from);
    // Bindings in document scope (`scope`), with the scope length at each open element.
    let mut scope_marks: Vec<usize> = Vec::new();
    // The open elements' names, for matching end tags.
    let mut open: Vec<&'a [u8]> = Vec::new();
    // What the output has declared so far, per open output element.
    let mut rendered: Vec<Binding<'a>> = Vec::new();
    let mut rendered_marks: Vec<usize> = Vec::new();
    // Scratch reused from element to element: they borrow from the document, so
    // one allocation serves the whole subtree.
    let mut attributes: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
    let mut scratch = Scratch::default();
    // Depth (in open elements) of the apex and of an excluded subtree, once entered.
    let mut apex_depth: Option<usize> = None;
    let mut excluded_depth: Option<usize> = None;
    let malformed = |(at, message): ScanError| C14nError::Malformed { at, message: message.to_owned() };
    loop {
        let Some((at, token)) = scanner.next_token().map_err(malformed)? else {
            return Err(C14nError::NoElement(start));
        };
        let depth = scope_marks.len();
        let inside = apex_depth.is_some() && excluded_depth.is_none();
        let closes = match token {
            Token::Start { tag, name_len, empty } => {
                scope_marks.push(scope.len());
                let name = read_tag(at, tag, name_len, &mut attributes)?;
                open.push(&tag[..name_len]);
                for (attr, value) in &attributes {
                    if let Some(prefix) = declared_prefix(attr) {
                        scope.push(Binding { prefix, uri: value.clone() });
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
                    if tag.len() == name_len && !empty && as_written(name, &scope, &rendered, options) {
                        out.copy(at, scanner.position());
                    } else {
                        render_start(name, &attributes, &scope, &mut rendered, &mut scratch, options, out)?;
                    }
                }
                empty
            }
            Token::End { name } => {
                if open.last() != Some(&name) {
                    return Err(malformed((at, "an end tag does not match its start tag")));
                }
                true
            }
            Token::Text(t) if inside => {
                if memchr::memchr3(b'>', b'\r', b'&', t).is_none() {
                    out.copy(at, at + t.len());
                } else {
                    text(t, out);
                }
                false
            }
            Token::CData(t) if inside => {
                escape_text(&normalize_newlines(t), out);
                false
            }
            Token::Ref(r) => {
                let c = reference(r).ok_or_else(|| C14nError::Entity(String::from_utf8_lossy(r).into_owned()))?;
                if inside {
                    let mut buf = [0u8; 4];
                    escape_text(c.encode_utf8(&mut buf).as_bytes(), out);
                }
                false
            }
            Token::Comment(c) if inside && options.with_comments => {
                out.put(b"<!--");
                out.put(&normalize_newlines(c));
                out.put(b"-->");
                false
            }
            Token::Pi(p) if inside && !p.starts_with(b"xml ") => {
                out.put(b"<?");
                out.put(&normalize_newlines(p));
                out.put(b"?>");
                false
            }
            Token::DocType => return Err(C14nError::Doctype),
            _ => false,
        };
        if !closes {
            continue;
        }
        // An end tag, or an empty element's start tag: the element closes.
        let (Some(mark), Some(name)) = (scope_marks.pop(), open.pop()) else {
            return Err(malformed((at, "end tag without a start")));
        };
        scope.truncate(mark);
        let closing = depth.saturating_sub(usize::from(matches!(token, Token::End { .. })));
        if excluded_depth == Some(closing) {
            excluded_depth = None;
            continue;
        }
        if apex_depth.is_some() && excluded_depth.is_none() {
            if let Some(mark) = rendered_marks.pop() {
                rendered.truncate(mark);
            }
            let end = scanner.position();
            if matches!(token, Token::End { .. }) && end - at == name.len() + 3 {
                out.copy(at, end); // `</name>` as written
            } else {
                out.put(b"</");
                out.put(name);
                out.put(b">");
            }
            if apex_depth == Some(closing) {
                out.flush();
                return Ok(());
            }
        }
    }
}

/// Most of a canonical Body is the Body as written: a start tag without
/// attributes whose prefix the output already declares, text with nothing to
/// escape, an end tag without spaces. Those are copied as ranges of the input,
/// and adjacent ranges merge, so a run of them reaches the sink as one piece
/// (one hash update, one copy) instead of one per name, bracket and text.
struct Verbatim<'d, 'o, S: Sink + ?Sized> {
    doc: &'d [u8],
    /// The input range waiting to be written (`from == to`: none).
    from: usize,
    to: usize,
    out: &'o mut S,
}

impl<S: Sink + ?Sized> Verbatim<'_, '_, S> {
    #[inline]
    fn copy(&mut self, from: usize, to: usize) {
        if self.to != from || self.from == self.to {
            self.flush();
            self.from = from;
        }
        self.to = to;
    }

    #[inline]
    fn flush(&mut self) {
        if self.from != self.to {
            self.out.put(&self.doc[self.from..self.to]);
            self.from = self.to;
        }
    }
}

impl<S: Sink + ?Sized> Sink for Verbatim<'_, '_, S> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.flush();
        self.out.put(bytes);
    }
}

/// Whether an attribute-less start tag's canonical form is `<name>` as written:
/// its prefix needs no declaration (bound, and to what the output already has),
/// and no inclusive prefix could add one. Any doubt: no (the full path decides,
/// and reports what is wrong).
fn as_written(name: &str, scope: &[Binding<'_>], rendered: &[Binding<'_>], options: &C14nOptions) -> bool {
    if !options.inclusive_prefixes.is_empty() {
        return false;
    }
    let prefix = prefix_of(name);
    if prefix == "xml" {
        return true;
    }
    let uri = match lookup(scope, prefix) {
        Some(b) if !b.uri.is_empty() || prefix.is_empty() => b.uri.as_ref(),
        None if prefix.is_empty() => "",
        _ => return false,
    };
    lookup(rendered, prefix).map_or("", |b| b.uri.as_ref()) == uri
}

/// A character or predefined entity reference's character.
pub(crate) fn reference(name: &[u8]) -> Option<char> {
    let code = |digits: &[u8], radix| {
        std::str::from_utf8(digits).ok().and_then(|d| u32::from_str_radix(d, radix).ok()).and_then(char::from_u32)
    };
    match name {
        [b'#', b'x', hex @ ..] if !hex.is_empty() => code(hex, 16),
        [b'#', dec @ ..] if !dec.is_empty() => code(dec, 10),
        _ => qaqpa_adapters::soap::predefined_entity(name),
    }
}

/// A start tag's name, and its attributes (namespace declarations included) into
/// `attributes`, values unescaped and normalized as an XML processor reports
/// them. Names and plain values borrow from the document.
pub(crate) fn read_tag<'a>(
    at: usize,
    tag: &'a [u8],
    name_len: usize,
    attributes: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<&'a str, C14nError> {
    let bad = |message: &str| C14nError::Malformed { at, message: message.to_owned() };
    attributes.clear();
    if tag[name_len..].iter().all(u8::is_ascii_whitespace) {
        // Most elements: no attribute to parse.
        return std::str::from_utf8(&tag[..name_len]).map_err(|_| bad("an element name is not UTF-8"));
    }
    let tag = std::str::from_utf8(tag).map_err(|_| bad("a start tag is not UTF-8"))?;
    let name = tag.get(..name_len).ok_or_else(|| bad("element name"))?;
    // `name = "value"` pairs, as XML 1.0 §3.1 writes them (quick-xml's attribute
    // iterator cost a third of canonicalization; this is the same grammar).
    let space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let mut rest = &tag[name_len..];
    loop {
        let trimmed = rest.trim_start_matches(space);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err(bad("attributes must be separated by whitespace"));
        }
        let eq = trimmed.find('=').ok_or_else(|| bad("an attribute without a value"))?;
        let key = trimmed[..eq].trim_end_matches(space);
        if key.is_empty() || key.contains(|c: char| space(c) || c == '"' || c == '\'') {
            return Err(bad("a malformed attribute name"));
        }
        let value = trimmed[eq + 1..].trim_start_matches(space);
        let quote = match value.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => q as char,
            _ => return Err(bad("an attribute value must be quoted")),
        };
        let close = value[1..].find(quote).ok_or_else(|| bad("an attribute value does not close"))?;
        let raw = &value[1..1 + close];
        if raw.contains('<') {
            return Err(bad("'<' in an attribute value"));
        }
        if attributes.iter().any(|(k, _)| *k == key) {
            return Err(bad("a duplicate attribute"));
        }
        attributes.push((key, attribute_value(raw)?));
        rest = &value[close + 2..];
    }
    Ok(name)
}

/// Attribute-value normalization for CDATA attributes (XML 1.0 §3.3.3): literal
/// whitespace becomes a space, references become their character.
fn attribute_value(raw: &str) -> Result<Cow<'_, str>, C14nError> {
    if !raw.bytes().any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r')) {
        return Ok(Cow::Borrowed(raw));
    }
    let text = raw.replace("\r\n", " ").replace(['\r', '\t', '\n'], " ");
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
    Ok(Cow::Owned(value))
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
    // A byte search: `split_once(':')` cost more than the rest of the lookup.
    qname.bytes().position(|b| b == b':').map_or("", |i| &qname[..i])
}

fn lookup<'s, 'a>(bindings: &'s [Binding<'a>], prefix: &str) -> Option<&'s Binding<'a>> {
    bindings.iter().rev().find(|b| b.prefix == prefix)
}

/// Per-element lists, kept between elements so that rendering allocates nothing
/// once they have grown to the widest element.
#[derive(Default)]
struct Scratch<'a> {
    /// Declarations to output: prefix and URI.
    declarations: Vec<(&'a str, Cow<'a, str>)>,
    /// Attributes to output: namespace URI, local name, qualified name, value.
    plain: Vec<(Cow<'a, str>, &'a str, &'a str, Cow<'a, str>)>,
}

/// Adds `prefix`'s declaration to those the element outputs, if it is not there yet
/// and the output context lacks it (an inclusive-list prefix out of scope is skipped).
fn consider<'a>(
    prefix: &str,
    inclusive: bool,
    scope: &[Binding<'a>],
    rendered: &[Binding<'a>],
    declarations: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<(), C14nError> {
    if prefix == "xml" || declarations.iter().any(|(p, _)| *p == prefix) {
        return Ok(());
    }
    let (prefix, uri): (&'a str, Cow<'a, str>) = match lookup(scope, prefix) {
        Some(b) => (b.prefix, b.uri.clone()),
        None if prefix.is_empty() => ("", Cow::Borrowed("")),
        None => return if inclusive { Ok(()) } else { Err(C14nError::UnboundPrefix(prefix.to_owned())) },
    };
    if uri.is_empty() && !prefix.is_empty() {
        return if inclusive { Ok(()) } else { Err(C14nError::UnboundPrefix(prefix.to_owned())) };
    }
    if lookup(rendered, prefix).map_or("", |b| &b.uri) != uri {
        declarations.push((prefix, uri));
    }
    Ok(())
}

fn render_start<'a, S: Sink + ?Sized>(
    name: &'a str,
    attributes: &[(&'a str, Cow<'a, str>)],
    scope: &[Binding<'a>],
    rendered: &mut Vec<Binding<'a>>,
    scratch: &mut Scratch<'a>,
    options: &C14nOptions,
    out: &mut S,
) -> Result<(), C14nError> {
    // Declarations to output: the namespaces visibly utilized — the element's own
    // prefix, its prefixed attributes' — and the inclusive list's, where the
    // output does not have them already.
    let Scratch { declarations, plain } = scratch;
    declarations.clear();
    plain.clear();
    consider(prefix_of(name), false, scope, rendered, declarations)?;
    for (attr, value) in attributes {
        if declared_prefix(attr).is_some() {
            continue;
        }
        let prefix = prefix_of(attr);
        let uri = match prefix {
            "" => Cow::Borrowed(""),
            "xml" => Cow::Borrowed("http://www.w3.org/XML/1998/namespace"),
            p => lookup(scope, p)
                .map(|b| b.uri.clone())
                .filter(|u| !u.is_empty())
                .ok_or_else(|| C14nError::UnboundPrefix(p.to_owned()))?,
        };
        if !prefix.is_empty() {
            consider(prefix, false, scope, rendered, declarations)?;
        }
        let local = if prefix.is_empty() { attr } else { &attr[prefix.len() + 1..] };
        plain.push((uri, local, attr, value.clone()));
    }
    for p in &options.inclusive_prefixes {
        consider(if p == "#default" { "" } else { p.as_str() }, true, scope, rendered, declarations)?;
    }
    // Sorted by prefix, the default (empty) first.
    if declarations.len() > 1 {
        declarations.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    out.put(b"<");
    out.put(name.as_bytes());
    for (prefix, uri) in declarations.iter() {
        if prefix.is_empty() {
            out.put(b" xmlns=\"");
        } else {
            out.put(b" xmlns:");
            out.put(prefix.as_bytes());
            out.put(b"=\"");
        }
        escape_attribute(uri, out);
        out.put(b"\"");
    }
    if !declarations.is_empty() {
        rendered.extend(declarations.drain(..).map(|(prefix, uri)| Binding { prefix, uri }));
    }
    if plain.len() > 1 {
        plain.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    }
    for (_, _, qname, value) in plain.iter() {
        out.put(b" ");
        out.put(qname.as_bytes());
        out.put(b"=\"");
        escape_attribute(value, out);
        out.put(b"\"");
    }
    out.put(b">");
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

/// Literal text as the scanner reports it (references are their own tokens, so
/// neither `<` nor `&` is in it; `&` is escaped all the same): line ends
/// normalized, `>` escaped; runs between them are written whole (memchr finds
/// the next one: fewer instructions than a byte loop even on short runs).
fn text<S: Sink + ?Sized>(raw: &[u8], out: &mut S) {
    let mut rest = raw;
    while let Some(i) = memchr::memchr3(b'>', b'\r', b'&', rest) {
        out.put(&rest[..i]);
        if rest[i] != b'\r' {
            out.put(if rest[i] == b'>' { b"&gt;" } else { b"&amp;" });
            rest = &rest[i + 1..];
        } else {
            out.put(b"\n");
            rest = &rest[i + 1..];
            if rest.first() == Some(&b'\n') {
                rest = &rest[1..];
            }
        }
    }
    out.put(rest);
}

fn escape_text<S: Sink + ?Sized>(text: &[u8], out: &mut S) {
    let mut run = 0;
    for (i, &b) in text.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.put(&text[run..i]);
        out.put(replacement);
        run = i + 1;
    }
    out.put(&text[run..]);
}

fn escape_attribute<S: Sink + ?Sized>(value: &str, out: &mut S) {
    let bytes = value.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'"' => b"&quot;",
            b'\t' => b"&#x9;",
            b'\n' => b"&#xA;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.put(&bytes[run..i]);
        out.put(replacement);
        run = i + 1;
    }
    out.put(&bytes[run..]);
}

#[cfg(test)]
mod tests;
