//! Issue 15 items 2, 4 and 5: signed SOAP without a message id, duplicate identifier
//! parts, and what a provider could read differently from what was verified.

use super::support::*;
use crate::common::*;

/// Item 2: without `xrd:id` the replay memory has nothing to remember.
#[tokio::test]
async fn signed_soap_without_message_id_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let signed = sign(&gw, &envelope(CLIENT, REC_SIGNED_SOAP, None, "900101300123"));
    assert!(!signed.contains("<xrd:id"), "{signed}");
    for _ in 0..3 {
        let (status, code, body) = post_soap(&gw, "egov-portal", signed.clone()).await;
        assert_eq!((status, code.as_str()), (200, "client.bad_request"), "{body}");
        // X-Road's own check comes first: the id is a required header field.
        assert!(body.contains("<faultcode>client.missing_header_field</faultcode>"), "{body}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
}

/// Item 2: the same signed message three times reaches the provider once.
#[tokio::test]
async fn the_same_signed_message_three_times_reaches_the_provider_once() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let signed = sign(&gw, &envelope(CLIENT, REC_SIGNED_SOAP, Some("once-1"), "900101300123"));
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (status, code, _) = post_soap(&gw, "egov-portal", signed.clone()).await;
        codes.push((status, code));
    }
    assert_eq!(codes, [(200, String::new()), (200, "client.replay".into()), (200, "client.replay".into())]);
    let seen = rec.parsed();
    assert_eq!(seen.len(), 1, "only the first reached the provider");
    assert_eq!(seen[0].body, signed.as_bytes(), "forwarded byte for byte");
}

/// Item 4: an identifier part, or a whole identifier, given twice.
#[tokio::test]
async fn duplicate_identifier_parts_in_the_soap_header_are_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let honest = envelope(CLIENT, REC_SOAP, Some("dup-0"), "900101300123");
    let client_start = honest.find("<xrd:client").unwrap();
    let client_end = honest.find("</xrd:client>").unwrap() + "</xrd:client>".len();
    let service_start = honest.find("<xrd:service").unwrap();
    let service_end = honest.find("</xrd:service>").unwrap() + "</xrd:service>".len();
    let other_client = &envelope(OTHER_CLIENT, REC_SOAP, None, "")[client_start..];
    let other_client = &other_client[..other_client.find("</xrd:client>").unwrap() + "</xrd:client>".len()];
    let cases = [
        (
            "two memberCode (own, then another's)",
            honest.replacen(
                "<id:memberCode>000000000003</id:memberCode>",
                "<id:memberCode>000000000003</id:memberCode><id:memberCode>000000000004</id:memberCode>",
                1,
            ),
            "memberCode appears twice",
        ),
        (
            "two subsystemCode",
            honest.replacen(
                "<id:subsystemCode>egov-portal</id:subsystemCode>",
                "<id:subsystemCode>egov-portal</id:subsystemCode><id:subsystemCode>akimat</id:subsystemCode>",
                1,
            ),
            "subsystemCode appears twice",
        ),
        (
            "two serviceCode",
            honest.replacen(
                "<id:serviceCode>rec-soap</id:serviceCode>",
                "<id:serviceCode>rec-soap</id:serviceCode><id:serviceCode>person</id:serviceCode>",
                1,
            ),
            "serviceCode appears twice",
        ),
        (
            "two client elements",
            format!("{}{}{}", &honest[..client_end], other_client, &honest[client_end..]),
            "client appears twice",
        ),
        (
            "two service elements",
            format!("{}{}{}", &honest[..service_end], &honest[service_start..service_end], &honest[service_end..]),
            "service appears twice",
        ),
    ];
    for (what, message, why) in cases {
        assert_ne!(message, honest, "{what}: the case changed the message");
        let (status, code, body) = post_soap(&gw, "egov-portal", message).await;
        assert_eq!((status, code.as_str()), (200, "client.bad_request"), "{what}: {body}");
        assert!(body.contains(why), "{what}: {body}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
    let _ = client_start;
}

/// Item 5: comments inside signed content, X-Road elements where the signature did
/// not look, a second Body anywhere.
#[tokio::test]
async fn what_a_provider_could_read_differently_is_refused() {
    let rec = Recorder::start().await;
    let gw = gateway(&rec).await;
    let signed = |id: &str| sign(&gw, &envelope(CLIENT, REC_SIGNED_SOAP, Some(id), "900101300123"));
    let second_service = |m: &str| {
        let s = envelope(CLIENT, PROVIDER_SECRET, None, "");
        let start = s.find("<xrd:service").unwrap();
        let end = s.find("</xrd:service>").unwrap() + "</xrd:service>".len();
        m.replacen("</env:Header>", &format!("<w:Ext xmlns:w=\"urn:w\">{}</w:Ext></env:Header>", &s[start..end]), 1)
    };
    let extra_body = |m: &str| {
        m.replacen(
            "</env:Header>",
            "<env:Body><p:rec-signed-soap xmlns:p=\"urn:person\"><p:iin>111111111111</p:iin></p:rec-signed-soap></env:Body></env:Header>",
            1,
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "comment splitting signed Body text",
            signed("rd-1").replacen("<p:iin>900101300123", "<p:iin>9001<!---->01300123", 1),
            "client.bad_signature",
        ),
        (
            "comment splitting a signed header",
            signed("rd-2").replacen(">rd-2</xrd:id>", ">rd<!---->-2</xrd:id>", 1),
            "client.bad_xml",
        ),
        ("xrd:service nested deeper in a signed Header", second_service(&signed("rd-3")), "client.bad_request"),
        (
            "xrd:service nested deeper in an unsigned Header",
            second_service(&envelope(CLIENT, REC_SOAP, Some("rd-4"), "1")),
            "client.bad_request",
        ),
        ("second Body inside a signed Header", extra_body(&signed("rd-5")), "client.bad_xml"),
        (
            "second Body inside an unsigned Header",
            extra_body(&envelope(CLIENT, REC_SOAP, Some("rd-6"), "1")),
            "client.bad_xml",
        ),
        (
            "second Body inside the Body",
            envelope(CLIENT, REC_SOAP, Some("rd-7"), "1").replacen(
                "</p:rec-soap>",
                "<env:Body><x/></env:Body></p:rec-soap>",
                1,
            ),
            "client.bad_xml",
        ),
    ];
    for (what, message, expected) in cases {
        let (status, code, body) = post_soap(&gw, "egov-portal", message).await;
        assert_eq!((status, code.as_str()), (200, expected), "{what}: {body}");
    }
    assert_eq!(rec.count(), 0, "the provider got nothing");
    // Unsigned, a comment in the Body changes nothing the gateway vouches for: it
    // goes through byte for byte.
    let commented =
        envelope(CLIENT, REC_SOAP, Some("rd-8"), "900101300123").replacen("<p:iin>9001", "<p:iin>9001<!---->", 1);
    let (status, _, _) = post_soap(&gw, "egov-portal", commented.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(rec.parsed()[0].body, commented.as_bytes());
}

const PROVIDER_SECRET: &str = "KZ/GOV/000000000001/population-register/secret/v1";
