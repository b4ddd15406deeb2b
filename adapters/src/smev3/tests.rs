use super::*;
use crate::soap::XmlLimits;

/// Shaped like the public samples (docs/smev3.md#sources): prefixes `S`, `ns`,
/// `ns2`, the signed part `SIGNED_BY_CALLER`, its signature a sibling.
const SEND: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1">
  <S:Header/>
  <S:Body>
    <ns:SendRequestRequest xmlns:ns2="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1">
      <ns:SenderProvidedRequestData Id="SIGNED_BY_CALLER">
        <ns:MessageID>87b32127-323d-11ec-b0bc-000c293433a0</ns:MessageID>
        <ns2:MessagePrimaryContent>
          <ac:AddressChangeRequest xmlns:ac="urn://x-artefacts-example-ru/address-change/1.0.0"><ac:Person>900101300123</ac:Person></ac:AddressChangeRequest>
        </ns2:MessagePrimaryContent>
        <ns:TestMessage/>
      </ns:SenderProvidedRequestData>
      <ns:CallerInformationSystemSignature><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature></ns:CallerInformationSystemSignature>
    </ns:SendRequestRequest>
  </S:Body>
</S:Envelope>"#;

fn read_str(s: &str) -> Result<Call, Smev3Error> {
    read(s.as_bytes(), Some("text/xml; charset=utf-8"), &XmlLimits::default())
}

#[test]
fn a_send_request_gives_its_signed_part_signature_and_kind() {
    let call = read_str(SEND).unwrap();
    assert_eq!((call.version, call.operation), (Version::V11, Operation::SendRequest));
    assert_eq!(call.message_id.as_deref(), Some("87b32127-323d-11ec-b0bc-000c293433a0"));
    assert!(call.test_message);
    assert_eq!(
        call.kind,
        Some(("urn://x-artefacts-example-ru/address-change/1.0.0".into(), "AddressChangeRequest".into()))
    );
    let signed = call.signed.as_ref().unwrap();
    assert_eq!(signed.id.as_deref(), Some(SIGNED_BY_CALLER));
    let text = std::str::from_utf8(&SEND.as_bytes()[signed.range.clone()]).unwrap();
    assert!(text.starts_with("<ns:SenderProvidedRequestData") && text.ends_with("</ns:SenderProvidedRequestData>"));
    // Detached, it declares what its ancestors declared.
    let detached = String::from_utf8(signed.detached(SEND.as_bytes())).unwrap();
    assert!(detached.starts_with(
        "<ns:SenderProvidedRequestData xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:ns=\"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1\" xmlns:ns2=\"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1\" Id="
    ), "{detached}");
    let signature = call.signature.as_ref().unwrap();
    assert!(
        SEND[signature.range.clone()].starts_with("<ds:Signature")
            && SEND[signature.range.clone()].ends_with("</ds:Signature>")
    );
    let content = &SEND[call.content.as_ref().unwrap().range.clone()];
    assert!(content.starts_with("<ac:AddressChangeRequest") && content.ends_with("</ac:AddressChangeRequest>"));
}

#[test]
fn selectors_acks_and_responses_are_read_where_the_schema_puts_them() {
    let get = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><t:GetRequestRequest xmlns:t="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.2" xmlns:b="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.2"><b:MessageTypeSelector Id="SIGNED_BY_CALLER"><b:NamespaceURI>urn://kind/1</b:NamespaceURI><b:RootElementLocalName>Root</b:RootElementLocalName><b:Timestamp>2026-12-02T00:00:00Z</b:Timestamp></b:MessageTypeSelector></t:GetRequestRequest></s:Body></s:Envelope>"#;
    let call = read_str(get).unwrap();
    assert_eq!((call.version, call.operation), (Version::V12, Operation::GetRequest));
    assert_eq!(call.selector_namespace.as_deref(), Some("urn://kind/1"));
    assert_eq!(call.selector_root.as_deref(), Some("Root"));
    assert!(call.signature.is_none());

    let ack = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><t:AckRequest xmlns:t="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1"><b:AckTargetMessage xmlns:b="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1" Id="SIGNED_BY_CALLER" accepted="false"> 0a1b </b:AckTargetMessage></t:AckRequest></s:Body></s:Envelope>"#;
    let call = read_str(ack).unwrap();
    assert_eq!((call.ack_target.as_deref(), call.accepted), (Some("0a1b"), false));

    let answer = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><t:SendResponseRequest xmlns:t="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1"><t:SenderProvidedResponseData Id="SIGNED_BY_CALLER"><t:MessageID>m-2</t:MessageID><t:To>reply-token</t:To><t:RequestRejected><t:RejectionReasonCode>NO_DATA</t:RejectionReasonCode></t:RequestRejected></t:SenderProvidedResponseData></t:SendResponseRequest></s:Body></s:Envelope>"#;
    let call = read_str(answer).unwrap();
    assert_eq!((call.to.as_deref(), call.response_status.as_deref()), (Some("reply-token"), Some("RequestRejected")));
    assert!(call.kind.is_none());
}

#[test]
fn what_a_reader_could_read_differently_is_refused() {
    let twice = SEND.replace("<ns:TestMessage/>", "<ns:MessageID>00000000-0000-0000-0000-000000000000</ns:MessageID>");
    assert_eq!(read_str(&twice).unwrap_err(), Smev3Error::Duplicate("MessageID"));
    let two_roots =
        SEND.replace("</ac:AddressChangeRequest>", "</ac:AddressChangeRequest><x:Other xmlns:x=\"urn:x\"/>");
    assert!(matches!(read_str(&two_roots), Err(Smev3Error::Invalid(_))));
    let no_ns = SEND.replace("<ac:Person>900101300123</ac:Person>", "").replace(
        "<ac:AddressChangeRequest xmlns:ac=\"urn://x-artefacts-example-ru/address-change/1.0.0\"></ac:AddressChangeRequest>",
        "<Plain/>",
    );
    assert!(matches!(read_str(&no_ns), Err(Smev3Error::Invalid(why)) if why.contains("no namespace")));
    let comment = SEND.replace("87b32127-323d", "87b32127<!---->-323d");
    assert!(matches!(read_str(&comment), Err(Smev3Error::Invalid(why)) if why.contains("comment")));
    let two_ops = SEND.replace("</ns:SendRequestRequest>", "</ns:SendRequestRequest><ns:AckRequest/>");
    assert!(matches!(read_str(&two_ops), Err(Smev3Error::Invalid(_))));
    let two_signatures = SEND.replace(
        "</ns:CallerInformationSystemSignature>",
        "</ns:CallerInformationSystemSignature><ns:CallerInformationSystemSignature/>",
    );
    assert!(read_str(&two_signatures).is_err());
}

#[test]
fn the_soap_readers_hardening_applies() {
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{}",
        SEND.split_once("?>").unwrap().1
    );
    assert_eq!(read_str(&xxe).unwrap_err(), Smev3Error::Soap(crate::soap::SoapError::Doctype));
    let x_road = SEND.replace("types/1.1\"", "types/9.9\"");
    assert_eq!(read_str(&x_road).unwrap_err(), Smev3Error::NotSmev3);
    let unknown = SEND.replace("SendRequestRequest", "GetIncomingQueueStatisticsRequest");
    assert!(matches!(read_str(&unknown), Err(Smev3Error::UnknownOperation(_))));
}

#[test]
fn an_inline_attachment_is_bounded_but_may_exceed_the_text_limit() {
    let with = |len: usize| {
        SEND.replace(
            "<ns:CallerInformationSystemSignature>",
            &format!(
                "<ns2:AttachmentContentList><ns2:AttachmentContent><ns2:Id>a</ns2:Id><ns2:Content>{}</ns2:Content></ns2:AttachmentContent></ns2:AttachmentContentList><ns:CallerInformationSystemSignature>",
                "A".repeat(len)
            ),
        )
    };
    let limits = XmlLimits { max_text_len: 1024, ..XmlLimits::default() };
    let ok = with(64 * 1024);
    let call = read(ok.as_bytes(), None, &limits).unwrap();
    assert!(call.attachments.is_some());
    let big = with(MAX_ATTACHMENT_BYTES / 3 * 4 + 8);
    assert_eq!(read(big.as_bytes(), None, &limits).unwrap_err(), Smev3Error::AttachmentTooLarge(MAX_ATTACHMENT_BYTES));
    // Elsewhere the configured limit holds.
    let long_text = SEND.replace("900101300123", &"9".repeat(2048));
    assert!(matches!(read(long_text.as_bytes(), None, &limits), Err(Smev3Error::Soap(_))));
}

#[test]
fn faults_carry_the_schema_element_and_the_stable_code() {
    let text =
        writer::fault(Version::V11, writer::Fault::SignatureVerificationFault, crate::ErrorCode::BadSignature, "a<b");
    assert!(text.contains("<faultcode>soap:Client</faultcode>"));
    assert!(text.contains("<f:SignatureVerificationFault xmlns:f=\"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/faults/1.1\"><f:Code>client.bad_signature</f:Code><f:Description>a&lt;b</f:Description>"));
    crate::soap::read_envelope(text.as_bytes(), None, &XmlLimits::default()).unwrap();
}

/// The reader's property: no input makes it panic, and what it accepts has ranges
/// inside the input (the fuzz target `smev3_call` runs the same over arbitrary bytes).
#[test]
fn mutated_messages_never_panic_and_ranges_stay_inside() {
    let seed = SEND.as_bytes();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut input = seed.to_vec();
        for k in 0..(state % 4 + 1) {
            let at = ((state >> (8 * k)) as usize) % input.len();
            match (state >> 40) % 3 {
                0 => input[at] = (state >> 16) as u8,
                1 => {
                    input.remove(at);
                }
                _ => input.insert(at, b"<>/\"'=&:"[(state >> 24) as usize % 8]),
            }
        }
        check(&input);
    }
}

pub(crate) fn check(input: &[u8]) {
    if let Ok(call) = read(input, None, &XmlLimits::default()) {
        for part in [&call.signed, &call.signature, &call.attachments, &call.content].into_iter().flatten() {
            assert!(part.range.start <= part.range.end && part.range.end <= input.len());
            let _ = part.detached(input);
        }
    }
}
