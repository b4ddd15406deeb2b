//! Delivery: the provider side of an exchange (upstream connections per downstream
//! connection or pooled, bodies streamed and
//! measured, mediation between SOAP and REST, active health checks).

pub mod direct;
pub mod forward;
pub mod health_checks;
pub mod mediate;
pub mod push;
pub mod shep;
