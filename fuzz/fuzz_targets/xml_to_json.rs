#![no_main]
use libfuzzer_sys::fuzz_target;
use qaqpa_adapters::mapping::{json_to_xml_with, xml_to_json, xml_to_tree, Json, JsonStyle, Rules, ValueType};

fuzz_target!(|data: &[u8]| {
    let limits = qaqpa_adapters::soap::XmlLimits::default();
    // The first byte picks the style and which names are typed, listed or attributes,
    // so that both styles and the number paths see every input.
    let (choice, xml) = data.split_first().map_or((0, data), |(c, rest)| (*c, rest));
    let names = ["a", "b", "value", "id", "amount"];
    let pick = |bit: u8| names.iter().enumerate().filter(move |(i, _)| choice >> (bit + *i as u8) & 1 == 1).map(|(_, n)| n.to_string());
    let mut rules = Rules {
        arrays: pick(0).collect(),
        types: pick(1).map(|n| (n, if choice & 0x40 != 0 { ValueType::Number } else { ValueType::Integer })).collect(),
        ..Rules::default()
    };
    if choice & 0x80 != 0 {
        let prefix = if choice & 0x20 != 0 { "_" } else { "" };
        rules.style = JsonStyle::Named { text_field: "value".into(), attribute_prefix: prefix.into() };
        rules.attributes = pick(2).filter(|n| n != "value").collect();
    }
    if let Ok(tree) = xml_to_tree(xml, &rules, &limits) {
        // The exact text is JSON, and reads back as the serde_json view of the same tree.
        let text = Json::Object(tree.clone()).to_json_string();
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("the tree writes JSON");
        assert_eq!(parsed.as_object().map(|m| m.len()), Some(tree.len()));
        let map = xml_to_json(xml, &rules, &limits).expect("the same input maps");
        // Whatever maps must map back without panicking.
        let _ = json_to_xml_with("Root", "urn:fuzz", &map, &rules);
    }
});
