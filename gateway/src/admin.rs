//! The admin listener (DESIGN §4): health, readiness and reload. Kept apart from the
//! data listeners so operators' endpoints are never reachable by exchange clients.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use qaqpa_adapters::ErrorCode;

use crate::error::error_response;
use crate::gateway::Gateway;
use crate::pipeline::{full_body, GatewayBody};

pub async fn serve(gateway: &Gateway, req: Request<Incoming>) -> Response<GatewayBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") if gateway.is_ready() => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        (&Method::POST, "/admin/v1/reload") => match gateway.reload().await {
            Ok(services) => json(
                StatusCode::OK,
                serde_json::json!({ "reloaded": true, "services": services }),
            ),
            Err(e) => error_response(ErrorCode::BadRequest, &e.to_string(), None),
        },
        _ => error_response(ErrorCode::BadRequest, "no such admin endpoint", None),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<GatewayBody> {
    let mut r = Response::new(full_body(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<GatewayBody> {
    let mut r = Response::new(full_body(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
