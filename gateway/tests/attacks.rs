//! The attack regression suite (issue 15): every attack performed through real
//! sockets against the real gateway, each test asserting both the answer and what
//! the provider received (nothing, or exactly the expected bytes). docs/security.md
//! maps each defence to its test here.

mod common;

#[path = "attacks/support.rs"]
mod support;

#[path = "attacks/certificates.rs"]
mod certificates;
#[path = "attacks/h2.rs"]
mod h2;
#[path = "attacks/headers.rs"]
mod headers;
#[path = "attacks/identity.rs"]
mod identity;
#[path = "attacks/paths.rs"]
mod paths;
#[path = "attacks/smuggling.rs"]
mod smuggling;
#[path = "attacks/soap.rs"]
mod soap;
#[path = "attacks/xsw.rs"]
mod xsw;
