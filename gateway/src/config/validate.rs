//! Turns the raw TOML into a [`Config`], collecting every error with its key and line.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qaqpa_routing::limit::Rate;
use qaqpa_routing::{AccessList, RouteTable, ServiceId, SystemId};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use toml::Spanned;

use super::raw::*;
use super::*;

pub(super) struct Checker<'s> {
    pub(super) source: &'s str,
    pub(super) base: &'s Path,
    pub(super) errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn line(&self, span: Range<usize>) -> Option<usize> {
        if span.is_empty() {
            return None;
        }
        let upto = self.source.get(..span.start)?;
        Some(upto.bytes().filter(|&b| b == b'\n').count() + 1)
    }

    pub(super) fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let line = self.line(span);
        self.errors.push(ConfigError { line, key: key.into(), message: message.into() });
    }

    fn duration(&mut self, value: Option<&Spanned<String>>, default: &str, key: &str) -> Duration {
        let fallback = humantime::parse_duration(default).unwrap_or(Duration::from_secs(1));
        let Some(value) = value else { return fallback };
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.error(value.span(), key, "must be longer than zero");
                fallback
            }
            Err(e) => {
                self.error(value.span(), key, format!("not a duration like \"30s\" or \"500ms\": {e}"));
                fallback
            }
        }
    }

    /// Resolves a path relative to the config file and checks that it holds PEM of
    /// the expected kind.
    fn pem_file(&mut self, value: &Spanned<String>, key: &str, kind: PemKind) -> PathBuf {
        let path = self.base.join(value.get_ref());
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                self.error(value.span(), key, format!("cannot read {}: {e}", path.display()));
                return path;
            }
        };
        let ok = match kind {
            PemKind::Certificates => CertificateDer::pem_slice_iter(&bytes).next().is_some_and(|c| c.is_ok()),
            PemKind::PrivateKey => PrivateKeyDer::from_pem_slice(&bytes).is_ok(),
            PemKind::Crl => CertificateRevocationListDer::pem_slice_iter(&bytes).next().is_some_and(|c| c.is_ok()),
        };
        if !ok {
            let what = match kind {
                PemKind::Certificates => "a PEM certificate",
                PemKind::PrivateKey => "a PEM private key",
                PemKind::Crl => "a PEM certificate revocation list",
            };
            self.error(value.span(), key, format!("{} does not hold {what}", path.display()));
        }
        path
    }

    fn listener(&mut self, raw: &RawListener, key: &str, default_name: &str) -> Option<ListenerConfig> {
        let address = match raw.address.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(raw.address.span(), format!("{key}.address"), "not an IP:port address");
                None
            }
        };
        let tls = match (&raw.tls, raw.insecure) {
            (Some(tls), false) => Some(TlsFiles {
                cert: self.pem_file(&tls.get_ref().cert, &format!("{key}.tls.cert"), PemKind::Certificates),
                key: self.pem_file(&tls.get_ref().key, &format!("{key}.tls.key"), PemKind::PrivateKey),
                client_ca: self.pem_file(
                    &tls.get_ref().client_ca,
                    &format!("{key}.tls.client_ca"),
                    PemKind::Certificates,
                ),
                crls: tls
                    .get_ref()
                    .crls
                    .iter()
                    .enumerate()
                    .map(|(i, crl)| self.pem_file(crl, &format!("{key}.tls.crls[{i}]"), PemKind::Crl))
                    .collect(),
            }),
            (Some(tls), true) => {
                self.error(tls.span(), format!("{key}.tls"), "an insecure listener takes no tls table");
                None
            }
            (None, true) => None,
            (None, false) => {
                self.error(
                    raw.address.span(),
                    format!("{key}.tls"),
                    "missing: every listener needs tls (cert, key, client_ca) unless insecure = true",
                );
                None
            }
        };
        let (mut http1, mut http2, mut http3) = (true, true, false);
        if let Some(versions) = &raw.http {
            (http1, http2) = (false, false);
            for v in versions.get_ref() {
                match v.get_ref().as_str() {
                    "h1" | "http/1.1" => http1 = true,
                    "h2" => http2 = true,
                    "h3" => http3 = true,
                    other => self.error(
                        v.span(),
                        format!("{key}.http"),
                        format!("unknown HTTP version {other:?}; use \"h1\", \"h2\" or \"h3\""),
                    ),
                }
            }
            if http3 && raw.insecure {
                self.error(versions.span(), format!("{key}.http"), "HTTP/3 needs TLS: not on an insecure listener");
            }
            if !http1 && !http2 {
                self.error(versions.span(), format!("{key}.http"), "must name at least one of \"h1\", \"h2\" (TCP)");
            }
        }
        Some(ListenerConfig {
            name: raw.name.clone().unwrap_or_else(|| default_name.to_owned()),
            address: address?,
            tls,
            http1,
            http2,
            http3,
            max_connections: self.positive(
                raw.max_connections.as_ref(),
                DEFAULT_MAX_CONNECTIONS,
                &format!("{key}.max_connections"),
            ),
        })
    }

    /// A certificate and its private key, both or neither; the key must be one the
    /// gateway can sign with and belong to the certificate.
    fn key_pair(
        &mut self,
        cert: Option<&Spanned<String>>,
        key: Option<&Spanned<String>>,
        table: &str,
        cert_key: &str,
        key_key: &str,
    ) -> Option<(PathBuf, PathBuf)> {
        match (cert, key) {
            (None, None) => None,
            (Some(c), None) => {
                self.error(c.span(), format!("{table}.{key_key}"), format!("missing: {cert_key} needs {key_key}"));
                None
            }
            (None, Some(k)) => {
                self.error(k.span(), format!("{table}.{cert_key}"), format!("missing: {key_key} needs {cert_key}"));
                None
            }
            (Some(c), Some(k)) => {
                let cert_path = self.pem_file(c, &format!("{table}.{cert_key}"), PemKind::Certificates);
                let key_path = self.pem_file(k, &format!("{table}.{key_key}"), PemKind::PrivateKey);
                let (Ok(cert_pem), Ok(key_pem)) = (std::fs::read(&cert_path), std::fs::read(&key_path)) else {
                    return None; // reported by pem_file
                };
                match qaqpa_certs::keys::SigningKey::from_pem(&key_pem) {
                    Err(e) => self.error(k.span(), format!("{table}.{key_key}"), e.to_string()),
                    Ok(signing) => {
                        let leaf = CertificateDer::pem_slice_iter(&cert_pem).next().and_then(Result::ok);
                        let matches = leaf
                            .and_then(|l| qaqpa_certs::keys::certificate_key(&l).ok())
                            .is_some_and(|(_, bits)| bits == signing.public_key());
                        if !matches {
                            self.error(k.span(), format!("{table}.{key_key}"), format!("is not the key of {cert_key}"));
                        }
                    }
                }
                Some((cert_path, key_path))
            }
        }
    }

    fn signatures(&mut self, raw: &RawSignatures) -> Signatures {
        let trust_anchors = self.pem_file(&raw.trust_anchors, "signatures.trust_anchors", PemKind::Certificates);
        let crls = raw
            .crls
            .iter()
            .enumerate()
            .map(|(i, crl)| self.pem_file(crl, &format!("signatures.crls[{i}]"), PemKind::Crl))
            .collect();
        let max_clock_skew = self.duration(raw.max_clock_skew.as_ref(), "5m", "signatures.max_clock_skew");
        let replay_window = raw
            .replay_window
            .as_ref()
            .map_or(DEFAULT_REPLAY_WINDOW, |w| self.duration(Some(w), "24h", "signatures.replay_window"));
        if replay_window < max_clock_skew * 2 {
            let span = raw.replay_window.as_ref().map_or(0..0, |w| w.span());
            self.error(span, "signatures.replay_window", "must cover at least twice max_clock_skew");
        }
        let replay_capacity = raw
            .replay_capacity
            .as_ref()
            .map_or(DEFAULT_REPLAY_CAPACITY, |c| self.positive(Some(c), 1, "signatures.replay_capacity") as usize);
        let max_body_bytes = raw.max_body_bytes.as_ref().map_or(10 * 1024 * 1024, |m| *m.get_ref());
        let gateway_key = self.key_pair(raw.cert.as_ref(), raw.key.as_ref(), "signatures", "cert", "key");
        Signatures { trust_anchors, crls, max_clock_skew, replay_window, replay_capacity, max_body_bytes, gateway_key }
    }

    /// One of a fixed set of words; absent, the first option. An unknown word is an
    /// error naming the options.
    fn choice<T: Copy>(&mut self, value: Option<&Spanned<String>>, key: &str, options: &[(&str, T)]) -> T {
        let default = options[0].1;
        let Some(value) = value else { return default };
        match options.iter().find(|(word, _)| *word == value.get_ref().as_str()) {
            Some((_, chosen)) => *chosen,
            None => {
                let words: Vec<String> = options.iter().map(|(w, _)| format!("{w:?}")).collect();
                let (last, rest) = words.split_last().expect("options are not empty");
                let message = format!("unknown {:?}; use {} or {last}", value.get_ref(), rest.join(", "));
                self.error(value.span(), key, message);
                default
            }
        }
    }

    /// A count that must be at least 1, or its default when absent.
    fn positive(&mut self, value: Option<&Spanned<u32>>, default: u32, key: &str) -> u32 {
        match value {
            None => default,
            Some(v) if *v.get_ref() == 0 => {
                self.error(v.span(), key, "must be at least 1");
                default
            }
            Some(v) => *v.get_ref(),
        }
    }

    fn health_check(&mut self, raw: &RawHealthCheck, key: &str) -> Option<HealthCheck> {
        let path = raw.path.get_ref();
        if !path.starts_with('/') || path.bytes().any(|b| !b.is_ascii_graphic()) {
            self.error(raw.path.span(), format!("{key}.path"), "must be an absolute path like \"/healthz\"");
        }
        let interval = self.duration(raw.interval.as_ref(), "5s", &format!("{key}.interval"));
        let timeout = self.duration(raw.timeout.as_ref(), "1s", &format!("{key}.timeout"));
        if timeout > interval {
            let span = raw.timeout.as_ref().map_or(raw.path.span(), |t| t.span());
            self.error(span, format!("{key}.timeout"), "must not be longer than the interval");
        }
        let thresholds = qaqpa_routing::health::ProbeThresholds {
            unhealthy: self.positive(raw.unhealthy.as_ref(), 2, &format!("{key}.unhealthy")),
            healthy: self.positive(raw.healthy.as_ref(), 2, &format!("{key}.healthy")),
        };
        Some(HealthCheck { path: path.clone(), interval, timeout, thresholds })
    }

    /// The systems of a list (an access list, a topic's subscribers), each one that
    /// is malformed or not registered reported and left out.
    fn registered_systems(&mut self, list: &[Spanned<String>], key: &str, known: &HashSet<SystemId>) -> Vec<SystemId> {
        let mut systems = Vec::new();
        for value in list {
            let Some(id) = self.system_id(value, key) else { continue };
            if known.contains(&id) {
                systems.push(id);
            } else {
                self.error(value.span(), key, format!("system {id} is not registered in a [[system]] table"));
            }
        }
        systems
    }

    fn system_id(&mut self, value: &Spanned<String>, key: &str) -> Option<SystemId> {
        SystemId::parse(value.get_ref())
            .map_err(|e| self.error(value.span(), key, format!("bad system id {:?}: {e}", value.get_ref())))
            .ok()
    }

    fn service(&mut self, raw: &RawService, key: &str, systems: &HashSet<SystemId>) -> Option<ServiceConfig> {
        let id = ServiceId::parse(raw.id.get_ref())
            .map_err(|e| {
                self.error(raw.id.span(), format!("{key}.id"), format!("bad service id {:?}: {e}", raw.id.get_ref()))
            })
            .ok();
        if let Some(id) = &id {
            if !systems.contains(&id.system()) {
                self.error(
                    raw.id.span(),
                    format!("{key}.id"),
                    format!("providing system {} is not registered in a [[system]] table", id.system()),
                );
            }
        }
        let kind = match raw.kind.get_ref().as_str() {
            "rest" => Some(ServiceKind::Rest),
            "soap" => Some(ServiceKind::Soap),
            other => {
                self.error(
                    raw.kind.span(),
                    format!("{key}.kind"),
                    format!("unknown kind {other:?}; use \"rest\" or \"soap\""),
                );
                None
            }
        };
        let mut upstreams = Vec::new();
        let mut needs_ca = false;
        for url in raw.upstream.get_ref() {
            match parse_upstream(url.get_ref()) {
                Ok(uri) => {
                    needs_ca |= uri.scheme_str() == Some("https");
                    upstreams.push(uri);
                }
                Err(message) => self.error(url.span(), format!("{key}.upstream"), message),
            }
        }
        if raw.upstream.get_ref().is_empty() {
            self.error(raw.upstream.span(), format!("{key}.upstream"), "must list at least one URL");
        }
        let upstream_ca =
            raw.upstream_ca.as_ref().map(|ca| self.pem_file(ca, &format!("{key}.upstream_ca"), PemKind::Certificates));
        if needs_ca && upstream_ca.is_none() {
            self.error(
                raw.upstream.span(),
                format!("{key}.upstream_ca"),
                "missing: an https upstream needs the CA bundle to verify it",
            );
        }
        let upstream_client_cert = match (&raw.upstream_client_cert, &raw.upstream_client_key) {
            (Some(cert), Some(k)) => Some((
                self.pem_file(cert, &format!("{key}.upstream_client_cert"), PemKind::Certificates),
                self.pem_file(k, &format!("{key}.upstream_client_key"), PemKind::PrivateKey),
            )),
            (None, None) => None,
            (Some(v), None) | (None, Some(v)) => {
                self.error(
                    v.span(),
                    format!("{key}.upstream_client_cert"),
                    "upstream_client_cert and upstream_client_key go together",
                );
                None
            }
        };
        let protocol = self.choice(
            raw.upstream_protocol.as_ref(),
            &format!("{key}.upstream_protocol"),
            &[("auto", UpstreamProtocol::Auto), ("h1", UpstreamProtocol::Http1), ("h2", UpstreamProtocol::Http2)],
        );
        let connect_timeout =
            self.duration(raw.connect_timeout.as_ref(), DEFAULT_CONNECT_TIMEOUT, &format!("{key}.connect_timeout"));
        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_TIMEOUT, &format!("{key}.timeout"));
        let limits_fail_open =
            self.choice(raw.limits_fail.as_ref(), &format!("{key}.limits_fail"), &[("open", true), ("closed", false)]);
        if let Some(c) = &raw.max_concurrency {
            if *c.get_ref() == 0 {
                self.error(c.span(), format!("{key}.max_concurrency"), "must be at least 1");
            }
        }
        let sla = raw.sla.as_ref().and_then(|sla| self.sla(sla, &format!("{key}.sla")));
        let mut breaker = qaqpa_routing::health::BreakerConfig::default();
        if let Some(b) = &raw.breaker {
            if let Some(f) = &b.failures {
                if *f.get_ref() == 0 {
                    self.error(f.span(), format!("{key}.breaker.failures"), "must be at least 1");
                }
                breaker.failures_to_open = (*f.get_ref()).max(1);
            }
            breaker.open_for_ns =
                self.duration(b.open_for.as_ref(), "10s", &format!("{key}.breaker.open_for")).as_nanos() as u64;
        }
        let health_check = raw.health_check.as_ref().and_then(|h| self.health_check(h, &format!("{key}.health_check")));
        let signature = self.choice(
            raw.signature.as_ref(),
            &format!("{key}.signature"),
            &[
                ("none", SignaturePolicy::None),
                ("verify", SignaturePolicy::Verify),
                ("sign-on-behalf", SignaturePolicy::SignOnBehalf),
            ],
        );
        let wsdl = raw.wsdl.as_ref().and_then(|w| {
            let path = self.base.join(w.get_ref());
            match std::fs::read_to_string(&path) {
                Ok(text) => match qaqpa_adapters::wsdl::rewrite_endpoint(&text, "https://check.invalid/soap") {
                    Ok((_, 0)) => {
                        self.error(
                            w.span(),
                            format!("{key}.wsdl"),
                            format!("{} has no soap:address to point at the gateway", path.display()),
                        );
                        None
                    }
                    Ok(_) => Some(text),
                    Err(e) => {
                        self.error(w.span(), format!("{key}.wsdl"), format!("{}: {e}", path.display()));
                        None
                    }
                },
                Err(e) => {
                    self.error(w.span(), format!("{key}.wsdl"), format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        });
        let openapi = raw.openapi.as_ref().and_then(|o| {
            let path = self.base.join(o.get_ref());
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()));
            match parsed {
                Ok(doc) if doc.get("openapi").is_some() && doc.get("paths").is_some_and(|p| p.is_object()) => Some(doc),
                Ok(_) => {
                    self.error(
                        o.span(),
                        format!("{key}.openapi"),
                        format!("{} is not an OpenAPI 3 document", path.display()),
                    );
                    None
                }
                Err(e) => {
                    self.error(o.span(), format!("{key}.openapi"), format!("cannot read {}: {e}", path.display()));
                    None
                }
            }
        });
        let mediation = match (raw.kind.get_ref().as_str(), &raw.soap, &raw.rest) {
            (_, Some(_), Some(r)) => {
                self.error(
                    r.namespace.span(),
                    format!("{key}.rest"),
                    "a service has either a soap or a rest face, not both",
                );
                None
            }
            ("rest", Some(m), None) => self.mediation(m, &format!("{key}.soap"), openapi.as_ref(), None),
            ("soap", None, Some(m)) => self.mediation(m, &format!("{key}.rest"), None, wsdl.as_deref()),
            (_, Some(m), None) => {
                self.error(
                    m.namespace.span(),
                    format!("{key}.soap"),
                    "a SOAP face belongs to a kind = \"rest\" service",
                );
                None
            }
            (_, None, Some(m)) => {
                self.error(
                    m.namespace.span(),
                    format!("{key}.rest"),
                    "a REST face belongs to a kind = \"soap\" service",
                );
                None
            }
            _ => None,
        };
        if openapi.is_some() && raw.kind.get_ref() != "rest" {
            self.error(
                raw.kind.span(),
                format!("{key}.openapi"),
                "an OpenAPI document belongs to a kind = \"rest\" service",
            );
        }
        if wsdl.is_some() && raw.kind.get_ref() != "soap" {
            self.error(raw.kind.span(), format!("{key}.wsdl"), "a WSDL belongs to a kind = \"soap\" service");
        }
        Some(ServiceConfig {
            id: id?,
            kind: kind?,
            upstreams,
            upstream_ca,
            upstream_client_cert,
            protocol,
            connect_timeout,
            timeout,
            max_concurrency: raw.max_concurrency.as_ref().map(|c| *c.get_ref()),
            breaker,
            health_check,
            signature,
            sign_responses: raw.sign_responses,
            mailbox: self.choice(
                raw.mailbox.as_ref(),
                &format!("{key}.mailbox"),
                &[("none", MailboxMode::None), ("pull", MailboxMode::Pull), ("push", MailboxMode::Push)],
            ),
            ordered: raw.ordered,
            idempotent: raw.idempotent,
            wsdl,
            openapi,
            mediation: mediation.map(std::sync::Arc::new),
            limits_fail_open,
            sla,
        })
    }

    fn percent(&mut self, value: &Spanned<f64>, key: &str) -> Option<f64> {
        let v = *value.get_ref();
        if v > 0.0 && v < 100.0 {
            Some(v / 100.0)
        } else {
            self.error(value.span(), key, "a percentage above 0 and below 100, e.g. 99.9");
            None
        }
    }

    fn sla(&mut self, raw: &RawSla, key: &str) -> Option<SlaObjective> {
        let availability = self.percent(&raw.availability, &format!("{key}.availability"));
        let latency_target = self.percent(&raw.latency_target, &format!("{key}.latency_target"));
        let latency = self.duration(Some(&raw.latency), "500ms", &format!("{key}.latency"));
        let window = self.duration(raw.window.as_ref(), "30d", &format!("{key}.window"));
        Some(SlaObjective { availability: availability?, latency, latency_target: latency_target?, window })
    }

    fn rate(&mut self, value: &Spanned<String>, burst: Option<&Spanned<u32>>, key: &str) -> Option<Rate> {
        let text = value.get_ref();
        let Some((count, period_s)) = parse_rate(text) else {
            self.error(
                value.span(),
                format!("{key}.rate"),
                format!("{text:?} is not a rate like \"100/s\", \"6000/min\", \"10/h\""),
            );
            return None;
        };
        // Default burst: one second's worth of the rate, at least 1.
        let default_burst = (count / period_s).clamp(1, u64::from(u32::MAX)) as u32;
        let burst_value = burst.map(|b| *b.get_ref()).unwrap_or(default_burst);
        let rate = Rate::new(count, period_s * 1_000_000_000, burst_value);
        if rate.is_none() {
            let span = burst.map(|b| b.span()).unwrap_or(value.span());
            self.error(span, format!("{key}.rate"), "rate and burst must be above zero");
        }
        rate
    }
}

/// `"100/s"` → (100, 1); `"6000/min"` → (6000, 60).
fn parse_rate(text: &str) -> Option<(u64, u64)> {
    let (n, unit) = text.split_once('/')?;
    let n: u64 = n.trim().parse().ok()?;
    let period = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        _ => return None,
    };
    Some((n, period))
}

#[derive(Clone, Copy)]
enum PemKind {
    Certificates,
    PrivateKey,
    Crl,
}

fn parse_upstream(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{url:?} must start with http:// or https://")),
    }
    if uri.authority().is_none() {
        return Err(format!("{url:?} has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("{url:?} must not have a query; the client's query is forwarded"));
    }
    Ok(uri)
}

fn fingerprint(hex: &str) -> Option<[u8; 32]> {
    let hex: String = hex.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Validates `source`; relative paths in it are taken from `base`.
pub fn parse(source: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut c = Checker { source, base, errors: Vec::new() };
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let key = source
                .get(span.clone())
                .filter(|s| !s.is_empty() && s.len() < 80 && !s.contains('\n'))
                .unwrap_or("(toml)")
                .to_owned();
            c.error(span.start..span.end.max(span.start + 1), key, e.message().to_owned());
            return Err(c.errors);
        }
    };

    let mut node = raw.gateway.node.as_ref().map(|n| n.get_ref().clone()).unwrap_or_else(|| "node-1".into());
    // One file for every node of a cluster: "$HOSTNAME" names each by its host (a
    // Kubernetes pod's name).
    if node == "$HOSTNAME" {
        node = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
        });
    }
    if node.is_empty() || node.len() > 64 || !node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        let span = raw.gateway.node.as_ref().map(|n| n.span()).unwrap_or(0..0);
        c.error(span, "gateway.node", "1–64 characters of [A-Za-z0-9_-]");
    }

    if raw.listeners.is_empty() {
        c.error(0..0, "listener", "at least one [[listener]] is required");
    }
    let listeners: Vec<_> = raw
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| c.listener(l, &format!("listener[{i}]"), &format!("data-{i}")))
        .collect();
    let admin = raw.admin.as_ref().and_then(|a| c.listener(a, "admin", "admin"));
    let mut addresses = HashSet::new();
    let named = raw.listeners.iter().enumerate().map(|(i, l)| (format!("listener[{i}]"), l));
    for (key, l) in named.chain(raw.admin.iter().map(|a| ("admin".to_owned(), a))) {
        // Port 0 asks the OS for a free port, different each time.
        match l.address.get_ref().parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.port() != 0 && !addresses.insert(addr) => {
                c.error(l.address.span(), format!("{key}.address"), format!("{addr} is used by two listeners"))
            }
            _ => {}
        }
    }

    let limits = Limits {
        max_header_bytes: *raw.limits.max_header_bytes.get_ref(),
        max_headers: *raw.limits.max_headers.get_ref(),
        header_read_timeout: c.duration(
            raw.limits.header_read_timeout.as_ref(),
            DEFAULT_HEADER_READ_TIMEOUT,
            "limits.header_read_timeout",
        ),
        max_body_bytes: *raw.limits.max_body_bytes.get_ref(),
        drain_timeout: c.duration(raw.limits.drain_timeout.as_ref(), DEFAULT_DRAIN_TIMEOUT, "limits.drain_timeout"),
        body_idle_timeout: c.duration(
            raw.limits.body_idle_timeout.as_ref(),
            DEFAULT_BODY_IDLE_TIMEOUT,
            "limits.body_idle_timeout",
        ),
        max_connections_per_client: c.positive(
            raw.limits.max_connections_per_client.as_ref(),
            DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            "limits.max_connections_per_client",
        ),
        max_concurrent_streams: c.positive(
            raw.limits.max_concurrent_streams.as_ref(),
            DEFAULT_MAX_CONCURRENT_STREAMS,
            "limits.max_concurrent_streams",
        ),
        max_pending_resets: c.positive(
            raw.limits.max_pending_resets.as_ref(),
            DEFAULT_MAX_PENDING_RESETS,
            "limits.max_pending_resets",
        ),
    };
    if !(8192..=16 * 1024 * 1024).contains(&limits.max_header_bytes) {
        c.error(raw.limits.max_header_bytes.span(), "limits.max_header_bytes", "must be between 8192 and 16 MiB");
    }
    if !(8..=10_000).contains(&limits.max_headers) {
        c.error(raw.limits.max_headers.span(), "limits.max_headers", "must be between 8 and 10000");
    }
    if limits.max_body_bytes == 0 {
        c.error(raw.limits.max_body_bytes.span(), "limits.max_body_bytes", "must be positive");
    }

    let mut systems = Vec::new();
    let mut known_systems = HashSet::new();
    let mut fingerprints = HashSet::new();
    for (i, s) in raw.systems.iter().enumerate() {
        let key = format!("system[{i}]");
        let Some(id) = c.system_id(&s.id, &format!("{key}.id")) else {
            continue;
        };
        if !known_systems.insert(id.clone()) {
            c.error(s.id.span(), format!("{key}.id"), format!("system {id} is registered twice"));
        }
        let cert_sha256 = s.cert_sha256.as_ref().and_then(|f| {
            let parsed = fingerprint(f.get_ref());
            match parsed {
                None => c.error(
                    f.span(),
                    format!("{key}.cert_sha256"),
                    "must be 64 hex digits (SHA-256 of the DER certificate)",
                ),
                Some(fp) if !fingerprints.insert(fp) => {
                    c.error(f.span(), format!("{key}.cert_sha256"), "this fingerprint is bound to another system too")
                }
                Some(_) => {}
            }
            parsed
        });
        let signing = c.key_pair(s.signing_cert.as_ref(), s.signing_key.as_ref(), &key, "signing_cert", "signing_key");
        systems.push(SystemConfig { id, cert_sha256, signing });
    }

    let signatures = raw.signatures.as_ref().map(|s| c.signatures(s));
    let mailbox = mailbox(&mut c, raw.mailbox.as_ref());
    let mut services = Vec::new();
    let mut table = RouteTable::builder();
    for (i, s) in raw.services.iter().enumerate() {
        let key = format!("service[{i}]");
        let Some(service) = c.service(s, &key, &known_systems) else {
            continue;
        };
        if (service.signature != SignaturePolicy::None || service.sign_responses) && signatures.is_none() {
            let span = s.signature.as_ref().map_or(s.id.span(), |v| v.span());
            c.error(span, format!("{key}.signature"), "needs a [signatures] table (trust anchors)");
        }
        if service.sign_responses && signatures.as_ref().is_some_and(|s| s.gateway_key.is_none()) {
            c.error(s.id.span(), format!("{key}.sign_responses"), "needs signatures.cert and signatures.key");
        }
        // A push must end before its lease does, or the message is handed out twice.
        if service.mailbox == MailboxMode::Push && service.timeout >= mailbox.visibility_timeout {
            c.error(
                s.timeout.as_ref().map_or(s.id.span(), |t| t.span()),
                format!("{key}.timeout"),
                format!(
                    "a push service must time out before mailbox.visibility_timeout ({:?})",
                    mailbox.visibility_timeout
                ),
            );
        }
        if service.ordered && service.mailbox == MailboxMode::None {
            c.error(
                s.id.span(),
                format!("{key}.ordered"),
                "orders asynchronous requests: needs mailbox = \"pull\" or \"push\"",
            );
        }
        if let Err(e) = table.insert(&service.id, ()) {
            c.error(s.id.span(), format!("{key}.id"), e.to_string());
            continue;
        }
        services.push(service);
    }
    let table = table.build();

    let mut access: HashMap<ServiceId, AccessList> = HashMap::new();
    for (i, a) in raw.access.iter().enumerate() {
        let key = format!("access[{i}]");
        let Ok(service) = ServiceId::parse(a.service.get_ref()) else {
            c.error(a.service.span(), format!("{key}.service"), format!("bad service id {:?}", a.service.get_ref()));
            continue;
        };
        if table.get(service.as_str()).is_none() {
            c.error(
                a.service.span(),
                format!("{key}.service"),
                format!("service {service} is not registered in a [[service]] table"),
            );
            continue;
        }
        if access.contains_key(&service) {
            c.error(
                a.service.span(),
                format!("{key}.service"),
                format!("access list for {service} is given twice; merge them"),
            );
            continue;
        }
        let clients = c.registered_systems(&a.clients, &format!("{key}.clients"), &known_systems);
        access.insert(service, AccessList::new(clients));
    }

    let mut topics: Vec<TopicConfig> = Vec::new();
    for (i, t) in raw.topics.iter().enumerate() {
        let key = format!("topic[{i}]");
        let Ok(id) = ServiceId::parse(t.id.get_ref()) else {
            c.error(t.id.span(), format!("{key}.id"), "not SYSTEM/TOPIC[/VERSION]");
            continue;
        };
        if !known_systems.contains(&id.system()) {
            c.error(
                t.id.span(),
                format!("{key}.id"),
                format!("owner {} is not registered in a [[system]] table", id.system()),
            );
        }
        if topics.iter().any(|other| other.id == id) {
            c.error(t.id.span(), format!("{key}.id"), format!("topic {id} is given twice"));
        }
        let subscribers = c.registered_systems(&t.subscribers, &format!("{key}.subscribers"), &known_systems);
        let mut push = Vec::new();
        for (j, p) in t.push.iter().enumerate() {
            let pkey = format!("{key}.push[{j}]");
            let Some(sys) = c.system_id(&p.subscriber, &format!("{pkey}.subscriber")) else { continue };
            if !subscribers.contains(&sys) {
                c.error(
                    p.subscriber.span(),
                    format!("{pkey}.subscriber"),
                    format!("{sys} is not among the topic's subscribers"),
                );
            }
            match ServiceId::parse(p.service.get_ref()) {
                Ok(service) if table.get(service.as_str()).is_some() && service.system() == sys => {
                    push.push((sys, service))
                }
                Ok(service) if table.get(service.as_str()).is_some() => {
                    c.error(p.service.span(), format!("{pkey}.service"), format!("{service} is not a service of {sys}"))
                }
                _ => c.error(p.service.span(), format!("{pkey}.service"), "not a registered [[service]] id"),
            }
        }
        let max_bytes = match &t.max_bytes {
            Some(v) if *v.get_ref() == 0 => {
                c.error(v.span(), format!("{key}.max_bytes"), "must be positive");
                DEFAULT_TOPIC_BYTES
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_TOPIC_BYTES,
        };
        let retention = c.duration(t.retention.as_ref(), "7d", &format!("{key}.retention"));
        topics.push(TopicConfig { id, subscribers: AccessList::new(subscribers), retention, max_bytes, push });
    }

    let mut limit_rules: Vec<LimitRule> = Vec::new();
    for (i, r) in raw.limits_rules.iter().enumerate() {
        let key = format!("limit[{i}]");
        let client = r.client.as_ref().and_then(|v| {
            let id = c.system_id(v, &format!("{key}.client"))?;
            if !known_systems.contains(&id) {
                c.error(
                    v.span(),
                    format!("{key}.client"),
                    format!("system {id} is not registered in a [[system]] table"),
                );
            }
            Some(id)
        });
        let service = r.service.as_ref().and_then(|v| match ServiceId::parse(v.get_ref()) {
            Ok(id) if table.get(id.as_str()).is_some() => Some(id),
            Ok(id) => {
                c.error(
                    v.span(),
                    format!("{key}.service"),
                    format!("service {id} is not registered in a [[service]] table"),
                );
                None
            }
            Err(e) => {
                c.error(v.span(), format!("{key}.service"), format!("bad service id: {e}"));
                None
            }
        });
        let anchor = r.client.as_ref().or(r.service.as_ref()).map(|v| v.span()).unwrap_or(0..0);
        if r.client.is_none() && r.service.is_none() {
            c.error(anchor.clone(), key.clone(), "a [[limit]] names a client, a service, or both");
        }
        let rate = r.rate.as_ref().and_then(|v| c.rate(v, r.burst.as_ref(), &key));
        if r.rate.is_none() && r.burst.is_some() {
            c.error(
                r.burst.as_ref().map(|b| b.span()).unwrap_or(anchor.clone()),
                format!("{key}.burst"),
                "burst needs a rate",
            );
        }
        if r.service.is_none() && (r.quota_day.is_some() || r.quota_month.is_some()) {
            c.error(anchor.clone(), format!("{key}.quota_day"), "quotas are per (client, service): name the service");
        }
        for q in [&r.quota_day, &r.quota_month].into_iter().flatten() {
            if *q.get_ref() == 0 {
                c.error(q.span(), format!("{key}.quota"), "a quota of 0 closes the service; remove the access instead");
            }
        }
        if r.rate.is_none() && r.quota_day.is_none() && r.quota_month.is_none() {
            c.error(anchor.clone(), key.clone(), "a [[limit]] needs a rate, a quota_day or a quota_month");
        }
        let rule = LimitRule {
            client,
            service,
            rate,
            rate_window: r.rate.as_ref().and_then(|v| parse_rate(v.get_ref())),
            quota_day: r.quota_day.as_ref().map(|q| *q.get_ref()),
            quota_month: r.quota_month.as_ref().map(|q| *q.get_ref()),
        };
        if limit_rules.iter().any(|other| other.client == rule.client && other.service == rule.service) {
            c.error(anchor, key.clone(), "another [[limit]] has the same client and service");
        }
        limit_rules.push(rule);
    }

    let overload = match &raw.overload {
        None => Overload {
            enabled: true,
            max_in_flight: 10_000,
            min_in_flight: 16,
            target_delay: Duration::from_millis(50),
        },
        Some(o) => {
            let max_in_flight = o.max_in_flight.as_ref().map(|v| *v.get_ref()).unwrap_or(10_000);
            let min_in_flight = o.min_in_flight.as_ref().map(|v| *v.get_ref()).unwrap_or(16.min(max_in_flight));
            if max_in_flight == 0 || min_in_flight == 0 || min_in_flight > max_in_flight {
                let span = o.max_in_flight.as_ref().or(o.min_in_flight.as_ref()).map(|v| v.span()).unwrap_or(0..0);
                c.error(span, "overload.max_in_flight", "need 1 <= min_in_flight <= max_in_flight");
            }
            Overload {
                enabled: o.enabled.unwrap_or(true),
                max_in_flight,
                min_in_flight,
                target_delay: c.duration(o.target_delay.as_ref(), "50ms", "overload.target_delay"),
            }
        }
    };

    let raw_storage = raw.storage.as_ref();
    let data_dir = raw_storage.and_then(|s| s.data_dir.as_ref()).map(|d| d.get_ref().as_str()).unwrap_or("data");
    let limits_backend = match raw_storage.and_then(|s| s.limits_backend.as_ref()).map(|b| (b, b.get_ref().as_str())) {
        None | Some((_, "local")) => LimitsBackend::Local,
        Some((b, "redis")) => match raw_storage.and_then(|s| s.redis_url.as_ref()) {
            Some(url) if url.get_ref().starts_with("redis://") || url.get_ref().starts_with("rediss://") => {
                let timeout = raw_storage.and_then(|s| s.redis_timeout.as_ref());
                let prefix = raw_storage.and_then(|s| s.redis_prefix.as_ref());
                if let Some(p) = prefix.filter(|p| p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace))
                {
                    c.error(p.span(), "storage.redis_prefix", "must be non-empty without spaces");
                }
                LimitsBackend::Redis {
                    url: url.get_ref().clone(),
                    timeout: c.duration(timeout, "50ms", "storage.redis_timeout"),
                    prefix: prefix.map_or_else(|| "qaqpa".to_owned(), |p| p.get_ref().clone()),
                }
            }
            Some(url) => {
                c.error(url.span(), "storage.redis_url", "must start with redis:// or rediss://");
                LimitsBackend::Local
            }
            None => {
                c.error(b.span(), "storage.redis_url", "missing: the redis backend needs redis_url");
                LimitsBackend::Local
            }
        },
        Some((b, other)) => {
            c.error(b.span(), "storage.limits_backend", format!("unknown {other:?}; use \"local\" or \"redis\""));
            LimitsBackend::Local
        }
    };
    let storage = Storage { data_dir: base.join(data_dir), limits: limits_backend };
    let raw_monitoring = raw.monitoring.as_ref();
    let monitoring = Monitoring {
        retention: c.duration(raw_monitoring.and_then(|m| m.retention.as_ref()), "30d", "monitoring.retention"),
        ring: raw_monitoring.and_then(|m| m.ring.as_ref()).map(|r| *r.get_ref()).unwrap_or(10_000).max(1),
    };

    let defaults = qaqpa_adapters::soap::XmlLimits::default();
    let raw_xml = raw.xml.as_ref();
    let mut xml_value = |get: fn(&RawXml) -> Option<&Spanned<usize>>, default: usize, key: &str| {
        let Some(v) = raw_xml.and_then(get) else { return default };
        if *v.get_ref() == 0 {
            c.error(v.span(), format!("xml.{key}"), "must be positive");
            return default;
        }
        *v.get_ref()
    };
    let xml = Xml {
        max_message_bytes: xml_value(|x| x.max_message_bytes.as_ref(), 10 * 1024 * 1024, "max_message_bytes"),
        limits: qaqpa_adapters::soap::XmlLimits {
            max_depth: xml_value(|x| x.max_depth.as_ref(), defaults.max_depth, "max_depth"),
            max_attributes: xml_value(|x| x.max_attributes.as_ref(), defaults.max_attributes, "max_attributes"),
            max_elements: xml_value(|x| x.max_elements.as_ref(), defaults.max_elements, "max_elements"),
            max_name_len: xml_value(|x| x.max_name_len.as_ref(), defaults.max_name_len, "max_name_len"),
            max_text_len: xml_value(|x| x.max_text_len.as_ref(), defaults.max_text_len, "max_text_len"),
        },
    };

    if c.errors.is_empty() {
        Ok(Config {
            signatures,
            xml,
            node,
            listeners,
            admin,
            limits,
            systems,
            services,
            access,
            limit_rules,
            overload,
            storage,
            monitoring,
            mailbox,
            topics,
        })
    } else {
        c.errors.sort_by_key(|e| e.line.unwrap_or(0));
        Err(c.errors)
    }
}

fn mailbox(c: &mut Checker, raw: Option<&RawMailbox>) -> MailboxConfig {
    let value = |get: fn(&RawMailbox) -> Option<&Spanned<String>>| raw.and_then(get);
    let backend = match value(|m| m.backend.as_ref()).map(|b| (b, b.get_ref().as_str())) {
        None | Some((_, "embedded")) => MailboxBackend::Embedded,
        Some((_, "nats")) => {
            let url = value(|m| m.nats_url.as_ref());
            if let Some(u) = url.filter(|u| !u.get_ref().starts_with("nats://") && !u.get_ref().starts_with("tls://")) {
                c.error(u.span(), "mailbox.nats_url", "must start with nats:// or tls://");
            }
            let prefix = value(|m| m.nats_prefix.as_ref());
            if let Some(p) = prefix.filter(|p| {
                p.get_ref().is_empty() || !p.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) {
                c.error(p.span(), "mailbox.nats_prefix", "must be letters, digits and _");
            }
            let replicas = match raw.and_then(|m| m.nats_replicas.as_ref()) {
                Some(r) if !(1..=5).contains(r.get_ref()) => {
                    c.error(r.span(), "mailbox.nats_replicas", "must be 1 to 5");
                    1
                }
                Some(r) => *r.get_ref() as usize,
                None => 1,
            };
            MailboxBackend::Nats {
                url: url.map_or_else(|| "nats://127.0.0.1:4222".to_owned(), |u| u.get_ref().clone()),
                prefix: prefix.map_or_else(|| "QAQPA".to_owned(), |p| p.get_ref().clone()),
                replicas,
            }
        }
        Some((b, other)) => {
            c.error(b.span(), "mailbox.backend", format!("unknown {other:?}; use \"embedded\" or \"nats\""));
            MailboxBackend::Embedded
        }
    };
    let backoff = qaqpa_routing::retry::Backoff {
        base: c.duration(value(|m| m.retry_base.as_ref()), "1s", "mailbox.retry_base"),
        max: c.duration(value(|m| m.retry_max.as_ref()), "5m", "mailbox.retry_max"),
    };
    if backoff.max < backoff.base {
        let span = value(|m| m.retry_max.as_ref()).map(|v| v.span()).unwrap_or(0..0);
        c.error(span, "mailbox.retry_max", "must be at least retry_base");
    }
    let max_message_bytes = match raw.and_then(|m| m.max_message_bytes.as_ref()) {
        Some(v) if *v.get_ref() == 0 => {
            c.error(v.span(), "mailbox.max_message_bytes", "must be positive");
            DEFAULT_MAILBOX_MESSAGE_BYTES
        }
        Some(v) => *v.get_ref(),
        None => DEFAULT_MAILBOX_MESSAGE_BYTES,
    };
    MailboxConfig {
        backend,
        visibility_timeout: c.duration(value(|m| m.visibility_timeout.as_ref()), "30s", "mailbox.visibility_timeout"),
        max_attempts: c.positive(raw.and_then(|m| m.max_attempts.as_ref()), 5, "mailbox.max_attempts"),
        backoff,
        dedupe_window: c.duration(value(|m| m.dedupe_window.as_ref()), "24h", "mailbox.dedupe_window"),
        max_wait: c.duration(value(|m| m.max_wait.as_ref()), "60s", "mailbox.max_wait"),
        max_message_bytes,
        max_queue_depth: c.positive(raw.and_then(|m| m.max_queue_depth.as_ref()), 1_000_000, "mailbox.max_queue_depth"),
        push_concurrency: c.positive(raw.and_then(|m| m.push_concurrency.as_ref()), 16, "mailbox.push_concurrency"),
    }
}

/// A topic keeps at most this many bytes of events by default (1 GiB).
pub const DEFAULT_TOPIC_BYTES: u64 = 1 << 30;

/// Largest asynchronous message body by default: these are stored, not streamed.
pub const DEFAULT_MAILBOX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
