//! Real-shaped ШЭП messages (structure from public clients, values our own) and
//! hostile variants.

use super::*;
use crate::soap::XmlLimits;

/// The shape of a signed SyncChannel call as Kazakh integrators publish it:
/// `ns3:SendMessage` with unqualified `request`, a `wsu:Id` on the Body.
pub(crate) const SYNC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <soap:Header/>
  <soap:Body xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" wsu:Id="id-1">
    <ns3:SendMessage xmlns:ns2="http://bip.bee.kz/SyncChannel/v10/Interfaces" xmlns:ns3="http://bip.bee.kz/SyncChannel/v10/Types">
      <request xmlns="">
        <requestInfo>
          <messageId>6f1c2a3e-0d4b-4f7e-9a51-3c2b1d0e9f88</messageId>
          <correlationId/>
          <serviceId>PopulationRegister_Person</serviceId>
          <messageDate>2026-12-01T10:15:00.000+05:00</messageDate>
          <routeId>r-1</routeId>
          <sender>
            <senderId>egov_portal</senderId>
            <password>s3cret &amp; more</password>
          </sender>
          <properties><key>CONNECTOR_CLIENT</key><value>true</value></properties>
          <sessionId>{0b7c6a52-1a2b-4c3d-8e9f-001122334455}</sessionId>
        </requestInfo>
        <requestData>
          <data xsi:type="ns1:PersonRequest" xmlns:ns1="urn:demo"><iin>900101300123</iin></data>
        </requestData>
      </request>
    </ns3:SendMessage>
  </soap:Body>
</soap:Envelope>"#;

fn limits() -> XmlLimits {
    XmlLimits::default()
}

#[test]
fn reads_a_real_shaped_sync_call() {
    let m = read(SYNC.as_bytes(), Some("text/xml; charset=utf-8"), &limits()).unwrap();
    assert_eq!(m.channel, Channel::Sync);
    assert_eq!(m.operation, "SendMessage");
    assert_eq!(m.message_id.as_deref(), Some("6f1c2a3e-0d4b-4f7e-9a51-3c2b1d0e9f88"));
    assert_eq!(m.correlation_id.as_deref(), Some(""));
    assert_eq!(m.service_id.as_deref(), Some("PopulationRegister_Person"));
    assert_eq!(m.route_id.as_deref(), Some("r-1"));
    assert_eq!(m.sender_id(), Some("egov_portal"));
    assert_eq!(m.sender.as_ref().unwrap().password.as_ref().unwrap().expose(), "s3cret & more");
    assert_eq!(m.properties, vec![("CONNECTOR_CLIENT".to_owned(), "true".to_owned())]);
    assert_eq!(m.session_id.as_deref(), Some("{0b7c6a52-1a2b-4c3d-8e9f-001122334455}"));
    assert_eq!(&SYNC[m.data.clone().unwrap()], "<iin>900101300123</iin>");
    assert!(SYNC[m.data_element.clone().unwrap()].starts_with("<data xsi:type"));
    assert!(SYNC[m.data_element.clone().unwrap()].ends_with("</data>"));
    assert_eq!(m.data_type_local(), Some("PersonRequest"));
    // The password never shows in a debug print.
    assert!(!format!("{m:?}").contains("s3cret"));
}

#[test]
fn reads_an_async_send() {
    let text = r#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>
      <ns0:sendMessage xmlns:ns0="http://bip.bee.kz/AsyncChannel/v10/Types"><request><messageInfo>
        <messageId>5024113e-b70b-479d-8ac7-8c65103e3338</messageId><serviceId>TestService</serviceId>
        <messageType>REQUEST</messageType><messageDate>2026-01-04T19:38:18.518</messageDate>
        <sender><senderId>test</senderId><password>test</password></sender></messageInfo>
        <messageData><data><status>STARTED</status></data></messageData></request></ns0:sendMessage>
      </S:Body></S:Envelope>"#;
    let m = read(text.as_bytes(), None, &limits()).unwrap();
    assert_eq!(m.channel, Channel::Async);
    assert_eq!(m.operation, "sendMessage");
    assert_eq!(m.message_type.as_deref(), Some("REQUEST"));
    assert_eq!(&text[m.data.unwrap()], "<status>STARTED</status>");
}

fn replace(from: &str, to: &str) -> String {
    assert!(SYNC.contains(from), "{from}");
    SYNC.replacen(from, to, 1)
}

#[test]
fn refuses_hostile_variants() {
    let cases = [
        // A second serviceId: which one would a provider read?
        replace("<routeId>r-1</routeId>", "<serviceId>Other</serviceId>"),
        // A field nested where ШЭП has none.
        replace("<routeId>r-1</routeId>", "<extra><serviceId>Other</serviceId></extra>"),
        // An element inside a scalar field.
        replace("<routeId>r-1</routeId>", "<routeId><b>r</b></routeId>"),
        replace("<senderId>egov_portal</senderId>", "<senderId>egov<!---->_portal</senderId>"),
        replace("<senderId>egov_portal</senderId>", "<senderId>a</senderId><senderId>b</senderId>"),
        replace("<routeId>r-1</routeId>", &format!("<routeId>{}</routeId>", "x".repeat(MAX_FIELD_LEN + 1))),
        replace("</ns3:SendMessage>", "</ns3:SendMessage><ns3:SendMessage/>"),
        replace("<data xsi", "<data>1</data><data xsi"),
    ];
    for case in cases {
        assert!(read(case.as_bytes(), None, &limits()).is_err(), "accepted: {case}");
    }
}

#[test]
fn refuses_xxe_and_foreign_bodies() {
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
        SYNC.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
    );
    assert_eq!(read(xxe.as_bytes(), None, &limits()), Err(ShepError::Soap(crate::soap::SoapError::Doctype)));
    let entity = replace("900101300123", "&x;");
    assert!(matches!(read(entity.as_bytes(), None, &limits()), Err(ShepError::Soap(_))));
    let other = SYNC.replace("http://bip.bee.kz/SyncChannel/v10/Types", "urn:other");
    assert!(matches!(read(other.as_bytes(), None, &limits()), Err(ShepError::NotShep(_))));
    let many: String = (0..=MAX_PROPERTIES).map(|i| format!("<properties><key>k{i}</key></properties>")).collect();
    let too_many = replace("<routeId>r-1</routeId>", &many);
    assert_eq!(read(too_many.as_bytes(), None, &limits()), Err(ShepError::TooManyProperties));
}

#[test]
fn missing_fields_are_none_for_the_face_to_refuse() {
    let m = read(replace("<serviceId>PopulationRegister_Person</serviceId>", "").as_bytes(), None, &limits()).unwrap();
    assert_eq!(m.service_id, None);
    let m = read(replace("<sender>", "<sender><!-- none -->").as_bytes(), None, &limits()).unwrap();
    assert_eq!(m.sender_id(), Some("egov_portal"));
}

#[test]
fn answers_read_back() {
    let info = ResponseInfo {
        message_id: "m-2".into(),
        correlation_id: Some("m-1".into()),
        response_date: "2026-12-01T10:15:01Z".into(),
        status_code: SUCCESS_CODE.into(),
        status_message: SUCCESS_MESSAGE.into(),
        session_id: Some("<s>".into()),
    };
    let text = sync_response(&info, Some("<data><a>1</a></data>"));
    let env = crate::soap::read_envelope(text.as_bytes(), None, &limits()).unwrap();
    assert_eq!(env.operation.unwrap().1, "SendMessageResponse");
    assert!(text.contains("<sessionId>&lt;s&gt;</sessionId>"));
    let f = fault(false, crate::ErrorCode::IdentityMismatch, "no <such> sender", "2026-12-01T10:15:01Z", None);
    crate::soap::read_envelope(f.as_bytes(), None, &limits()).unwrap();
    assert!(f.contains("<faultcode>SOAP-ENV:Client</faultcode>"));
    assert!(f.contains("<errorCode>client.identity_mismatch</errorCode>"));
    let built = build_sync_request("id", "Svc", "2026-12-01T10:15:01Z", "me", Some("ns:T"), "", "<a>1</a>");
    let m = read(built.as_bytes(), None, &limits()).unwrap();
    assert_eq!(m.service_id.as_deref(), Some("Svc"));
    assert_eq!(&built[m.data.unwrap()], "<a>1</a>");
    for w in [wsdl::sync_wsdl("https://gw/bip-sync/"), wsdl::async_wsdl("https://gw/bip-async/")] {
        assert!(w.contains("https://gw/bip-"));
    }
}

/// A SyncChannel answer as a provider writes it: status and where `data` lies; a
/// fault with ШЭП's detail; anything else is not an answer.
#[test]
fn sync_answers_are_read_for_their_status_data_and_fault() {
    use super::{read_sync_answer, SyncAnswer};
    let read_answer = |text: &str| -> Result<SyncAnswer, ShepError> {
        let env = crate::soap::read_envelope(text.as_bytes(), None, &limits()).unwrap();
        read_sync_answer(text.as_bytes(), &env)
    };
    let info = ResponseInfo {
        message_id: "r-1".into(),
        correlation_id: Some("m-1".into()),
        response_date: "2026-12-01T10:15:01Z".into(),
        status_code: "ERR001".into(),
        status_message: "no &amp; such".into(),
        session_id: None,
    };
    let data = "<data><GetDebtResponse><amount>1</amount><x/></GetDebtResponse></data>";
    let text = sync_response(&info, Some(data));
    let a = read_answer(&text).unwrap();
    assert_eq!(a.status_code.as_deref(), Some("ERR001"));
    assert_eq!(a.status_message.as_deref(), Some("no &amp; such"), "escaped once by the writer, read back once");
    assert_eq!(&text[a.data.clone().unwrap()], "<GetDebtResponse><amount>1</amount><x/></GetDebtResponse>");
    assert_eq!(&text[a.data_element.unwrap()], data);
    assert!(a.fault.is_none());
    // One `…Response` element is unwrapped; anything else is taken whole.
    let inner = super::response_content(text.as_bytes(), a.data.clone().unwrap());
    assert_eq!(&text[inner], "<amount>1</amount><x/>");
    let two = sync_response(&info, Some("<data><a>1</a><b/></data>"));
    let d = read_answer(&two).unwrap().data.unwrap();
    assert_eq!(&two[super::response_content(two.as_bytes(), d)], "<a>1</a><b/>");
    let empty = read_answer(&sync_response(&info, Some("<data/>"))).unwrap();
    assert_eq!(empty.data.map(|r| r.len()), Some(0));
    let f = fault(false, crate::ErrorCode::UnknownService, "no such service", "2026-12-01T10:15:01Z", None);
    let a = read_answer(&f).unwrap();
    let fault = a.fault.unwrap();
    assert_eq!((fault.code.as_str(), fault.string.as_str()), ("SOAP-ENV:Client", "no such service"));
    assert_eq!(fault.error_code.as_deref(), Some("client.unknown_service"));
    let other = envelope("<x:Other xmlns:x=\"urn:x\"/>");
    assert!(matches!(read_answer(&other), Err(ShepError::NotShep(_))));
}

/// The declarations in scope where an element's content starts: outer ones, the
/// innermost winning, closed elements' ones gone.
#[test]
fn namespaces_in_scope_are_those_of_the_open_elements() {
    use super::{declarations, namespaces_in_scope};
    let text = r#"<e:Envelope xmlns:e="urn:e" xmlns:t="urn:outer"><e:Header xmlns:h="urn:h"/><e:Header xmlns:g="urn:g"></e:Header><e:Body xmlns:t="urn:inner" xmlns="urn:d"><t:Op>"#;
    let at = text.find("<t:Op>").unwrap();
    let ns = namespaces_in_scope(text.as_bytes(), at);
    let want = [("e", "urn:e"), ("t", "urn:inner"), ("", "urn:d")];
    assert_eq!(ns, want.map(|(p, u)| (p.to_owned(), u.to_owned())));
    assert_eq!(declarations(&ns, false), r#" xmlns:e="urn:e" xmlns:t="urn:inner""#);
    assert_eq!(declarations(&ns, true), r#" xmlns:e="urn:e" xmlns:t="urn:inner" xmlns="urn:d""#);
    // A moved element takes the default namespace it had, unless it declares its own.
    use super::with_default_namespace as carry;
    assert_eq!(carry("<Op a=\"1\"><x/></Op>", "urn:d"), r#"<Op a="1" xmlns="urn:d"><x/></Op>"#);
    assert_eq!(carry("<Op/>", "urn:\"d"), r#"<Op xmlns="urn:&quot;d"/>"#);
    assert_eq!(carry("<Op xmlns=\"urn:own\"/>", "urn:d"), "<Op xmlns=\"urn:own\"/>");
    assert_eq!(carry("just text", "urn:d"), "just text");
}

/// An AsyncChannel `sendDeliveryNotification` shaped like the public stubs
/// (`AsyncSendDeliveryNotificationRequest`: notification, requestDate, sender).
pub(crate) const NOTIFICATION: &str = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Body>
    <typ:sendDeliveryNotification xmlns:typ="http://bip.bee.kz/AsyncChannel/v10/Types">
      <request>
        <notification>
          <messageId>5024113e-b70b-479d-8ac7-8c65103e3338</messageId>
          <serviceId>PopulationRegister_AddressChange</serviceId>
          <notificationDate>2026-12-01T10:00:05+05:00</notificationDate>
          <deliveryStatus>
            <receiveStatus>MESSAGE_NOT_ACCTEPTED</receiveStatus>
            <statusDate>2026-12-01T10:00:05+05:00</statusDate>
            <resendMessage>NOT_RESEND</resendMessage>
            <error><errorCode>E42</errorCode><errorMessage>unknown IIN</errorMessage><errorDate>2026-12-01T10:00:05+05:00</errorDate></error>
          </deliveryStatus>
        </notification>
        <requestDate>2026-12-01T10:00:05+05:00</requestDate>
        <sender><senderId>population_register</senderId><password>p</password></sender>
      </request>
    </typ:sendDeliveryNotification>
  </soapenv:Body>
</soapenv:Envelope>"#;

#[test]
fn reads_a_delivery_notification_and_refuses_its_hostile_variants() {
    let m = read(NOTIFICATION.as_bytes(), None, &limits()).unwrap();
    assert_eq!((m.channel, m.operation.as_str()), (Channel::Async, "sendDeliveryNotification"));
    assert_eq!(m.message_id.as_deref(), Some("5024113e-b70b-479d-8ac7-8c65103e3338"));
    assert_eq!(m.service_id.as_deref(), Some("PopulationRegister_AddressChange"));
    assert_eq!(m.sender_id(), Some("population_register"));
    let notice = m.notice.unwrap();
    assert_eq!(notice.receive_status.as_deref(), Some("MESSAGE_NOT_ACCTEPTED"));
    assert_eq!(notice.resend_message.as_deref(), Some("NOT_RESEND"));
    assert_eq!((notice.error_code.as_deref(), notice.error_message.as_deref()), (Some("E42"), Some("unknown IIN")));
    let twice = NOTIFICATION.replace("<serviceId>", "<messageId>x</messageId><serviceId>");
    assert_eq!(read(twice.as_bytes(), None, &limits()), Err(ShepError::Duplicate("messageId")));
    let status_twice =
        NOTIFICATION.replace("<statusDate>", "<receiveStatus>MESSAGE_ACCEPTED</receiveStatus><statusDate>");
    assert_eq!(read(status_twice.as_bytes(), None, &limits()), Err(ShepError::Duplicate("receiveStatus")));
    let stray = NOTIFICATION.replace("<requestDate>", "<messageData><data/></messageData><requestDate>");
    assert!(matches!(read(stray.as_bytes(), None, &limits()), Err(ShepError::Unexpected(_))));
    let long = NOTIFICATION.replace("unknown IIN", &"x".repeat(MAX_FIELD_LEN + 1));
    assert_eq!(read(long.as_bytes(), None, &limits()), Err(ShepError::FieldTooLong("error/errorMessage")));
    // Outside sendDeliveryNotification a notification has no place.
    let elsewhere = NOTIFICATION.replace("sendDeliveryNotification", "sendMessage");
    assert!(matches!(read(elsewhere.as_bytes(), None, &limits()), Err(ShepError::Unexpected(_))));
}

mod fuzz {
    //! The readers never panic and their ranges stay inside the input, over mutations
    //! of real-shaped messages — calls, notifications and providers' answers (the
    //! fuzz target `shep_envelope` runs the same check under cargo-fuzz).
    use super::*;

    /// splitmix64: deterministic, no extra crate.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn mutations_never_panic() {
        let mut state = 18;
        let answer = sync_response(
            &ResponseInfo { message_id: "r".into(), status_code: SUCCESS_CODE.into(), ..Default::default() },
            Some(r#"<data xmlns:p="urn:p"><p:GetDebtResponse><p:amount>1</p:amount></p:GetDebtResponse></data>"#),
        );
        let seeds = [SYNC.as_bytes().to_vec(), NOTIFICATION.as_bytes().to_vec(), answer.into_bytes()];
        let alphabet = b"<>/&;:=\"' xa\x00\xff!-?[]";
        for round in 0..30_000 {
            let mut input = seeds[round % seeds.len()].clone();
            for _ in 0..1 + next(&mut state) % 4 {
                let at = (next(&mut state) as usize) % input.len().max(1);
                match next(&mut state) % 3 {
                    0 => input[at] = alphabet[(next(&mut state) as usize) % alphabet.len()],
                    1 => {
                        input.remove(at);
                    }
                    _ => {
                        let end = (at + (next(&mut state) as usize) % 64).min(input.len());
                        let piece = input[at..end].to_vec();
                        input.splice(at..at, piece);
                    }
                }
            }
            check(&input);
        }
    }

    pub(crate) fn check(input: &[u8]) {
        if let Ok(m) = read(input, None, &XmlLimits::default()) {
            for r in [Some(m.body.clone()), m.data.clone(), m.data_element.clone()].into_iter().flatten() {
                assert!(r.start <= r.end && r.end <= input.len());
            }
        }
        if let Ok(envelope) = crate::soap::read_envelope(input, None, &XmlLimits::default()) {
            super::namespaces_in_scope(input, envelope.body.start);
            if let Ok(a) = super::read_sync_answer(input, &envelope) {
                for r in [a.data.clone(), a.data_element.clone()].into_iter().flatten() {
                    assert!(r.start <= r.end && r.end <= input.len());
                }
                if let Some(data) = a.data {
                    let inner = super::response_content(input, data.clone());
                    assert!(data.start <= inner.start && inner.start <= inner.end && inner.end <= data.end);
                }
            }
        }
    }
}
