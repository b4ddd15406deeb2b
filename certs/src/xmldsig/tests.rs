use super::*;
use crate::pki::DevCa;
use qaqpa_routing::SystemId;

pub(crate) const MESSAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers">
  <soap:Header>
    <xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000003</id:memberCode><id:subsystemCode>egov-portal</id:subsystemCode></xrd:client>
    <xrd:service id:objectType="SERVICE"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000002</id:memberCode><id:subsystemCode>legacy-tax</id:subsystemCode><id:serviceCode>debt</id:serviceCode><id:serviceVersion>v1</id:serviceVersion></xrd:service>
    <xrd:id>msg-1</xrd:id>
    <xrd:protocolVersion>4.0</xrd:protocolVersion>
  </soap:Header>
  <soap:Body>
    <tax:GetDebt xmlns:tax="http://legacy-tax.gov.kz/debt"><tax:iin>900101300123</tax:iin></tax:GetDebt>
  </soap:Body>
</soap:Envelope>"#;

const NOW: i64 = 1_795_000_000;

struct Signer {
    key: SigningKey,
    chain: Vec<Vec<u8>>,
}

fn signer() -> Signer {
    let now = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
    let ca = DevCa::generate("CA", now).unwrap();
    let pair = ca.issue_client(&SystemId::parse("KZ/GOV/000000000003/egov-portal").unwrap(), now).unwrap();
    Signer {
        key: SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap(),
        chain: vec![pair.cert_der().unwrap().to_vec()],
    }
}

fn signed(s: &Signer) -> String {
    String::from_utf8(sign_soap(MESSAGE.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW).unwrap()).unwrap()
}

#[test]
fn a_signed_message_verifies_and_names_what_it_covers() {
    let s = signer();
    let doc = signed(&s);
    let v = verify_soap(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{doc}"));
    assert_eq!(v.alg, SignatureAlg::EcdsaP256Sha256);
    assert_eq!(v.created, NOW);
    assert_eq!(v.chain, s.chain);
    assert!(doc[v.body.clone()].starts_with("<soap:Body") && doc[v.body.clone()].ends_with("</soap:Body>"));
    assert_eq!(v.structure.body_content.start, v.body.start + doc[v.body.clone()].find('>').unwrap() + 1);
    assert_eq!(v.structure.body_content.end, v.body.end - "</soap:Body>".len());
    let header = v.structure.header.clone();
    assert!(doc[header.clone()].starts_with("<soap:Header>") && doc[header].ends_with("</soap:Header>"));
    // An empty Body is an element of its own start tag, its content empty.
    let empty = MESSAGE.replacen(
        &MESSAGE[MESSAGE.find("<soap:Body>").unwrap()..MESSAGE.find("</soap:Envelope>").unwrap()],
        "<soap:Body/>",
        1,
    );
    let doc = sign_soap(empty.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW).unwrap();
    let v = verify_soap(&doc).unwrap();
    assert!(doc[v.body.clone()].starts_with(b"<soap:Body") && doc[v.body.clone()].ends_with(b"/>"));
    assert!(v.structure.body_content.is_empty() && v.structure.body_content.start == v.body.end);
    let doc = signed(&s);
    // Only additions: the original text of the operation is untouched.
    assert!(doc.contains(
        "<tax:GetDebt xmlns:tax=\"http://legacy-tax.gov.kz/debt\"><tax:iin>900101300123</tax:iin></tax:GetDebt>"
    ));
    // SHA-512 and Ed25519 too.
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let now = time::OffsetDateTime::from_unix_timestamp(NOW).unwrap();
    let ca = DevCa::generate("CA", now).unwrap();
    let cert = ca.issue_client_for_key(&SystemId::parse("KZ/GOV/1/a").unwrap(), &ed.serialize_pem(), now).unwrap();
    let ed_signer = Signer {
        key: SigningKey::from_pem(ed.serialize_pem().as_bytes()).unwrap(),
        chain: vec![rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap().to_vec()],
    };
    let doc = sign_soap(MESSAGE.as_bytes(), &ed_signer.key, &ed_signer.chain, DigestAlg::Sha512, NOW).unwrap();
    assert_eq!(verify_soap(&doc).unwrap().alg, SignatureAlg::Ed25519);
    assert!(String::from_utf8(doc).unwrap().contains("xmlenc#sha512"));
}

use rustls_pki_types::pem::PemObject;

#[track_caller]
fn refused(doc: &str) -> DsigError {
    verify_soap(doc.as_bytes()).expect_err("must be refused")
}

#[test]
fn a_changed_byte_anywhere_signed_is_refused() {
    let doc = signed(&signer());
    assert!(doc.contains(">msg-1</xrd:id>"));
    let body = doc.replace("900101300123</tax:iin>", "900101300124</tax:iin>");
    assert!(matches!(refused(&body), DsigError::DigestMismatch(_)));
    let header = doc.replace(">msg-1</xrd:id>", ">msg-2</xrd:id>");
    assert!(matches!(refused(&header), DsigError::DigestMismatch(_)));
    let info = doc.replace("xmlenc#sha256\"></ds:DigestMethod>", "xmlenc#sha256\" ></ds:DigestMethod>");
    assert_eq!(
        verify_soap(info.as_bytes()).map(|_| ()),
        Ok(()),
        "insignificant whitespace inside a tag is not a change"
    );
    let info = doc.replacen("<ds:DigestValue>", "<ds:DigestValue> ", 1);
    assert!(matches!(refused(&info), DsigError::SignatureValue(_)), "SignedInfo changed");
    let created = doc.split("<wsu:Created>").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(created, "2026-11-18T11:06:40Z");
    let stamp = doc.replace(created, "2026-11-18T11:06:41Z");
    assert!(matches!(refused(&stamp), DsigError::DigestMismatch(_)));
}

/// The signed message's Body element, and the message with it cut out.
fn cut_body(doc: &str) -> (String, String) {
    let start = doc.find("<soap:Body").unwrap();
    let end = doc.find("</soap:Body>").unwrap() + "</soap:Body>".len();
    (doc[start..end].to_owned(), format!("{}{}", &doc[..start], &doc[end..]))
}

const EVIL_BODY: &str = "<soap:Body><tax:GetDebt xmlns:tax=\"http://legacy-tax.gov.kz/debt\"><tax:iin>111111111111</tax:iin></tax:GetDebt></soap:Body>";

#[test]
fn signature_wrapping_is_refused() {
    let doc = signed(&signer());
    let (body, without) = cut_body(&doc);
    // 1. Signed Body moved into the Header, an unsigned Body in its place.
    let moved_to_header = without
        .replacen("</soap:Header>", &format!("<w:Wrapper xmlns:w=\"urn:w\">{body}</w:Wrapper></soap:Header>"), 1)
        .replacen("</soap:Envelope>", &format!("{EVIL_BODY}</soap:Envelope>"), 1);
    assert_eq!(refused(&moved_to_header), DsigError::Unsigned("the SOAP Body".into()));
    // 2. Signed Body moved into a ds:Object of the Signature.
    let moved_to_object = without
        .replacen("</ds:Signature>", &format!("<ds:Object>{body}</ds:Object></ds:Signature>"), 1)
        .replacen("</soap:Envelope>", &format!("{EVIL_BODY}</soap:Envelope>"), 1);
    assert_eq!(refused(&moved_to_object), DsigError::Unsigned("the SOAP Body".into()));
    // 3. An unsigned second Body beside the signed one.
    let two_bodies = doc.replacen("</soap:Envelope>", &format!("{EVIL_BODY}</soap:Envelope>"), 1);
    assert_eq!(refused(&two_bodies), DsigError::NotSoap);
    // 4. A forged Body carrying the signed Body's Id (the original kept elsewhere).
    let id = body.split("wsu:Id=\"").nth(1).unwrap().split('"').next().unwrap();
    let evil_with_id =
        EVIL_BODY.replacen("<soap:Body>", &format!("<soap:Body xmlns:wsu=\"{WSU_NS}\" wsu:Id=\"{id}\">"), 1);
    let duplicate_id = without
        .replacen("</soap:Header>", &format!("<w:Wrapper xmlns:w=\"urn:w\">{body}</w:Wrapper></soap:Header>"), 1)
        .replacen("</soap:Envelope>", &format!("{evil_with_id}</soap:Envelope>"), 1);
    assert_eq!(refused(&duplicate_id), DsigError::DuplicateId(id.to_owned()));
    // 5. The signed client header wrapped away, an unsigned one in its place.
    let client_start = doc.find("<xrd:client").unwrap();
    let client_end = doc.find("</xrd:client>").unwrap() + "</xrd:client>".len();
    let client = &doc[client_start..client_end];
    let forged_client = client
        .replace("000000000003", "000000000009")
        .replace(" xmlns:wsu=", " xmlns:x=")
        .replace(" wsu:Id=\"qaqpa-1\"", "");
    let swapped = format!(
        "{}{forged_client}<w:Keep xmlns:w=\"urn:w\">{client}</w:Keep>{}",
        &doc[..client_start],
        &doc[client_end..]
    );
    assert_eq!(refused(&swapped), DsigError::Unsigned("the X-Road header element client".into()));
    // 6. An extra unsigned X-Road header element.
    let extra = doc.replacen("</soap:Header>", "<xrd:userId>intruder</xrd:userId></soap:Header>", 1);
    assert_eq!(refused(&extra), DsigError::Unsigned("the X-Road header element userId".into()));
    // 7. The Signature moved out of the Header into the Body.
    let sig_start = doc.find("<ds:Signature").unwrap();
    let sig_end = doc.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &doc[sig_start..sig_end];
    let outside =
        format!("{}{}", &doc[..sig_start], &doc[sig_end..]).replacen("</soap:Body>", &format!("{sig}</soap:Body>"), 1);
    assert!(matches!(refused(&outside), DsigError::MisplacedSignature | DsigError::DigestMismatch(_)));
    // 8. References other than #id: whole document, XPointer.
    let whole = doc.replacen("URI=\"#qaqpa-1\"", "URI=\"\"", 1);
    assert!(matches!(refused(&whole), DsigError::BadReferenceUri(_)));
    let xpointer = doc.replacen("URI=\"#qaqpa-1\"", "URI=\"#xpointer(/)\"", 1);
    assert!(matches!(refused(&xpointer), DsigError::BadReferenceUri(_)));
    // 9. A second Signature.
    let twice = doc.replacen("</soap:Header>", &format!("{sig}</soap:Header>"), 1);
    assert_eq!(refused(&twice), DsigError::TooManySignatures);
}

#[test]
fn weak_or_unknown_algorithms_and_missing_parts_are_refused() {
    let doc = signed(&signer());
    let sha1 = doc.replacen("http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2000/09/xmldsig#sha1", 1);
    assert!(matches!(refused(&sha1), DsigError::Algorithm(_)));
    let rsa_sha1 =
        doc.replace(SignatureAlg::EcdsaP256Sha256.xmldsig_uri(), "http://www.w3.org/2000/09/xmldsig#rsa-sha1");
    assert!(matches!(refused(&rsa_sha1), DsigError::Algorithm(_)));
    let confused = doc.replace(SignatureAlg::EcdsaP256Sha256.xmldsig_uri(), SignatureAlg::RsaSha256.xmldsig_uri());
    assert!(matches!(refused(&confused), DsigError::SignatureValue(KeyError::AlgorithmMismatch(_))));
    let xslt = doc.replacen(
        &format!("Algorithm=\"{EXC_C14N}\"></ds:Transform>"),
        "Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"></ds:Transform>",
        1,
    );
    assert!(matches!(refused(&xslt), DsigError::Algorithm(_)));
    let start = doc.find("<ds:KeyInfo>").unwrap();
    let end = doc.find("</ds:KeyInfo>").unwrap() + "</ds:KeyInfo>".len();
    let no_key = format!("{}{}", &doc[..start], &doc[end..]);
    assert_eq!(refused(&no_key), DsigError::NoCertificate);
    assert_eq!(refused(MESSAGE), DsigError::NoSignature);
    assert_eq!(refused("<a/>"), DsigError::NotSoap);
    assert!(matches!(refused("<a>"), DsigError::Xml(_)));
    // Signing a signed message is refused rather than nested.
    let s = signer();
    assert_eq!(sign_soap(doc.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW), Err(DsigError::AlreadySigned));
}

#[test]
fn truncations_and_garbage_never_panic() {
    let doc = signed(&signer());
    let bytes = doc.as_bytes();
    for cut in (0..bytes.len()).step_by(7) {
        let _ = verify_soap(&bytes[..cut]);
    }
    let mut state = 0x2545F4914F6CDD1Du64;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut damaged = bytes.to_vec();
        let at = (state as usize) % damaged.len();
        damaged[at] = (state >> 40) as u8;
        let _ = verify_soap(&damaged);
    }
}

#[test]
fn a_message_without_a_header_gets_one_and_is_signed() {
    let s = signer();
    let bare =
        r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><r>42</r></e:Body></e:Envelope>"#;
    let doc = sign_soap(bare.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW).unwrap();
    let text = String::from_utf8(doc.clone()).unwrap();
    assert!(
        text.starts_with("<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Header><wsu:Timestamp"),
        "{text}"
    );
    assert_eq!(verify_soap(&doc).unwrap().created, NOW);
    assert!(sign_soap(b"<a><b/></a>", &s.key, &s.chain, DigestAlg::Sha256, NOW).is_err(), "not SOAP");
}

/// Issue 15: a comment inside signed content digests as if it were not there, so a
/// provider reading text nodes apart would read something other than was signed.
#[test]
fn comments_inside_signed_content_are_refused_and_the_signed_id_is_named() {
    let s = signer();
    let doc = signed(&s);
    assert_eq!(verify_soap(doc.as_bytes()).unwrap().message_id.as_deref(), Some("msg-1"));
    // Exclusive c14n without comments: the digest still matches, the comment is refused.
    let split = doc.replacen("<tax:iin>900101300123</tax:iin>", "<tax:iin>9001<!---->01300123</tax:iin>", 1);
    assert_eq!(refused(&split), DsigError::CommentInSignedContent("Body".into()));
    let in_header = doc.replacen(">msg-1</xrd:id>", ">msg<!-- x -->-1</xrd:id>", 1);
    assert_eq!(refused(&in_header), DsigError::CommentInSignedContent("id".into()));
    // A comment outside every signed element changes nothing anyone reads.
    let between = doc.replacen("<soap:Body", "<!-- between --><soap:Body", 1);
    assert!(verify_soap(between.as_bytes()).is_ok());
    // The signer refuses to sign what the verifier would refuse.
    let commented = MESSAGE.replacen("<tax:iin>", "<tax:iin><!-- c -->", 1);
    assert_eq!(
        sign_soap(commented.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW),
        Err(DsigError::CommentInSignedContent("Body".into()))
    );
    // A message without xrd:id verifies, and says so: the caller refuses it.
    let start = MESSAGE.find("<xrd:id>").unwrap();
    let end = MESSAGE.find("</xrd:id>").unwrap() + "</xrd:id>".len();
    let no_id = format!("{}{}", &MESSAGE[..start], &MESSAGE[end..]);
    let doc =
        String::from_utf8(sign_soap(no_id.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW).unwrap()).unwrap();
    assert_eq!(verify_soap(doc.as_bytes()).unwrap().message_id, None);
}

/// Signing finds each target in the spliced message through the index of the
/// original (issue 21): awkward layouts — a header child right after the Header's
/// start tag (where the Timestamp goes), children that have Ids beside ones that
/// get them, a wsu prefix already declared, a default namespace, no whitespace,
/// an empty Body — all verify, and a digest made from a fresh parse of the signed
/// message agrees with the one signing made.
#[test]
fn signing_locates_its_targets_in_awkward_layouts() {
    let s = signer();
    let wsu = WSU_NS;
    let layouts = [
        MESSAGE.replace("<soap:Header>\n    ", "<soap:Header>"),
        MESSAGE.replace("<xrd:id>", &format!("<xrd:id xmlns:wsu=\"{wsu}\" wsu:Id=\"mine\">")),
        MESSAGE.replace("<soap:Body>", &format!("<soap:Body xmlns:wsu=\"{wsu}\" wsu:Id=\"body\">")),
        MESSAGE.replace("<xrd:protocolVersion>", "<xrd:protocolVersion xmlns=\"urn:default\">"),
        MESSAGE.replace("\n    ", "").replace("\n  ", "").replace('\n', ""),
        MESSAGE.replace(
            "<soap:Body>\n    <tax:GetDebt xmlns:tax=\"http://legacy-tax.gov.kz/debt\"><tax:iin>900101300123</tax:iin></tax:GetDebt>\n  </soap:Body>",
            "<soap:Body/>",
        ),
    ];
    for (n, message) in layouts.iter().enumerate() {
        let out = sign_soap(message.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW)
            .unwrap_or_else(|e| panic!("layout {n}: {e}\n{message}"));
        let doc = String::from_utf8(out).unwrap();
        verify_soap(doc.as_bytes()).unwrap_or_else(|e| panic!("layout {n}: {e}\n{doc}"));
        // Each Reference's digest, recomputed by canonicalizing from the start of
        // the signed message (no index, no splice arithmetic).
        let index = index(doc.as_bytes()).unwrap();
        for reference in &index.signatures[0].references {
            let id = &reference.uri[1..];
            let start = index.elements[index.ids[id]].start;
            let mut canonical = Vec::new();
            c14n::canonicalize(doc.as_bytes(), start, None, &C14nOptions::default(), &mut canonical).unwrap();
            assert_eq!(
                STANDARD.encode(DigestAlg::Sha256.digest(&canonical)),
                reference.digest_value,
                "layout {n}, #{id}"
            );
        }
    }
}

/// The verifier's tokenizer and the faces' hardened envelope reader, on messages
/// built to be read two ways (markup hidden in comments, CDATA, processing
/// instructions and attribute values, extra Headers and Bodies, references): where
/// both accept a message, they find the same Header and the same Body content. The
/// faces refuse a signed message on which they do not (`require_same_structure`);
/// this looks for such messages.
#[test]
fn the_tokenizer_and_the_envelope_reader_agree_where_both_accept() {
    use qaqpa_adapters::soap::{read_envelope, XmlLimits};
    const SNIPPETS: &[&str] = &[
        "<!-- <soap:Body><x/></soap:Body> -->",
        "<![CDATA[</soap:Body><soap:Body>]]>",
        "<?pi </soap:Header><soap:Body> ?>",
        "<w a=\"x>y\" b='</soap:Body>'/>",
        "<w a=\"<soap:Body>\"/>",
        "&amp;&lt;soap:Body&gt;",
        "</soap:Header><soap:Header>",
        "<soap:Body></soap:Body>",
        "<soap:Body/>",
        "<soap:Header/>",
        "\r\n\t",
        "<w xmlns:soap=\"urn:other\"><soap:Body/></w>",
        "<soap:Body xmlns:soap=\"urn:other\"/>",
        "<!DOCTYPE x>",
        "</w>",
        "<w>",
    ];
    let limits = XmlLimits::default();
    // Every place between two pieces of markup, and inside every start tag.
    let places: Vec<usize> =
        MESSAGE.char_indices().filter(|&(_, c)| c == '<' || c == '>' || c == ' ').map(|(i, _)| i).collect();
    let (mut both, mut disagreements) = (0, Vec::new());
    for &at in &places {
        for snippet in SNIPPETS {
            let doc = format!("{}{snippet}{}", &MESSAGE[..at], &MESSAGE[at..]);
            let (Ok(read), Ok(index)) = (read_envelope(doc.as_bytes(), None, &limits), index(doc.as_bytes())) else {
                continue;
            };
            let Ok(soap) = soap_structure(&index) else { continue };
            both += 1;
            let signed = Structure::of(doc.as_bytes(), &index, &soap);
            if signed.body_content != read.body || read.header_element.as_ref() != Some(&signed.header) {
                disagreements.push(doc);
            }
        }
    }
    assert!(both > 100, "only {both} variants were read by both: the test would prove nothing");
    assert!(disagreements.is_empty(), "{} read two ways, e.g.\n{}", disagreements.len(), disagreements[0]);
}

/// What signing returns besides the message is what a verify of it reports: the
/// gateway logs it for a message it signed on behalf without verifying its own work.
#[test]
fn the_value_signing_returns_is_the_one_a_verify_reads() {
    let s = signer();
    let (doc, value) = sign_soap_with_value(MESSAGE.as_bytes(), &s.key, &s.chain, DigestAlg::Sha256, NOW).unwrap();
    let verified = verify_soap(&doc).unwrap();
    assert_eq!(verified.signature_value, value);
    assert_eq!(verified.chain, s.chain);
    assert_eq!(verified.created, NOW);
    // And the message is the one `sign_soap` makes (ECDSA is randomized: compare
    // everything but the value).
    let other = signed(&s);
    let strip = |d: &str| {
        d.split("<ds:SignatureValue>").next().unwrap().to_owned() + d.split("</ds:SignatureValue>").nth(1).unwrap()
    };
    assert_eq!(strip(std::str::from_utf8(&doc).unwrap()), strip(&other));
}

/// One parse for the verify and the signing on behalf: a signed message is verified,
/// an unsigned one is signed when a key is given (and refused when not), and a
/// message that cannot be signed says it was the signing that failed.
#[test]
fn verify_or_sign_verifies_signs_or_says_which_step_failed() {
    let s = signer();
    let with = || Some(SignWith { key: &s.key, chain: &s.chain, digest: DigestAlg::Sha256, now_unix: NOW });
    match verify_or_sign_soap(MESSAGE.as_bytes(), with()).unwrap() {
        VerifiedOrSigned::Signed { doc, value } => {
            let verified = verify_soap(&doc).unwrap();
            assert_eq!(verified.signature_value, value);
            assert_eq!(verified.created, NOW);
            match verify_or_sign_soap(&doc, with()).unwrap() {
                VerifiedOrSigned::Verified(v) => assert_eq!(v.signature_value, value),
                other => panic!("a signed message is verified, not signed again: {other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        verify_or_sign_soap(MESSAGE.as_bytes(), None),
        Err(VerifyOrSignError::Verify(DsigError::NoSignature))
    ));
    // The Body's wsu prefix names another namespace: no Id can be given to it.
    let odd = MESSAGE.replace("<soap:Body>", "<soap:Body xmlns:wsu=\"urn:other\">");
    assert!(matches!(verify_or_sign_soap(odd.as_bytes(), with()), Err(VerifyOrSignError::Sign(_))));
    // A broken signature is the verify's failure, never a reason to sign over it.
    let signed = signed(&s).replace("900101300123", "900101300124");
    assert!(matches!(verify_or_sign_soap(signed.as_bytes(), with()), Err(VerifyOrSignError::Verify(_))));
}
