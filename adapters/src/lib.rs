//! Pure message formats for Qaqpa. Nothing here does I/O: bytes in, bytes out.
#![forbid(unsafe_code)]

pub mod error_code;
pub mod problem;

pub use error_code::ErrorCode;
