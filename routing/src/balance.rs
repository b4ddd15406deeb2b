//! Spreading requests over a service's upstreams.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Round-robin choice among `n` upstreams; lock-free, one relaxed increment a pick.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// Index of the next upstream, or `None` when there are none.
    pub fn pick(&self, n: usize) -> Option<usize> {
        match n {
            0 => None,
            1 => Some(0),
            n => Some(self.next.fetch_add(1, Ordering::Relaxed) % n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_through_all() {
        let rr = RoundRobin::default();
        assert_eq!(rr.pick(0), None);
        assert_eq!(rr.pick(1), Some(0));
        let picks: Vec<_> = (0..6).map(|_| rr.pick(3).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }
}
