//! The contracts face: service contracts served by the gateway. `GET /soap/{service
//! id}?wsdl` serves the provider's WSDL (or one generated for a REST service's SOAP
//! face) with its endpoint pointed at the gateway; OpenAPI for REST services (the
//! provider's, or generated for a SOAP service with a REST face) is served by the
//! REST face at `/r1/{service id}/openapi.json` after its access check.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, Response};
use qaqpa_adapters::mapping::JsonStyle;
use qaqpa_adapters::{openapi, schema, wsdl, ErrorCode};

use crate::body::{full_body, GatewayBody};
use crate::config::{Mediation, PathPart, ServiceKind};
use crate::error::GatewayError;
use crate::exchange::{peer_system, Peer};
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

/// The WSDL of a REST service's SOAP face: typed from the provider's OpenAPI
/// document where it types the operation (docs/mapping.md#typed-contracts), else
/// path parameters as strings and `xs:any` for the rest.
pub fn generated_wsdl(route: &Route, mediation: &Mediation, location: &str) -> String {
    let text_field = match &mediation.rules.style {
        JsonStyle::Named { text_field, .. } => Some(text_field.as_str()),
        JsonStyle::Plain => None,
    };
    let ops: Vec<_> = mediation
        .operations
        .iter()
        .map(|op| {
            let shape = op.shape.as_ref();
            wsdl::GeneratedOperation {
                name: &op.name,
                fields: params(op),
                request: shape.map(|s| schema::xsd_content(&s.request, text_field)),
                response: shape.and_then(|s| s.response_fields()).map(|f| schema::xsd_content(&f, text_field)),
            }
        })
        .collect();
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

/// Whether a request asks for a WSDL: `GET /soap/{service id}?wsdl`.
pub fn is_wsdl_request<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET
        && req.uri().path().starts_with("/soap/")
        && req.uri().query().is_some_and(|q| q.split('&').any(|p| p.eq_ignore_ascii_case("wsdl")))
}

/// `GET /soap/{service id}?wsdl`: the provider's WSDL, endpoint rewritten to this
/// gateway. Over mTLS only a client on the service's access list may read it.
pub fn serve_wsdl<B>(runtime: &Runtime, peer: &Peer, req: &Request<B>) -> Response<GatewayBody> {
    let problem = |code: ErrorCode, detail: String| GatewayError::new(code, detail).into_response(None);
    let id = req.uri().path().trim_start_matches("/soap/").trim_end_matches('/');
    if id == ASYNC_WSDL_ID {
        let Some(location) = endpoint_location(req, peer.certificate.is_some()) else {
            return problem(ErrorCode::BadRequest, "a Host header is needed to point the WSDL at this gateway".into());
        };
        return wsdl_response(
            qaqpa_adapters::wsdl::rewrite_endpoint(qaqpa_adapters::wsdl::ASYNC_WSDL, &location).map(|(t, _)| t),
        );
    }
    let Some(route) = runtime.routes.get(id) else {
        return problem(ErrorCode::UnknownService, format!("no service {id} is registered"));
    };
    if let Some(cert) = &peer.certificate {
        match peer_system(runtime, cert) {
            Some(client) if route.access.allows(client.id.as_str()) => {}
            _ => {
                return problem(ErrorCode::AccessDenied, format!("the certificate's system may not call {}", route.id))
            }
        }
    }
    let service = runtime.config.services.iter().find(|s| s.id == route.id);
    let Some(location) = endpoint_location(req, peer.certificate.is_some()) else {
        return problem(ErrorCode::BadRequest, "a Host header is needed to point the WSDL at this gateway".into());
    };
    let document = match (service.and_then(|s| s.wsdl.as_ref()), route.kind, route.mediation.as_deref()) {
        (Some(wsdl), _, _) => qaqpa_adapters::wsdl::rewrite_endpoint(wsdl, &location).map(|(text, _)| text),
        (None, ServiceKind::Rest, Some(m)) => Ok(generated_wsdl(route, m, &location)),
        _ => return problem(ErrorCode::UnknownService, format!("{} has no WSDL", route.id)),
    };
    wsdl_response(document)
}

/// `/soap/a1?wsdl`: the asynchronous operations' WSDL.
const ASYNC_WSDL_ID: &str = "a1";

/// This gateway's SOAP endpoint as the client reached it.
fn endpoint_location<B>(req: &Request<B>, tls: bool) -> Option<String> {
    let scheme = if tls { "https" } else { "http" };
    let host = req.headers().get(HOST).and_then(|v| v.to_str().ok()).or(req.uri().authority().map(|a| a.as_str()));
    let host = host.filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))?;
    Some(format!("{scheme}://{host}{}", super::xroad_soap::SOAP_PATH))
}

fn wsdl_response<E: std::fmt::Display>(document: Result<String, E>) -> Response<GatewayBody> {
    match document {
        Ok(text) => {
            let mut r = Response::new(full_body(text));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
            r
        }
        Err(e) => GatewayError::new(ErrorCode::Internal, format!("the WSDL cannot be served: {e}")).into_response(None),
    }
}
