//! The gateway's integration tests, in one binary (fewer links, one build of the
//! shared harness): each module drives the real gateway over real sockets.

#[macro_use]
mod common;

mod admin_api;
mod attacks;
mod cli;
mod cluster;
mod cluster_config;
mod cluster_sentinel;
mod cluster_views;
mod console;
mod dashboard;
mod deploy;
mod events;
mod limits_and_monitoring;
mod mailbox;
mod mediation;
mod message_log;
mod message_log_faults;
mod operations;
mod resilience;
mod rest_routing;
mod shep;
mod shep_async;
mod shep_hostile;
mod shep_mediated;
mod signatures;
mod smev3;
mod soap;
mod xroad_conformance;
