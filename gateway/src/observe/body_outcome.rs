//! What the gateway learned about a request body once it went through: bytes
//! received and the SHA-512 digest the message log records. Written by the body
//! wrappers in [`crate::body`], read by the exchange record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha512};

/// What the gateway learned about a request body once it went through.
#[derive(Default)]
pub struct BodyOutcome {
    state: Mutex<Outcome>,
    received: AtomicU64,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    #[default]
    Streaming,
    /// SHA-512 of the whole body, set when its last frame passed.
    Complete([u8; 64]),
    TooLarge,
    ClientAborted,
    /// The client stopped sending for longer than the idle body timeout.
    ClientIdle,
}

impl BodyOutcome {
    pub fn get(&self) -> Outcome {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Body bytes that went through so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub(crate) fn set_received(&self, n: u64) {
        self.received.store(n, Ordering::Relaxed);
    }

    /// The outcome of a body the gateway already holds whole.
    pub fn complete(body: &[u8]) -> Arc<Self> {
        let outcome = Self::default();
        outcome.received.store(body.len() as u64, Ordering::Relaxed);
        outcome.set(Outcome::Complete(Sha512::digest(body).into()));
        Arc::new(outcome)
    }

    pub(crate) fn set(&self, outcome: Outcome) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
    }
}
