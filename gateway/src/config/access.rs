//! `[[access]]`: which client systems may call each service.

use std::collections::{HashMap, HashSet};

use qaqpa_routing::{AccessList, RouteTable, ServiceId, SystemId};

use super::checker::Checker;
use super::raw::RawAccess;

pub(super) fn check(
    c: &mut Checker,
    raw: &[RawAccess],
    services: &RouteTable<()>,
    systems: &HashSet<SystemId>,
) -> HashMap<ServiceId, AccessList> {
    let mut access: HashMap<ServiceId, AccessList> = HashMap::new();
    for (i, a) in raw.iter().enumerate() {
        let key = format!("access[{i}]");
        let Ok(service) = ServiceId::parse(a.service.get_ref()) else {
            c.error(a.service.span(), format!("{key}.service"), format!("bad service id {:?}", a.service.get_ref()));
            continue;
        };
        if services.get(service.as_str()).is_none() {
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
        let clients = c.registered_systems(&a.clients, &format!("{key}.clients"), systems);
        access.insert(service, AccessList::new(clients));
    }
    access
}
