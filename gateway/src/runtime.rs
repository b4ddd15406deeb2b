//! The live state built from one validated [`Config`]: the route table with each
//! service's pooled upstream client, and the registry of systems. Built off the
//! request path, swapped in whole (arc-swap); requests in flight keep the one they
//! started with.

use std::collections::HashMap;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use qaqpa_routing::balance::RoundRobin;
use qaqpa_routing::{AccessList, RouteTable, ServiceId, SystemId};

use crate::body::ForwardBody;
use crate::config::{Config, ServiceConfig, ServiceKind, UpstreamProtocol};
use crate::tls::{self, TlsError};

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, ForwardBody>;

pub struct Runtime {
    pub config: Config,
    pub routes: RouteTable<Route>,
    /// Registered systems, for checking a claimed or SAN-bound identity.
    pub systems: HashMap<Box<str>, SystemId>,
    /// Certificate fingerprints bound to systems in the registry.
    pub fingerprints: HashMap<[u8; 32], SystemId>,
}

pub struct Route {
    pub id: ServiceId,
    pub kind: ServiceKind,
    pub upstreams: Vec<Upstream>,
    pub balance: RoundRobin,
    pub client: UpstreamClient,
    pub timeout: Duration,
    pub access: AccessList,
}

/// An upstream base URL split into the parts a forwarded URI is built from.
pub struct Upstream {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Base path without a trailing '/', possibly empty.
    pub base_path: String,
}

impl Runtime {
    pub fn build(config: Config) -> Result<Self, TlsError> {
        let mut routes = RouteTable::builder();
        for service in &config.services {
            let access = config.access.get(&service.id).cloned().unwrap_or_default();
            let route = Route {
                id: service.id.clone(),
                kind: service.kind,
                upstreams: service.upstreams.iter().map(Upstream::from_uri).collect(),
                balance: RoundRobin::default(),
                client: upstream_client(service)?,
                timeout: service.timeout,
                access,
            };
            // Duplicates were refused by validation; a second one here cannot happen.
            let _ = routes.insert(&service.id, route);
        }
        let systems = config
            .systems
            .iter()
            .map(|s| (s.id.as_str().into(), s.id.clone()))
            .collect();
        let fingerprints = config
            .systems
            .iter()
            .filter_map(|s| Some((s.cert_sha256?, s.id.clone())))
            .collect();
        Ok(Self {
            routes: routes.build(),
            systems,
            fingerprints,
            config,
        })
    }
}

impl Upstream {
    fn from_uri(uri: &http::Uri) -> Self {
        Self {
            scheme: uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
            authority: uri
                .authority()
                .cloned()
                .expect("validated upstream has a host"),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        }
    }
}

fn upstream_client(service: &ServiceConfig) -> Result<UpstreamClient, TlsError> {
    let tls = match &service.upstream_ca {
        Some(ca) => {
            let client_cert = service
                .upstream_client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            tls::upstream_config(ca, client_cert)?
        }
        // Plain-HTTP upstreams only: validation demands a CA for every https URL, so
        // this empty trust store is never asked to verify anything.
        None => rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(service.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = match service.protocol {
        UpstreamProtocol::Auto => builder.enable_all_versions().wrap_connector(http),
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
    };
    let mut client = Client::builder(TokioExecutor::new());
    client
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_only(service.protocol == UpstreamProtocol::Http2);
    Ok(client.build(connector))
}
