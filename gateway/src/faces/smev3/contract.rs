//! The SMEV 3 face's contract: `GET /smev3/?wsdl` (1.1; `?wsdl&version=1.2` for
//! 1.2) and the schemas beside it, `smev-message-exchange-{types,basic,faults}-1.x.xsd`.
//! The schemas are Qaqpa's own description of what the face reads and writes,
//! written after the published SMEV 3 schemas (docs/smev3.md#schemas); one text per
//! schema serves both versions, which differ only in namespaces.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use qaqpa_adapters::smev3::writer::Fault;
use qaqpa_adapters::smev3::{Operation, Version};
use qaqpa_adapters::soap::escape;

use crate::body::{full_body, GatewayBody};

const TYPES: &str = include_str!("schemas/types.xsd");
const BASIC: &str = include_str!("schemas/basic.xsd");
const FAULTS: &str = include_str!("schemas/faults.xsd");

/// The faults each operation declares.
const FAULTS_DECLARED: [Fault; 13] = [
    Fault::SmevFailure,
    Fault::InvalidContent,
    Fault::SignatureVerificationFault,
    Fault::AccessDenied,
    Fault::SenderIsNotRegistered,
    Fault::UnknownMessageType,
    Fault::BusinessDataTypeIsNotSupported,
    Fault::TargetMessageIsNotFound,
    Fault::MessageIsAlreadySent,
    Fault::InvalidMessageIdFormat,
    Fault::AttachmentSizeLimitExceeded,
    Fault::QuoteLimitExceeded,
    Fault::DestinationOverflow,
];

/// A schema's text for `version`.
pub fn schema(name: &str, version: Version) -> Option<String> {
    let text = match name {
        "types" => TYPES,
        "basic" => BASIC,
        "faults" => FAULTS,
        _ => return None,
    };
    Some(text.replace("{V}", version.label()))
}

/// The WSDL, its endpoint at `location`.
pub fn wsdl(version: Version, location: &str) -> String {
    let v = version.label();
    let mut messages = String::new();
    let mut port = String::new();
    let mut binding = String::new();
    for op in Operation::ALL {
        let name = op.name();
        messages.push_str(&format!(
            "<wsdl:message name=\"{name}RequestMsg\"><wsdl:part name=\"parameters\" element=\"types:{name}Request\"/></wsdl:message><wsdl:message name=\"{name}ResponseMsg\"><wsdl:part name=\"parameters\" element=\"types:{name}Response\"/></wsdl:message>"
        ));
        let faults: String = FAULTS_DECLARED
            .iter()
            .map(|f| format!("<wsdl:fault name=\"{0}Exception\" message=\"tns:{0}Exception\"/>", f.element()))
            .collect();
        port.push_str(&format!(
            "<wsdl:operation name=\"{name}\"><wsdl:input message=\"tns:{name}RequestMsg\"/><wsdl:output message=\"tns:{name}ResponseMsg\"/>{faults}</wsdl:operation>"
        ));
        let faults: String = FAULTS_DECLARED
            .iter()
            .map(|f| format!("<wsdl:fault name=\"{0}Exception\"><soap:fault name=\"{0}Exception\" use=\"literal\"/></wsdl:fault>", f.element()))
            .collect();
        binding.push_str(&format!(
            "<wsdl:operation name=\"{name}\"><soap:operation soapAction=\"urn:{name}\"/><wsdl:input><soap:body use=\"literal\"/></wsdl:input><wsdl:output><soap:body use=\"literal\"/></wsdl:output>{faults}</wsdl:operation>"
        ));
    }
    for f in FAULTS_DECLARED {
        messages.push_str(&format!(
            "<wsdl:message name=\"{0}Exception\"><wsdl:part name=\"parameters\" element=\"fault:{0}\"/></wsdl:message>",
            f.element()
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- The SMEV 3 message exchange as Qaqpa serves it (docs/smev3.md). -->
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{service}" xmlns:types="{types}" xmlns:fault="{faults}" targetNamespace="{service}">
<wsdl:types><xs:schema><xs:import namespace="{types}" schemaLocation="smev-message-exchange-types-{v}.xsd"/><xs:import namespace="{faults}" schemaLocation="smev-message-exchange-faults-{v}.xsd"/></xs:schema></wsdl:types>
{messages}
<wsdl:portType name="SMEVMessageExchangePortType">{port}</wsdl:portType>
<wsdl:binding name="SMEVMessageExchangeSoap11Binding" type="tns:SMEVMessageExchangePortType"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{binding}</wsdl:binding>
<wsdl:service name="SMEVMessageExchangeService"><wsdl:port name="SMEVMessageExchangeEndpoint" binding="tns:SMEVMessageExchangeSoap11Binding"><soap:address location="{location}"/></wsdl:port></wsdl:service>
</wsdl:definitions>
"#,
        service = version.service_ns(),
        types = version.types_ns(),
        faults = version.faults_ns(),
        location = escape(location),
    )
}

/// `GET /smev3/…`: the WSDL or a schema, or 404.
pub fn serve<B>(req: &Request<B>, tls: bool) -> Response<GatewayBody> {
    let path = req.uri().path();
    let params = super::super::query_params(req.uri().query().unwrap_or(""));
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok()).or(req.uri().authority().map(|a| a.as_str()));
    let file = path.strip_prefix(super::PATH).unwrap_or("");
    let found = if file.is_empty() && params.contains_key("wsdl") {
        let version = params.get("version").and_then(|v| Version::parse(v)).unwrap_or(Version::V11);
        let scheme = if tls { "https" } else { "http" };
        let location = format!("{scheme}://{}{}", host.unwrap_or("localhost"), super::PATH);
        Some(wsdl(version, &location))
    } else {
        file.strip_prefix("smev-message-exchange-")
            .and_then(|f| f.strip_suffix(".xsd"))
            .and_then(|f| f.rsplit_once('-'))
            .and_then(|(name, v)| schema(name, Version::parse(v)?))
    };
    let (status, body) = match found {
        Some(text) => (StatusCode::OK, text),
        None => (StatusCode::NOT_FOUND, String::new()),
    };
    let mut response = Response::new(full_body(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wsdl_and_schemas_are_well_formed_for_both_versions() {
        for v in Version::ALL {
            let texts = [
                wsdl(v, "https://gw/smev3/"),
                schema("types", v).unwrap(),
                schema("basic", v).unwrap(),
                schema("faults", v).unwrap(),
            ];
            for text in texts {
                assert!(qaqpa_adapters::smev3::stored::well_formed(&text), "{text}");
                assert!(text.contains(v.types_ns()) || text.contains(v.basic_ns()) || text.contains(v.faults_ns()));
                assert!(!text.contains("{V}"));
            }
        }
    }
}
