use super::*;

fn rules(arrays: &[&str], types: &[(&str, ValueType)]) -> Rules {
    Rules {
        arrays: arrays.iter().map(|s| s.to_string()).collect(),
        types: types.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ..Rules::default()
    }
}

fn map(xml: &str, r: &Rules) -> Value {
    Value::Object(xml_to_json(xml.as_bytes(), r, &XmlLimits::default()).unwrap())
}

#[test]
fn documented_mapping() {
    let xml = r#"<p:Person xmlns:p="urn:p" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
        <p:iin>900101300123</p:iin>
        <p:age>36</p:age>
        <p:alive>true</p:alive>
        <p:phone>1</p:phone><p:phone>2</p:phone>
        <p:address kind="home"><p:city>Astana</p:city></p:address>
        <p:amount currency="KZT">12.50</p:amount>
        <p:middleName xsi:nil="true"/>
        <p:note/>
        <p:child><p:name>A &amp; B</p:name></p:child>
    </p:Person>"#;
    let r =
        rules(&["child"], &[("age", ValueType::Integer), ("alive", ValueType::Boolean), ("amount", ValueType::Number)]);
    assert_eq!(
        map(xml, &r),
        serde_json::json!({"Person": {
            "iin": "900101300123",
            "age": 36,
            "alive": true,
            "phone": ["1", "2"],
            "address": {"@kind": "home", "city": "Astana"},
            "amount": {"@currency": "KZT", "#text": 12.5},
            "middleName": null,
            "note": "",
            "child": [{"name": "A & B"}]
        }})
    );
}

#[test]
fn wrong_types_are_errors_not_guesses() {
    let r = rules(&[], &[("age", ValueType::Integer)]);
    let e = xml_to_json(b"<age>old</age>", &r, &XmlLimits::default()).unwrap_err();
    assert_eq!(e, MappingError::BadValue { name: "age".into(), expected: "an integer", text: "old".into() });
    assert!(xml_to_json(b"<a><b></a>", &r, &XmlLimits::default()).is_err());
    assert!(xml_to_json(b"<!DOCTYPE a><a/>", &r, &XmlLimits::default()).is_err());
    assert!(xml_to_json(b"<a>&x;</a>", &r, &XmlLimits::default()).is_err());
    let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
    assert!(matches!(xml_to_json(deep.as_bytes(), &r, &XmlLimits::default()), Err(MappingError::Limit(_))));
}

#[test]
fn json_to_xml_writes_in_json_order_with_the_namespace() {
    let obj = serde_json::json!({"iin": "1", "amount": {"@currency": "KZT", "#text": 5}, "tags": ["a", "b"], "gone": null, "ok": true});
    let xml = json_to_xml("GetDebt", "urn:tax", obj.as_object().unwrap()).unwrap();
    assert_eq!(
        xml,
        r#"<GetDebt xmlns="urn:tax" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><iin>1</iin><amount currency="KZT">5</amount><tags>a</tags><tags>b</tags><gone xsi:nil="true"/><ok>true</ok></GetDebt>"#
    );
    let bad = serde_json::json!({"1abc": "x"});
    assert!(matches!(json_to_xml("Op", "urn:x", bad.as_object().unwrap()), Err(MappingError::BadName { .. })));
    let bad = serde_json::json!({"a b": "x"});
    assert!(json_to_xml("Op", "urn:x", bad.as_object().unwrap()).is_err());
    let escaped = serde_json::json!({"t": "<&>\""});
    assert!(json_to_xml("Op", "urn:x", escaped.as_object().unwrap()).unwrap().contains("<t>&lt;&amp;&gt;&quot;</t>"));
}

/// A small deterministic generator (xorshift) of JSON documents in the mapping's
/// image: objects with element-name keys, string leaves, attributes, arrays of at
/// least two items (a one-item array needs the schema's `arrays` rule to survive).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn text(&mut self) -> String {
        const ALPHABET: &[&str] = &["a", "Ж", "1", " x ", "&", "<", "\"", "'", "қ", ">", "z9"];
        let n = 1 + self.pick(4);
        let s: String = (0..n).map(|_| ALPHABET[self.pick(ALPHABET.len() as u64) as usize]).collect();
        if s.trim().is_empty() || s.trim() != s {
            format!("v{}", s.trim())
        } else {
            s
        }
    }
    fn object(&mut self, depth: u32) -> Map<String, Value> {
        let mut m = Map::new();
        let n = 1 + self.pick(4);
        for i in 0..n {
            let key = format!("e{}", self.pick(6) * 10 + i);
            if m.contains_key(&key) {
                continue;
            }
            let value = match self.pick(if depth > 3 { 2 } else { 5 }) {
                0 | 1 => Value::String(self.text()),
                2 => Value::Object(self.object(depth + 1)),
                3 => Value::Array((0..2 + self.pick(2)).map(|_| Value::String(self.text())).collect()),
                _ => {
                    let mut o = self.object(depth + 1);
                    o.insert("@attr".into(), Value::String(self.text()));
                    Value::Object(o)
                }
            };
            m.insert(key, value);
        }
        m
    }
}

#[test]
fn json_to_xml_to_json_round_trips_on_generated_documents() {
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    for case in 0..2000 {
        let doc = g.object(0);
        let xml = json_to_xml("Root", "urn:test", &doc).unwrap();
        let back = xml_to_json(xml.as_bytes(), &Rules::default(), &XmlLimits::default()).unwrap();
        assert_eq!(back.get("Root"), Some(&Value::Object(doc.clone())), "case {case}: {xml}");
    }
}

fn tree_text(xml: &str, r: &Rules) -> String {
    Json::Object(xml_to_tree(xml.as_bytes(), r, &XmlLimits::default()).unwrap()).to_json_string()
}

#[test]
fn numbers_keep_the_digits_they_were_written_with() {
    let r = rules(&[], &[("amount", ValueType::Number), ("rate", ValueType::Number), ("id", ValueType::Integer)]);
    let cases = [
        ("12500", "12500"),
        ("12500.50", "12500.50"),
        ("0.999", "0.999"),
        (" 0.1 ", "0.1"),
        ("-0.30", "-0.30"),
        ("+5", "5"),
        ("007.10", "7.10"),
        (".5", "0.5"),
        ("5.", "5"),
        ("1E3", "1e3"),
        ("123456789012345678901234.000000000000000001", "123456789012345678901234.000000000000000001"),
    ];
    for (written, json) in cases {
        let xml = format!("<r><amount>{written}</amount></r>");
        assert_eq!(tree_text(&xml, &r), format!(r#"{{"r":{{"amount":{json}}}}}"#), "{written}");
        // Whatever the tree writes is JSON serde_json reads.
        serde_json::from_str::<Value>(&tree_text(&xml, &r)).unwrap();
    }
    // An integer of any length stays exact; a fraction is not an integer.
    assert_eq!(tree_text("<id>123456789012345678901234567890</id>", &r), r#"{"id":123456789012345678901234567890}"#);
    for bad in ["1.5", "INF", "NaN", "1,5", "0x10", "", "-", "1e", "1e99999", "1e999", "--1", "."] {
        let xml = format!("<r><id>{bad}</id><amount>{bad}</amount></r>");
        assert!(xml_to_tree(xml.as_bytes(), &r, &XmlLimits::default()).is_err(), "{bad:?}");
    }
    // Attributes' text in both styles, and the serde_json view rounds only beyond f64.
    let v = map("<r><rate>0.999</rate><amount>12500.50</amount></r>", &r);
    assert_eq!(v, serde_json::json!({"r": {"rate": 0.999, "amount": 12500.5}}));
}

#[test]
fn json_numbers_are_written_to_xml_without_exponents() {
    let cases =
        [("1e21", "1000000000000000000000"), ("1.5e-7", "0.00000015"), ("12500.5", "12500.5"), ("-2.5e3", "-2500.0")];
    for (json, xml) in cases {
        let n: serde_json::Number = serde_json::from_str(json).unwrap();
        assert_eq!(decimal_text(&n), xml, "{json}");
    }
    let obj = serde_json::json!({"a": 1e21, "b": 0.1, "c": 12500});
    let xml = json_to_xml("Op", "urn:x", obj.as_object().unwrap()).unwrap();
    assert!(xml.contains("<a>1000000000000000000000</a><b>0.1</b><c>12500</c>"), "{xml}");
}

fn named(arrays: &[&str], types: &[(&str, ValueType)], attributes: &[&str]) -> Rules {
    Rules {
        style: JsonStyle::Named { text_field: "value".into(), attribute_prefix: String::new() },
        attributes: attributes.iter().map(|s| s.to_string()).collect(),
        ..rules(arrays, types)
    }
}

#[test]
fn named_style_maps_attributes_and_text_to_fields() {
    let r = named(&[], &[("amount", ValueType::Number)], &["currency", "kind"]);
    let xml = r#"<GetDebtResponse><iin>900101300123</iin><amount currency="KZT">12500.50</amount><address kind="home"><city>Astana</city></address></GetDebtResponse>"#;
    assert_eq!(
        tree_text(xml, &r),
        r#"{"GetDebtResponse":{"iin":"900101300123","amount":{"currency":"KZT","value":12500.50},"address":{"kind":"home","city":"Astana"}}}"#
    );
    // And back: listed attributes become attributes, the text field the text.
    let doc: Value = serde_json::from_str(&tree_text(xml, &r)).unwrap();
    let back = json_to_xml_with("GetDebtResponse", "urn:tax", doc["GetDebtResponse"].as_object().unwrap(), &r).unwrap();
    assert!(back.contains(r#"<amount currency="KZT">12500.5</amount>"#), "{back}");
    assert!(back.contains(r#"<address kind="home"><city>Astana</city></address>"#), "{back}");
    // A text field without attributes beside it is an element of that name.
    let plain_value = serde_json::json!({"rate": {"value": "5"}});
    let xml = json_to_xml_with("Op", "urn:x", plain_value.as_object().unwrap(), &r).unwrap();
    assert!(xml.contains("<rate><value>5</value></rate>"), "{xml}");
    // A prefix marks attributes without a list.
    let prefixed = Rules {
        style: JsonStyle::Named { text_field: "text".into(), attribute_prefix: "_".into() },
        ..Rules::default()
    };
    assert_eq!(tree_text(r#"<a id="7">x</a>"#, &prefixed), r#"{"a":{"_id":"7","text":"x"}}"#);
    let obj = serde_json::json!({"a": {"_id": "7", "text": "x"}});
    assert!(json_to_xml_with("Op", "", obj.as_object().unwrap(), &prefixed).unwrap().contains(r#"<a id="7">x</a>"#));
    // The default style is unchanged.
    assert_eq!(tree_text(r#"<a id="7">x</a>"#, &Rules::default()), r##"{"a":{"@id":"7","#text":"x"}}"##);
}

#[test]
fn named_style_refuses_what_it_cannot_tell_apart() {
    let r = named(&[], &[], &["id"]);
    for xml in [
        r#"<a id="1"><id>2</id></a>"#,       // attribute and child under one key
        r#"<a id="1"><value>2</value></a>"#, // a child that would come back as text
        r#"<a><value>2</value>text</a>"#,    // a child and the text
    ] {
        let e = xml_to_tree(xml.as_bytes(), &r, &XmlLimits::default()).unwrap_err();
        assert!(matches!(e, MappingError::Collision { .. }), "{xml}: {e}");
    }
    // Two attributes with one local name: refused in the named style, the last wins in the plain one.
    let two = r#"<a xmlns:p="urn:p" xmlns:q="urn:q" p:x="1" q:x="2"/>"#;
    assert!(matches!(xml_to_tree(two.as_bytes(), &r, &XmlLimits::default()), Err(MappingError::Collision { .. })));
    assert_eq!(tree_text(two, &Rules::default()), r#"{"a":{"@x":"2"}}"#);
    // Without attributes a child named like the text field is just a child.
    assert_eq!(tree_text("<a><value>2</value></a>", &r), r#"{"a":{"value":"2"}}"#);
}

#[test]
fn named_style_round_trips_on_generated_documents() {
    // The generator's attributes are "@attr": in the named style they are listed
    // "attr" members, and text beside them is "value".
    let r = named(&[], &[], &["attr"]);
    let mut g = Gen(0xD1B5_4A32_D192_ED03);
    for case in 0..2000 {
        let doc = rename_attributes(g.object(0), &mut g);
        let xml = json_to_xml_with("Root", "urn:test", &doc, &r).unwrap();
        let back = xml_to_json(xml.as_bytes(), &r, &XmlLimits::default()).unwrap();
        assert_eq!(back.get("Root"), Some(&Value::Object(doc.clone())), "case {case}: {xml}");
    }
}

/// The plain generator's document in the named style: `@attr` → `attr`, and some
/// attributed objects gain a text `value`.
fn rename_attributes(m: Map<String, Value>, g: &mut Gen) -> Map<String, Value> {
    let attributed = m.contains_key("@attr");
    let mut out: Map<String, Value> = m
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Object(o) => Value::Object(rename_attributes(o, g)),
                other => other,
            };
            (k.trim_start_matches('@').to_owned(), v)
        })
        .collect();
    if attributed {
        // (Map equality ignores order: attributes come first in the mapping's output.)
        if g.pick(2) == 0 {
            out.insert("value".into(), Value::String(g.text()));
        }
    }
    out
}
