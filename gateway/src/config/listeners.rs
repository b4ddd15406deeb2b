//! `[[listener]]` and `[admin]`: addresses, TLS files, HTTP versions.

use std::collections::HashSet;

use super::checker::Checker;
use super::defaults;
use super::files::PemKind;
use super::raw::{RawListener, RawTls};
use super::{ListenerConfig, TlsFiles};

/// The data listeners (at least one) and the admin listener; no address used twice.
pub(super) fn check(
    c: &mut Checker,
    raw: &[RawListener],
    raw_admin: Option<&RawListener>,
) -> (Vec<ListenerConfig>, Option<ListenerConfig>) {
    if raw.is_empty() {
        c.error(0..0, "listener", "at least one [[listener]] is required");
    }
    let listeners: Vec<_> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, l)| listener(c, l, &format!("listener[{i}]"), &defaults::listener_name(i)))
        .collect();
    let admin = raw_admin.and_then(|a| listener(c, a, "admin", defaults::ADMIN_LISTENER_NAME));
    let mut addresses = HashSet::new();
    let named = raw.iter().enumerate().map(|(i, l)| (format!("listener[{i}]"), l));
    for (key, l) in named.chain(raw_admin.map(|a| ("admin".to_owned(), a))) {
        // Port 0 asks the OS for a free port, different each time.
        match l.address.get_ref().parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.port() != 0 && !addresses.insert(addr) => {
                c.error(l.address.span(), format!("{key}.address"), format!("{addr} is used by two listeners"))
            }
            _ => {}
        }
    }
    (listeners, admin)
}

fn listener(c: &mut Checker, raw: &RawListener, key: &str, default_name: &str) -> Option<ListenerConfig> {
    let address = match raw.address.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.error(raw.address.span(), format!("{key}.address"), "not an IP:port address");
            None
        }
    };
    let tls = match (&raw.tls, raw.insecure) {
        (Some(tls), false) => Some(tls_files(c, tls.get_ref(), key)),
        (Some(tls), true) => {
            c.error(tls.span(), format!("{key}.tls"), "an insecure listener takes no tls table");
            None
        }
        (None, true) => None,
        (None, false) => {
            c.error(
                raw.address.span(),
                format!("{key}.tls"),
                "missing: every listener needs tls (cert, key, client_ca) unless insecure = true",
            );
            None
        }
    };
    let (http1, http2, http3) = http_versions(c, raw, key);
    if let Some(address) = address {
        insecure_exposure(c, raw, key, address);
    }
    Some(ListenerConfig {
        name: raw.name.clone().unwrap_or_else(|| default_name.to_owned()),
        address: address?,
        tls,
        http1,
        http2,
        http3,
        max_connections: c.positive(
            raw.max_connections.as_ref(),
            defaults::MAX_CONNECTIONS,
            &format!("{key}.max_connections"),
        ),
    })
}

/// An insecure listener trusts what clients claim (or, as admin, serves every
/// operator call): on a non-loopback address that is anyone on the network, so it
/// takes an explicit `allow_insecure_non_loopback = true`.
fn insecure_exposure(c: &mut Checker, raw: &RawListener, key: &str, address: std::net::SocketAddr) {
    let allowed = raw.allow_insecure_non_loopback.as_ref();
    match (raw.insecure, allowed) {
        (true, allowed) if !address.ip().is_loopback() && !allowed.is_some_and(|a| *a.get_ref()) => c.error(
            raw.address.span(),
            format!("{key}.address"),
            format!(
                "insecure listener on {address}, which is not loopback: anyone who reaches it can claim any \
                 registered system; bind 127.0.0.1 or ::1, give it tls, or set allow_insecure_non_loopback = true"
            ),
        ),
        (false, Some(allowed)) => c.error(
            allowed.span(),
            format!("{key}.allow_insecure_non_loopback"),
            "only an insecure listener takes this key",
        ),
        _ => {}
    }
}

fn tls_files(c: &mut Checker, tls: &RawTls, key: &str) -> TlsFiles {
    TlsFiles {
        cert: c.pem_file(&tls.cert, format!("{key}.tls.cert"), PemKind::Certificates),
        key: c.pem_file(&tls.key, format!("{key}.tls.key"), PemKind::PrivateKey),
        client_ca: c.pem_file(&tls.client_ca, format!("{key}.tls.client_ca"), PemKind::Certificates),
        crls: tls
            .crls
            .iter()
            .enumerate()
            .map(|(i, crl)| c.pem_file(crl, format!("{key}.tls.crls[{i}]"), PemKind::Crl))
            .collect(),
    }
}

/// (HTTP/1.1, HTTP/2, HTTP/3) from the `http` list.
fn http_versions(c: &mut Checker, raw: &RawListener, key: &str) -> (bool, bool, bool) {
    let Some(versions) = &raw.http else { return defaults::HTTP_VERSIONS };
    let (mut http1, mut http2, mut http3) = (false, false, false);
    for v in versions.get_ref() {
        match v.get_ref().as_str() {
            "h1" | "http/1.1" => http1 = true,
            "h2" => http2 = true,
            "h3" => http3 = true,
            other => c.error(
                v.span(),
                format!("{key}.http"),
                format!("unknown HTTP version {other:?}; use \"h1\", \"h2\" or \"h3\""),
            ),
        }
    }
    if http3 && raw.insecure {
        c.error(versions.span(), format!("{key}.http"), "HTTP/3 needs TLS: not on an insecure listener");
    }
    if !http1 && !http2 {
        c.error(versions.span(), format!("{key}.http"), "must name at least one of \"h1\", \"h2\" (TCP)");
    }
    (http1, http2, http3)
}
