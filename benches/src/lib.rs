//! Criterion benchmarks live in `benches/benches/`, profiling drivers in
//! `benches/examples/`; this crate hosts them and the inputs they share, so a
//! criterion rate and an instruction-count profile measure the same message.
#![forbid(unsafe_code)]

use qaqpa_adapters::soap::{write_envelope, SoapVersion, XRoadHeader, XRoadIdentifier};

/// An X-Road SOAP request whose Body holds about `size` bytes of records.
pub fn soap_message(size: usize) -> String {
    let header = XRoadHeader {
        client: Some(XRoadIdentifier::from_id("KZ/GOV/000000000003/egov-portal")),
        service: Some(XRoadIdentifier::from_id("KZ/GOV/000000000002/legacy-tax/debt/v1")),
        id: Some("bench-1".into()),
        protocol_version: Some("4.0".into()),
        ..Default::default()
    };
    let mut body = String::from("<t:GetDebts xmlns:t=\"http://legacy-tax.gov.kz/debt\">");
    while body.len() < size {
        body.push_str(
            "<t:person iin=\"900101300123\"><t:name>Әлия Серікқызы</t:name><t:amount>1250.50</t:amount></t:person>",
        );
    }
    body.push_str("</t:GetDebts>");
    write_envelope(SoapVersion::V11, &header, &body)
}
