//! WSDL 1.1 documents served per service: the provider's own file with its endpoint
//! (`soap:address` / `soap12:address` `location`) pointed at the gateway. Only the
//! attribute values are spliced; every other byte stays as the provider wrote it.

use quick_xml::events::Event;
use quick_xml::NsReader;

use crate::soap::{escape, SoapError};

pub const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
pub const WSDL_SOAP12_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";

/// Returns `wsdl` with every SOAP address location replaced by `location`, and how
/// many were replaced. Refuses DOCTYPEs like the envelope reader.
pub fn rewrite_endpoint(wsdl: &str, location: &str) -> Result<(String, usize), SoapError> {
    let mut reader = NsReader::from_str(wsdl);
    let mut spans = Vec::new();
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((quick_xml::name::ResolveResult::Bound(n), e)) => (Some(n.as_ref().to_vec()), e),
            Ok((_, e)) => (None, e),
            Err(e) => {
                let offset = reader.error_position() as usize;
                let line = wsdl[..offset.min(wsdl.len())].matches('\n').count() + 1;
                return Err(SoapError::Malformed { line, column: 0, message: e.to_string() });
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let soap_ns =
                    ns.as_deref().is_some_and(|n| n == WSDL_SOAP11_NS.as_bytes() || n == WSDL_SOAP12_NS.as_bytes());
                if soap_ns && e.local_name().as_ref() == b"address" {
                    for attr in e.attributes().filter_map(Result::ok) {
                        if attr.key.as_ref() == b"location" {
                            // The value borrows from `wsdl`: its offset is where to splice.
                            let start = attr.value.as_ptr() as usize - wsdl.as_ptr() as usize;
                            spans.push(start..start + attr.value.len());
                        }
                    }
                }
            }
            Event::DocType(_) => return Err(SoapError::Doctype),
            Event::Eof => break,
            _ => {}
        }
    }
    let escaped = escape(location).replace('"', "&quot;");
    let mut out = String::with_capacity(wsdl.len() + spans.len() * escaped.len());
    let mut last = 0;
    for span in &spans {
        out.push_str(&wsdl[last..span.start]);
        out.push_str(&escaped);
        last = span.end;
    }
    out.push_str(&wsdl[last..]);
    Ok((out, spans.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_soap11_and_soap12_addresses_and_nothing_else() {
        let wsdl = r#"<?xml version="1.0"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:s12="http://schemas.xmlsoap.org/wsdl/soap12/">
  <!-- location="http://keep.example/comment" -->
  <service name="S">
    <port name="P"><soap:address location="http://internal:8081/tax"/></port>
    <port name="P12"><s12:address location='http://internal:8081/tax'/></port>
    <port name="Other"><address location="http://keep.example/"/></port>
  </service>
</definitions>"#;
        let (out, n) = rewrite_endpoint(wsdl, "https://gw.example/soap?x=1&y=\"2\"").unwrap();
        assert_eq!(n, 2);
        assert!(out.contains(r#"<soap:address location="https://gw.example/soap?x=1&amp;y=&quot;2&quot;"/>"#), "{out}");
        assert!(out.contains(r#"<s12:address location='https://gw.example/soap?x=1&amp;y=&quot;2&quot;'/>"#));
        assert!(out.contains(r#"<address location="http://keep.example/"/>"#));
        assert!(out.contains("comment"));
        assert_eq!(
            out.len() - wsdl.len(),
            2 * ("https://gw.example/soap?x=1&amp;y=&quot;2&quot;".len() - "http://internal:8081/tax".len())
        );
    }

    #[test]
    fn refuses_doctype_and_reports_malformed() {
        assert_eq!(rewrite_endpoint("<!DOCTYPE x><a/>", "u"), Err(SoapError::Doctype));
        assert!(matches!(rewrite_endpoint("<a><b></a>", "u"), Err(SoapError::Malformed { .. })));
    }
}
