//! Stages: route (the service a request names, and the provider URI it goes to)
//! and authorize (the data owner's access list).

use http::Uri;
use qaqpa_adapters::ErrorCode;
use qaqpa_routing::split_rest_path;

use crate::delivery::forward::ProviderPath;
use crate::error::GatewayError;
use crate::runtime::{Client, Route, Runtime};

/// REST path prefix (docs/protocol.md).
pub const REST_PREFIX: &str = "/r1/";
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Where a REST request goes.
pub struct Target<'r> {
    pub route: &'r Route,
    pub path: ProviderPath,
    /// The path after the service id, kept only where a stage needs it (mediation,
    /// the OpenAPI document).
    pub rest: Option<String>,
}

impl Target<'_> {
    /// The path after the service id, with the query.
    pub fn rest_and_query(&self) -> String {
        self.path.as_str().to_owned()
    }
}

/// Stage: the service the path names, and the provider URI the request goes to.
pub fn route<'r>(runtime: &'r Runtime, uri: &Uri) -> Result<Target<'r>, GatewayError> {
    route_under(runtime, uri, REST_PREFIX)
}

/// [`route`] for a path under `prefix` (`/r1/` for REST, `/a1/` for mailboxes).
pub fn route_under<'r>(runtime: &'r Runtime, uri: &Uri, prefix: &str) -> Result<Target<'r>, GatewayError> {
    let path = uri.path().strip_prefix(prefix).ok_or_else(|| {
        GatewayError::new(ErrorCode::BadRequest, format!("path must start with {prefix}{{service id}}"))
    })?;
    let target = split_rest_path(path).map_err(|e| GatewayError::new(ErrorCode::BadRequest, e.to_string()))?;
    let (route, rest) = runtime.routes.resolve(target).ok_or_else(|| {
        GatewayError::new(ErrorCode::UnknownService, format!("no service {} is registered", target.key))
    })?;
    let keep = route.mediation.is_some() || rest == OPENAPI_PATH;
    Ok(Target { route, path: ProviderPath::new(rest, uri.query()), rest: keep.then(|| rest.to_owned()) })
}

/// Stage: the data owner's access list.
pub fn authorize(route: &Route, client: &Client) -> Result<(), GatewayError> {
    if route.access.allows(client.id.as_str()) {
        Ok(())
    } else {
        Err(GatewayError::new(ErrorCode::AccessDenied, format!("{} may not call {}", client.id, route.id)))
    }
}
