//! Trust for Qaqpa: the dev PKI, the binding of certificates to systems, and (as the
//! signature issue lands) XMLDSig / JWS. Pure: callers pass bytes and the current time.
#![forbid(unsafe_code)]

pub mod identity;
pub mod pki;

pub use identity::{fingerprint_hex, inspect, CertIdentity, IdentityError};
pub use pki::{CertAndKey, DevCa, PkiError};
