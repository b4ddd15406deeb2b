//! The attack regression suite (issue 15): every attack performed through real
//! sockets against the real gateway, each test asserting both the answer and what
//! the provider received (nothing, or exactly the expected bytes). docs/security.md
//! maps each defence to its test here.

mod support;

mod admin;
mod certificates;
mod h2;
mod headers;
mod identity;
mod paths;
mod revocation;
mod smuggling;
mod soap;
mod xsw;
