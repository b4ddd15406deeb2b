//! Adaptive overload shedding: a gate on exchanges in flight whose limit the
//! gateway's event-loop-lag probe moves by AIMD (see `server::start`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Counts exchanges in flight; the count drops when the guard does.
pub struct InFlight {
    counter: Arc<AtomicU32>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Global adaptive shedding: a limit on exchanges in flight, moved by the AIMD
/// controller that the gateway's probe feeds with event-loop lag.
pub struct Overload {
    pub enabled: bool,
    pub in_flight: Arc<AtomicU32>,
    pub limit: AtomicU32,
}

impl Overload {
    pub fn try_enter(&self) -> Option<InFlight> {
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = InFlight { counter: self.in_flight.clone() };
        if self.enabled && n > self.limit.load(Ordering::Relaxed) {
            return None;
        }
        Some(guard)
    }
}
