use super::*;

fn envelope(version: SoapVersion, header: &str, body: &str) -> String {
    let (prefix, ns) = match version {
        SoapVersion::V11 => ("soapenv", SOAP11_NS),
        SoapVersion::V12 => ("env", SOAP12_NS),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<{prefix}:Envelope xmlns:{prefix}="{ns}" xmlns:xrd="{XROAD_NS}" xmlns:id="{XROAD_ID_NS}">
  <{prefix}:Header>{header}</{prefix}:Header>
  <{prefix}:Body>{body}</{prefix}:Body>
</{prefix}:Envelope>"#
    )
}

const XROAD_HEADER: &str = r#"
    <xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
      <id:memberCode>000000000003</id:memberCode><id:subsystemCode>egov-portal</id:subsystemCode></xrd:client>
    <xrd:service id:objectType="SERVICE"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
      <id:memberCode>000000000002</id:memberCode><id:subsystemCode>legacy-tax</id:subsystemCode>
      <id:serviceCode>debt</id:serviceCode><id:serviceVersion>v1</id:serviceVersion></xrd:service>
    <xrd:id>msg-1 &amp; co</xrd:id><xrd:userId>KZ900101300123</xrd:userId><xrd:issue/>
    <xrd:protocolVersion>4.0</xrd:protocolVersion>"#;

const BODY: &str =
    r#"<tax:GetDebt xmlns:tax="http://legacy-tax.gov.kz/debt"><tax:iin>900101300123</tax:iin></tax:GetDebt>"#;

fn read(s: &str) -> Result<Envelope, SoapError> {
    read_envelope(s.as_bytes(), None, &XmlLimits::default())
}

#[test]
fn reads_x_road_headers_and_the_body_range_in_both_versions() {
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let doc = envelope(version, XROAD_HEADER, BODY);
        let env = read_envelope(doc.as_bytes(), Some(version.content_type()), &XmlLimits::default()).unwrap();
        assert_eq!(env.version, version);
        let client = env.header.client.as_ref().unwrap();
        assert_eq!(client.object_type, "SUBSYSTEM");
        assert_eq!(client.system_id().unwrap(), "KZ/GOV/000000000003/egov-portal");
        assert_eq!(
            env.header.service.as_ref().unwrap().service_id().unwrap(),
            "KZ/GOV/000000000002/legacy-tax/debt/v1"
        );
        assert_eq!(env.header.id.as_deref(), Some("msg-1 & co"));
        assert_eq!(env.header.user_id.as_deref(), Some("KZ900101300123"));
        assert_eq!(env.header.issue.as_deref(), Some(""));
        assert_eq!(env.header.protocol_version.as_deref(), Some("4.0"));
        assert_eq!(&doc[env.body.clone()], BODY, "the body range is exact, nothing copied");
        let header = &doc[env.header_element.clone().unwrap()];
        assert!(header.starts_with('<') && header.contains("Header>") && header.ends_with("Header>"), "{header}");
        assert!(header.contains("<xrd:protocolVersion>4.0</xrd:protocolVersion>"));
        assert_eq!(env.operation, Some(("http://legacy-tax.gov.kz/debt".into(), "GetDebt".into())));
    }
}

#[test]
fn headerless_and_self_closing_bodies() {
    let doc = format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}"><e:Body/></e:Envelope>"#);
    let env = read(&doc).unwrap();
    assert_eq!(env.body.len(), 0);
    assert_eq!(env.header, XRoadHeader::default());
    let service = env.header.service.as_ref().and_then(|s| s.service_id());
    assert_eq!(service, None);
}

#[test]
fn hostile_documents_are_refused_with_their_reason() {
    let body = |b: &str| envelope(SoapVersion::V11, "", b);
    let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
    let many_attrs = format!("<a {}/>", (0..100_000).map(|i| format!("a{i}=\"\"")).collect::<Vec<_>>().join(" "));
    let cases: Vec<(&str, String, SoapError)> = vec![
        (
            "XXE",
            format!(
                r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>{}"#,
                body("<a>&xxe;</a>")
            ),
            SoapError::Doctype,
        ),
        (
            "external DTD",
            format!(r#"<!DOCTYPE x SYSTEM "http://attacker.example/x.dtd">{}"#, body("")),
            SoapError::Doctype,
        ),
        (
            "billion laughs",
            format!(
                r#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>{}"#,
                body("<a>&lol2;</a>")
            ),
            SoapError::Doctype,
        ),
        ("undeclared entity", body("<a>&xxe;</a>"), SoapError::EntityReference("xxe".into())),
        ("entity in attribute", body(r#"<a b="&xxe;"/>"#), SoapError::EntityReference("xxe".into())),
        ("10,000-deep nesting", body(&deep), SoapError::TooDeep(64)),
        ("100,000 attributes", body(&many_attrs), SoapError::TooManyAttributes(64)),
        (
            "two Bodies",
            format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}"><e:Body/><e:Body/></e:Envelope>"#),
            SoapError::TwoBodies,
        ),
        (
            "Header after Body",
            format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}"><e:Body/><e:Header/></e:Envelope>"#),
            SoapError::HeaderAfterBody,
        ),
        (
            "two Headers",
            format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}"><e:Header/><e:Header/><e:Body/></e:Envelope>"#),
            SoapError::TwoHeaders,
        ),
        ("no Body", format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}"><e:Header/></e:Envelope>"#), SoapError::MissingBody),
        ("not SOAP", "<html><body/></html>".into(), SoapError::NotAnEnvelope),
        ("wrong namespace", r#"<e:Envelope xmlns:e="urn:x"><e:Body/></e:Envelope>"#.into(), SoapError::NotAnEnvelope),
        ("PI", format!(r#"<?xml-stylesheet href="x"?>{}"#, body("")), SoapError::ProcessingInstruction),
        (
            "latin-1",
            format!(r#"<?xml version="1.0" encoding="ISO-8859-1"?>{}"#, body("")),
            SoapError::UnsupportedEncoding("iso-8859-1".into()),
        ),
        (
            "text outside Body",
            format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}">junk<e:Body/></e:Envelope>"#),
            SoapError::ContentOutsideBody,
        ),
        (
            "element outside Body",
            format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}"><x/><e:Body/></e:Envelope>"#),
            SoapError::ContentOutsideBody,
        ),
        (
            "trailing element",
            format!(r#"<e:Envelope xmlns:e="{SOAP11_NS}"><e:Body/></e:Envelope><e:Envelope xmlns:e="{SOAP11_NS}"/>"#),
            SoapError::ContentOutsideBody,
        ),
        (
            "duplicate X-Road client",
            envelope(SoapVersion::V11, &format!("{XROAD_HEADER}<xrd:id>again</xrd:id>"), ""),
            SoapError::DuplicateXRoadField("id"),
        ),
    ];
    for (what, doc, want) in cases {
        let got = read(&doc);
        assert_eq!(got.as_ref().err(), Some(&want), "{what}");
        assert_eq!(
            want.code(),
            if matches!(want, SoapError::DuplicateXRoadField(_)) { ErrorCode::BadRequest } else { ErrorCode::BadXml }
        );
    }
    assert_eq!(read_envelope(b"\xff\xfe<a/>", None, &XmlLimits::default()), Err(SoapError::NotUtf8));
    let nul = envelope(SoapVersion::V11, "", "<a>\u{0}</a>");
    assert!(matches!(read(&nul), Err(SoapError::Malformed { line: 4, .. })), "{:?}", read(&nul));
}

#[test]
fn truncated_and_malformed_documents_name_line_and_column() {
    let doc = envelope(SoapVersion::V11, XROAD_HEADER, BODY);
    let cut = &doc[..doc.len() - 30];
    match read(cut) {
        Err(SoapError::Malformed { line, column, .. }) => assert!(line >= 9 && column >= 1, "{line}:{column}"),
        other => panic!("{other:?}"),
    }
    let bad = format!(
        r#"<e:Envelope xmlns:e="{SOAP11_NS}">
<e:Body><a></b></e:Body></e:Envelope>"#
    );
    match read(&bad) {
        Err(SoapError::Malformed { line, column, message }) => {
            assert_eq!(line, 2, "{message}");
            assert!(column > 1, "{column}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_are_configurable() {
    let limits = XmlLimits { max_elements: 5, ..XmlLimits::default() };
    let doc = envelope(SoapVersion::V11, "", "<a/><a/><a/><a/><a/>");
    assert_eq!(read_envelope(doc.as_bytes(), None, &limits), Err(SoapError::TooManyElements(5)));
    let limits = XmlLimits { max_text_len: 10, ..XmlLimits::default() };
    let doc = envelope(SoapVersion::V11, "", "<a>01234567890</a>");
    assert_eq!(read_envelope(doc.as_bytes(), None, &limits), Err(SoapError::TextTooLong(10)));
    let limits = XmlLimits { max_name_len: 8, ..XmlLimits::default() };
    let doc = envelope(SoapVersion::V11, "", "<averylongname/>");
    assert_eq!(read_envelope(doc.as_bytes(), None, &limits), Err(SoapError::NameTooLong(8)));
}

#[test]
fn content_type_must_agree_with_the_namespace() {
    let doc = envelope(SoapVersion::V11, "", BODY);
    let r = read_envelope(doc.as_bytes(), Some("application/soap+xml; charset=utf-8"), &XmlLimits::default());
    assert_eq!(r, Err(SoapError::VersionMismatch));
    assert!(read_envelope(doc.as_bytes(), Some("text/xml"), &XmlLimits::default()).is_ok());
    assert!(read_envelope(doc.as_bytes(), Some("application/octet-stream"), &XmlLimits::default()).is_ok());
}

#[test]
fn faults_are_valid_envelopes_with_the_code() {
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let xml = fault(version, ErrorCode::AccessDenied, "a <b> & c", Some("id-1"));
        let env = read_envelope(xml.as_bytes(), Some(version.content_type()), &XmlLimits::default()).unwrap();
        assert_eq!(env.operation.as_ref().map(|(_, l)| l.as_str()), Some("Fault"));
        assert!(xml.contains("client.access_denied"));
        assert!(xml.contains("a &lt;b&gt; &amp; c"));
        assert!(xml.contains("<qaqpa:messageId>id-1</qaqpa:messageId>"));
    }
    assert!(fault(SoapVersion::V12, ErrorCode::UpstreamTimeout, "x", None).contains("env:Receiver"));
    assert!(fault(SoapVersion::V12, ErrorCode::BadXml, "x", None).contains("env:Sender"));
}

#[test]
fn written_envelopes_read_back_with_the_same_header() {
    let header = XRoadHeader {
        client: Some(XRoadIdentifier::from_id("KZ/GOV/000000000003/egov-portal")),
        service: Some(XRoadIdentifier::from_id("KZ/GOV/000000000002/legacy-tax/debt/v1")),
        id: Some("m<1>".into()),
        user_id: Some("u".into()),
        issue: None,
        protocol_version: Some("4.0".into()),
    };
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let xml = write_envelope(version, &header, BODY);
        let env = read(&xml).unwrap();
        assert_eq!(env.header, header);
        assert_eq!(env.version, version);
        assert_eq!(&xml[env.body], BODY);
    }
    assert_eq!(header.service.unwrap().service_id().unwrap(), "KZ/GOV/000000000002/legacy-tax/debt/v1");
}

/// Mutational smoke fuzzing on stable: thousands of damaged envelopes through the
/// reader and the mapping must give errors or results, never a panic. (The
/// cargo-fuzz targets in fuzz/ run the same code coverage-guided.)
#[test]
fn damaged_documents_never_panic() {
    let seed = envelope(SoapVersion::V11, XROAD_HEADER, BODY).into_bytes();
    let inserts: [&[u8]; 10] =
        [b"<", b">", b"&", b"&#x0;", b"]]>", b"<![CDATA[", b"<!DOCTYPE a>", b"\xff", b"</soapenv:Body>", b"<?x?>"];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let limits = XmlLimits::default();
    for _ in 0..20_000 {
        let mut doc = seed.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % (doc.len() + 1);
            match next() % 4 {
                0 if at < doc.len() => doc[at] = next() as u8,
                1 => doc.truncate(at),
                2 => {
                    let ins = inserts[(next() % inserts.len() as u64) as usize];
                    doc.splice(at..at, ins.iter().copied());
                }
                _ if at < doc.len() => {
                    doc.remove(at);
                }
                _ => {}
            }
        }
        if let Ok(env) = read_envelope(&doc, None, &limits) {
            let _ = crate::mapping::xml_to_json(&doc[env.body.clone()], &Default::default(), &limits);
        }
        let _ = crate::mapping::xml_to_json(&doc, &Default::default(), &limits);
        let _ = crate::wsdl::rewrite_endpoint(&String::from_utf8_lossy(&doc), "https://gw/soap");
    }
}

/// Issue 15: what a provider could read differently from the gateway is refused.
#[test]
fn ambiguous_x_road_headers_and_nested_bodies_are_refused() {
    let client = |member: &str| {
        format!(
            r#"<xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass>{member}<id:subsystemCode>egov-portal</id:subsystemCode></xrd:client>"#
        )
    };
    let service = r#"<xrd:service id:objectType="SERVICE"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000002</id:memberCode><id:subsystemCode>legacy-tax</id:subsystemCode><id:serviceCode>debt</id:serviceCode></xrd:service>"#;
    let member = "<id:memberCode>000000000003</id:memberCode>";
    let ok = envelope(SoapVersion::V11, &format!("{}{service}", client(member)), BODY);
    assert!(read(&ok).is_ok());
    let cases: Vec<(&str, String, SoapError)> = vec![
        (
            "two memberCode",
            envelope(
                SoapVersion::V11,
                &format!("{}{service}", client(&format!("{member}<id:memberCode>000000000004</id:memberCode>"))),
                BODY,
            ),
            SoapError::DuplicateXRoadField("memberCode"),
        ),
        (
            "two subsystemCode",
            envelope(
                SoapVersion::V11,
                &format!("{}{service}", client(&format!("{member}<id:subsystemCode>akimat</id:subsystemCode>"))),
                BODY,
            ),
            SoapError::DuplicateXRoadField("subsystemCode"),
        ),
        (
            "two serviceCode",
            envelope(
                SoapVersion::V11,
                &format!(
                    "{}{}",
                    client(member),
                    service.replace("</xrd:service>", "<id:serviceCode>other</id:serviceCode></xrd:service>")
                ),
                BODY,
            ),
            SoapError::DuplicateXRoadField("serviceCode"),
        ),
        (
            "two client elements",
            envelope(SoapVersion::V11, &format!("{}{}{service}", client(member), client(member)), BODY),
            SoapError::DuplicateXRoadField("client"),
        ),
        (
            "two service elements",
            envelope(SoapVersion::V11, &format!("{}{service}{service}", client(member)), BODY),
            SoapError::DuplicateXRoadField("service"),
        ),
        (
            "xrd:service nested deeper in the Header",
            envelope(
                SoapVersion::V11,
                &format!(
                    "{}{service}<w:x xmlns:w=\"urn:w\">{}</w:x>",
                    client(member),
                    service.replace("debt", "secret")
                ),
                BODY,
            ),
            SoapError::MisplacedXRoadElement("service".into()),
        ),
        (
            "identifier part nested in a wrapper",
            envelope(
                SoapVersion::V11,
                &format!("{}{service}", client(&format!("<w:x xmlns:w=\"urn:w\">{member}</w:x>"))),
                BODY,
            ),
            SoapError::MisplacedXRoadElement("memberCode".into()),
        ),
        (
            "comment inside a member code",
            envelope(
                SoapVersion::V11,
                &format!("{}{service}", client("<id:memberCode>0000000000<!---->03</id:memberCode>")),
                BODY,
            ),
            SoapError::CommentInXRoadField("client"),
        ),
        (
            "comment inside the message id",
            envelope(SoapVersion::V11, "<xrd:id>a<!-- x -->b</xrd:id>", BODY),
            SoapError::CommentInXRoadField("id"),
        ),
        (
            "a second Body inside the Header",
            envelope(
                SoapVersion::V11,
                &format!("{}{service}<soapenv:Body>{BODY}</soapenv:Body>", client(member)),
                BODY,
            ),
            SoapError::TwoBodies,
        ),
        (
            "a second Body inside the Body",
            envelope(SoapVersion::V11, "", &format!("<a><soapenv:Body>{BODY}</soapenv:Body></a>")),
            SoapError::TwoBodies,
        ),
        (
            "a SOAP 1.2 Body inside a SOAP 1.1 Header",
            envelope(SoapVersion::V11, &format!("<b:Body xmlns:b=\"{SOAP12_NS}\"/>"), BODY),
            SoapError::TwoBodies,
        ),
        ("a Header inside the Body", envelope(SoapVersion::V12, "", "<env:Header/>"), SoapError::TwoHeaders),
    ];
    for (what, doc, want) in cases {
        let got = read(&doc);
        assert_eq!(got.as_ref().err(), Some(&want), "{what}");
        let code = want.code();
        assert!(matches!(code, ErrorCode::BadRequest | ErrorCode::BadXml), "{what}: {code:?}");
    }
    // Comments elsewhere (between header blocks, in the Body) stay allowed: the
    // signature layer judges comments inside signed content.
    let commented = envelope(SoapVersion::V11, &format!("<!-- c -->{}{service}", client(member)), "<a>1<!---->00</a>");
    assert!(read(&commented).is_ok());
}

/// The word-at-a-time scan against the byte loop it replaces: every byte value at
/// every offset of a word and of the tail, and ASCII-ness with non-ASCII anywhere.
#[test]
fn the_byte_scan_finds_what_a_byte_loop_finds() {
    let reference = |input: &[u8]| {
        (input.iter().position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')), input.iter().all(u8::is_ascii))
    };
    let base: Vec<u8> = b"<a>text\r\n\tmore text, and some more of it </a>".to_vec();
    for len in [0, 1, 7, 8, 9, 15, 16, 17, base.len()] {
        let prefix = &base[..len];
        assert_eq!(scan_bytes(prefix), reference(prefix), "len {len}");
        for at in 0..len {
            for b in 0..=255u8 {
                let mut input = prefix.to_vec();
                input[at] = b;
                assert_eq!(scan_bytes(&input), reference(&input), "byte {b:#04x} at {at} of {len}");
            }
        }
    }
    // A control character after non-ASCII text, and the first of two.
    let input = "Ақпа\u{7}x\u{1}".as_bytes();
    assert_eq!(scan_bytes(input), reference(input));
}

#[test]
fn a_control_character_is_refused_where_it_stands() {
    let doc = envelope(SoapVersion::V11, XROAD_HEADER, "<p:op xmlns:p=\"urn:p\">Ақпа\u{b}</p:op>");
    let at = doc.find('\u{b}').unwrap();
    let (line, column) = position(doc.as_bytes(), at);
    match read_envelope(doc.as_bytes(), None, &XmlLimits::default()) {
        Err(SoapError::Malformed { line: l, column: c, message }) => {
            assert_eq!((l, c), (line, column));
            assert!(message.contains("U+000B"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Non-ASCII but valid UTF-8 everywhere else reads.
    let doc = envelope(SoapVersion::V11, XROAD_HEADER, "<p:op xmlns:p=\"urn:p\">Ақпа қақпа</p:op>");
    assert!(read_envelope(doc.as_bytes(), None, &XmlLimits::default()).is_ok());
}
