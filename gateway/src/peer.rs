//! Who is on the other end of a connection, fixed at accept time and shared by
//! every request the connection carries.

use std::net::SocketAddr;

use qaqpa_certs::CertIdentity;
use tokio::sync::watch;

use crate::delivery::direct::DirectConns;

pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate's identity; `None` on an insecure listener.
    pub certificate: Option<CertIdentity>,
    /// Turns true when a reload finds the certificate revoked (or no longer
    /// chaining to the listener's client CA); `None` without a certificate.
    pub revoked: Option<watch::Receiver<bool>>,
    /// The upstream connections this connection drives itself; `None` for the
    /// gateway's own requests, which use the services' pools.
    pub upstreams: Option<DirectConns>,
}

impl Peer {
    /// A client's connection, as accepted.
    pub fn connection(
        addr: SocketAddr,
        certificate: Option<CertIdentity>,
        revoked: Option<watch::Receiver<bool>>,
    ) -> Self {
        Peer { addr, certificate, revoked, upstreams: Some(DirectConns::default()) }
    }

    /// The gateway itself as the client (mailbox deliveries): no certificate, and
    /// no connection of its own to keep upstream connections on.
    pub fn gateway(addr: SocketAddr) -> Self {
        Peer { addr, certificate: None, revoked: None, upstreams: None }
    }

    /// Whether the certificate was found revoked since the handshake: its requests
    /// are then refused even before the connection closes.
    pub fn is_revoked(&self) -> bool {
        self.revoked.as_ref().is_some_and(|r| *r.borrow())
    }
}
