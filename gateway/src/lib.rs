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

pub mod admin;
pub mod body;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod dispatch;
pub mod error;
pub mod exchange;
pub mod faces;
pub mod gateway;
pub mod headers;
pub mod limits;
pub mod mailbox;
pub mod observe;
pub mod peer;
pub mod replay;
pub mod runtime;
pub mod server;
pub mod shared;
pub mod tls;
