//! Connection limits: per listener (a semaphore taken at accept) and per client
//! system across all data listeners (a count taken once the client certificate
//! names its system), so one system cannot hold every socket of the gateway.

use std::sync::Arc;

use dashmap::DashMap;

#[derive(Default)]
pub struct ClientConnections {
    counts: DashMap<Box<str>, u32>,
}

/// One open connection of a client system; dropping it frees the place.
pub struct ClientSlot {
    owner: Arc<ClientConnections>,
    system: Box<str>,
}

impl ClientConnections {
    /// A place for one more connection of `system`, or `None` when it holds `max` already.
    pub fn try_enter(self: &Arc<Self>, system: &str, max: u32) -> Option<ClientSlot> {
        let mut count = self.counts.entry(system.into()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot { owner: self.clone(), system: system.into() })
    }

    pub fn open(&self, system: &str) -> u32 {
        self.counts.get(system).map_or(0, |c| *c)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        // Forget systems with no connection left, so the map holds only live ones.
        self.owner.counts.remove_if_mut(&self.system, |_, count| {
            *count = count.saturating_sub(1);
            *count == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_gets_at_most_max_places_and_freed_ones_come_back() {
        let c = Arc::new(ClientConnections::default());
        let a1 = c.try_enter("KZ/GOV/1/a", 2).unwrap();
        let _a2 = c.try_enter("KZ/GOV/1/a", 2).unwrap();
        assert!(c.try_enter("KZ/GOV/1/a", 2).is_none());
        let _b = c.try_enter("KZ/GOV/1/b", 2).expect("another system is counted apart");
        drop(a1);
        assert_eq!(c.open("KZ/GOV/1/a"), 1);
        let _a3 = c.try_enter("KZ/GOV/1/a", 2).unwrap();
        drop((_a2, _a3));
        assert_eq!(c.open("KZ/GOV/1/a"), 0);
        assert!(c.counts.get("KZ/GOV/1/a").is_none(), "idle systems are forgotten");
    }
}
