//! The eight XML Signature Wrapping variants (after Somorovsky et al., "On Breaking
//! SAML", as SAML Raider numbers them, transposed to a signed SOAP Body), plus the
//! X-Road header variant. Each keeps the signed element intact (so its digest still
//! matches) and puts a forged one where a naive reader would look. The envelope
//! reader refuses any SOAP Body or X-Road element out of its place; the verifier
//! refuses duplicate Ids and anything routed or forwarded that it did not cover.
//! gateway/tests/signatures.rs keeps the older wrapping cases beside the interop
//! tests; certs/src/xmldsig/tests.rs checks the verifier alone.

use super::support::*;
use crate::common::*;

/// Named like the signed Body's element (the service code), so X-Road's
/// header-and-body check passes and the signature checks decide.
const FORGED: &str = "<p:rec-signed-soap xmlns:p=\"urn:person\"><p:iin>111111111111</p:iin></p:rec-signed-soap>";

#[tokio::test]
async fn eight_signature_wrapping_variants_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let fresh = |id: &str| sign(&gw, &envelope(CLIENT, REC_SIGNED_SOAP, Some(id), "900101300123"));
    // The signed message split: the signed Body element, its Id, the rest.
    let parts = |doc: &str| {
        let start = doc.find("<env:Body").unwrap();
        let end = doc.find("</env:Body>").unwrap() + "</env:Body>".len();
        let body = doc[start..end].to_owned();
        let id = body.split("wsu:Id=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        (body, id, doc[..start].to_owned(), doc[end..].to_owned())
    };
    let forged_body = "<env:Body>".to_owned() + FORGED + "</env:Body>";
    let forged_with_id = |id: &str| {
        format!("<env:Body xmlns:wsu=\"{}\" wsu:Id=\"{id}\">{FORGED}</env:Body>", qaqpa_certs::xmldsig::WSU_NS)
    };
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    // XSW1: forged Body in place; the signed Body in a wrapper after SignedInfo.
    let (body, _, before, after) = parts(&fresh("xsw-1"));
    let doc = format!("{before}{forged_body}{after}").replacen(
        "</ds:SignedInfo>",
        &format!("</ds:SignedInfo><w:W xmlns:w=\"urn:w\">{body}</w:W>"),
        1,
    );
    cases.push(("XSW1 signed Body after SignedInfo", doc, "client.bad_xml"));
    // XSW2: the same, the wrapper before SignedInfo.
    let (body, _, before, after) = parts(&fresh("xsw-2"));
    let doc = format!("{before}{forged_body}{after}").replacen(
        "<ds:SignedInfo>",
        &format!("<w:W xmlns:w=\"urn:w\">{body}</w:W><ds:SignedInfo>"),
        1,
    );
    cases.push(("XSW2 signed Body before SignedInfo", doc, "client.bad_xml"));
    // XSW3: a forged Body with the signed Id before the signed one (two Bodies).
    let (body, id, before, after) = parts(&fresh("xsw-3"));
    cases.push((
        "XSW3 forged sibling Body first, same Id",
        format!("{before}{}{body}{after}", forged_with_id(&id)),
        "client.bad_xml",
    ));
    // XSW4: the forged Body wraps the signed one.
    let (body, _, before, after) = parts(&fresh("xsw-4"));
    let doc = format!("{before}<env:Body>{FORGED}{body}</env:Body>{after}");
    cases.push(("XSW4 forged Body wraps the signed one", doc, "client.bad_xml"));
    // XSW5: the signed content under its Id in a Header block that is no Body; the
    // forged Body in place, Id-less.
    let (body, _, before, after) = parts(&fresh("xsw-5"));
    let moved = body.replacen("<env:Body", "<w:Copy xmlns:w=\"urn:w\"", 1).replacen("</env:Body>", "</w:Copy>", 1);
    let doc = format!("{before}{forged_body}{after}").replacen("</env:Header>", &format!("{moved}</env:Header>"), 1);
    cases.push(("XSW5 signed Id on a look-alike Header block", doc, "client.bad_signature"));
    // XSW6: the signed Body inside ds:Object of the Signature, forged in place.
    let (body, _, before, after) = parts(&fresh("xsw-6"));
    let doc = format!("{before}{forged_body}{after}").replacen(
        "</ds:Signature>",
        &format!("<ds:Object>{body}</ds:Object></ds:Signature>"),
        1,
    );
    cases.push(("XSW6 signed Body in ds:Object", doc, "client.bad_xml"));
    // XSW7: the signed Body in an extension Header block; forged in place with the same Id.
    let (body, id, before, after) = parts(&fresh("xsw-7"));
    let doc = format!("{before}{}{after}", forged_with_id(&id)).replacen(
        "</env:Header>",
        &format!("<w:Extensions xmlns:w=\"urn:w\">{body}</w:Extensions></env:Header>"),
        1,
    );
    cases.push(("XSW7 signed Body in Extensions, forged with same Id", doc, "client.bad_xml"));
    // XSW8: the signed Body in a wrapper inside ds:Object; forged in place, Id-less.
    let (body, _, before, after) = parts(&fresh("xsw-8"));
    let doc = format!("{before}{forged_body}{after}").replacen(
        "</ds:Signature>",
        &format!("<ds:Object><w:W xmlns:w=\"urn:w\">{body}</w:W></ds:Object></ds:Signature>"),
        1,
    );
    cases.push(("XSW8 signed Body wrapped inside ds:Object", doc, "client.bad_xml"));
    // Id-only variants the reader cannot see: a duplicate Id on a non-SOAP element,
    // and the forged Body carrying the signed Id with the signed Body dropped.
    let signed = fresh("xsw-9");
    let (_, id, before, after) = parts(&signed);
    let dup = signed.replacen("<xrd:id ", &format!("<w:x xmlns:w=\"urn:w\" Id=\"{id}\"/><xrd:id "), 1);
    cases.push(("duplicate Id beside the signed one", dup, "client.bad_signature"));
    cases.push((
        "forged Body under the signed Id",
        format!("{before}{}{after}", forged_with_id(&id)),
        "client.bad_signature",
    ));
    // The X-Road header variant: the signed client moved into a wrapper, another
    // system's unsigned client in its place.
    let signed = fresh("xsw-10");
    let start = signed.find("<xrd:client").unwrap();
    let end = signed.find("</xrd:client>").unwrap() + "</xrd:client>".len();
    let client = &signed[start..end];
    let forged_client = envelope(OTHER_CLIENT, REC_SIGNED_SOAP, None, "");
    let forged_client = &forged_client[forged_client.find("<xrd:client").unwrap()..];
    let forged_client = &forged_client[..forged_client.find("</xrd:client>").unwrap() + "</xrd:client>".len()];
    let doc =
        format!("{}{forged_client}<w:Keep xmlns:w=\"urn:w\">{client}</w:Keep>{}", &signed[..start], &signed[end..]);
    cases.push(("signed X-Road client wrapped away", doc, "client.bad_request"));

    for (what, doc, expected) in cases {
        let (status, code, body) = post_soap(&gw, "egov-portal", doc).await;
        assert_eq!((status, code.as_str()), (200, expected), "{what}: {body}");
        assert!(xroad_fault(&body, expected), "{what}: {body}");
    }
    assert_eq!(rec.count(), 0, "no wrapped message reached the provider");
    // The unwrapped message still passes, byte for byte.
    let good = fresh("xsw-ok");
    assert_eq!(post_soap(&gw, "egov-portal", good.clone()).await.0, 200);
    assert_eq!(rec.parsed()[0].body, good.as_bytes());
}
