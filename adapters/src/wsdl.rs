//! WSDL 1.1 documents served per service: the provider's own file with its endpoint
//! (`soap:address` / `soap12:address` `location`) pointed at the gateway. Only the
//! attribute values are spliced; every other byte stays as the provider wrote it.

use quick_xml::events::Event;
use quick_xml::NsReader;

use crate::soap::{escape, SoapError};

pub const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
pub const WSDL_SOAP12_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";

/// The WSDL of the asynchronous mailbox operations (namespace `urn:qaqpa:async:1`),
/// with a placeholder endpoint for [`rewrite_endpoint`].
pub const ASYNC_WSDL: &str = include_str!("../contracts/async.wsdl");

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

/// One operation of a generated WSDL: its name and the string fields its request
/// names (the REST path parameters); anything else travels as `xs:any`. When the
/// provider's OpenAPI document types the operation, `request` and `response` hold
/// the XSD content of the two elements ([`crate::schema::xsd_content`]) instead.
pub struct GeneratedOperation<'a> {
    pub name: &'a str,
    pub fields: Vec<&'a str>,
    pub request: Option<String>,
    pub response: Option<String>,
}

/// A WSDL 1.1 document (document/literal, SOAP 1.1 and 1.2 ports) for a REST service
/// exposed to SOAP clients through mediation.
pub fn generate(service: &str, namespace: &str, operations: &[GeneratedOperation<'_>], location: &str) -> String {
    let e = |s: &str| escape(s).replace('"', "&quot;");
    let (ns, loc) = (e(namespace), e(location));
    let mut types = String::new();
    let mut messages = String::new();
    let mut port_ops = String::new();
    let mut binding11 = String::new();
    let mut binding12 = String::new();
    for op in operations {
        let n = e(op.name);
        let fields: String =
            op.fields.iter().map(|f| format!(r#"<xs:element name="{}" type="xs:string"/>"#, e(f))).collect();
        let any = r###"<xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>"###;
        let request = op.request.clone().unwrap_or_else(|| format!("<xs:sequence>{fields}{any}</xs:sequence>"));
        let response = op.response.clone().unwrap_or_else(|| format!("<xs:sequence>{any}</xs:sequence>"));
        types.push_str(&format!(
            r#"<xs:element name="{n}"><xs:complexType>{request}</xs:complexType></xs:element><xs:element name="{n}Response"><xs:complexType>{response}</xs:complexType></xs:element>"#
        ));
        messages.push_str(&format!(
            r#"<wsdl:message name="{n}Request"><wsdl:part name="parameters" element="tns:{n}"/></wsdl:message><wsdl:message name="{n}Response"><wsdl:part name="parameters" element="tns:{n}Response"/></wsdl:message>"#
        ));
        port_ops.push_str(&format!(
            r#"<wsdl:operation name="{n}"><wsdl:input message="tns:{n}Request"/><wsdl:output message="tns:{n}Response"/></wsdl:operation>"#
        ));
        for (out, p) in [(&mut binding11, "soap"), (&mut binding12, "soap12")] {
            out.push_str(&format!(
                r#"<wsdl:operation name="{n}"><{p}:operation soapAction="{ns}/{n}"/><wsdl:input><{p}:body use="literal"/></wsdl:input><wsdl:output><{p}:body use="literal"/></wsdl:output></wsdl:operation>"#
            ));
        }
    }
    let name = e(service);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="{name}" targetNamespace="{ns}" xmlns:tns="{ns}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="{WSDL_SOAP11_NS}" xmlns:soap12="{WSDL_SOAP12_NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema">
<wsdl:documentation>Generated by the Qaqpa gateway: the REST service {name} as SOAP operations (docs/mapping.md).</wsdl:documentation>
<wsdl:types><xs:schema targetNamespace="{ns}" elementFormDefault="qualified">{types}</xs:schema></wsdl:types>
{messages}
<wsdl:portType name="PortType">{port_ops}</wsdl:portType>
<wsdl:binding name="Binding" type="tns:PortType"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{binding11}</wsdl:binding>
<wsdl:binding name="Binding12" type="tns:PortType"><soap12:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{binding12}</wsdl:binding>
<wsdl:service name="Service"><wsdl:port name="Port" binding="tns:Binding"><soap:address location="{loc}"/></wsdl:port><wsdl:port name="Port12" binding="tns:Binding12"><soap12:address location="{loc}"/></wsdl:port></wsdl:service>
</wsdl:definitions>
"#
    )
}

/// Names of the operations a WSDL's portTypes declare (for checking mappings).
pub fn operation_names(wsdl: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(wsdl);
    let mut names = Vec::new();
    let mut in_port_type = false;
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(ref e) if e.local_name().as_ref() == b"portType" => in_port_type = true,
            Event::End(ref e) if e.local_name().as_ref() == b"portType" => in_port_type = false,
            Event::Start(ref e) | Event::Empty(ref e) if in_port_type && e.local_name().as_ref() == b"operation" => {
                if let Some(Ok(name)) =
                    e.try_get_attribute("name").ok().flatten().map(|a| a.unescape_value().map(|v| v.into_owned()))
                {
                    names.push(name);
                }
            }
            Event::Eof | Event::DocType(_) => break,
            _ => {}
        }
    }
    names
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
    fn generated_wsdl_is_well_formed_and_names_its_operations() {
        let ops = [GeneratedOperation { name: "GetPerson", fields: vec!["iin"], request: None, response: None }];
        let wsdl = generate("KZ/GOV/1/reg/person/v1", "urn:person", &ops, "https://gw/soap");
        assert_eq!(operation_names(&wsdl), vec!["GetPerson".to_owned()]);
        let (_, n) = rewrite_endpoint(&wsdl, "https://other/soap").unwrap();
        assert_eq!(n, 2, "a SOAP 1.1 and a SOAP 1.2 port");
        assert!(wsdl.contains(r#"<xs:element name="iin" type="xs:string"/>"#));
    }

    #[test]
    fn refuses_doctype_and_reports_malformed() {
        assert_eq!(rewrite_endpoint("<!DOCTYPE x><a/>", "u"), Err(SoapError::Doctype));
        assert!(matches!(rewrite_endpoint("<a><b></a>", "u"), Err(SoapError::Malformed { .. })));
    }
}
