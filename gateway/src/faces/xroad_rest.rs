//! The X-Road REST face: `METHOD /r1/{service id}/{path}` with `X-Road-Client`,
//! `X-Road-Id`, `X-Road-UserId`, `X-Road-Issue` and an optional detached JWS in
//! `Qaqpa-Signature` (docs/protocol.md). Answers carry what X-Road's carry
//! (`X-Road-Client`, `X-Road-Service`, `X-Road-Id`, `X-Road-Request-Id`,
//! `X-Road-Request-Hash`); errors are X-Road's (`X-Road-Error`, 400/500,
//! `{"type","message","detail"}` or `<error>`), and Qaqpa's problem+json only for a
//! client that asks for it with `Accept: application/problem+json`.
//!
//! It serves REST services and the REST side of SOAP services that declare a
//! mediation; an envelope for a SOAP service without one is refused here: the SOAP
//! face, with its identity and XML signature checks, is its only door.

use http::{Request, Response};
use qaqpa_adapters::ErrorCode;

use crate::body::client::ClientBody;
use crate::body::{GatewayBody, Source};
use crate::config::{ServiceKind, SignaturePolicy};
use crate::delivery::{forward, mediate};
use crate::error::{xroad_rest_response, GatewayError, X_ROAD_ERROR};
use crate::exchange::limit as limit_stage;
use crate::exchange::{self, signatures, Ctx, Face, Outcome, Reply, OPENAPI_PATH};
use crate::headers::{self, X_ROAD_CLIENT, X_ROAD_SERVICE};

/// The face, with how the client wants its errors (read from `Accept` once, before
/// any stage can fail).
pub struct XRoadRest {
    problem_json: bool,
    media: &'static str,
}

impl XRoadRest {
    pub fn new<B>(req: &Request<B>) -> Self {
        let accept = || req.headers().get_all(http::header::ACCEPT).iter().filter_map(|v| v.to_str().ok());
        Self {
            problem_json: qaqpa_adapters::xroad::wants_problem_json(accept()),
            media: qaqpa_adapters::xroad::rest_error_media(accept()),
        }
    }
}

/// `X-Road-Client` and `X-Road-Service` on an answer, as X-Road's `RestResponse`
/// sets them (a provider's own values are replaced).
fn add_identities(headers: &mut http::HeaderMap, client: &str, service: &str) {
    for (name, value) in [(X_ROAD_CLIENT, client), (X_ROAD_SERVICE, service)] {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

impl Face for XRoadRest {
    const NAME: &'static str = "r1";

    async fn exchange(&mut self, ctx: &mut Ctx, mut req: Request<ClientBody>) -> Result<Outcome, GatewayError> {
        if req.uri().path() == super::xroad_soap::SOAP_PATH {
            // The SOAP endpoint with another method than POST (X-Road's WrongHttpMethod).
            return Err(GatewayError::new(ErrorCode::BadRequest, format!("{} is not a SOAP call", req.method()))
                .with_xroad(qaqpa_adapters::xroad::code::INVALID_HTTP_METHOD));
        }
        let message_id =
            headers::message_id(req.headers()).map_err(|why| GatewayError::new(ErrorCode::BadRequest, why))?;
        ctx.set_message_id(message_id);
        let runtime = ctx.runtime.clone();
        let client = exchange::identify(&runtime, &ctx.peer, req.headers())?;
        ctx.identified(&client);
        let target = exchange::route(&runtime, req.uri())?;
        let route = target.route;
        ctx.routed(route);
        exchange::authorize(route, &client)?;
        if target.rest.as_deref() == Some(OPENAPI_PATH) && req.method() == http::Method::GET {
            if let Some(doc) = super::contracts::openapi(&runtime, route, &req, ctx.peer.certificate.is_some()) {
                return Ok(Outcome::built(doc));
            }
        }
        let mediation = match (route.kind, route.mediation.as_deref()) {
            (ServiceKind::Rest, _) => None,
            (ServiceKind::Soap, Some(mediation)) => Some(mediation),
            (ServiceKind::Soap, None) => {
                return Err(GatewayError::new(
                    ErrorCode::BadRequest,
                    format!("{} is a SOAP service without a REST face; send its envelope to /soap", route.id),
                ))
            }
        };
        let admission = limit_stage::admit(&*ctx.shared, route, &client).await?;
        if route.signature != SignaturePolicy::None {
            req = signatures::verify_rest(&ctx.shared.replay, &runtime, route, &client, req, &mut ctx.record).await?;
        }
        if let Some(mediation) = mediation {
            // A REST client calling a SOAP provider: adapt.
            let rest = target.rest.as_deref().unwrap_or("");
            let (op, params) = mediate::find_operation(mediation, req.method(), rest).ok_or_else(|| {
                GatewayError::new(
                    ErrorCode::BadRequest,
                    format!("{} has no REST operation {} {rest}", route.id, req.method()),
                )
            })?;
            let mut built =
                mediate::rest_to_soap(&runtime, route, mediation, op, params, req, &client, &ctx.peer, &mut ctx.record)
                    .await?;
            add_identities(built.headers_mut(), client.id.as_str(), route.id.as_str());
            return Ok(Outcome::new(Reply::Built(built), admission));
        }
        let (parts, body) = req.into_parts();
        let response = forward::deliver(
            route,
            &target.path.with_request_hash(),
            parts,
            Source::Stream(body),
            &ctx.peer,
            &mut ctx.record,
            &runtime.config.limits,
        )
        .await?;
        let mut response = response;
        add_identities(response.headers_mut(), client.id.as_str(), route.id.as_str());
        if route.sign_responses {
            let signed = signatures::sign_response(&runtime, route, &client, ctx.message_id(), response).await?;
            return Ok(Outcome::new(Reply::Built(signed), admission));
        }
        Ok(Outcome::new(Reply::Stream(response), admission))
    }

    fn refusal(&self, error: GatewayError, message_id: &str) -> Response<GatewayBody> {
        if self.problem_json {
            // A Qaqpa-aware client: problem+json with Qaqpa's status; X-Road-Error
            // still carries X-Road's code, Qaqpa-Error the stable one.
            let code = error.xroad_code();
            let mut response = error.into_response(Some(message_id));
            response.headers_mut().insert(X_ROAD_ERROR, http::HeaderValue::from_static(code));
            return response;
        }
        xroad_rest_response(error, message_id, self.media)
    }
}
