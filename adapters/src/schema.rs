//! Shapes: what a REST provider's OpenAPI document says an operation's request and
//! answer hold, as a REST service's SOAP face needs it (docs/mapping.md#typed-contracts):
//! the generated WSDL types its elements from them (so SOAP clients such as zeep get
//! fields), the XML → JSON mapping types the request's text, and the answer is written
//! in the order the schema gives. Only what XSD can say plainly is taken: objects,
//! arrays, string/integer/number/boolean, `required`, `xml.attribute`, local `$ref`s
//! and `allOf` of objects; anything else (`oneOf`, `anyOf`, `additionalProperties`
//! maps, nesting deeper than [`MAX_DEPTH`]) is [`Shape::Any`], as untyped as before.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::mapping::{JsonStyle, Rules, ValueType};
use crate::soap::escape;

/// Nesting followed into a schema (and so the bound on `$ref` cycles).
pub const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Scalar(ValueType),
    Object(Vec<Field>),
    Array(Box<Shape>),
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub shape: Shape,
    pub required: bool,
    /// `xml: {attribute: true}`: an attribute in XML (the named JSON style).
    pub attribute: bool,
}

/// An operation's request (path parameters, then the JSON body's members) and answer.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationShape {
    pub request: Vec<Field>,
    /// The 2xx answer's JSON schema; `None` when the document gives none.
    pub response: Option<Shape>,
}

/// The shape of `schema`, resolving `$ref`s against `document`.
pub fn shape(document: &Value, schema: &Value) -> Shape {
    shape_at(document, schema, 0)
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        // Local references only: `#/components/schemas/Person` is a JSON pointer.
        Some(r) => document.pointer(r.strip_prefix('#')?),
        None => Some(schema),
    }
}

fn shape_at(document: &Value, schema: &Value, depth: usize) -> Shape {
    if depth > MAX_DEPTH {
        return Shape::Any;
    }
    let Some(schema) = resolve(document, schema) else { return Shape::Any };
    if schema.get("$ref").is_some() {
        // A reference to a reference: followed, one level deeper.
        return shape_at(document, schema, depth + 1);
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut fields = Vec::new();
        for part in parts {
            match shape_at(document, part, depth + 1) {
                Shape::Object(f) => fields.extend(f),
                _ => return Shape::Any,
            }
        }
        return Shape::Object(fields);
    }
    // OpenAPI 3.1 writes a nullable type as ["string", "null"].
    let kind = match schema.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ if schema.get("properties").is_some() => Some("object"),
        _ => None,
    };
    match kind {
        Some("string") => Shape::Scalar(ValueType::String),
        Some("integer") => Shape::Scalar(ValueType::Integer),
        Some("number") => Shape::Scalar(ValueType::Number),
        Some("boolean") => Shape::Scalar(ValueType::Boolean),
        Some("array") => match schema.get("items").map(|i| shape_at(document, i, depth + 1)) {
            // An array of arrays has no element name for the inner one.
            Some(Shape::Array(_)) | None => Shape::Any,
            Some(items) => Shape::Array(Box::new(items)),
        },
        Some("object") => {
            // A map (members the schema cannot name) or no properties at all: untyped,
            // rather than a sequence that would leave members out.
            let map = schema.get("additionalProperties").is_some_and(|a| a.is_object() || *a == Value::Bool(true));
            match schema.get("properties").and_then(Value::as_object) {
                Some(properties) if !properties.is_empty() && !map => {
                    Shape::Object(fields(document, schema, properties, depth))
                }
                _ => Shape::Any,
            }
        }
        _ => Shape::Any,
    }
}

fn fields(document: &Value, schema: &Value, properties: &Map<String, Value>, depth: usize) -> Vec<Field> {
    let required: HashSet<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    properties
        .iter()
        .filter(|(name, _)| xml_name(name))
        .map(|(name, property)| {
            let shape = shape_at(document, property, depth + 1);
            let attribute = resolve(document, property)
                .and_then(|p| p.pointer("/xml/attribute"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
                && matches!(shape, Shape::Scalar(_));
            Field { name: name.clone(), shape, required: required.contains(name.as_str()), attribute }
        })
        .collect()
}

/// A property name that can be an element's (others stay out of the typed contract).
fn xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.to_ascii_lowercase().starts_with("xml")
}

/// The operation `method` (lower case) at `template` in an OpenAPI document.
pub fn operation(document: &Value, method: &str, template: &str) -> Option<OperationShape> {
    let paths = document.get("paths")?.as_object()?;
    let path_item = paths.get(template)?;
    let op = path_item.get(method)?;
    let mut request = Vec::new();
    // Path parameters fill the provider's path; they are the request's first fields.
    let parameters = path_item.get("parameters").and_then(Value::as_array).into_iter().flatten();
    for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten().chain(parameters) {
        let Some(p) = resolve(document, p) else { continue };
        let (Some(name), Some("path")) = (p.get("name").and_then(Value::as_str), p.get("in").and_then(Value::as_str))
        else {
            continue;
        };
        if request.iter().any(|f: &Field| f.name == name) || !xml_name(name) {
            continue;
        }
        let shape = match p.get("schema").map(|s| shape(document, s)) {
            Some(s @ Shape::Scalar(_)) => s,
            _ => Shape::Scalar(ValueType::String),
        };
        request.push(Field { name: name.to_owned(), shape, required: true, attribute: false });
    }
    let body = op.get("requestBody").and_then(|b| resolve(document, b));
    if let Some(schema) = body.and_then(|b| b.pointer("/content/application~1json/schema")) {
        if let Shape::Object(fields) = shape(document, schema) {
            request
                .extend(fields.into_iter().filter(|f| !request.iter().any(|r| r.name == f.name)).collect::<Vec<_>>());
        }
    }
    let responses = op.get("responses").and_then(Value::as_object);
    let success = responses
        .and_then(|r| r.iter().find(|(status, _)| status.starts_with('2') || status.as_str() == "2XX").map(|(_, v)| v));
    let response = success
        .and_then(|r| resolve(document, r))
        .and_then(|r| r.pointer("/content/application~1json/schema"))
        .map(|s| shape(document, s));
    Some(OperationShape { request, response })
}

impl OperationShape {
    /// Attributes exist only in the named JSON style: in the plain style a schema's
    /// `xml.attribute` member is an element like any other.
    pub fn for_style(mut self, style: &JsonStyle) -> Self {
        fn plain(fields: &mut [Field]) {
            for f in fields {
                f.attribute = false;
                match &mut f.shape {
                    Shape::Object(inner) => plain(inner),
                    Shape::Array(items) => {
                        if let Shape::Object(inner) = items.as_mut() {
                            plain(inner)
                        }
                    }
                    _ => {}
                }
            }
        }
        if *style == JsonStyle::Plain {
            plain(&mut self.request);
            match &mut self.response {
                Some(Shape::Object(fields)) => plain(fields),
                Some(Shape::Array(items)) => {
                    if let Shape::Object(fields) = items.as_mut() {
                        plain(fields)
                    }
                }
                _ => {}
            }
        }
        self
    }

    /// The answer's shape as the SOAP face writes it: an object's members, an array as
    /// `item`s, a scalar as `value` (docs/mapping.md).
    pub fn response_fields(&self) -> Option<Vec<Field>> {
        let field = |name: &str, shape: Shape| Field { name: name.into(), shape, required: false, attribute: false };
        match self.response.clone()? {
            Shape::Object(fields) => Some(fields),
            Shape::Array(items) => Some(vec![field("item", Shape::Array(items))]),
            Shape::Any => None,
            scalar => Some(vec![field("value", scalar)]),
        }
    }

    /// What the schema adds to the face's mapping rules: the request's element types
    /// and arrays (where the mapping does not already say; XML → JSON reads only
    /// requests), and the named style's attributes of both.
    pub fn extend_rules(&self, rules: &mut Rules) {
        let mut stack: Vec<(&Field, bool)> = self.request.iter().map(|f| (f, true)).collect();
        let response = self.response_fields();
        stack.extend(response.iter().flatten().map(|f| (f, false)));
        while let Some((f, request)) = stack.pop() {
            let mut shape = &f.shape;
            if let Shape::Array(items) = shape {
                if request {
                    rules.arrays.insert(f.name.clone());
                }
                shape = items;
            }
            match shape {
                Shape::Scalar(t) if *t != ValueType::String && request => {
                    rules.types.entry(f.name.clone()).or_insert(*t);
                }
                Shape::Object(fields) => stack.extend(fields.iter().map(|f| (f, request))),
                _ => {}
            }
            if f.attribute && matches!(rules.style, JsonStyle::Named { .. }) {
                rules.attributes.insert(f.name.clone());
            }
        }
    }
}

/// Writes `value` (a JSON answer's member) in the order `fields` give, for an XSD
/// `xs:sequence`; members the schema does not name are left out, so a strict SOAP
/// client reads the answer (docs/mapping.md#typed-contracts).
pub fn order(object: &Map<String, Value>, fields: &[Field]) -> Map<String, Value> {
    let mut out = Map::new();
    for f in fields {
        let Some(v) = object.get(&f.name) else { continue };
        out.insert(f.name.clone(), order_value(v, &f.shape));
    }
    out
}

fn order_value(value: &Value, shape: &Shape) -> Value {
    match (value, shape) {
        (Value::Object(m), Shape::Object(fields)) => Value::Object(order(m, fields)),
        (Value::Array(items), Shape::Array(inner)) => {
            Value::Array(items.iter().map(|i| order_value(i, inner)).collect())
        }
        (other, _) => other.clone(),
    }
}

fn xsd_type(t: ValueType) -> &'static str {
    match t {
        ValueType::String => "xs:string",
        ValueType::Integer => "xs:integer",
        ValueType::Number => "xs:decimal",
        ValueType::Boolean => "xs:boolean",
    }
}

/// The XSD content of a complex type with `fields`: `<xs:sequence>` of elements,
/// then attributes. `text_field`: the named style's text key, which beside attributes
/// is the element's simple content.
pub fn xsd_content(fields: &[Field], text_field: Option<&str>) -> String {
    let attributes: String = fields
        .iter()
        .filter(|f| f.attribute)
        .map(|f| {
            let t = if let Shape::Scalar(t) = f.shape { xsd_type(t) } else { "xs:string" };
            let use_ = if f.required { r#" use="required""# } else { "" };
            format!(r#"<xs:attribute name="{}" type="{t}"{use_}/>"#, escape(&f.name))
        })
        .collect();
    let elements: Vec<&Field> = fields.iter().filter(|f| !f.attribute).collect();
    if let (false, Some(text), [only]) = (attributes.is_empty(), text_field, elements.as_slice()) {
        if let (true, Shape::Scalar(t)) = (only.name == text, &only.shape) {
            return format!(
                r#"<xs:simpleContent><xs:extension base="{}">{attributes}</xs:extension></xs:simpleContent>"#,
                xsd_type(*t)
            );
        }
    }
    let mut out = String::from("<xs:sequence>");
    for f in elements {
        xsd_element(&mut out, f, text_field);
    }
    out.push_str("</xs:sequence>");
    out.push_str(&attributes);
    out
}

fn xsd_element(out: &mut String, f: &Field, text_field: Option<&str>) {
    let (shape, many) = match &f.shape {
        Shape::Array(items) => (items.as_ref(), r#" maxOccurs="unbounded""#),
        other => (other, ""),
    };
    // An array may be empty; JSON null (`xsi:nil`) may stand for any member.
    let min = if f.required && many.is_empty() { "" } else { r#" minOccurs="0""# };
    let name = escape(&f.name);
    match shape {
        Shape::Scalar(t) => {
            out.push_str(&format!(r#"<xs:element name="{name}" type="{}"{min}{many} nillable="true"/>"#, xsd_type(*t)))
        }
        Shape::Object(fields) => out.push_str(&format!(
            r#"<xs:element name="{name}"{min}{many} nillable="true"><xs:complexType>{}</xs:complexType></xs:element>"#,
            xsd_content(fields, text_field)
        )),
        // xs:anyType: whatever the provider sends there.
        _ => out.push_str(&format!(r#"<xs:element name="{name}"{min}{many} nillable="true"/>"#)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document() -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": {"/{iin}": {
                "parameters": [{"name": "iin", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Person"}}}}}},
                "put": {
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Person"}}}},
                    "responses": {"204": {"description": "stored"}}
                }
            }},
            "components": {"schemas": {
                "Person": {"type": "object", "required": ["iin", "age"], "properties": {
                    "iin": {"type": "string"},
                    "age": {"type": "integer"},
                    "alive": {"type": ["boolean", "null"]},
                    "debt": {"$ref": "#/components/schemas/Amount"},
                    "phones": {"type": "array", "items": {"type": "string"}},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Person"}},
                    "any": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                    "not an element": {"type": "string"}
                }},
                "Map": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
                "Empty": {"type": "object", "properties": {}},
                "Amount": {"type": "object", "properties": {
                    "currency": {"type": "string", "xml": {"attribute": true}},
                    "value": {"type": "number"}
                }}
            }}
        })
    }

    #[test]
    fn shapes_follow_refs_types_and_required_to_a_bounded_depth() {
        let doc = document();
        let op = operation(&doc, "get", "/{iin}").unwrap();
        assert_eq!(
            op.request,
            vec![Field {
                name: "iin".into(),
                shape: Shape::Scalar(ValueType::String),
                required: true,
                attribute: false
            }]
        );
        let fields = op.response_fields().unwrap();
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["iin", "age", "alive", "debt", "phones", "children", "any"], "not-XML names stay out");
        assert!(fields[0].required && fields[1].required && !fields[2].required);
        assert_eq!(fields[2].shape, Shape::Scalar(ValueType::Boolean));
        let Shape::Object(debt) = &fields[3].shape else { panic!("{:?}", fields[3]) };
        assert!(debt[0].attribute && !debt[1].attribute);
        assert_eq!(fields[4].shape, Shape::Array(Box::new(Shape::Scalar(ValueType::String))));
        assert_eq!(fields[6].shape, Shape::Any);
        for untyped in ["Map", "Empty"] {
            assert_eq!(shape(&doc, &json!({"$ref": format!("#/components/schemas/{untyped}")})), Shape::Any);
        }
        // The recursive Person ends in Any after MAX_DEPTH levels, not in a stack overflow.
        let mut shape = &fields[5].shape;
        let mut depth = 0;
        while let Shape::Array(items) = shape {
            let Shape::Object(f) = items.as_ref() else { break };
            shape = &f.iter().find(|f| f.name == "children").unwrap().shape;
            depth += 1;
        }
        assert!((2..=MAX_DEPTH).contains(&depth), "{depth}");
        // The body's members follow the path parameter, which is not repeated.
        let put = operation(&doc, "put", "/{iin}").unwrap();
        assert_eq!(put.request.iter().filter(|f| f.name == "iin").count(), 1);
        assert_eq!(put.request.len(), 7);
        assert_eq!(put.response, None);
        assert!(operation(&doc, "post", "/{iin}").is_none());
    }

    #[test]
    fn xsd_types_elements_arrays_and_attributes() {
        let doc = document();
        let op = operation(&doc, "get", "/{iin}")
            .unwrap()
            .for_style(&JsonStyle::Named { text_field: "value".into(), attribute_prefix: String::new() });
        let xsd = xsd_content(&op.response_fields().unwrap(), Some("value"));
        assert!(xsd.starts_with(r#"<xs:sequence><xs:element name="iin" type="xs:string" nillable="true"/><xs:element name="age" type="xs:integer" nillable="true"/><xs:element name="alive" type="xs:boolean" minOccurs="0" nillable="true"/>"#), "{xsd}");
        assert!(xsd.contains(r#"<xs:element name="debt" minOccurs="0" nillable="true"><xs:complexType><xs:simpleContent><xs:extension base="xs:decimal"><xs:attribute name="currency" type="xs:string"/></xs:extension></xs:simpleContent></xs:complexType></xs:element>"#), "{xsd}");
        assert!(
            xsd.contains(
                r#"<xs:element name="phones" type="xs:string" minOccurs="0" maxOccurs="unbounded" nillable="true"/>"#
            ),
            "{xsd}"
        );
        assert!(xsd.contains(r#"<xs:element name="any" minOccurs="0" nillable="true"/>"#), "{xsd}");
        // Well-formed.
        let mut reader = quick_xml::Reader::from_str(&xsd);
        reader.config_mut().check_end_names = true;
        while !matches!(reader.read_event().unwrap(), quick_xml::events::Event::Eof) {}
        // In the plain style the attribute is an element.
        let plain = operation(&doc, "get", "/{iin}").unwrap().for_style(&JsonStyle::Plain);
        let xsd = xsd_content(&plain.response_fields().unwrap(), None);
        assert!(
            xsd.contains(r#"<xs:element name="currency" type="xs:string" minOccurs="0" nillable="true"/>"#),
            "{xsd}"
        );
    }

    #[test]
    fn answers_are_ordered_by_the_schema_and_rules_learn_types() {
        let doc = document();
        let op = operation(&doc, "put", "/{iin}").unwrap();
        let op = OperationShape { response: operation(&doc, "get", "/{iin}").unwrap().response, ..op };
        let answer = json!({"extra": 1, "age": 36, "iin": "1", "debt": {"value": 5, "currency": "KZT"}});
        let ordered = order(answer.as_object().unwrap(), &op.response_fields().unwrap());
        assert_eq!(
            serde_json::to_string(&ordered).unwrap(),
            r#"{"iin":"1","age":36,"debt":{"currency":"KZT","value":5}}"#
        );
        let mut rules = Rules {
            style: JsonStyle::Named { text_field: "value".into(), attribute_prefix: String::new() },
            ..Rules::default()
        };
        rules.types.insert("age".into(), ValueType::Number);
        op.extend_rules(&mut rules);
        assert_eq!(rules.types.get("age"), Some(&ValueType::Number), "the mapping's own word wins");
        assert_eq!(rules.types.get("alive"), Some(&ValueType::Boolean));
        assert!(rules.arrays.contains("phones") && rules.arrays.contains("children"));
        assert!(rules.attributes.contains("currency"));
    }
}
