//! `[[topic]]`: event topics, who may subscribe, retention, and push subscriptions.

use std::collections::HashSet;

use qaqpa_routing::{AccessList, RouteTable, ServiceId, SystemId};

use super::checker::Checker;
use super::defaults;
use super::raw::{RawPush, RawTopic};
use super::TopicConfig;

pub(super) fn check(
    c: &mut Checker,
    raw: &[RawTopic],
    services: &RouteTable<()>,
    systems: &HashSet<SystemId>,
) -> Vec<TopicConfig> {
    let mut topics: Vec<TopicConfig> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let key = format!("topic[{i}]");
        let Ok(id) = ServiceId::parse(t.id.get_ref()) else {
            c.error(t.id.span(), format!("{key}.id"), "not SYSTEM/TOPIC[/VERSION]");
            continue;
        };
        if !systems.contains(&id.system()) {
            c.error(
                t.id.span(),
                format!("{key}.id"),
                format!("owner {} is not registered in a [[system]] table", id.system()),
            );
        }
        if topics.iter().any(|other| other.id == id) {
            c.error(t.id.span(), format!("{key}.id"), format!("topic {id} is given twice"));
        }
        let subscribers = c.registered_systems(&t.subscribers, &format!("{key}.subscribers"), systems);
        let push = t
            .push
            .iter()
            .enumerate()
            .filter_map(|(j, p)| push(c, p, &format!("{key}.push[{j}]"), &subscribers, services))
            .collect();
        let max_bytes =
            c.nonzero(t.max_bytes.as_ref(), defaults::TOPIC_BYTES, &format!("{key}.max_bytes"), "must be positive");
        let retention = c.duration(t.retention.as_ref(), defaults::TOPIC_RETENTION, &format!("{key}.retention"));
        topics.push(TopicConfig { id, subscribers: AccessList::new(subscribers), retention, max_bytes, push });
    }
    topics
}

/// A push subscription: a subscriber of the topic, and one of its own services.
fn push(
    c: &mut Checker,
    raw: &RawPush,
    key: &str,
    subscribers: &[SystemId],
    services: &RouteTable<()>,
) -> Option<(SystemId, ServiceId)> {
    let sys = c.system_id(&raw.subscriber, &format!("{key}.subscriber"))?;
    if !subscribers.contains(&sys) {
        c.error(
            raw.subscriber.span(),
            format!("{key}.subscriber"),
            format!("{sys} is not among the topic's subscribers"),
        );
    }
    match ServiceId::parse(raw.service.get_ref()) {
        Ok(service) if services.get(service.as_str()).is_some() && service.system() == sys => Some((sys, service)),
        Ok(service) if services.get(service.as_str()).is_some() => {
            c.error(raw.service.span(), format!("{key}.service"), format!("{service} is not a service of {sys}"));
            None
        }
        _ => {
            c.error(raw.service.span(), format!("{key}.service"), "not a registered [[service]] id");
            None
        }
    }
}
