//! Pure message formats for Qaqpa. Nothing here does I/O: bytes in, bytes out.
#![forbid(unsafe_code)]

pub mod error_code;
pub mod frame;
pub mod mapping;
pub mod openapi;
pub mod problem;
pub mod schema;
pub mod shep;
pub mod smev3;
pub mod soap;
pub mod wsdl;
pub mod xroad;

pub use error_code::ErrorCode;
