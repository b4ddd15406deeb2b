//! The text pass: TOML into a [`Config`], section by section, every error collected
//! with its key and line. Pure: no file or environment is read here; the files the
//! config names are listed for the files pass.

use std::path::Path;

use super::checker::Checker;
use super::files::NamedFile;
use super::raw::{RawConfig, RawGateway};
use super::{
    access, cluster, defaults, limit_rules, limits, listeners, mailbox, monitoring, operators, overload, services,
    signatures, storage, systems, topics, xml,
};
use super::{Config, ConfigError, Environment};

/// What the text pass found: the config if it has no error, the files it names
/// (also when it has errors, so that the files pass can report at once).
pub(super) struct TextPass {
    pub config: Option<Config>,
    pub files: Vec<NamedFile>,
    pub errors: Vec<ConfigError>,
}

pub(super) fn text_pass(source: &str, base: &Path, env: &Environment) -> TextPass {
    let mut c = Checker::new(source, base);
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
            return TextPass { config: None, files: c.files, errors: c.errors };
        }
    };
    let node = node(&mut c, &raw.gateway, env);
    let (listeners, admin) = listeners::check(&mut c, &raw.listeners, raw.admin.as_ref());
    let limits = limits::check(&mut c, &raw.limits);
    let (systems, known_systems) = systems::check(&mut c, &raw.systems);
    let signatures = raw.signatures.as_ref().map(|s| signatures::check(&mut c, s));
    let mailbox = mailbox::check(&mut c, raw.mailbox.as_ref());
    let (services, table) = services::check(&mut c, &raw.services, &known_systems, signatures.as_ref(), &mailbox);
    let access = access::check(&mut c, &raw.access, &table, &known_systems);
    let topics = topics::check(&mut c, &raw.topics, &table, &known_systems);
    let limit_rules = limit_rules::check(&mut c, &raw.limits_rules, &table, &known_systems);
    let overload = overload::check(&mut c, raw.overload.as_ref());
    let storage = storage::check(&mut c, raw.storage.as_ref());
    let monitoring = monitoring::check(&mut c, raw.monitoring.as_ref());
    let xml = xml::check(&mut c, raw.xml.as_ref());
    let operators = operators::check(&mut c, &raw.operators);
    let cluster = cluster::check(&mut c, raw.cluster.as_ref(), &mailbox);
    let config = c.errors.is_empty().then(|| Config {
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
        xml,
        signatures,
        mailbox,
        topics,
        operators,
        cluster,
        // Given by the caller with the files pass's findings.
        files: Vec::new(),
    });
    TextPass { config, files: c.files, errors: c.errors }
}

/// `[gateway] node`: "$HOSTNAME" is the host's name as the caller found it (one file
/// for every node of a cluster, e.g. a Kubernetes pod's name).
fn node(c: &mut Checker, raw: &RawGateway, env: &Environment) -> String {
    let mut node = raw.node.as_ref().map_or(defaults::NODE, |n| n.get_ref().as_str()).to_owned();
    if node == defaults::NODE_FROM_HOSTNAME {
        node = env.hostname.clone();
    }
    if node.is_empty() || node.len() > 64 || !node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        let span = raw.node.as_ref().map(|n| n.span()).unwrap_or(0..0);
        c.error(span, "gateway.node", "1–64 characters of [A-Za-z0-9_-]");
    }
    node
}
