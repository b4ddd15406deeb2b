//! What the reader returns: the message's fields, the sender (its password never
//! printed), and the reader's errors with their stable codes.

use std::fmt;
use std::ops::Range;

use super::{MAX_FIELD_LEN, MAX_PROPERTIES};
use crate::shep::{ASYNC_TYPES_NS, SYNC_TYPES_NS};
use crate::soap::{SoapError, SoapVersion};
use crate::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// SyncChannel: `SendMessage` in the SyncChannel types namespace.
    Sync,
    /// AsyncChannel: `sendMessage`, `getMessageStatus`, … in the AsyncChannel types namespace.
    Async,
}

/// A sender's password: never printed, compared only by the caller's password hasher.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub(crate) String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    pub sender_id: Option<String>,
    pub password: Option<Password>,
}

/// `notification/deliveryStatus` of an AsyncChannel `sendDeliveryNotification`: what
/// the receiving system says of a message it got (`receiveStatus` MESSAGE_ACCEPTED
/// or ШЭП's MESSAGE_NOT_ACCTEPTED, `resendMessage` RESEND or NOT_RESEND, `error`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryNotice {
    pub receive_status: Option<String>,
    pub resend_message: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// What the gateway reads of a ШЭП message; `data` stays in the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub version: SoapVersion,
    pub channel: Channel,
    /// The Body element's local name: `SendMessage`, `sendMessage`, `getMessageStatus`.
    pub operation: String,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub service_id: Option<String>,
    pub message_date: Option<String>,
    pub route_id: Option<String>,
    /// AsyncChannel `messageType` (`REQUEST`, `RESPONSE`).
    pub message_type: Option<String>,
    pub session_id: Option<String>,
    pub sender: Option<Sender>,
    pub properties: Vec<(String, String)>,
    /// `sendDeliveryNotification`: its `notification` (`messageId` and `serviceId`
    /// are read into the fields above).
    pub notice: Option<DeliveryNotice>,
    /// Byte range of the content of `requestData/data` (`messageData/data`).
    pub data: Option<Range<usize>>,
    /// Byte range of the whole `data` element, tags included.
    pub data_element: Option<Range<usize>>,
    /// The `data` element's `xsi:type`, as written (`prefix:Type`).
    pub data_type: Option<String>,
    /// Byte range of the SOAP Body's content.
    pub body: Range<usize>,
    /// The envelope's Header element, if any (the caller checks a WS-Security signature).
    pub header_element: Option<Range<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShepError {
    /// The SOAP reader refused the envelope (XML bombs, limits, structure).
    Soap(SoapError),
    /// The Body is not a SyncChannel or AsyncChannel operation.
    NotShep(String),
    Malformed(String),
    /// A field given twice.
    Duplicate(&'static str),
    /// An element where the ШЭП structure has no place for it.
    Unexpected(String),
    FieldTooLong(&'static str),
    TooManyProperties,
    CommentInField(&'static str),
}

impl ShepError {
    /// The stable error code the face renders.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Soap(e) => e.code(),
            Self::Malformed(_) => ErrorCode::BadXml,
            _ => ErrorCode::BadRequest,
        }
    }
}

impl fmt::Display for ShepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Soap(e) => e.fmt(f),
            Self::NotShep(op) => write!(
                f,
                "the Body holds {op}, not a SyncChannel SendMessage ({SYNC_TYPES_NS}) or an AsyncChannel operation ({ASYNC_TYPES_NS})"
            ),
            Self::Malformed(m) => write!(f, "malformed XML in the Body: {m}"),
            Self::Duplicate(name) => write!(f, "{name} is given twice"),
            Self::Unexpected(name) => write!(f, "element {name} has no place there in a ШЭП message"),
            Self::FieldTooLong(name) => write!(f, "{name} is longer than {MAX_FIELD_LEN} bytes"),
            Self::TooManyProperties => write!(f, "more than {MAX_PROPERTIES} properties"),
            Self::CommentInField(name) => write!(f, "{name} contains a comment"),
        }
    }
}

impl std::error::Error for ShepError {}

impl From<SoapError> for ShepError {
    fn from(e: SoapError) -> Self {
        Self::Soap(e)
    }
}

impl Message {
    /// `xsi:type`'s local part (`ns1:docOutgoing` → `docOutgoing`).
    pub fn data_type_local(&self) -> Option<&str> {
        self.data_type.as_deref().map(|t| t.rsplit(':').next().unwrap_or(t))
    }

    /// The sender id, if the message names one.
    pub fn sender_id(&self) -> Option<&str> {
        self.sender.as_ref().and_then(|s| s.sender_id.as_deref())
    }
}
