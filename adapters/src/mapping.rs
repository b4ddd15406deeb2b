//! The XML ⇄ JSON mapping used by SOAP⇄REST mediation (documented in
//! docs/mapping.md). Deterministic both ways:
//!
//! - an element becomes a key (its local name; namespaces are the operation's);
//! - repeated sibling elements become an array, and so does an element the service's
//!   mapping lists in `arrays` even when it occurs once;
//! - attributes become `"@name"` keys, text next to attributes or children `"#text"`;
//! - `xsi:nil="true"` becomes `null`; an empty element `""`;
//! - text stays a string unless the mapping's `types` says `integer`, `number` or
//!   `boolean` for that element name.
//!
//! JSON → XML is the inverse, writing keys in the order the JSON gave them.

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

/// What a service's schema says beyond the document itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Element names that are arrays even with one occurrence (maxOccurs > 1).
    pub arrays: HashSet<String>,
    /// Element names whose text is a number or boolean in JSON.
    pub types: HashMap<String, ValueType>,
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
}

struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<(String, Value)>,
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

fn typed(name: &str, text: String, rules: &Rules) -> Result<Value, MappingError> {
    let bad = |expected| MappingError::BadValue { name: name.to_owned(), expected, text: text.clone() };
    Ok(match rules.types.get(name).copied().unwrap_or(ValueType::String) {
        ValueType::String => Value::String(text),
        ValueType::Integer => Value::from(text.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
        ValueType::Number => {
            let t = text.trim();
            // Whole numbers stay integers in JSON (12500, not 12500.0).
            if let Ok(i) = t.parse::<i64>() {
                Value::from(i)
            } else {
                let n = t.parse::<f64>().map_err(|_| bad("a number"))?;
                serde_json::Number::from_f64(n).map(Value::Number).ok_or_else(|| bad("a finite number"))?
            }
        }
        ValueType::Boolean => match text.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
    })
}

fn finish(node: Node, rules: &Rules) -> Result<(String, Value), MappingError> {
    if node.nil {
        return Ok((node.name, Value::Null));
    }
    if node.children.is_empty() && node.attrs.is_empty() {
        let value = typed(&node.name, node.text, rules)?;
        return Ok((node.name, value));
    }
    let mut map = Map::new();
    for (k, v) in node.attrs {
        map.insert(format!("@{k}"), Value::String(v));
    }
    let trimmed = node.text.trim();
    let children = group(node.children, rules);
    map.extend(children);
    if !trimmed.is_empty() {
        map.insert("#text".into(), typed(&node.name, trimmed.to_owned(), rules)?);
    }
    Ok((node.name, Value::Object(map)))
}

/// Groups children by name in first-appearance order; repeated or listed → array.
fn group(children: Vec<(String, Value)>, rules: &Rules) -> Map<String, Value> {
    let mut map: Map<String, Value> = Map::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (name, _) in &children {
        *counts.entry(name.clone()).or_default() += 1;
    }
    for (name, value) in children {
        let as_array = counts[&name] > 1 || rules.arrays.contains(&name);
        if as_array {
            match map.entry(name).or_insert_with(|| Value::Array(vec![])) {
                Value::Array(items) => items.push(value),
                _ => unreachable!("array entries are created as arrays"),
            }
        } else {
            map.insert(name, value);
        }
    }
    map
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
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Writes `<name xmlns="namespace">` with the object's members as children.
pub fn json_to_xml(name: &str, namespace: &str, object: &Map<String, Value>) -> Result<String, MappingError> {
    if !valid_name(name) {
        return Err(MappingError::BadName { name: name.to_owned() });
    }
    let mut out = String::new();
    let ns = quick_xml::escape::escape(namespace).replace('"', "&quot;");
    out.push_str(&format!("<{name} xmlns=\"{ns}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""));
    write_members(&mut out, name, object)?;
    Ok(out)
}

/// Writes the rest of an element whose `<name` is already out: attributes, `>`,
/// children and text, end tag.
fn write_members(out: &mut String, name: &str, object: &Map<String, Value>) -> Result<(), MappingError> {
    for (k, v) in object {
        if let Some(attr) = k.strip_prefix('@') {
            if !valid_name(attr) {
                return Err(MappingError::BadName { name: k.clone() });
            }
            let text = scalar_text(v).unwrap_or_default();
            out.push_str(&format!(" {attr}=\"{}\"", escape_text(&text).replace('"', "&quot;")));
        }
    }
    out.push('>');
    for (k, v) in object {
        if k.starts_with('@') {
            continue;
        }
        if k == "#text" {
            out.push_str(&escape_text(&scalar_text(v).unwrap_or_default()));
            continue;
        }
        match v {
            Value::Array(items) => {
                for item in items {
                    write_element(out, k, item)?;
                }
            }
            other => write_element(out, k, other)?,
        }
    }
    out.push_str(&format!("</{name}>"));
    Ok(())
}

fn write_element(out: &mut String, name: &str, value: &Value) -> Result<(), MappingError> {
    if !valid_name(name) {
        return Err(MappingError::BadName { name: name.to_owned() });
    }
    match value {
        Value::Null => out.push_str(&format!("<{name} xsi:nil=\"true\"/>")),
        Value::Object(map) => {
            out.push_str(&format!("<{name}"));
            write_members(out, name, map)?;
        }
        Value::Array(items) => {
            // An array inside an array has no element name of its own: repeat the name.
            for item in items {
                write_element(out, name, item)?;
            }
        }
        scalar => out.push_str(&format!("<{name}>{}</{name}>", escape_text(&scalar_text(scalar).unwrap_or_default()))),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
