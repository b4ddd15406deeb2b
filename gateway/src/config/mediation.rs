//! Validation of a service's mediation face (docs/mapping.md): operations, path
//! templates and types, checked against the provider's WSDL or OpenAPI when given.

use qaqpa_adapters::mapping::{Rules, ValueType};

use super::raw::RawMediation;
use super::validate::Checker;
use super::{MediatedOperation, Mediation, PathPart};

impl Checker<'_> {
    /// A mediation face; operations are checked against the provider's contract when
    /// one is given (OpenAPI for a REST service, WSDL for a SOAP service).
    pub(super) fn mediation(
        &mut self,
        raw: &RawMediation,
        key: &str,
        openapi: Option<&serde_json::Value>,
        wsdl: Option<&str>,
    ) -> Option<Mediation> {
        let m = raw;
        let mut types = std::collections::HashMap::new();
        for (name, t) in &m.types {
            match ValueType::parse(t.get_ref()) {
                Some(v) => {
                    types.insert(name.clone(), v);
                }
                None => self.error(
                    t.span(),
                    format!("{key}.types"),
                    format!("unknown type {:?}; use string, integer, number or boolean", t.get_ref()),
                ),
            }
        }
        let wsdl_ops = wsdl.map(qaqpa_adapters::wsdl::operation_names);
        let mut operations: Vec<MediatedOperation> = Vec::new();
        for (i, op) in m.operations.iter().enumerate() {
            let okey = format!("{key}.operation[{i}]");
            let name = op.name.get_ref();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.error(op.name.span(), format!("{okey}.name"), "an operation name is letters, digits and _");
            }
            let method = match op.method.get_ref().to_ascii_uppercase().parse::<http::Method>() {
                Ok(m) if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) => m,
                _ => {
                    self.error(op.method.span(), format!("{okey}.method"), "one of GET, POST, PUT, PATCH, DELETE");
                    http::Method::GET
                }
            };
            let mut path = Vec::new();
            let template = op.path.get_ref();
            if !template.starts_with('/') {
                self.error(op.path.span(), format!("{okey}.path"), "a path template starts with '/'");
            }
            for segment in template.split('/').filter(|s| !s.is_empty()) {
                match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                        if path.contains(&PathPart::Param(p.to_owned())) {
                            self.error(
                                op.path.span(),
                                format!("{okey}.path"),
                                format!("parameter {{{p}}} appears twice"),
                            );
                        }
                        path.push(PathPart::Param(p.to_owned()));
                    }
                    Some(_) => self.error(
                        op.path.span(),
                        format!("{okey}.path"),
                        "a parameter is {name} of letters, digits and _",
                    ),
                    None if segment.contains(['{', '}', '%', '?', '#']) => self.error(
                        op.path.span(),
                        format!("{okey}.path"),
                        format!("segment {segment:?} is neither literal nor {{param}}"),
                    ),
                    None => path.push(PathPart::Literal(segment.to_owned())),
                }
            }
            let operation = MediatedOperation { name: name.clone(), method, path, soap_action: op.soap_action.clone() };
            if operations.iter().any(|o| o.name == operation.name) {
                self.error(op.name.span(), format!("{okey}.name"), format!("operation {name} is mapped twice"));
            }
            if let Some(ops) = &wsdl_ops {
                if !ops.iter().any(|o| o == name) {
                    self.error(op.name.span(), format!("{okey}.name"), format!("the WSDL has no operation {name}"));
                }
            }
            if let Some(doc) = openapi {
                let method_key = operation.method.as_str().to_ascii_lowercase();
                let found = doc["paths"].get(operation.template()).is_some_and(|p| p.get(&method_key).is_some());
                if !found {
                    self.error(
                        op.path.span(),
                        format!("{okey}.path"),
                        format!("the OpenAPI document has no {} {}", operation.method, operation.template()),
                    );
                }
            }
            operations.push(operation);
        }
        if operations.is_empty() {
            self.error(raw.namespace.span(), key, "a mediation face needs at least one [[...operation]]");
        }
        Some(Mediation {
            namespace: m.namespace.get_ref().clone(),
            rules: Rules { arrays: m.arrays.iter().cloned().collect(), types },
            operations,
        })
    }
}
