//! `[[limit]]`: rates and quotas per (client, service), per service, or per client.

use std::collections::HashSet;

use qaqpa_routing::limit::Rate;
use qaqpa_routing::{RouteTable, ServiceId, SystemId};
use toml::Spanned;

use super::checker::Checker;
use super::defaults;
use super::raw::RawLimitRule;
use super::LimitRule;

pub(super) fn check(
    c: &mut Checker,
    raw: &[RawLimitRule],
    services: &RouteTable<()>,
    systems: &HashSet<SystemId>,
) -> Vec<LimitRule> {
    let mut rules: Vec<LimitRule> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let key = format!("limit[{i}]");
        let anchor = r.client.as_ref().or(r.service.as_ref()).map(|v| v.span()).unwrap_or(0..0);
        let rule = rule(c, r, &key, services, systems);
        if rules.iter().any(|other| other.client == rule.client && other.service == rule.service) {
            c.error(anchor, key.clone(), "another [[limit]] has the same client and service");
        }
        rules.push(rule);
    }
    rules
}

fn rule(
    c: &mut Checker,
    r: &RawLimitRule,
    key: &str,
    services: &RouteTable<()>,
    systems: &HashSet<SystemId>,
) -> LimitRule {
    let client = r.client.as_ref().and_then(|v| {
        let id = c.system_id(v, &format!("{key}.client"))?;
        if !systems.contains(&id) {
            c.error(v.span(), format!("{key}.client"), format!("system {id} is not registered in a [[system]] table"));
        }
        Some(id)
    });
    let service = r.service.as_ref().and_then(|v| match ServiceId::parse(v.get_ref()) {
        Ok(id) if services.get(id.as_str()).is_some() => Some(id),
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
        c.error(anchor.clone(), key, "a [[limit]] names a client, a service, or both");
    }
    let rate = r.rate.as_ref().and_then(|v| rate(c, v, r.burst.as_ref(), key));
    if r.rate.is_none() && r.burst.is_some() {
        let span = r.burst.as_ref().map(|b| b.span()).unwrap_or(anchor.clone());
        c.error(span, format!("{key}.burst"), "burst needs a rate");
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
        c.error(anchor, key, "a [[limit]] needs a rate, a quota_day or a quota_month");
    }
    LimitRule {
        client,
        service,
        rate,
        rate_window: r.rate.as_ref().and_then(|v| parse_rate(v.get_ref())),
        quota_day: r.quota_day.as_ref().map(|q| *q.get_ref()),
        quota_month: r.quota_month.as_ref().map(|q| *q.get_ref()),
    }
}

fn rate(c: &mut Checker, value: &Spanned<String>, burst: Option<&Spanned<u32>>, key: &str) -> Option<Rate> {
    let text = value.get_ref();
    let Some((count, period_s)) = parse_rate(text) else {
        c.error(
            value.span(),
            format!("{key}.rate"),
            format!("{text:?} is not a rate like \"100/s\", \"6000/min\", \"10/h\""),
        );
        return None;
    };
    let burst_value = burst.map(|b| *b.get_ref()).unwrap_or_else(|| defaults::burst(count, period_s));
    let rate = Rate::new(count, period_s * 1_000_000_000, burst_value);
    if rate.is_none() {
        let span = burst.map(|b| b.span()).unwrap_or(value.span());
        c.error(span, format!("{key}.rate"), "rate and burst must be above zero");
    }
    rate
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
