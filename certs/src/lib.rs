//! Trust for Qaqpa: the dev PKI, the binding of certificates to systems, and (as the
//! signature issue lands) XMLDSig / JWS. Pure: callers pass bytes and the current time.
#![forbid(unsafe_code)]

pub mod c14n;
pub mod identity;
pub mod jws;
pub mod keys;
pub mod msglog;
pub mod pki;
pub mod smev_transform;
pub mod trust;
pub mod xmldsig;

pub use identity::{fingerprint_hex, inspect, CertIdentity, IdentityError};
pub use pki::{CertAndKey, DevCa, PkiError};
