use super::*;

fn c14n(doc: &str, element: &str, options: &C14nOptions) -> String {
    let start = doc.find(element).unwrap_or_else(|| panic!("{element} not in doc"));
    let mut out = Vec::new();
    canonicalize(doc.as_bytes(), start, None, options, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn exc(doc: &str, element: &str) -> String {
    c14n(doc, element, &C14nOptions::default())
}

#[test]
fn a_subtree_declares_only_the_namespaces_it_uses() {
    let doc = r#"<soap:Envelope xmlns:soap="urn:s" xmlns:x="urn:x" xmlns:unused="urn:u"><soap:Header/><soap:Body x:Id="b"><p:op xmlns:p="urn:p"><p:a>1</p:a></p:op></soap:Body></soap:Envelope>"#;
    assert_eq!(
        exc(doc, "<soap:Body"),
        r#"<soap:Body xmlns:soap="urn:s" xmlns:x="urn:x" x:Id="b"><p:op xmlns:p="urn:p"><p:a>1</p:a></p:op></soap:Body>"#
    );
}

#[test]
fn attributes_sort_by_namespace_then_name_and_empty_elements_expand() {
    let doc = r#"<r xmlns:b="urn:b" xmlns:a="urn:z"><e z="1" b:y="2" a:x="3" a="4"/></r>"#;
    // Unqualified first (empty URI), then urn:b, then urn:z; declarations by prefix.
    assert_eq!(exc(doc, "<e"), r#"<e xmlns:a="urn:z" xmlns:b="urn:b" a="4" z="1" b:y="2" a:x="3"></e>"#);
}

#[test]
fn default_namespaces_are_declared_and_undeclared_as_used() {
    let doc = r#"<r xmlns="urn:d"><a><b xmlns=""><c/></b></a></r>"#;
    assert_eq!(exc(doc, "<a"), r#"<a xmlns="urn:d"><b xmlns=""><c></c></b></a>"#);
    // An unqualified apex with no default namespace declares nothing.
    let plain = r#"<r><a><b/></a></r>"#;
    assert_eq!(exc(plain, "<a"), "<a><b></b></a>");
}

#[test]
fn redeclarations_are_output_only_where_they_change() {
    let doc = r#"<p:a xmlns:p="urn:1"><p:b xmlns:p="urn:1"><p:c xmlns:p="urn:2"/></p:b></p:a>"#;
    assert_eq!(exc(doc, "<p:a"), r#"<p:a xmlns:p="urn:1"><p:b><p:c xmlns:p="urn:2"></p:c></p:b></p:a>"#);
}

#[test]
fn text_and_attribute_values_are_escaped_canonically() {
    let doc = "<a t=\"x&#x9;y\n&quot;z&gt;\">1 &lt; 2 &amp;&amp; 3 > 2\r\nnext&#xD;<![CDATA[<raw> & ]]></a>";
    assert_eq!(
        exc(doc, "<a"),
        "<a t=\"x&#x9;y &quot;z>\">1 &lt; 2 &amp;&amp; 3 &gt; 2\nnext&#xD;&lt;raw&gt; &amp; </a>"
    );
}

#[test]
fn comments_go_only_with_comments() {
    let doc = "<a><!-- note -->x<?pi data?></a>";
    assert_eq!(exc(doc, "<a"), "<a>x<?pi data?></a>");
    let with = C14nOptions { with_comments: true, ..Default::default() };
    assert_eq!(c14n(doc, "<a", &with), "<a><!-- note -->x<?pi data?></a>");
}

#[test]
fn the_inclusive_prefix_list_keeps_named_namespaces() {
    let doc = r#"<r xmlns:keep="urn:k" xmlns:drop="urn:d" xmlns="urn:def"><x:a xmlns:x="urn:x">v</x:a></r>"#;
    let options = C14nOptions { inclusive_prefixes: vec!["keep".into(), "#default".into()], ..Default::default() };
    assert_eq!(c14n(doc, "<x:a", &options), r#"<x:a xmlns="urn:def" xmlns:keep="urn:k" xmlns:x="urn:x">v</x:a>"#);
}

#[test]
fn an_excluded_subtree_is_left_out() {
    let doc = r#"<a><keep/><ds:Signature xmlns:ds="urn:ds"><ds:x/></ds:Signature><tail/></a>"#;
    let start = doc.find("<a").unwrap();
    let sig = doc.find("<ds:Signature").unwrap();
    let mut out = Vec::new();
    canonicalize(doc.as_bytes(), start, Some(sig), &C14nOptions::default(), &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "<a><keep></keep><tail></tail></a>");
}

#[test]
fn hostile_or_broken_input_is_an_error_not_a_panic() {
    let options = C14nOptions::default();
    let cases: &[(&str, usize)] = &[
        ("<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>", 0),
        ("<a>&e;</a>", 0),
        ("<a><b></a>", 0),
        ("<a>", 0),
        ("<p:a/>", 0),
        ("<a q:x=\"1\"/>", 0),
        ("<a/>", 1),
        ("", 0),
        ("<a b=\"&#xFFFFFFFF;\"/>", 0),
    ];
    for (doc, start) in cases {
        let mut out = Vec::new();
        assert!(canonicalize(doc.as_bytes(), *start, None, &options, &mut out).is_err(), "{doc:?} at {start}");
    }
}

#[test]
fn in_context_equals_reading_from_the_start() {
    let doc = r#"<s:E xmlns:s="urn:s" xmlns="urn:d" xmlns:x="urn:x"><s:H><x:a q="1">t</x:a></s:H><s:B x:id="b"><p xmlns:y="urn:y"><y:z/></p></s:B></s:E>"#;
    let inherited = vec![
        ("s".to_owned(), "urn:s".to_owned()),
        ("".to_owned(), "urn:d".to_owned()),
        ("x".to_owned(), "urn:x".to_owned()),
    ];
    for element in ["<s:B", "<x:a", "<s:H"] {
        let start = doc.find(element).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        canonicalize(doc.as_bytes(), start, None, &C14nOptions::default(), &mut a).unwrap();
        canonicalize_in_context(doc.as_bytes(), start, &inherited, None, &C14nOptions::default(), &mut b).unwrap();
        assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap(), "{element}");
    }
    let mut out = Vec::new();
    assert!(
        canonicalize_in_context(doc.as_bytes(), doc.len() + 5, &[], None, &C14nOptions::default(), &mut out).is_err()
    );
}

/// What goes to the sink as ranges of the input (issue 21) is what rendering would
/// write: compared on the same document through a sink that sees every piece.
#[test]
fn copying_as_written_and_rendering_agree() {
    struct Pieces(Vec<u8>, usize);
    impl Sink for Pieces {
        fn put(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
            self.1 += 1;
        }
    }
    let doc = "<r xmlns=\"urn:d\" xmlns:p=\"urn:p\"><a><p:b>t &gt; u\r\n</p:b ><c/><d xmlns=\"\">x</d><p:e xmlns:p=\"urn:q\">y</p:e></a></r>";
    let start = doc.find("<a").unwrap();
    let expected = "<a xmlns=\"urn:d\"><p:b xmlns:p=\"urn:p\">t &gt; u\n</p:b><c></c><d xmlns=\"\">x</d><p:e xmlns:p=\"urn:q\">y</p:e></a>";
    assert_eq!(exc(doc, "<a"), expected);
    // Out of context the prefix p is unbound: an error, as rendering reports it.
    let mut unbound = Pieces(Vec::new(), 0);
    canonicalize_into(doc.as_bytes(), start, &[], None, &C14nOptions::default(), &mut unbound).unwrap_err();
    // In context (the ancestors' declarations given), the same bytes.
    let mut pieces = Pieces(Vec::new(), 0);
    let inherited = [("".to_owned(), "urn:d".to_owned()), ("p".to_owned(), "urn:p".to_owned())];
    canonicalize_into(doc.as_bytes(), start, &inherited, None, &C14nOptions::default(), &mut pieces).unwrap();
    assert_eq!(String::from_utf8(pieces.0).unwrap(), expected);
    // A long run written as it stands reaches the sink in one piece.
    let plain = format!("<r><a>{}</a></r>", "<b>text</b>".repeat(100));
    let mut pieces = Pieces(Vec::new(), 0);
    canonicalize(plain.as_bytes(), 3, None, &C14nOptions::default(), &mut pieces.0).unwrap();
    let mut counted = Pieces(Vec::new(), 0);
    canonicalize_into(plain.as_bytes(), 3, &[], None, &C14nOptions::default(), &mut counted).unwrap();
    assert_eq!(counted.0, pieces.0);
    assert!(counted.1 <= 2, "{} pieces", counted.1);
}
