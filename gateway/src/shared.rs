//! What every exchange on this node shares: the live runtime (swapped on reload)
//! and the long-lived handles (limiter, overload gate, replay guard, mailboxes,
//! telemetry). Stages do not take the whole gateway: each asks for the one handle
//! it needs through [`Param`], as linkerd2-proxy's `Param<T>` does, so a stage's
//! signature says what it touches.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::limits::connections::ClientConnections;
use crate::limits::overload::Overload;
use crate::limits::Limiter;
use crate::mailbox::Mailboxes;
use crate::observe::metrics::Metrics;
use crate::observe::Telemetry;
use crate::replay::ReplayGuard;
use crate::runtime::Runtime;

/// One handle of type `T`, asked for by a stage.
pub trait Param<T: ?Sized> {
    fn param(&self) -> &T;
}

pub struct Shared {
    runtime: ArcSwap<Runtime>,
    pub telemetry: Arc<Telemetry>,
    pub limiter: Limiter,
    pub overload: Overload,
    /// Message ids seen per client (services with a signature policy). Always open,
    /// so a reload that adds signed services finds it; window and capacity are the
    /// starting config's.
    pub replay: ReplayGuard,
    /// Asynchronous mailboxes (embedded store or JetStream).
    pub mailboxes: Mailboxes,
    /// Open connections per client system (the listeners' per-client limit).
    pub client_connections: Arc<ClientConnections>,
    /// Turns true when shutdown begins.
    stopping: watch::Receiver<bool>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        runtime: Runtime,
        telemetry: Arc<Telemetry>,
        limiter: Limiter,
        overload: Overload,
        replay: ReplayGuard,
        mailboxes: Mailboxes,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            runtime: ArcSwap::from_pointee(runtime),
            telemetry,
            limiter,
            overload,
            replay,
            mailboxes,
            client_connections: Arc::default(),
            stopping,
        }
    }

    /// The runtime a new request runs on; it keeps it to the end even across a reload.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Swaps in a new runtime (reload); requests in flight keep theirs.
    pub(crate) fn swap_runtime(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
    }

    /// Resolves once shutdown has begun: work that would wait (long-polls) stops
    /// waiting, so a drain is not held up by it.
    pub async fn draining(&self) {
        let mut stopping = self.stopping.clone();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }
}

macro_rules! param {
    ($t:ty, $field:ident) => {
        impl Param<$t> for Shared {
            fn param(&self) -> &$t {
                &self.$field
            }
        }
    };
}
param!(Limiter, limiter);
param!(Overload, overload);
param!(ReplayGuard, replay);
param!(Mailboxes, mailboxes);

impl Param<Telemetry> for Shared {
    fn param(&self) -> &Telemetry {
        &self.telemetry
    }
}

impl Param<Metrics> for Shared {
    fn param(&self) -> &Metrics {
        &self.telemetry.metrics
    }
}
