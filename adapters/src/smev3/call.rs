//! What the SMEV 3 reader gives: the call's fields and parts, and its errors.

use std::fmt;
use std::ops::Range;

use super::{Operation, Version};
use crate::soap::{self, SoapError, SoapVersion};
use crate::ErrorCode;

/// An element of the call, cut out with what it needs to stand alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The element's bytes, tags included.
    pub range: Range<usize>,
    /// Its `Id` attribute, if any.
    pub id: Option<String>,
    /// Namespace declarations of its ancestors, outermost first (prefix, "" for
    /// the default; URI).
    pub scope: Vec<(String, String)>,
    /// Declarations on the element itself.
    pub(super) own: Vec<(String, String)>,
}

impl Part {
    /// The element as a document of its own: every namespace its ancestors declared
    /// and it does not redeclare is declared on it. Exclusive c14n renders only the
    /// namespaces an element uses, so a signature over the element in place
    /// verifies over the detached copy too.
    pub fn detached(&self, doc: &[u8]) -> Vec<u8> {
        let element = &doc[self.range.clone()];
        let name_end = element
            .iter()
            .skip(1)
            .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
            .map_or(1, |p| p + 1);
        let mut added: Vec<(&str, &str)> = Vec::new();
        for (prefix, uri) in self.scope.iter().rev() {
            let declared = self.own.iter().any(|(p, _)| p == prefix) || added.iter().any(|(p, _)| p == prefix);
            if !declared {
                added.push((prefix, uri));
            }
        }
        let mut out = Vec::with_capacity(element.len() + added.len() * 64);
        out.extend_from_slice(&element[..name_end]);
        for (prefix, uri) in added.iter().rev() {
            let attr = if prefix.is_empty() { "xmlns".to_owned() } else { format!("xmlns:{prefix}") };
            out.extend_from_slice(format!(" {attr}=\"{}\"", soap::escape(uri)).as_bytes());
        }
        out.extend_from_slice(&element[name_end..]);
        out
    }
}

/// What the face acts on in one call; byte ranges point into the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub version: Version,
    pub operation: Operation,
    pub soap: SoapVersion,
    /// The part the caller signs: the operation element's first child
    /// (`SenderProvidedRequestData`, `MessageTypeSelector`, `AckTargetMessage`, …).
    pub signed: Option<Part>,
    /// The `ds:Signature` inside `CallerInformationSystemSignature`.
    pub signature: Option<Part>,
    /// `AttachmentContentList`, when attachments travel inline.
    pub attachments: Option<Part>,
    pub message_id: Option<String>,
    pub reference_message_id: Option<String>,
    pub transaction_code: Option<String>,
    /// `SenderProvidedResponseData/To`: the request's `ReplyTo`.
    pub to: Option<String>,
    /// The root element of `MessagePrimaryContent`: its namespace names the kind of
    /// information.
    pub content: Option<Part>,
    /// (namespace, local name) of that root.
    pub kind: Option<(String, String)>,
    /// `MessageTypeSelector/NamespaceURI` and `RootElementLocalName`.
    pub selector_namespace: Option<String>,
    pub selector_root: Option<String>,
    /// `AckTargetMessage` text and its `accepted` attribute.
    pub ack_target: Option<String>,
    pub accepted: bool,
    pub test_message: bool,
    /// `SenderProvidedResponseData` carries `RequestRejected` or `RequestStatus`
    /// instead of content.
    pub response_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Smev3Error {
    /// The SOAP reader refused the message.
    Soap(SoapError),
    /// The Body is not a SMEV 3 operation of a supported version.
    NotSmev3,
    UnknownOperation(String),
    /// A field appears twice where the schema allows it once.
    Duplicate(&'static str),
    /// A field is not where (or what) the schema says.
    Invalid(String),
    /// An inline attachment over the limit.
    AttachmentTooLarge(usize),
}

impl Smev3Error {
    /// The stable error code (docs/protocol.md#errors).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Soap(e) => e.code(),
            Self::AttachmentTooLarge(_) => ErrorCode::TooLarge,
            _ => ErrorCode::BadRequest,
        }
    }
}

impl fmt::Display for Smev3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Soap(e) => e.fmt(f),
            Self::NotSmev3 => f.write_str(
                "the Body holds no SMEV 3 message-exchange operation (types 1.1 or 1.2: SendRequestRequest, …)",
            ),
            Self::UnknownOperation(name) => write!(f, "{name} is not a supported SMEV 3 operation"),
            Self::Duplicate(name) => write!(f, "{name} appears more than once"),
            Self::Invalid(why) => f.write_str(why),
            Self::AttachmentTooLarge(n) => write!(f, "an inline attachment is larger than {n} bytes"),
        }
    }
}

impl std::error::Error for Smev3Error {}

impl From<SoapError> for Smev3Error {
    fn from(e: SoapError) -> Self {
        Self::Soap(e)
    }
}
