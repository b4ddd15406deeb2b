//! Mediation both ways: a SMEV 3 requester reaching synchronous REST and X-Road
//! SOAP providers, and a REST client reaching a SMEV 3 provider through `/a1`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediation_a_synchronous_provider_and_a_rest_client_through_a1() {
    let gw = TestGateway::start_with("", |_, text| {
        let provider = text.split("upstream = [\"http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
        format!(
            "{text}{}\n[[service]]\nid = \"{SYNC}\"\nkind = \"rest\"\nupstream = [\"http://{provider}/base/mirror\"]\nsmev_kinds = [\"{SYNC_KIND}\"]\n\n[[access]]\nservice = \"{SYNC}\"\nclients = [\"{CLIENT}\"]\n\n[[service]]\nid = \"{SYNC_SOAP}\"\nkind = \"soap\"\nupstream = [\"http://{provider}/base/mirror\"]\nsmev_kinds = [\"{SOAP_KIND}\"]\n\n[[access]]\nservice = \"{SYNC_SOAP}\"\nclients = [\"{CLIENT}\"]\n",
            smev_config("")
        )
    })
    .await;
    let s = Smev::new(&gw.pki, gw.tls_url("/smev3/"));

    // A SMEV 3 requester, a REST provider without a mailbox: answered at once, queued.
    let id = uuid();
    let check = format!("<ck:AddressCheck xmlns:ck=\"{SYNC_KIND}\"><ck:Person>42</ck:Person></ck:AddressCheck>");
    let (status, text) = s.post(false, send_request(&id, &check, &s.client_keys)).await;
    assert_eq!(status, 200, "{text}");
    let (_, collected) = s.post(false, selector("GetResponse", None, &s.client_keys)).await;
    assert!(collected.contains(&format!("<s:OriginalMessageId>{id}</s:OriginalMessageId>")), "{collected}");
    assert!(collected.contains("<ck:Person>42</ck:Person>"), "the provider's (mirrored) answer: {collected}");
    assert_smev_signed(&collected, &s.gateway_cert);
    let presented = between(&collected, "<s:MessageId>", "</s:MessageId>").unwrap().to_owned();
    assert_eq!(s.post(false, ack(&presented, &s.client_keys)).await.0, 200);

    // An X-Road SOAP provider: the content goes in an envelope with the X-Road header,
    // the answer's Body comes back (the mirror echoes the envelope it received).
    let id = uuid();
    let query = format!("<tx:DebtQuery xmlns:tx=\"{SOAP_KIND}\"><tx:Iin>43</tx:Iin></tx:DebtQuery>");
    assert_eq!(s.post(false, send_request(&id, &query, &s.client_keys)).await.0, 200);
    let (_, collected) = s.post(false, selector("GetResponse", None, &s.client_keys)).await;
    assert!(collected.contains(&format!("<s:OriginalMessageId>{id}</s:OriginalMessageId>")), "{collected}");
    assert!(
        collected.contains("<tx:Iin>43</tx:Iin>") && !collected.contains("xrd:client"),
        "the Body only: {collected}"
    );
    let presented = between(&collected, "<s:MessageId>", "</s:MessageId>").unwrap().to_owned();
    assert_eq!(s.post(false, ack(&presented, &s.client_keys)).await.0, 200);

    // A REST client sends to the SMEV 3 provider through /a1; the provider answers over SMEV 3.
    let rest = pki_client(&gw, "egov-portal");
    let r = rest
        .post(gw.tls_url(&format!("/a1/{ADDRESS}")))
        .header("X-Road-Client", CLIENT)
        .header("X-Road-Id", "rest-1")
        .header("content-type", "application/xml")
        .body(content("77"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (_, taken) = s.post(true, selector("GetRequest", Some(KIND), &s.provider_keys)).await;
    assert!(taken.contains("<ac:Person>77</ac:Person>"), "{taken}");
    assert_smev_signed(&taken, &s.gateway_cert);
    let message_id = between(&taken, "<s:MessageID>", "</s:MessageID>").unwrap().to_owned();
    let reply_to = between(&taken, "<s:ReplyTo>", "</s:ReplyTo>").unwrap().to_owned();
    assert_eq!(s.post(true, ack(&message_id, &s.provider_keys)).await.0, 200);
    let answer = format!("<ac:Done xmlns:ac=\"{KIND}\">yes</ac:Done>");
    assert_eq!(s.post(true, send_response(&uuid(), &reply_to, &answer, &s.provider_keys)).await.0, 200);
    let outbox = rest
        .get(gw.tls_url(&format!("/a1/outbox/{CLIENT}?wait=2s")))
        .header("X-Road-Client", CLIENT)
        .send()
        .await
        .unwrap();
    assert_eq!(outbox.status(), 200);
    assert_eq!(outbox.headers()["x-road-id"], "rest-1");
    let mid = outbox.headers()["qaqpa-message-id"].to_str().unwrap().to_owned();
    assert!(outbox.text().await.unwrap().contains("<ac:Done"));
    let acked = rest.post(gw.tls_url(&format!("/a1/ack/{mid}"))).header("X-Road-Client", CLIENT).send().await.unwrap();
    assert_eq!(acked.status(), 200);
}
