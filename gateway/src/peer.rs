//! Who is on the other end of a connection, fixed at accept time and shared by
//! every request the connection carries.

use std::net::SocketAddr;

use qaqpa_certs::CertIdentity;
use tokio::sync::watch;

pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate's identity; `None` on an insecure listener.
    pub certificate: Option<CertIdentity>,
    /// Turns true when a reload finds the certificate revoked (or no longer
    /// chaining to the listener's client CA); `None` without a certificate.
    pub revoked: Option<watch::Receiver<bool>>,
}

impl Peer {
    /// A peer without a certificate (insecure listener, the gateway itself).
    pub fn anonymous(addr: SocketAddr) -> Self {
        Peer { addr, certificate: None, revoked: None }
    }

    /// Whether the certificate was found revoked since the handshake: its requests
    /// are then refused even before the connection closes.
    pub fn is_revoked(&self) -> bool {
        self.revoked.as_ref().is_some_and(|r| *r.borrow())
    }
}
