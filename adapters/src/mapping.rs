//! The XML ⇄ JSON mapping used by SOAP⇄REST mediation (documented in
//! docs/mapping.md). Deterministic both ways:
//!
//! - an element becomes a key (its local name; namespaces are the operation's);
//! - repeated sibling elements become an array, and so does an element the service's
//!   mapping lists in `arrays` even when it occurs once;
//! - attributes and text next to attributes or children become `"@name"` and
//!   `"#text"` keys in the plain style (the default), or fields the mapping names in
//!   the named style (`{"currency": "KZT", "value": 12500}`): see [`JsonStyle`];
//! - `xsi:nil="true"` becomes `null`; an empty element `""`;
//! - text stays a string unless the mapping's `types` says `integer`, `number` or
//!   `boolean` for that element name; numbers keep the digits they were written with
//!   ([`Json`]).
//!
//! JSON → XML is the inverse, writing keys in the order the JSON gave them.

mod json;

pub use json::{decimal_text, integer_token, into_map, number_token, to_map, Json};

use std::collections::{HashMap, HashSet};

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{Map, Value};

use crate::soap::XmlLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ValueType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "string" => Some(Self::String),
            "integer" => Some(Self::Integer),
            "number" => Some(Self::Number),
            "boolean" => Some(Self::Boolean),
            _ => None,
        }
    }
}

/// How attributes, and text beside attributes or children, appear in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum JsonStyle {
    /// `"@currency"` and `"#text"`: nothing the document holds can collide with them.
    #[default]
    Plain,
    /// `attribute_prefix` + the attribute's name, and `text_field`: what REST clients
    /// expect (`{"currency": "KZT", "value": 12500}`). JSON → XML needs to know which
    /// members are attributes: those starting with a non-empty prefix, or, with the
    /// empty prefix, those the mapping lists in [`Rules::attributes`].
    Named { text_field: String, attribute_prefix: String },
}

/// What a service's schema says beyond the document itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Element names that are arrays even with one occurrence (maxOccurs > 1).
    pub arrays: HashSet<String>,
    /// Element names whose text is a number or boolean in JSON.
    pub types: HashMap<String, ValueType>,
    pub style: JsonStyle,
    /// Attribute names (without the prefix) that JSON → XML writes as attributes in
    /// the named style.
    pub attributes: HashSet<String>,
}

impl Rules {
    fn attribute_key(&self, name: &str) -> String {
        match &self.style {
            JsonStyle::Plain => format!("@{name}"),
            JsonStyle::Named { attribute_prefix, .. } => format!("{attribute_prefix}{name}"),
        }
    }

    fn text_key(&self) -> &str {
        match &self.style {
            JsonStyle::Plain => "#text",
            JsonStyle::Named { text_field, .. } => text_field,
        }
    }

    /// The attribute a JSON member writes, if it is one.
    fn attribute_of<'k>(&self, key: &'k str, value: &Value) -> Option<&'k str> {
        match &self.style {
            JsonStyle::Plain => key.strip_prefix('@'),
            _ if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) => None,
            JsonStyle::Named { attribute_prefix, .. } if !attribute_prefix.is_empty() => {
                key.strip_prefix(attribute_prefix.as_str())
            }
            JsonStyle::Named { .. } => self.attributes.contains(key).then_some(key),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("{0}")]
    Limit(String),
    #[error("{name:?} is not a valid XML element name")]
    BadName { name: String },
    #[error("element {name} should be {expected} but is {text:?}")]
    BadValue { name: String, expected: &'static str, text: String },
    #[error("expected a JSON object")]
    NotAnObject,
    #[error(
        "element {name} has two members named {key:?} in the named JSON style (an attribute, a child or its text)"
    )]
    Collision { name: String, key: String },
}

struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<(String, Json)>,
    text: String,
    nil: bool,
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_owned(),
        None => s.into_owned(),
    }
}

/// Maps an XML fragment (zero or more elements, e.g. a SOAP Body's content) to a JSON
/// object keyed by the top-level elements' names.
pub fn xml_to_json(fragment: &[u8], rules: &Rules, limits: &XmlLimits) -> Result<Map<String, Value>, MappingError> {
    xml_to_tree(fragment, rules, limits).map(into_map)
}

/// [`xml_to_json`] keeping numbers exactly as written: the object's members, for
/// JSON that is sent on (mediated bodies) with [`Json::to_json_string`].
pub fn xml_to_tree(fragment: &[u8], rules: &Rules, limits: &XmlLimits) -> Result<Vec<(String, Json)>, MappingError> {
    let mut reader = Reader::from_reader(fragment);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> =
        vec![Node { name: String::new(), attrs: vec![], children: vec![], text: String::new(), nil: false }];
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| MappingError::Xml(e.to_string()))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                elements += 1;
                if elements > limits.max_elements || stack.len() > limits.max_depth {
                    return Err(MappingError::Limit(format!(
                        "more than {} elements or {} levels",
                        limits.max_elements, limits.max_depth
                    )));
                }
                let mut node = Node {
                    name: local(e.name().as_ref()),
                    attrs: vec![],
                    children: vec![],
                    text: String::new(),
                    nil: false,
                };
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| MappingError::Xml(e.to_string()))?;
                    let key = attr.key.as_ref();
                    if key == b"xmlns" || key.starts_with(b"xmlns:") {
                        continue;
                    }
                    let value = attr.unescape_value().map_err(|e| MappingError::Xml(e.to_string()))?.into_owned();
                    let name = local(key);
                    if name == "nil" && key.contains(&b':') {
                        node.nil = value == "true" || value == "1";
                        continue;
                    }
                    node.attrs.push((name, value));
                }
                if matches!(event, Event::Empty(_)) {
                    let (name, value) = finish(node, rules)?;
                    stack.last_mut().expect("root").children.push((name, value));
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().expect("balanced by check_end_names");
                let (name, value) = finish(node, rules)?;
                stack
                    .last_mut()
                    .ok_or_else(|| MappingError::Xml("unbalanced end tag".into()))?
                    .children
                    .push((name, value));
            }
            Event::Text(ref t) => {
                let text = t.xml_content().map_err(|e| MappingError::Xml(e.to_string()))?;
                push_text(&mut stack, &text, limits)?;
            }
            Event::CData(ref t) => push_text(&mut stack, &String::from_utf8_lossy(t), limits)?,
            Event::GeneralRef(ref r) => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(|e| MappingError::Xml(e.to_string()))?
                } else {
                    Some(
                        crate::soap::predefined_entity(r.as_ref())
                            .ok_or_else(|| MappingError::Xml("only predefined entities are allowed".into()))?,
                    )
                };
                if let Some(c) = c {
                    push_text(&mut stack, c.encode_utf8(&mut [0; 4]), limits)?;
                }
            }
            Event::DocType(_) => return Err(MappingError::Xml("DOCTYPE is not allowed".into())),
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(MappingError::Xml("the fragment ends inside an element".into()));
    }
    let root = stack.pop().expect("root");
    Ok(group(root.children, rules))
}

fn push_text(stack: &mut [Node], text: &str, limits: &XmlLimits) -> Result<(), MappingError> {
    let node = stack.last_mut().expect("root");
    if node.text.len() + text.len() > limits.max_text_len {
        return Err(MappingError::Limit(format!("a text node is longer than {} bytes", limits.max_text_len)));
    }
    node.text.push_str(text);
    Ok(())
}

fn typed(name: &str, text: String, rules: &Rules) -> Result<Json, MappingError> {
    let bad = |expected| MappingError::BadValue { name: name.to_owned(), expected, text: text.clone() };
    Ok(match rules.types.get(name).copied().unwrap_or(ValueType::String) {
        ValueType::String => Json::String(text),
        ValueType::Integer => Json::Number(integer_token(&text).ok_or_else(|| bad("an integer"))?),
        // The digits as written: 12500 stays 12500, 12500.50 stays 12500.50.
        ValueType::Number => Json::Number(number_token(&text).ok_or_else(|| bad("a number"))?),
        ValueType::Boolean => match text.trim() {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            _ => return Err(bad("a boolean")),
        },
    })
}

fn finish(node: Node, rules: &Rules) -> Result<(String, Json), MappingError> {
    if node.nil {
        return Ok((node.name, Json::Null));
    }
    if node.children.is_empty() && node.attrs.is_empty() {
        let value = typed(&node.name, node.text, rules)?;
        return Ok((node.name, value));
    }
    let mut members: Vec<(String, Json)> = Vec::new();
    let named = matches!(rules.style, JsonStyle::Named { .. });
    if named && !node.attrs.is_empty() && node.children.iter().any(|(k, _)| k == rules.text_key()) {
        // JSON → XML would write that child back as the element's text.
        return Err(MappingError::Collision { name: node.name, key: rules.text_key().to_owned() });
    }
    for (k, v) in node.attrs {
        let key = rules.attribute_key(&k);
        if !named {
            // `p:x` and `q:x` share the key `@x`: the last wins, as it always has in
            // the plain style (the named style refuses the pair below).
            members.retain(|(existing, _)| *existing != key);
        }
        members.push((key, Json::String(v)));
    }
    members.extend(group(node.children, rules));
    let trimmed = node.text.trim();
    if !trimmed.is_empty() {
        members.push((rules.text_key().to_owned(), typed(&node.name, trimmed.to_owned(), rules)?));
    }
    if named {
        // With the names chosen by the mapping, an attribute, a child and the text
        // may meet under one key; a guess would lose one of them.
        let mut seen = HashSet::new();
        if let Some((k, _)) = members.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(MappingError::Collision { name: node.name, key: k.clone() });
        }
    }
    Ok((node.name, Json::Object(members)))
}

/// Groups children by name in first-appearance order; repeated or listed → array.
fn group(children: Vec<(String, Json)>, rules: &Rules) -> Vec<(String, Json)> {
    let mut members: Vec<(String, Json)> = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (name, _) in &children {
        *counts.entry(name.clone()).or_default() += 1;
    }
    let mut slots: HashMap<String, usize> = HashMap::new();
    for (name, value) in children {
        let as_array = counts[&name] > 1 || rules.arrays.contains(&name);
        if !as_array {
            members.push((name, value));
            continue;
        }
        match slots.get(&name) {
            Some(&i) => {
                if let Json::Array(items) = &mut members[i].1 {
                    items.push(value);
                }
            }
            None => {
                slots.insert(name.clone(), members.len());
                members.push((name, Json::Array(vec![value])));
            }
        }
    }
    members
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

fn escape_text(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// The text of a JSON scalar as XML writes it; `None` for objects, arrays and null.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(decimal_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Writes `<name xmlns="namespace">` with the object's members as children, in the
/// plain style.
pub fn json_to_xml(name: &str, namespace: &str, object: &Map<String, Value>) -> Result<String, MappingError> {
    json_to_xml_with(name, namespace, object, &Rules::default())
}

/// [`json_to_xml`] in the style (and with the attributes) of `rules`.
pub fn json_to_xml_with(
    name: &str,
    namespace: &str,
    object: &Map<String, Value>,
    rules: &Rules,
) -> Result<String, MappingError> {
    if !valid_name(name) {
        return Err(MappingError::BadName { name: name.to_owned() });
    }
    let mut out = String::new();
    let ns = quick_xml::escape::escape(namespace).replace('"', "&quot;");
    out.push_str(&format!("<{name} xmlns=\"{ns}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""));
    write_members(&mut out, name, object, rules)?;
    Ok(out)
}

/// Writes the rest of an element whose `<name` is already out: attributes, `>`,
/// children and text, end tag.
fn write_members(out: &mut String, name: &str, object: &Map<String, Value>, rules: &Rules) -> Result<(), MappingError> {
    let mut has_attributes = false;
    for (k, v) in object {
        if let Some(attr) = rules.attribute_of(k, v) {
            if !valid_name(attr) {
                return Err(MappingError::BadName { name: k.clone() });
            }
            has_attributes = true;
            let text = scalar_text(v).unwrap_or_default();
            out.push_str(&format!(" {attr}=\"{}\"", escape_text(&text).replace('"', "&quot;")));
        }
    }
    out.push('>');
    let text_key = rules.text_key();
    // In the named style the text field is the element's text only beside
    // attributes: elsewhere it is a child of that name (docs/mapping.md).
    let text_is_field = matches!(rules.style, JsonStyle::Plain) || has_attributes;
    for (k, v) in object {
        if rules.attribute_of(k, v).is_some() {
            continue;
        }
        if k == text_key && text_is_field {
            if let Some(text) = scalar_text(v) {
                out.push_str(&escape_text(&text));
                continue;
            }
        }
        match v {
            Value::Array(items) => {
                for item in items {
                    write_element(out, k, item, rules)?;
                }
            }
            other => write_element(out, k, other, rules)?,
        }
    }
    out.push_str(&format!("</{name}>"));
    Ok(())
}

fn write_element(out: &mut String, name: &str, value: &Value, rules: &Rules) -> Result<(), MappingError> {
    if !valid_name(name) {
        return Err(MappingError::BadName { name: name.to_owned() });
    }
    match value {
        Value::Null => out.push_str(&format!("<{name} xsi:nil=\"true\"/>")),
        Value::Object(map) => {
            out.push_str(&format!("<{name}"));
            write_members(out, name, map, rules)?;
        }
        Value::Array(items) => {
            // An array inside an array has no element name of its own: repeat the name.
            for item in items {
                write_element(out, name, item, rules)?;
            }
        }
        scalar => out.push_str(&format!("<{name}>{}</{name}>", escape_text(&scalar_text(scalar).unwrap_or_default()))),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
