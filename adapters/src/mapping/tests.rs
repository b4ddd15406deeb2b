use super::*;

fn rules(arrays: &[&str], types: &[(&str, ValueType)]) -> Rules {
    Rules {
        arrays: arrays.iter().map(|s| s.to_string()).collect(),
        types: types.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
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
