//! `[overload]`: adaptive admission when requests queue.

use super::checker::Checker;
use super::defaults;
use super::raw::RawOverload;
use super::Overload;

pub(super) fn check(c: &mut Checker, raw: Option<&RawOverload>) -> Overload {
    let max_in_flight = raw.and_then(|o| o.max_in_flight.as_ref()).map_or(defaults::MAX_IN_FLIGHT, |v| *v.get_ref());
    let min_in_flight =
        raw.and_then(|o| o.min_in_flight.as_ref()).map_or(defaults::MIN_IN_FLIGHT.min(max_in_flight), |v| *v.get_ref());
    if max_in_flight == 0 || min_in_flight == 0 || min_in_flight > max_in_flight {
        let span =
            raw.and_then(|o| o.max_in_flight.as_ref().or(o.min_in_flight.as_ref())).map(|v| v.span()).unwrap_or(0..0);
        c.error(span, "overload.max_in_flight", "need 1 <= min_in_flight <= max_in_flight");
    }
    Overload {
        enabled: raw.and_then(|o| o.enabled).unwrap_or(defaults::OVERLOAD_ENABLED),
        max_in_flight,
        min_in_flight,
        target_delay: c.duration(
            raw.and_then(|o| o.target_delay.as_ref()),
            defaults::TARGET_DELAY,
            "overload.target_delay",
        ),
    }
}
