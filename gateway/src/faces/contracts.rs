//! Service contracts served by the gateway: generated WSDL for REST services with a
//! SOAP face, OpenAPI for REST services (the provider's, or generated for a SOAP
//! service with a REST face).

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Request, Response};
use qaqpa_adapters::{openapi, wsdl};

use crate::config::{Mediation, PathPart, ServiceKind};
use crate::runtime::{Route, Runtime};

fn params(op: &crate::config::MediatedOperation) -> Vec<&str> {
    op.path
        .iter()
        .filter_map(|p| match p {
            PathPart::Param(name) => Some(name.as_str()),
            PathPart::Literal(_) => None,
        })
        .collect()
}

pub fn generated_wsdl(route: &Route, mediation: &Mediation, location: &str) -> String {
    let ops: Vec<_> =
        mediation.operations.iter().map(|op| wsdl::GeneratedOperation { name: &op.name, fields: params(op) }).collect();
    wsdl::generate(route.id.as_str(), &mediation.namespace, &ops, location)
}

/// The OpenAPI document for `GET /r1/{service}/openapi.json`, if the service has one
/// (otherwise the request goes to the provider like any other).
pub fn openapi<B>(runtime: &Runtime, route: &Route, req: &Request<B>, tls: bool) -> Option<Response<Bytes>> {
    let service = runtime.config.services.iter().find(|s| s.id == route.id)?;
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok()).or(req.uri().authority().map(|a| a.as_str()))?;
    let scheme = if tls { "https" } else { "http" };
    let server = format!("{scheme}://{host}/r1/{}", route.id);
    let doc = match (route.kind, &service.openapi, route.mediation.as_deref()) {
        (ServiceKind::Rest, Some(doc), _) => openapi::rewrite_servers(doc, &server),
        (ServiceKind::Soap, _, Some(m)) => {
            let ops: Vec<_> = m
                .operations
                .iter()
                .map(|op| openapi::RestOperation {
                    operation_id: &op.name,
                    method: op_method(op),
                    path: op.template(),
                    params: params(op),
                })
                .collect();
            openapi::generate(route.id.as_str(), &server, &ops)
        }
        _ => return None,
    };
    let mut response = Response::new(Bytes::from(doc.to_string()));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Some(response)
}

fn op_method(op: &crate::config::MediatedOperation) -> &'static str {
    match op.method.as_str() {
        "GET" => "get",
        "POST" => "post",
        "PUT" => "put",
        "PATCH" => "patch",
        _ => "delete",
    }
}
