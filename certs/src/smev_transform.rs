//! The SMEV 3 transform, `urn://smev-gov-ru/xmldsig/transform`: the normal form
//! SMEV 3 signs after exclusive c14n, so that a fragment hashes the same whatever
//! prefixes and whitespace the sender's XML library chose. Its public definition
//! (the SMEV 3 methodological recommendations, section on the transform, and the
//! reference `SmevTransformSpi`; docs/smev3.md#sources) gives these rules, applied
//! in one pass:
//!
//! 1. XML declaration, processing instructions and comments are dropped.
//! 2. Text nodes of only whitespace (every character `<= U+0020`) are dropped;
//!    other text is kept as it is, spaces included.
//! 3. An empty element is written as a start and end tag pair, never `<a/>`.
//! 4. Namespace declarations no element or attribute uses are dropped.
//! 5. A namespace is declared on the element that uses it unless an ancestor in the
//!    output already declared it.
//! 6. Prefixes are replaced by `ns1`, `ns2`, … numbered in order of declaration
//!    across the fragment; a namespace that has gone out of scope gets a new number
//!    when it is used again.
//! 7. Attributes are sorted: qualified ones first by namespace URI then local name,
//!    then unqualified ones by local name.
//! 8. Declarations come before attributes: the element's namespace first, then the
//!    attributes' in the sorted order.
//!
//! Elements without a namespace are refused, as the reference refuses them.
//! Characters are escaped as the reference's writer escapes them: `&`, `<`, `>` in
//! text, and `"` too in attribute values. Names compare by UTF-8 bytes (the
//! reference compares UTF-16 units; they differ only beyond the Basic Multilingual
//! Plane, which no schema name uses).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

pub const SMEV_TRANSFORM: &str = "urn://smev-gov-ru/xmldsig/transform";

/// Deepest nesting and most attributes per element the transform accepts: it runs
/// on a signed fragment already bounded by the gateway's XML limits.
const MAX_DEPTH: usize = 256;
const MAX_ATTRIBUTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("element {0} has no namespace: the SMEV transform supports qualified elements only")]
    Unqualified(String),
    #[error("a DOCTYPE is not allowed")]
    Doctype,
    #[error("nested deeper than {MAX_DEPTH} or more than {MAX_ATTRIBUTES} attributes")]
    TooLarge,
}

fn escape_into(out: &mut Vec<u8>, text: &str, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '"' if attribute => out.extend_from_slice(b"&quot;"),
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// A local name as written, refused when it could not be one (quick-xml reads
/// `<a:e//>` as an element named `a:e/`): the output must parse as what was hashed.
fn name(raw: &[u8]) -> Result<String, TransformError> {
    let bad = |b: &u8| b.is_ascii_whitespace() || b"/<>\"'=&:;".contains(b);
    if raw.is_empty() || raw.iter().any(bad) {
        return Err(TransformError::Xml(format!("not a name: {:?}", String::from_utf8_lossy(raw))));
    }
    std::str::from_utf8(raw).map(str::to_owned).map_err(|e| TransformError::Xml(e.to_string()))
}

/// A namespace name as declared: the resolver gives the attribute value's raw bytes,
/// references not yet replaced (`xmlns:a="u&amp;v"` names `u&v`).
fn namespace(raw: &[u8]) -> Result<String, TransformError> {
    let text = std::str::from_utf8(raw).map_err(|e| TransformError::Xml(e.to_string()))?;
    quick_xml::escape::unescape(text).map(|u| u.into_owned()).map_err(|e| TransformError::Xml(e.to_string()))
}

/// One output element's prefixes: (prefix, namespace URI).
type Mappings = Vec<(String, String)>;

fn find(stack: &[Mappings], uri: &str) -> Option<String> {
    stack.iter().flatten().find(|(_, u)| u == uri).map(|(p, _)| p.clone())
}

/// Applies the transform to an XML fragment (in practice, exclusive c14n output).
pub fn smev_transform(input: &[u8]) -> Result<Vec<u8>, TransformError> {
    let xml = |e: &dyn std::fmt::Display| TransformError::Xml(e.to_string());
    let mut reader = NsReader::from_reader(input);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = true;
    let mut out = Vec::with_capacity(input.len());
    let mut stack: Vec<Mappings> = Vec::new();
    // Output names of the open elements, for their end tags.
    let mut names: Vec<String> = Vec::new();
    let mut counter = 0u32;
    // A text node is decided whole: quick-xml splits it at references.
    let mut text = String::new();
    let flush = |text: &mut String, out: &mut Vec<u8>| {
        if text.chars().any(|c| c > '\u{20}') {
            escape_into(out, text, false);
        }
        text.clear();
    };
    loop {
        let event = reader.read_resolved_event().map_err(|e| xml(&e))?;
        match event {
            (ns, Event::Start(e)) => {
                flush(&mut text, &mut out);
                if stack.len() >= MAX_DEPTH {
                    return Err(TransformError::TooLarge);
                }
                let local = name(e.local_name().as_ref())?;
                let uri = match ns {
                    ResolveResult::Bound(n) if !n.as_ref().is_empty() => namespace(n.as_ref())?,
                    ResolveResult::Unknown(p) => {
                        return Err(TransformError::Xml(format!("unbound prefix {}", String::from_utf8_lossy(&p))))
                    }
                    _ => return Err(TransformError::Unqualified(local)),
                };
                let mut mine: Mappings = Vec::new();
                let mut prefix_of = |uri: &str, stack: &[Mappings], mine: &mut Mappings| -> String {
                    if let Some(p) =
                        find(stack, uri).or_else(|| mine.iter().find(|(_, u)| u == uri).map(|m| m.0.clone()))
                    {
                        return p;
                    }
                    counter += 1;
                    let p = format!("ns{counter}");
                    mine.push((p.clone(), uri.to_owned()));
                    p
                };
                let prefix = prefix_of(&uri, &stack, &mut mine);
                // Attributes: (namespace or None, local, value).
                let mut attributes: Vec<(Option<String>, String, String)> = Vec::new();
                for attr in e.attributes().with_checks(true) {
                    let attr = attr.map_err(|e| xml(&e))?;
                    let key = attr.key.as_ref();
                    if key == b"xmlns" || key.starts_with(b"xmlns:") {
                        continue;
                    }
                    if attributes.len() == MAX_ATTRIBUTES {
                        return Err(TransformError::TooLarge);
                    }
                    let (attr_ns, attr_local) = reader.resolve_attribute(attr.key);
                    let attr_ns = match attr_ns {
                        ResolveResult::Bound(n) => Some(namespace(n.as_ref())?),
                        ResolveResult::Unbound => None,
                        ResolveResult::Unknown(p) => {
                            return Err(TransformError::Xml(format!("unbound prefix {}", String::from_utf8_lossy(&p))))
                        }
                    };
                    let value = attr.unescape_value().map_err(|e| xml(&e))?.into_owned();
                    attributes.push((attr_ns, name(attr_local.as_ref())?, value));
                }
                // Qualified first (by URI, then local name), then unqualified by name.
                attributes.sort_by(|a, b| match (&a.0, &b.0) {
                    (Some(x), Some(y)) => x.cmp(y).then_with(|| a.1.cmp(&b.1)),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => a.1.cmp(&b.1),
                });
                let mut written: Vec<(Option<String>, &str, &str)> = Vec::with_capacity(attributes.len());
                for (attr_ns, local, value) in &attributes {
                    let p = attr_ns.as_deref().map(|u| prefix_of(u, &stack, &mut mine));
                    written.push((p, local, value));
                }
                let name = format!("{prefix}:{local}");
                out.push(b'<');
                out.extend_from_slice(name.as_bytes());
                for (p, u) in &mine {
                    out.extend_from_slice(format!(" xmlns:{p}=\"").as_bytes());
                    escape_into(&mut out, u, true);
                    out.push(b'"');
                }
                for (p, local, value) in written {
                    out.push(b' ');
                    if let Some(p) = p {
                        out.extend_from_slice(p.as_bytes());
                        out.push(b':');
                    }
                    out.extend_from_slice(local.as_bytes());
                    out.extend_from_slice(b"=\"");
                    escape_into(&mut out, value, true);
                    out.push(b'"');
                }
                out.push(b'>');
                stack.push(mine);
                names.push(name);
            }
            (_, Event::End(_)) => {
                flush(&mut text, &mut out);
                let name = names.pop().ok_or_else(|| TransformError::Xml("unbalanced end tag".into()))?;
                stack.pop();
                out.extend_from_slice(b"</");
                out.extend_from_slice(name.as_bytes());
                out.push(b'>');
            }
            (_, Event::Text(t)) if !names.is_empty() => text.push_str(&t.xml_content().map_err(|e| xml(&e))?),
            (_, Event::CData(t)) if !names.is_empty() => text.push_str(std::str::from_utf8(&t).map_err(|e| xml(&e))?),
            (_, Event::GeneralRef(r)) => {
                let c = match r.resolve_char_ref().map_err(|e| xml(&e))? {
                    Some(c) => c,
                    None => qaqpa_adapters::soap::predefined_entity(r.as_ref()).ok_or_else(|| {
                        TransformError::Xml("an entity reference other than the predefined ones".into())
                    })?,
                };
                if !names.is_empty() {
                    text.push(c);
                }
            }
            (_, Event::DocType(_)) => return Err(TransformError::Doctype),
            (_, Event::Eof) => break,
            // Declaration, processing instructions, comments: dropped (rule 1).
            _ => {}
        }
    }
    if !names.is_empty() {
        return Err(TransformError::Xml("the fragment ends inside an element".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform(input: &str) -> String {
        String::from_utf8(smev_transform(input.as_bytes()).unwrap()).unwrap()
    }

    // The three examples of the methodological recommendations (rules 1-2-6,
    // 4-5, 3-7-8), as published with their expected output in public SMEV 3
    // clients' test suites (docs/smev3.md#sources).
    #[test]
    fn example_1_declaration_comment_instruction_whitespace_prefixes() {
        let input = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- rules 1, 2, 6 -->\n<?xml-stylesheet type=\"text/xsl\" href=\"style.xsl\"?>\n\n<elementOne xmlns=\"http://test/1\">\n\t<qwe:elementTwo xmlns:qwe=\"http://test/2\">asd</qwe:elementTwo> \n</elementOne> ";
        assert_eq!(
            transform(input),
            "<ns1:elementOne xmlns:ns1=\"http://test/1\"><ns2:elementTwo xmlns:ns2=\"http://test/2\">asd</ns2:elementTwo></ns1:elementOne>"
        );
    }

    #[test]
    fn example_2_unused_declarations_and_prefixes_out_of_scope() {
        let input = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<?xml-stylesheet type=\"text/xsl\" href=\"style.xsl\"?>\n\n<elementOne xmlns=\"http://test/1\" xmlns:qwe=\"http://test/2\" xmlns:asd=\"http://test/3\">\n\t<qwe:elementTwo>\n\t\t<asd:elementThree>\n\t\t\t<!-- default namespace -->\n\t\t\t<elementFour> z x c </elementFour> \n\t\t\t<qqq:elementFive xmlns:qqq=\"http://test/2\"> w w w </qqq:elementFive>\n\t\t</asd:elementThree>\n\t\t<asd:elementSix>eee</asd:elementSix>\n\t</qwe:elementTwo> \n</elementOne> ";
        assert_eq!(
            transform(input),
            "<ns1:elementOne xmlns:ns1=\"http://test/1\"><ns2:elementTwo xmlns:ns2=\"http://test/2\"><ns3:elementThree xmlns:ns3=\"http://test/3\"><ns1:elementFour> z x c </ns1:elementFour><ns2:elementFive> w w w </ns2:elementFive></ns3:elementThree><ns4:elementSix xmlns:ns4=\"http://test/3\">eee</ns4:elementSix></ns2:elementTwo></ns1:elementOne>"
        );
    }

    #[test]
    fn example_3_empty_elements_attribute_order_declarations_first() {
        let input = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<elementOne xmlns=\"http://test/1\" xmlns:qwe=\"http://test/2\" xmlns:asd=\"http://test/3\">\n\t<qwe:elementTwo>\n\t\t<asd:elementThree xmlns:wer=\"http://test/a\" xmlns:zxc=\"http://test/0\" wer:attZ=\"zzz\" attB=\"bbb\" attA=\"aaa\" zxc:attC=\"ccc\" asd:attD=\"ddd\" asd:attE=\"eee\" qwe:attF=\"fff\"/>\n\t</qwe:elementTwo> \n</elementOne> ";
        assert_eq!(
            transform(input),
            "<ns1:elementOne xmlns:ns1=\"http://test/1\"><ns2:elementTwo xmlns:ns2=\"http://test/2\"><ns3:elementThree xmlns:ns3=\"http://test/3\" xmlns:ns4=\"http://test/0\" xmlns:ns5=\"http://test/a\" ns4:attC=\"ccc\" ns2:attF=\"fff\" ns3:attD=\"ddd\" ns3:attE=\"eee\" ns5:attZ=\"zzz\" attA=\"aaa\" attB=\"bbb\"></ns3:elementThree></ns2:elementTwo></ns1:elementOne>"
        );
    }

    #[test]
    fn text_is_one_node_across_references_and_escaped_as_the_reference_writes_it() {
        assert_eq!(
            transform("<a:x xmlns:a=\"u\" v=\"&quot;&lt;\"> &amp; <a:y>&#x20;&#9;</a:y></a:x>"),
            "<ns1:x xmlns:ns1=\"u\" v=\"&quot;&lt;\"> &amp; <ns1:y></ns1:y></ns1:x>"
        );
    }

    /// No input panics; what is accepted is accepted again unchanged (the normal form
    /// is a fixed point). The fuzz target `smev_transform` runs the same.
    #[test]
    fn mutated_fragments_never_panic_and_the_output_is_a_fixed_point() {
        let seed = b"<a:x xmlns:a=\"u\" xmlns:b=\"v\" b:k=\"1\" z=\"&amp;\"><b:y> t </b:y><a:e/>&#x41;</a:x>";
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut input = seed.to_vec();
            let at = (state as usize) % input.len();
            match (state >> 40) % 3 {
                0 => input[at] = (state >> 16) as u8,
                1 => {
                    input.remove(at);
                }
                _ => input.insert(at, b"<>/\"'=&:"[(state >> 24) as usize % 8]),
            }
            if let Ok(out) = smev_transform(&input) {
                assert_eq!(smev_transform(&out).as_ref(), Ok(&out), "{}", String::from_utf8_lossy(&input));
            }
        }
    }

    #[test]
    fn what_the_transform_cannot_normalize_is_refused() {
        assert!(matches!(smev_transform(b"<plain/>"), Err(TransformError::Unqualified(_))));
        assert_eq!(smev_transform(b"<!DOCTYPE a []><a:b xmlns:a=\"u\"/>"), Err(TransformError::Doctype));
        assert!(smev_transform(b"<a:b xmlns:a=\"u\">").is_err());
        assert!(smev_transform(b"<a:b>").is_err());
        let deep = "<a:b xmlns:a=\"u\">".repeat(MAX_DEPTH + 1);
        assert_eq!(smev_transform(deep.as_bytes()), Err(TransformError::TooLarge));
    }
}
