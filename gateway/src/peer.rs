//! Who is on the other end of a connection, fixed at accept time and shared by
//! every request the connection carries.

use std::net::SocketAddr;

use qaqpa_certs::CertIdentity;

pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate's identity; `None` on an insecure listener.
    pub certificate: Option<CertIdentity>,
}
