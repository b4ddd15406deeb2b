//! The server layer: listeners (TCP with TLS, HTTP/1.1 and h2; QUIC with HTTP/3),
//! certificates swapped on reload, connection limits. It hands each request to
//! [`crate::dispatch`] and knows nothing of protocols.

pub mod h3;
pub mod listener;
pub mod start;

pub use start::{start, Running, StartError};
