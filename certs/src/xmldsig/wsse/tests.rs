use super::*;
use crate::keys::SigningKey;
use crate::pki::DevCa;
use crate::xmldsig::sign_soap;
use qaqpa_routing::SystemId;

const NOW: i64 = 1_795_000_000;

/// A ШЭП SyncChannel message (no X-Road header), its Body with a wsu:Id.
const MESSAGE: &str = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header></soap:Header><soap:Body xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" wsu:Id="id-1"><ns3:SendMessage xmlns:ns3="http://bip.bee.kz/SyncChannel/v10/Types"><request><requestInfo><messageId>m-1</messageId><serviceId>S</serviceId></requestInfo><requestData><data><iin>900101300123</iin></data></requestData></request></ns3:SendMessage></soap:Body></soap:Envelope>"#;

/// Signed, with the Signature moved into `wrapper` (open, close) inside the Header.
fn signed_in(open: &str, close: &str) -> String {
    let now = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
    let ca = DevCa::generate("CA", now).unwrap();
    let pair = ca.issue_client(&SystemId::parse("KZ/GOV/000000000003/egov-portal").unwrap(), now).unwrap();
    let key = SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap();
    let chain = vec![pair.cert_der().unwrap().to_vec()];
    let signed =
        String::from_utf8(sign_soap(MESSAGE.as_bytes(), &key, &chain, DigestAlg::Sha256, NOW).unwrap()).unwrap();
    let start = signed.find("<ds:Signature").unwrap();
    let end = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    format!("{}{open}{}{close}{}", &signed[..start], &signed[start..end], &signed[end..])
}

const SECURITY: (&str, &str) = (
    r#"<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">"#,
    "</wsse:Security>",
);

#[test]
fn a_ws_security_signature_verifies() {
    let doc = signed_in(SECURITY.0, SECURITY.1);
    let v = verify_wsse(doc.as_bytes(), &Standard).unwrap();
    assert_eq!(v.created, Some(NOW));
    assert_eq!(v.chain.len(), 1);
    // The ranges the caller compares with its own reader: the Body's content, the Header.
    assert!(
        doc[v.structure.body_content.clone()].starts_with("<ns3:SendMessage")
            && doc[v.structure.body_content.clone()].ends_with("</ns3:SendMessage>")
    );
    assert!(
        doc[v.structure.header.clone()].starts_with("<soap:Header>")
            && doc[v.structure.header].ends_with("</soap:Header>")
    );
    // Directly in the Header is accepted too.
    verify_wsse(signed_in("", "").as_bytes(), &Standard).unwrap();
}

#[test]
fn placement_content_and_algorithms_are_checked() {
    let deeper = signed_in(&format!("{}<x:Extra xmlns:x=\"urn:x\">", SECURITY.0), &format!("</x:Extra>{}", SECURITY.1));
    assert!(matches!(verify_wsse(deeper.as_bytes(), &Standard), Err(DsigError::MisplacedSignature)));
    let changed = signed_in(SECURITY.0, SECURITY.1).replace("900101300123", "000000000000");
    assert!(matches!(verify_wsse(changed.as_bytes(), &Standard), Err(DsigError::DigestMismatch(_))));
    assert!(matches!(verify_wsse(MESSAGE.as_bytes(), &Standard), Err(DsigError::NoSignature)));

    /// An algorithm set without ECDSA: the same message is refused by its method.
    struct RsaOnly;
    impl Algorithms for RsaOnly {
        fn verify(&self, uri: &str, cert: &[u8], signed: &[u8], signature: &[u8]) -> Result<(), DsigError> {
            if !uri.contains("rsa") {
                return Err(DsigError::Algorithm(uri.to_owned()));
            }
            Standard.verify(uri, cert, signed, signature)
        }
        fn digest(&self, uri: &str, data: &[u8]) -> Option<Vec<u8>> {
            Standard.digest(uri, data)
        }
    }
    let doc = signed_in(SECURITY.0, SECURITY.1);
    assert!(matches!(verify_wsse(doc.as_bytes(), &RsaOnly), Err(DsigError::Algorithm(_))));
}
