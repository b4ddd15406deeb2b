use super::*;
use crate::soap::{read_envelope, XmlLimits};

fn envelope(header: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers">{header}<s:Body>{body}</s:Body></s:Envelope>"#
    )
}

const CLIENT: &str = r#"<xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>1</id:memberCode><id:subsystemCode>a</id:subsystemCode></xrd:client>"#;
const SERVICE: &str = r#"<xrd:service id:objectType="SERVICE"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>2</id:memberCode><id:subsystemCode>b</id:subsystemCode><id:serviceCode>getDebt</id:serviceCode></xrd:service>"#;

fn header(extra: &str) -> String {
    format!("<s:Header>{CLIENT}{SERVICE}<xrd:id>m-1</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion>{extra}</s:Header>")
}

fn check(doc: &str) -> Result<(), &'static str> {
    match read_envelope(doc.as_bytes(), Some("text/xml"), &XmlLimits::default()) {
        Ok(env) => check_request(&env).map_err(|r| r.xroad),
        Err(e) => Err(reader_code(&e)),
    }
}

#[test]
fn x_road_request_checks_in_x_road_order() {
    assert_eq!(check(&envelope(&header(""), "<x:getDebt xmlns:x=\"urn:x\"/>")), Ok(()));
    // The body element's local name starts with the service code (SoapUtils.validateServiceName).
    assert_eq!(check(&envelope(&header(""), "<x:getDebtV2 xmlns:x=\"urn:x\"/>")), Ok(()));
    assert_eq!(check(&envelope(&header(""), "<x:debt xmlns:x=\"urn:x\"/>")), Err(code::INCONSISTENT_HEADERS));
    assert_eq!(check(&envelope(&header(""), "<a/><b/>")), Err(code::INVALID_BODY));
    assert_eq!(check(&envelope(&header(""), "")), Err(code::INVALID_BODY));
    assert_eq!(check(&envelope("", "<getDebt/>")), Err(code::MISSING_HEADER));
    let no_version = format!("<s:Header>{CLIENT}{SERVICE}<xrd:id>m-1</xrd:id></s:Header>");
    assert_eq!(check(&envelope(&no_version, "<getDebt/>")), Err(code::MISSING_HEADER_FIELD));
    let no_id = format!("<s:Header>{CLIENT}{SERVICE}<xrd:protocolVersion>4.0</xrd:protocolVersion></s:Header>");
    assert_eq!(check(&envelope(&no_id, "<getDebt/>")), Err(code::MISSING_HEADER_FIELD));
    let v5 = format!(
        "<s:Header>{CLIENT}{SERVICE}<xrd:id>m</xrd:id><xrd:protocolVersion>5.0</xrd:protocolVersion></s:Header>"
    );
    assert_eq!(check(&envelope(&v5, "<getDebt/>")), Err(code::INVALID_PROTOCOL_VERSION));
    let untyped = header("").replace(r#" id:objectType="SUBSYSTEM""#, "");
    assert_eq!(check(&envelope(&untyped, "<getDebt/>")), Err(code::INVALID_XML));
    assert_eq!(check(&envelope(&header("<xrd:id>again</xrd:id>"), "<getDebt/>")), Err(code::DUPLICATE_HEADER_FIELD));
    let twice = header("<xrd:requestHash>a</xrd:requestHash><xrd:requestHash>b</xrd:requestHash>");
    assert_eq!(check(&envelope(&twice, "<getDebt/>")), Err(code::DUPLICATE_HEADER_FIELD));
    let no_body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/></s:Envelope>"#;
    assert_eq!(check(no_body), Err(code::MISSING_BODY));
    assert_eq!(check("not xml"), Err(code::INVALID_SOAP));
}

#[test]
fn content_type_and_soap_action() {
    assert!(check_content_type(None).is_ok());
    assert!(check_content_type(Some("text/xml; charset=UTF-8")).is_ok());
    assert!(check_content_type(Some("application/soap+xml")).is_ok());
    assert_eq!(check_content_type(Some("application/json")).unwrap_err().xroad, code::INVALID_CONTENT_TYPE);
    assert_eq!(check_content_type(Some("text/xml; charset=iso-8859-1")).unwrap_err().xroad, code::INVALID_CONTENT_TYPE);
    for ok in [None, Some(""), Some("\"\""), Some("\"urn:getDebt\"")] {
        assert!(check_soap_action(ok).is_ok(), "{ok:?}");
    }
    for bad in ["urn:getDebt", "\"a b\"", "\""] {
        assert_eq!(check_soap_action(Some(bad)).unwrap_err().xroad, code::INVALID_SOAP_ACTION, "{bad}");
    }
}

#[test]
fn rest_errors_negotiate_like_x_road() {
    assert_eq!(rest_error_media(["application/json"]), "application/json");
    assert_eq!(rest_error_media(["text/html, application/xml;q=0.9"]), "application/xml");
    assert_eq!(rest_error_media(["text/*"]), "text/xml");
    assert_eq!(rest_error_media([]), "application/json");
    assert!(wants_problem_json(["application/json, application/problem+json"]));
    assert!(!wants_problem_json(["application/json"]));
    let body: serde_json::Value =
        serde_json::from_slice(&rest_error_body("application/json", "client.bad_request", "m", "d")).unwrap();
    assert_eq!(body, serde_json::json!({"type": "client.bad_request", "message": "m", "detail": "d"}));
    let xml = String::from_utf8(rest_error_body("text/xml", "client.x", "a<b", "d")).unwrap();
    assert!(xml.ends_with("<error><type>client.x</type><message>a&lt;b</message><detail>d</detail></error>"));
    assert_eq!(rest_status("server.serverproxy.access_denied"), 500);
    assert_eq!(rest_status("client.bad_request"), 400);
}

#[test]
fn every_code_maps_to_an_x_road_prefix_of_its_side() {
    for c in ErrorCode::ALL {
        let x = xroad_code(c);
        assert!(
            x.starts_with("client.") || x.starts_with("server.clientproxy.") || x.starts_with("server.serverproxy.")
        );
    }
    // X-Road blames the provider side for a refusal the provider's server makes.
    assert_eq!(xroad_code(ErrorCode::AccessDenied), "server.serverproxy.access_denied");
}

#[test]
fn request_hash_is_spliced_into_the_header_and_nothing_else_changes() {
    let doc = envelope(&header(""), "<getDebtResponse>1</getDebtResponse>");
    let env = read_envelope(doc.as_bytes(), None, &XmlLimits::default()).unwrap();
    let out = String::from_utf8(insert_request_hash(doc.as_bytes(), &env, "SGFzaA==").unwrap()).unwrap();
    // The provider's own requestHash: kept when it is the request's, refused when not.
    let theirs = read_envelope(out.as_bytes(), None, &XmlLimits::default()).unwrap();
    assert_eq!(insert_request_hash(out.as_bytes(), &theirs, "SGFzaA==").unwrap(), out.as_bytes());
    let wrong = insert_request_hash(out.as_bytes(), &theirs, "T3RoZXI=").unwrap_err();
    assert_eq!(wrong.xroad, code::SERVICE_INCONSISTENT_RESPONSE);
    assert!(wrong.message.contains("requestHash"), "{}", wrong.message);
    let want = format!(
        r#"<xrd:protocolVersion>4.0</xrd:protocolVersion><xrd:requestHash xmlns:xrd="{XROAD_NS}" algorithmId="{SHA512_ALGORITHM}">SGFzaA==</xrd:requestHash></s:Header>"#
    );
    assert!(out.contains(&want), "{out}");
    assert_eq!(out.replace(&want, "<xrd:protocolVersion>4.0</xrd:protocolVersion></s:Header>"), doc);
    let again = read_envelope(out.as_bytes(), None, &XmlLimits::default()).unwrap();
    assert!(again.xroad_fields.iter().any(|f| f == "requestHash"));
    assert!(check_response(&env, &again).is_ok());
    let other = doc.replace("<xrd:id>m-1</xrd:id>", "<xrd:id>m-2</xrd:id>");
    let other = read_envelope(other.as_bytes(), None, &XmlLimits::default()).unwrap();
    assert_eq!(check_response(&env, &other).unwrap_err().xroad, code::SERVICE_INCONSISTENT_RESPONSE);
}

#[test]
fn fault_has_x_road_shape() {
    let f = soap11_fault("client.missing_body", "body <missing>", "0f1e");
    assert!(f.contains("<faultcode>client.missing_body</faultcode><faultstring>body &lt;missing&gt;</faultstring>"));
    assert!(f.contains(r#"<detail><faultDetail xmlns="">0f1e</faultDetail></detail>"#));
    let env = read_envelope(f.as_bytes(), None, &XmlLimits::default()).unwrap();
    assert!(is_fault(&env));
}

/// Mutational smoke fuzzing on stable of [`exercise`] (the cargo-fuzz target
/// `xroad_soap` runs it coverage-guided): damaged requests and answers give errors
/// or results, never a panic, and a spliced answer always reads again.
#[test]
fn damaged_requests_and_answers_never_panic() {
    let request = envelope(&header(""), "<x:getDebt xmlns:x=\"urn:x\">1</x:getDebt>").into_bytes();
    let answer = envelope(&header(""), "<x:getDebtResponse xmlns:x=\"urn:x\">2</x:getDebtResponse>").into_bytes();
    let inserts: [&[u8]; 8] =
        [b"<", b"/>", b"</s:Header>", b"<s:Header/>", b"\"", b"<xrd:id>x</xrd:id>", b"&#x0;", b"\xff"];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    exercise(&request, &answer);
    for _ in 0..10_000 {
        let (mut req, mut resp) = (request.clone(), answer.clone());
        for doc in [&mut req, &mut resp] {
            if next() % 2 == 0 {
                continue;
            }
            let at = (next() as usize) % (doc.len() + 1);
            match next() % 3 {
                0 if at < doc.len() => doc[at] = next() as u8,
                1 => doc.truncate(at),
                _ => {
                    let ins = inserts[(next() % inserts.len() as u64) as usize];
                    doc.splice(at..at, ins.iter().copied());
                }
            }
        }
        exercise(&req, &resp);
    }
}
