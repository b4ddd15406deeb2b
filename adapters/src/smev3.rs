//! SMEV 3 message exchange (docs/smev3.md): the envelope reader and the answer
//! writer, pure.
//!
//! A SMEV 3 call is a SOAP 1.1 envelope whose Body holds one operation element
//! (`SendRequestRequest`, `GetRequestRequest`, …) in the message-exchange types
//! namespace of version 1.1 or 1.2. [`read`] first runs the hardened SOAP reader
//! ([`crate::soap::read_envelope`]: DOCTYPE, entities, processing instructions,
//! encodings, depth and count limits), then one more pass over the now-trusted
//! bytes picks out what the gateway acts on: the part the caller signed (by
//! position: the operation's first child), the caller's `ds:Signature`, the
//! routing key (the root namespace of `MessagePrimaryContent`), ids and selectors.
//! Each field is read where the schema puts it and only there; a field given twice
//! is refused, so no reader downstream can pick a different copy.

mod call;
mod reader;
pub mod stored;
pub mod writer;

#[cfg(test)]
mod tests;

pub use call::{Call, Part, Smev3Error};
pub use reader::read;

/// The schema versions the face speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V11,
    V12,
}

impl Version {
    pub const ALL: [Version; 2] = [Version::V11, Version::V12];

    pub fn label(self) -> &'static str {
        match self {
            Self::V11 => "1.1",
            Self::V12 => "1.2",
        }
    }

    pub fn parse(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.label() == label)
    }

    /// `urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.x`
    pub fn types_ns(self) -> &'static str {
        match self {
            Self::V11 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1",
            Self::V12 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.2",
        }
    }

    /// `…/types/basic/1.x`
    pub fn basic_ns(self) -> &'static str {
        match self {
            Self::V11 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1",
            Self::V12 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.2",
        }
    }

    /// `…/types/faults/1.x`
    pub fn faults_ns(self) -> &'static str {
        match self {
            Self::V11 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/faults/1.1",
            Self::V12 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/faults/1.2",
        }
    }

    /// The WSDL's target namespace, `…/services/message-exchange/1.x`.
    pub fn service_ns(self) -> &'static str {
        match self {
            Self::V11 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/1.1",
            Self::V12 => "urn://x-artefacts-smev-gov-ru/services/message-exchange/1.2",
        }
    }

    fn of_types_ns(ns: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.types_ns().as_bytes() == ns)
    }
}

/// The operations of the message-exchange port type the face serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    SendRequest,
    GetRequest,
    SendResponse,
    GetResponse,
    Ack,
    GetStatus,
}

impl Operation {
    pub const ALL: [Operation; 6] =
        [Self::SendRequest, Self::GetRequest, Self::SendResponse, Self::GetResponse, Self::Ack, Self::GetStatus];

    pub fn name(self) -> &'static str {
        match self {
            Self::SendRequest => "SendRequest",
            Self::GetRequest => "GetRequest",
            Self::SendResponse => "SendResponse",
            Self::GetResponse => "GetResponse",
            Self::Ack => "Ack",
            Self::GetStatus => "GetStatus",
        }
    }

    /// The Body element of the call: `{name}Request`.
    fn of_element(local: &[u8]) -> Option<Self> {
        let name = local.strip_suffix(b"Request")?;
        Self::ALL.into_iter().find(|o| o.name().as_bytes() == name)
    }
}

/// The `Id` SMEV 3 callers give the part they sign (by convention; any Id is
/// accepted as long as the signature references it).
pub const SIGNED_BY_CALLER: &str = "SIGNED_BY_CALLER";
/// The `Id` of the part the bus signs in its answers.
pub const SIGNED_BY_SMEV: &str = "SIGNED_BY_SMEV";
/// Largest attachment carried inline (`AttachmentContentList`), decoded.
pub const MAX_ATTACHMENT_BYTES: usize = 5 * 1024 * 1024;
/// Its base64 text, with room for line breaks.
pub const MAX_ATTACHMENT_TEXT: usize = MAX_ATTACHMENT_BYTES / 3 * 4 + 4 + MAX_ATTACHMENT_BYTES / 38;
