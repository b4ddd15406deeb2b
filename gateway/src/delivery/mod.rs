//! Delivery: the provider side of an exchange (pooled client, bodies streamed and
//! measured, mediation between SOAP and REST, active health checks).

pub mod forward;
pub mod health_checks;
pub mod mediate;
pub mod push;
pub mod shep;
