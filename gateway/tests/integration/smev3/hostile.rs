//! Hostile SMEV 3 calls, each refused with the faults schema's element and the
//! stable code; limits as for any service.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_calls_are_refused_with_the_faults_schema() {
    let gw = TestGateway::start_with("", |_, text| format!("{text}{}", smev_config(""))).await;
    let s = Smev::new(&gw.pki, gw.tls_url("/smev3/"));
    let good = send_request(&uuid(), &content("1"), &s.client_keys);

    // Unsigned.
    let unsigned = good.replace(
        &good[good.find("<ns:CallerInformationSystemSignature>").unwrap()
            ..good.find("</ns:SendRequestRequest>").unwrap()],
        "",
    );
    s.refused(false, unsigned, "SignatureVerificationFault", "client.bad_signature").await;
    // Signed by another registered system, sent over the requester's connection.
    s.refused(
        false,
        send_request(&uuid(), &content("1"), &s.other_keys),
        "SignatureVerificationFault",
        "client.bad_signature",
    )
    .await;
    // The signature covers another element than the signed part (wrong reference).
    let other_part = signed_call(
        "SendRequest",
        &format!("<ns:SenderProvidedRequestData Id=\"SIGNED_BY_CALLER\"><ns:MessageID>{}</ns:MessageID><ns2:MessagePrimaryContent>{}</ns2:MessagePrimaryContent><ns:PersonalSignature><x:Decoy xmlns:x=\"urn:decoy\" Id=\"DECOY\">1</x:Decoy></ns:PersonalSignature></ns:SenderProvidedRequestData>", uuid(), content("1")),
        &s.client_keys,
        "DECOY",
    );
    s.refused(false, other_part, "SignatureVerificationFault", "client.bad_signature").await;
    // Content changed after signing.
    let changed = good.replace("<ac:Person>1</ac:Person>", "<ac:Person>2</ac:Person>");
    s.refused(false, changed, "SignatureVerificationFault", "client.bad_signature").await;
    // A kind of information no service takes.
    let unknown = send_request(&uuid(), "<x:Thing xmlns:x=\"urn://nobody/1.0\"/>", &s.client_keys);
    s.refused(false, unknown, "BusinessDataTypeIsNotSupported", "client.unknown_service").await;
    // A MessageID that is not a UUID.
    s.refused(
        false,
        send_request("not-a-uuid", &content("1"), &s.client_keys),
        "InvalidMessageIdFormat",
        "client.bad_request",
    )
    .await;
    // An inline attachment over 5 MiB.
    let big = "QUFB".repeat(5 * 1024 * 1024 / 3 + 16);
    let attached = good.replace(
        "<ns:CallerInformationSystemSignature>",
        &format!("<ns2:AttachmentContentList><ns2:AttachmentContent><ns2:Id>a1</ns2:Id><ns2:Content>{big}</ns2:Content></ns2:AttachmentContent></ns2:AttachmentContentList><ns:CallerInformationSystemSignature>"),
    );
    s.refused(false, attached, "AttachmentSizeLimitExceeded", "client.too_large").await;
    // XXE: refused before anything is read.
    let xxe = good
        .replacen(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<?xml version=\"1.0\"?><!DOCTYPE S:Envelope [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>",
            1,
        )
        .replace("<ac:Person>1</ac:Person>", "<ac:Person>&xxe;</ac:Person>");
    s.refused(false, xxe, "InvalidContent", "client.bad_xml").await;
    // The same MessageID twice: the second is already sent.
    let id = uuid();
    assert_eq!(s.post(false, send_request(&id, &content("1"), &s.client_keys)).await.0, 200);
    s.refused(false, send_request(&id, &content("1"), &s.client_keys), "MessageIsAlreadySent", "client.replay").await;
    // A client without access to the kind's service.
    let other = pki_client(&gw, "akimat");
    let (status, text) = Smev { client: other, ..Smev::new(&gw.pki, gw.tls_url("/smev3/")) }
        .post(false, send_request(&uuid(), &content("1"), &s.other_keys))
        .await;
    assert!(status == 500 && text.contains("<f:AccessDenied"), "{text}");
    // A forged ReplyTo.
    s.refused(
        true,
        send_response(&uuid(), "eyJjIjoiIn0.AAAA", &content("1"), &s.provider_keys),
        "InvalidContent",
        "client.bad_request",
    )
    .await;
    // The requester may not answer as the provider with a ReplyTo it saw.
    let (_, taken) = s.post(true, selector("GetRequest", Some(KIND), &s.provider_keys)).await;
    let reply_to = between(&taken, "<s:ReplyTo>", "</s:ReplyTo>").unwrap().to_owned();
    s.refused(
        false,
        send_response(&uuid(), &reply_to, &content("1"), &s.client_keys),
        "AccessDenied",
        "client.access_denied",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_apply_as_for_any_service() {
    let gw = TestGateway::start_with("", |_, text| {
        format!("{text}{}\n[[limit]]\nservice = \"{ADDRESS}\"\nrate = \"1/m\"\nburst = 1\n", smev_config(""))
    })
    .await;
    let s = Smev::new(&gw.pki, gw.tls_url("/smev3/"));
    assert_eq!(s.post(false, send_request(&uuid(), &content("1"), &s.client_keys)).await.0, 200);
    s.refused(false, send_request(&uuid(), &content("2"), &s.client_keys), "QuoteLimitExceeded", "client.rate_limited")
        .await;
}
