//! Validation of a service's mediation face (docs/mapping.md): operations, path
//! templates and types. The files pass checks the operations against the provider's
//! WSDL or OpenAPI document when the service names one.

use qaqpa_adapters::mapping::{JsonStyle, Rules, ValueType};
use toml::Spanned;

use super::checker::Checker;
use super::files::ContractOperation;
use super::raw::RawMediation;
use super::{MediatedOperation, Mediation, PathPart};

/// A mediation face, and its operations as the provider's contract must offer them.
pub(super) fn check(c: &mut Checker, raw: &RawMediation, key: &str) -> (Mediation, Vec<ContractOperation>) {
    let mut types = std::collections::HashMap::new();
    for (name, t) in &raw.types {
        match ValueType::parse(t.get_ref()) {
            Some(v) => {
                types.insert(name.clone(), v);
            }
            None => c.error(
                t.span(),
                format!("{key}.types"),
                format!("unknown type {:?}; use string, integer, number or boolean", t.get_ref()),
            ),
        }
    }
    let mut operations: Vec<MediatedOperation> = Vec::new();
    let mut contract = Vec::new();
    for (i, op) in raw.operations.iter().enumerate() {
        let okey = format!("{key}.operation[{i}]");
        let name = op.name.get_ref();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            c.error(op.name.span(), format!("{okey}.name"), "an operation name is letters, digits and _");
        }
        let method = match op.method.get_ref().to_ascii_uppercase().parse::<http::Method>() {
            Ok(m) if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) => m,
            _ => {
                c.error(op.method.span(), format!("{okey}.method"), "one of GET, POST, PUT, PATCH, DELETE");
                http::Method::GET
            }
        };
        let path = path_template(c, &op.path, &format!("{okey}.path"));
        let operation =
            MediatedOperation { name: name.clone(), method, path, soap_action: op.soap_action.clone(), shape: None };
        if operations.iter().any(|o| o.name == operation.name) {
            c.error(op.name.span(), format!("{okey}.name"), format!("operation {name} is mapped twice"));
        }
        contract.push(ContractOperation {
            name: name.clone(),
            name_key: format!("{okey}.name"),
            name_line: c.line(op.name.span()),
            method: operation.method.clone(),
            template: operation.template(),
            path_key: format!("{okey}.path"),
            path_line: c.line(op.path.span()),
        });
        operations.push(operation);
    }
    if operations.is_empty() {
        c.error(raw.namespace.span(), key, "a mediation face needs at least one [[...operation]]");
    }
    let (style, attributes) = style(c, raw, key);
    let mediation = Mediation {
        namespace: raw.namespace.get_ref().clone(),
        rules: Rules { arrays: raw.arrays.iter().cloned().collect(), types, style, attributes },
        operations,
    };
    (mediation, contract)
}

/// Types a REST service's SOAP face from the provider's OpenAPI document: each
/// operation's shape, and what it adds to the mapping's rules.
pub(super) fn type_from_openapi(mediation: &mut Mediation, document: &serde_json::Value) {
    for op in &mut mediation.operations {
        let method = op.method.as_str().to_ascii_lowercase();
        op.shape = qaqpa_adapters::schema::operation(document, &method, &op.template())
            .map(|shape| shape.for_style(&mediation.rules.style));
        if let Some(shape) = &op.shape {
            shape.extend_rules(&mut mediation.rules);
        }
    }
}

/// The JSON style of the face and the attributes it names (docs/mapping.md#json-styles).
fn style(c: &mut Checker, raw: &RawMediation, key: &str) -> (JsonStyle, std::collections::HashSet<String>) {
    let named =
        c.choice(raw.json_style.as_ref(), &format!("{key}.json_style"), &[("plain", false), ("named", true)], false);
    let named_only = [
        ("text_field", raw.text_field.as_ref()),
        ("attribute_prefix", raw.attribute_prefix.as_ref()),
        ("attributes", raw.attributes.first()),
    ];
    if !named {
        for (name, value) in named_only {
            if let Some(v) = value {
                c.error(v.span(), format!("{key}.{name}"), "only with json_style = \"named\"");
            }
        }
        return (JsonStyle::Plain, Default::default());
    }
    let text_field = raw.text_field.as_ref().map_or("value", |t| t.get_ref().as_str()).to_owned();
    if let Some(t) = &raw.text_field {
        if !xml_name(&text_field) {
            c.error(t.span(), format!("{key}.text_field"), "the text field is a name of letters, digits, _, - and .");
        }
    }
    let attribute_prefix = raw.attribute_prefix.as_ref().map_or("", |p| p.get_ref().as_str()).to_owned();
    if let Some(p) = &raw.attribute_prefix {
        if attribute_prefix.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            || text_field.starts_with(&attribute_prefix) && !attribute_prefix.is_empty()
        {
            c.error(
                p.span(),
                format!("{key}.attribute_prefix"),
                "a prefix has no spaces and does not begin the text field",
            );
        }
    }
    let mut attributes = std::collections::HashSet::new();
    for (i, a) in raw.attributes.iter().enumerate() {
        if !xml_name(a.get_ref()) || *a.get_ref() == text_field {
            c.error(
                a.span(),
                format!("{key}.attributes[{i}]"),
                "an attribute is an XML name other than the text field",
            );
        }
        attributes.insert(a.get_ref().clone());
    }
    (JsonStyle::Named { text_field, attribute_prefix }, attributes)
}

/// An XML name as the mapping writes one (no prefix, not starting with "xml").
fn xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(ch) if ch.is_alphabetic() || ch == '_')
        && chars.all(|ch| ch.is_alphanumeric() || matches!(ch, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

/// A REST path template after the service id, e.g. `/{iin}/debts`.
fn path_template(c: &mut Checker, value: &Spanned<String>, key: &str) -> Vec<PathPart> {
    let mut path = Vec::new();
    let template = value.get_ref();
    if !template.starts_with('/') {
        c.error(value.span(), key, "a path template starts with '/'");
    }
    for segment in template.split('/').filter(|s| !s.is_empty()) {
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                if path.contains(&PathPart::Param(p.to_owned())) {
                    c.error(value.span(), key, format!("parameter {{{p}}} appears twice"));
                }
                path.push(PathPart::Param(p.to_owned()));
            }
            Some(_) => c.error(value.span(), key, "a parameter is {name} of letters, digits and _"),
            None if segment.contains(['{', '}', '%', '?', '#']) => {
                c.error(value.span(), key, format!("segment {segment:?} is neither literal nor {{param}}"))
            }
            None => path.push(PathPart::Literal(segment.to_owned())),
        }
    }
    path
}
