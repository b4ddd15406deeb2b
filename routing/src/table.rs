//! The route table: service id → route, resolved with one hash-map probe.
//!
//! A REST path does not say whether its sixth segment is a service version or the
//! first segment of the provider's own path, so the table is keyed by the five
//! segments `SYSTEM/SERVICE` and each entry holds its (few) versions. One probe plus a
//! scan of a short list beats probing twice for every request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{ServiceId, SystemId};
use crate::path::RestTarget;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("service {0} is registered twice")]
    DuplicateService(ServiceId),
}

struct Entry<T> {
    unversioned: Option<Arc<T>>,
    versions: Vec<(Box<str>, Arc<T>)>,
}

/// An immutable table; a new configuration builds a new one.
pub struct RouteTable<T> {
    entries: HashMap<Box<str>, Entry<T>>,
    len: usize,
}

pub struct RouteTableBuilder<T> {
    table: RouteTable<T>,
}

impl<T> Default for RouteTableBuilder<T> {
    fn default() -> Self {
        Self { table: RouteTable { entries: HashMap::new(), len: 0 } }
    }
}

impl<T> RouteTableBuilder<T> {
    pub fn insert(&mut self, id: &ServiceId, route: T) -> Result<(), TableError> {
        let entry = self
            .table
            .entries
            .entry(id.unversioned().into())
            .or_insert_with(|| Entry { unversioned: None, versions: Vec::new() });
        let route = Arc::new(route);
        match id.version() {
            None if entry.unversioned.is_some() => return Err(TableError::DuplicateService(id.clone())),
            None => entry.unversioned = Some(route),
            Some(v) if entry.versions.iter().any(|(have, _)| &**have == v) => {
                return Err(TableError::DuplicateService(id.clone()))
            }
            Some(v) => entry.versions.push((v.into(), route)),
        }
        self.table.len += 1;
        Ok(())
    }

    pub fn build(self) -> RouteTable<T> {
        self.table
    }
}

impl<T> RouteTable<T> {
    pub fn builder() -> RouteTableBuilder<T> {
        RouteTableBuilder::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finds the route for a split REST path and returns it with the part of the path
    /// that goes to the provider (empty or starting with '/').
    ///
    /// A version segment that matches a registered version wins; otherwise the
    /// unversioned service takes the whole tail.
    pub fn resolve<'p>(&self, target: RestTarget<'p>) -> Option<(&Arc<T>, &'p str)> {
        let entry = self.entries.get(target.key)?;
        if !entry.versions.is_empty() {
            let after_slash = target.tail.strip_prefix('/').unwrap_or("");
            let (segment, rest) = match after_slash.find('/') {
                Some(i) => (&after_slash[..i], &after_slash[i..]),
                None => (after_slash, ""),
            };
            if let Some((_, route)) = entry.versions.iter().find(|(v, _)| &**v == segment) {
                return Some((route, rest));
            }
        }
        entry.unversioned.as_ref().map(|route| (route, target.tail))
    }

    /// Exact lookup by a full service id (SOAP headers and admin calls name it whole).
    pub fn get(&self, id: &str) -> Option<&Arc<T>> {
        let (key, version) = match crate::ids::nth_slash(id, 5) {
            Some(i) => (&id[..i], Some(&id[i + 1..])),
            None => (id, None),
        };
        let entry = self.entries.get(key)?;
        match version {
            None => entry.unversioned.as_ref(),
            Some(v) => entry.versions.iter().find(|(have, _)| &**have == v).map(|(_, r)| r),
        }
    }
}

/// Who may call a service: the data owner's access list.
#[derive(Debug, Default, Clone)]
pub struct AccessList {
    clients: Vec<SystemId>,
}

impl AccessList {
    pub fn new(mut clients: Vec<SystemId>) -> Self {
        clients.sort();
        clients.dedup();
        Self { clients }
    }

    pub fn allows(&self, client: &str) -> bool {
        self.clients.binary_search_by(|c| c.as_str().cmp(client)).is_ok()
    }

    pub fn clients(&self) -> &[SystemId] {
        &self.clients
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::split_rest_path;

    fn table() -> RouteTable<&'static str> {
        let mut b = RouteTable::builder();
        b.insert(&ServiceId::parse("KZ/GOV/1/reg/person/v1").unwrap(), "person-v1").unwrap();
        b.insert(&ServiceId::parse("KZ/GOV/1/reg/person/v2").unwrap(), "person-v2").unwrap();
        b.insert(&ServiceId::parse("KZ/GOV/1/reg/plain").unwrap(), "plain").unwrap();
        b.insert(&ServiceId::parse("KZ/GOV/1/reg/mixed").unwrap(), "mixed").unwrap();
        b.insert(&ServiceId::parse("KZ/GOV/1/reg/mixed/v1").unwrap(), "mixed-v1").unwrap();
        b.build()
    }

    fn resolve<'p>(t: &RouteTable<&'static str>, path: &'p str) -> Option<(&'static str, &'p str)> {
        t.resolve(split_rest_path(path).unwrap()).map(|(r, rest)| (**r, rest))
    }

    #[test]
    fn resolves_versions_and_tails() {
        let t = table();
        assert_eq!(t.len(), 5);
        assert_eq!(resolve(&t, "KZ/GOV/1/reg/person/v1/123"), Some(("person-v1", "/123")));
        assert_eq!(resolve(&t, "KZ/GOV/1/reg/person/v2"), Some(("person-v2", "")));
        assert_eq!(resolve(&t, "KZ/GOV/1/reg/person/v3/123"), None);
        assert_eq!(resolve(&t, "KZ/GOV/1/reg/person"), None);
        assert_eq!(resolve(&t, "KZ/GOV/1/reg/plain/v1/x"), Some(("plain", "/v1/x")));
        assert_eq!(resolve(&t, "KZ/GOV/1/reg/mixed/v1/x"), Some(("mixed-v1", "/x")));
        assert_eq!(resolve(&t, "KZ/GOV/1/reg/mixed/v9/x"), Some(("mixed", "/v9/x")));
        assert_eq!(resolve(&t, "KZ/GOV/1/other/plain"), None);
    }

    #[test]
    fn exact_lookup() {
        let t = table();
        assert_eq!(t.get("KZ/GOV/1/reg/person/v2").map(|r| **r), Some("person-v2"));
        assert_eq!(t.get("KZ/GOV/1/reg/plain").map(|r| **r), Some("plain"));
        assert!(t.get("KZ/GOV/1/reg/person").is_none());
        assert!(t.get("KZ/GOV/1/reg/plain/v1").is_none());
    }

    #[test]
    fn duplicates_refused() {
        let mut b = RouteTable::builder();
        let id = ServiceId::parse("KZ/GOV/1/reg/person/v1").unwrap();
        b.insert(&id, 1).unwrap();
        assert_eq!(b.insert(&id, 2), Err(TableError::DuplicateService(id)));
        let plain = ServiceId::parse("KZ/GOV/1/reg/plain").unwrap();
        b.insert(&plain, 1).unwrap();
        assert_eq!(b.insert(&plain, 2), Err(TableError::DuplicateService(plain)));
    }

    #[test]
    fn access_list() {
        let a = AccessList::new(vec![
            SystemId::parse("KZ/GOV/3/portal").unwrap(),
            SystemId::parse("KZ/GOV/2/tax").unwrap(),
            SystemId::parse("KZ/GOV/3/portal").unwrap(),
        ]);
        assert_eq!(a.clients().len(), 2);
        assert!(a.allows("KZ/GOV/3/portal"));
        assert!(a.allows("KZ/GOV/2/tax"));
        assert!(!a.allows("KZ/GOV/3/portal2"));
        assert!(!a.allows(""));
    }
}
