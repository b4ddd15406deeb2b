//! The Qaqpa gateway: listeners, the protocol faces, the one exchange pipeline,
//! delivery, observation and the admin API. `routing`, `adapters` and `certs`
//! decide; this crate does the I/O. The layers and the path of one request through
//! them are drawn in `docs/architecture.md`:
//!
//! ```text
//! server (listeners, TLS, HTTP/3, connection limits)
//!   → dispatch (one face per request) → faces (one wire protocol each)
//!     → exchange (identify → route → authorize → limit → verify) → delivery
//! observe (metrics, SLA, monitoring, message log) beside them; admin and cli on top.
//! ```
#![forbid(unsafe_code)]

pub(crate) mod admin;
pub(crate) mod body;
pub mod cli;
pub mod cluster;
pub mod config;
pub(crate) mod delivery;
pub mod demo;
pub(crate) mod dispatch;
pub(crate) mod error;
pub(crate) mod exchange;
pub(crate) mod faces;
pub(crate) mod gateway;
pub mod headers;
pub(crate) mod limits;
pub mod mailbox;
pub mod observe;
pub(crate) mod peer;
pub(crate) mod replay;
pub(crate) mod revocation;
pub(crate) mod runtime;
pub mod server;
pub(crate) mod shared;
pub mod tls;
