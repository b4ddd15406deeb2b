//! The bus's side of SMEV 3: answers and faults as the message-exchange schemas
//! shape them. Everything is written with the prefixes `s` (types), `b` (basic)
//! and `f` (faults) declared where used, so a fragment cut out of an answer (the
//! part signed as `SIGNED_BY_SMEV`) carries its namespaces with it.

use super::{Operation, Version, SIGNED_BY_SMEV};
use crate::soap::{escape, SOAP11_NS};
use crate::ErrorCode;

/// A SOAP 1.1 envelope around `body` (SMEV 3 is SOAP 1.1 only).
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"{SOAP11_NS}\"><soap:Header></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// A participant as `MessageMetadata` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant<'a> {
    pub mnemonic: &'a str,
    pub name: &'a str,
}

/// The bus's account of a message (`MessageMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata<'a> {
    pub message_id: &'a str,
    /// `REQUEST` or `RESPONSE`.
    pub message_type: &'a str,
    pub sender: Participant<'a>,
    pub recipient: Option<Participant<'a>>,
    /// RFC 3339.
    pub sending_timestamp: &'a str,
    /// The kind of information's root element.
    pub destination_name: &'a str,
    pub delivery_timestamp: Option<&'a str>,
    /// `requestIsQueued`, `responseIsDelivered`, …
    pub status: Option<&'a str>,
}

impl Metadata<'_> {
    /// `<s:MessageMetadata>`; with `id`, the element the bus signs.
    pub fn xml(&self, version: Version, id: Option<&str>) -> String {
        let s = version.types_ns();
        let participant = |tag: &str, p: &Participant<'_>| {
            format!(
                "<s:{tag}><s:Mnemonic>{}</s:Mnemonic><s:HumanReadableName>{}</s:HumanReadableName></s:{tag}>",
                escape(p.mnemonic),
                escape(p.name)
            )
        };
        let id = id.map(|id| format!(" Id=\"{}\"", escape(id))).unwrap_or_default();
        let mut out = format!(
            "<s:MessageMetadata xmlns:s=\"{s}\"{id}><s:MessageId>{}</s:MessageId><s:MessageType>{}</s:MessageType>{}<s:SendingTimestamp>{}</s:SendingTimestamp><s:DestinationName>{}</s:DestinationName>",
            escape(self.message_id),
            escape(self.message_type),
            participant("Sender", &self.sender),
            escape(self.sending_timestamp),
            escape(self.destination_name),
        );
        if let Some(r) = &self.recipient {
            out.push_str(&participant("Recipient", r));
        }
        out.push_str("<s:SupplementaryData><s:InteractionType>NotDetected</s:InteractionType></s:SupplementaryData>");
        if let Some(t) = self.delivery_timestamp {
            out.push_str(&format!("<s:DeliveryTimestamp>{}</s:DeliveryTimestamp>", escape(t)));
        }
        if let Some(status) = self.status {
            out.push_str(&format!("<s:Status>{}</s:Status>", escape(status)));
        }
        out.push_str("</s:MessageMetadata>");
        out
    }
}

/// `SendRequestResponse` / `SendResponseResponse`: the metadata the bus signed and
/// its signature (`signature` is a `ds:Signature` element).
pub fn sent(version: Version, operation: Operation, signed_metadata: &str, signature: &str) -> String {
    let s = version.types_ns();
    let name = operation.name();
    format!("<s:{name}Response xmlns:s=\"{s}\">{signed_metadata}<s:SMEVSignature>{signature}</s:SMEVSignature></s:{name}Response>")
}

/// An answer with no content: `AckResponse`, an empty `GetRequestResponse`, …
pub fn empty(version: Version, operation: Operation) -> String {
    format!("<s:{}Response xmlns:s=\"{}\"></s:{}Response>", operation.name(), version.types_ns(), operation.name())
}

/// The signed core of a delivered request: `<s:Request Id="SIGNED_BY_SMEV">` with
/// the sender's data as sent, the bus's metadata, `ReplyTo`, and the sender's
/// signature as sent.
pub fn request(
    version: Version,
    sender_data: &str,
    metadata: &str,
    reply_to: &str,
    sender_signature: Option<&str>,
) -> String {
    let s = version.types_ns();
    let signature = sender_signature
        .map(|sig| format!("<s:SenderInformationSystemSignature>{sig}</s:SenderInformationSystemSignature>"))
        .unwrap_or_default();
    format!(
        "<s:Request xmlns:s=\"{s}\" Id=\"{SIGNED_BY_SMEV}\">{sender_data}{metadata}<s:ReplyTo>{}</s:ReplyTo>{signature}</s:Request>",
        escape(reply_to)
    )
}

/// The signed core of a delivered response: `<s:Response Id="SIGNED_BY_SMEV">`.
pub fn response(
    version: Version,
    original_message_id: &str,
    sender_data: &str,
    metadata: &str,
    sender_signature: Option<&str>,
) -> String {
    let s = version.types_ns();
    let signature = sender_signature
        .map(|sig| format!("<s:SenderInformationSystemSignature>{sig}</s:SenderInformationSystemSignature>"))
        .unwrap_or_default();
    format!(
        "<s:Response xmlns:s=\"{s}\" Id=\"{SIGNED_BY_SMEV}\"><s:OriginalMessageId>{}</s:OriginalMessageId>{sender_data}{metadata}{signature}</s:Response>",
        escape(original_message_id)
    )
}

/// `GetRequestResponse` / `GetResponseResponse` with one message: the signed core
/// (from [`request`] or [`response`]), inline attachments, the bus's signature.
pub fn delivered(version: Version, operation: Operation, core: &str, attachments: &str, signature: &str) -> String {
    let s = version.types_ns();
    let (name, wrapper) = match operation {
        Operation::GetResponse => ("GetResponse", "ResponseMessage"),
        _ => ("GetRequest", "RequestMessage"),
    };
    format!(
        "<s:{name}Response xmlns:s=\"{s}\"><s:{wrapper}>{core}{attachments}<s:SMEVSignature>{signature}</s:SMEVSignature></s:{wrapper}></s:{name}Response>"
    )
}

/// `SenderProvidedRequestData` / `SenderProvidedResponseData` the bus writes for a
/// message that did not come through SMEV 3 (a REST or X-Road sender): the payload
/// is the message's XML as `MessagePrimaryContent`.
pub fn sender_data(version: Version, response_to: Option<&str>, message_id: &str, content: &str) -> String {
    let (s, b) = (version.types_ns(), version.basic_ns());
    let (name, to) = match response_to {
        Some(to) => ("SenderProvidedResponseData", format!("<s:To>{}</s:To>", escape(to))),
        None => ("SenderProvidedRequestData", String::new()),
    };
    format!(
        "<s:{name} xmlns:s=\"{s}\" xmlns:b=\"{b}\" Id=\"SIGNED_BY_CALLER\"><s:MessageID>{}</s:MessageID>{to}<b:MessagePrimaryContent>{content}</b:MessagePrimaryContent></s:{name}>",
        escape(message_id)
    )
}

/// The faults of the faults schema the face uses, by the WSDL's fault messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    SmevFailure,
    InvalidContent,
    SignatureVerificationFault,
    AccessDenied,
    SenderIsNotRegistered,
    UnknownMessageType,
    BusinessDataTypeIsNotSupported,
    TargetMessageIsNotFound,
    MessageIsAlreadySent,
    InvalidMessageIdFormat,
    AttachmentSizeLimitExceeded,
    QuoteLimitExceeded,
    DestinationOverflow,
}

impl Fault {
    pub fn element(self) -> &'static str {
        match self {
            Self::SmevFailure => "SMEVFailure",
            Self::InvalidContent => "InvalidContent",
            Self::SignatureVerificationFault => "SignatureVerificationFault",
            Self::AccessDenied => "AccessDenied",
            Self::SenderIsNotRegistered => "SenderIsNotRegistered",
            Self::UnknownMessageType => "UnknownMessageType",
            Self::BusinessDataTypeIsNotSupported => "BusinessDataTypeIsNotSupported",
            Self::TargetMessageIsNotFound => "TargetMessageIsNotFound",
            Self::MessageIsAlreadySent => "MessageIsAlreadySent",
            Self::InvalidMessageIdFormat => "InvalidMessageIdFormat",
            Self::AttachmentSizeLimitExceeded => "AttachmentSizeLimitExceeded",
            Self::QuoteLimitExceeded => "QuoteLimitExceeded",
            Self::DestinationOverflow => "DestinationOverflow",
        }
    }

    /// The fault for a gateway error code, when the face did not name a finer one.
    pub fn of(code: ErrorCode) -> Self {
        match code {
            ErrorCode::BadRequest | ErrorCode::BadXml => Self::InvalidContent,
            ErrorCode::BadSignature => Self::SignatureVerificationFault,
            ErrorCode::AccessDenied => Self::AccessDenied,
            ErrorCode::IdentityMismatch => Self::SenderIsNotRegistered,
            ErrorCode::UnknownService => Self::BusinessDataTypeIsNotSupported,
            ErrorCode::UnknownMessage => Self::TargetMessageIsNotFound,
            ErrorCode::Replay => Self::MessageIsAlreadySent,
            ErrorCode::TooLarge => Self::AttachmentSizeLimitExceeded,
            ErrorCode::RateLimited | ErrorCode::QuotaExhausted => Self::QuoteLimitExceeded,
            ErrorCode::Overloaded => Self::DestinationOverflow,
            _ => Self::SmevFailure,
        }
    }

    /// Whose fault it is, as SOAP 1.1 says: the caller's (`Client`) or the bus's.
    fn is_client(self) -> bool {
        !matches!(self, Self::SmevFailure | Self::DestinationOverflow)
    }
}

/// A SOAP 1.1 fault whose detail is the faults schema's element, carrying the
/// gateway's stable code and the reason.
pub fn fault(version: Version, fault: Fault, code: ErrorCode, description: &str) -> String {
    let who = if fault.is_client() { "Client" } else { "Server" };
    let f = version.faults_ns();
    let name = fault.element();
    let body = format!(
        "<soap:Fault><faultcode>soap:{who}</faultcode><faultstring>{}</faultstring><detail><f:{name} xmlns:f=\"{f}\"><f:Code>{}</f:Code><f:Description>{}</f:Description></f:{name}></detail></soap:Fault>",
        escape(description),
        code.as_str(),
        escape(description)
    );
    envelope(&body)
}
