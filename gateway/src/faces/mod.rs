//! Faces: one wire protocol each. A face recognises its requests (the dispatcher
//! asks), reads its envelope, and renders answers and errors in its own format;
//! below it runs the one exchange of [`crate::exchange`].

pub mod async_events;
pub mod async_mailbox;
pub mod async_soap;
pub mod contracts;
pub mod xroad_rest;
pub mod xroad_soap;
