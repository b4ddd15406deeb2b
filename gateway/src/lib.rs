//! The Qaqpa gateway: listeners, the request pipeline, delivery and the admin API.
//! `routing`, `adapters` and `certs` decide; this crate does the I/O.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_views;
pub mod body;
pub mod certs_cli;
pub mod cli;
pub mod client_body;
pub mod config;
pub mod connections;
pub mod contracts;
pub mod demo;
pub mod error;
pub mod forward;
pub mod gateway;
pub mod h3;
pub mod headers;
pub mod health;
pub mod limits;
pub mod listener;
pub mod log_cli;
pub mod mailbox;
pub mod mediate;
pub mod metrics;
pub mod monitoring;
pub mod msglog;
pub mod pipeline;
pub mod pki_files;
pub mod replay;
pub mod runtime;
pub mod signatures;
pub mod sla;
pub mod soap;
pub mod stats;
pub mod telemetry;
pub mod tls;
