//! The Body reader for SyncChannel and AsyncChannel messages.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

pub use super::message::{Channel, DeliveryNotice, Message, Password, Sender, ShepError};
use super::{ASYNC_TYPES_NS, SYNC_TYPES_NS};
use crate::soap::{self, XmlLimits};

/// Longest `requestInfo` field (ids, dates, sender, property keys and values): real
/// ones are UUIDs, timestamps and short names.
pub const MAX_FIELD_LEN: usize = 1024;
/// Most `properties` one message may carry.
pub const MAX_PROPERTIES: usize = 64;

/// A scalar field of the info block (or of `sender`, a property).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    MessageId,
    CorrelationId,
    ServiceId,
    MessageDate,
    RouteId,
    MessageType,
    SessionId,
    SenderId,
    Password,
    Key,
    Value,
    ReceiveStatus,
    ResendMessage,
    ErrorCode,
    ErrorMessage,
    /// A date or id of a notification the gateway does not use (read, bounded, dropped).
    Unused(&'static str),
}

impl Field {
    fn info(local: &[u8]) -> Option<Self> {
        Some(match local {
            b"messageId" => Self::MessageId,
            b"correlationId" => Self::CorrelationId,
            b"serviceId" => Self::ServiceId,
            b"messageDate" => Self::MessageDate,
            b"routeId" => Self::RouteId,
            b"messageType" => Self::MessageType,
            b"sessionId" => Self::SessionId,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::MessageId => "messageId",
            Self::CorrelationId => "correlationId",
            Self::ServiceId => "serviceId",
            Self::MessageDate => "messageDate",
            Self::RouteId => "routeId",
            Self::MessageType => "messageType",
            Self::SessionId => "sessionId",
            Self::SenderId => "senderId",
            Self::Password => "password",
            Self::Key => "properties/key",
            Self::Value => "properties/value",
            Self::ReceiveStatus => "receiveStatus",
            Self::ResendMessage => "resendMessage",
            Self::ErrorCode => "error/errorCode",
            Self::ErrorMessage => "error/errorMessage",
            Self::Unused(name) => name,
        }
    }
}

/// Where in the Body the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Operation,
    Request,
    Info,
    DataBlock,
    Sender,
    Property,
    /// `sendDeliveryNotification`'s `notification`, its `deliveryStatus` and `error`.
    Notification,
    Status,
    StatusError,
    /// Inside `data`: anything goes (bounded by the SOAP reader's limits).
    Data,
}

/// Reads a ШЭП message. `content_type`, when given, must agree with the envelope.
pub fn read(input: &[u8], content_type: Option<&str>, limits: &XmlLimits) -> Result<Message, ShepError> {
    let envelope = soap::read_envelope(input, content_type, limits)?;
    let channel = match envelope.operation.as_ref() {
        Some((ns, _)) if ns == SYNC_TYPES_NS => Channel::Sync,
        Some((ns, _)) if ns == ASYNC_TYPES_NS => Channel::Async,
        Some((ns, local)) => return Err(ShepError::NotShep(format!("{{{ns}}}{local}"))),
        None => return Err(ShepError::NotShep("nothing".into())),
    };
    let operation = envelope.operation.as_ref().map(|(_, l)| l.clone()).unwrap_or_default();
    if channel == Channel::Sync && operation != "SendMessage" {
        return Err(ShepError::NotShep(format!("SyncChannel operation {operation}")));
    }
    let base = envelope.body.start;
    let body = &input[envelope.body.clone()];
    let mut message = Message {
        version: envelope.version,
        channel,
        operation,
        message_id: None,
        correlation_id: None,
        service_id: None,
        message_date: None,
        route_id: None,
        message_type: None,
        session_id: None,
        sender: None,
        properties: Vec::new(),
        notice: None,
        data: None,
        data_element: None,
        data_type: None,
        body: envelope.body.clone(),
        header_element: envelope.header_element.clone(),
    };

    let mut reader = Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    // The stack of places; its length is the depth inside the Body.
    let mut stack: Vec<Place> = Vec::new();
    let mut field: Option<(Field, usize)> = None;
    let mut text = String::new();
    let mut property: (Option<String>, Option<String>) = (None, None);
    let mut data_start = 0usize;
    let mut operations = 0;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| ShepError::Malformed(e.to_string()))?;
        let after = reader.buffer_position() as usize;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name();
                let local = local.as_ref();
                let name = || String::from_utf8_lossy(local).into_owned();
                if field.is_some() {
                    return Err(ShepError::Unexpected(name()));
                }
                let place = match stack.last().copied() {
                    None => {
                        operations += 1;
                        if operations > 1 {
                            return Err(ShepError::Unexpected(name()));
                        }
                        Place::Operation
                    }
                    Some(Place::Operation) if local == b"request" => Place::Request,
                    Some(Place::Request) if message.operation == "sendDeliveryNotification" => match local {
                        b"notification" => {
                            if message.notice.is_some() {
                                return Err(ShepError::Duplicate("notification"));
                            }
                            message.notice = Some(DeliveryNotice::default());
                            Place::Notification
                        }
                        b"sender" => start_sender(&mut message)?,
                        b"requestDate" => unused(&mut field, stack.len(), "requestDate"),
                        _ => return Err(ShepError::Unexpected(name())),
                    },
                    Some(Place::Notification) => match local {
                        b"deliveryStatus" => {
                            if message.notice.as_ref().is_some_and(|n| n.receive_status.is_some()) {
                                return Err(ShepError::Duplicate("deliveryStatus"));
                            }
                            Place::Status
                        }
                        b"notificationDate" => unused(&mut field, stack.len(), "notificationDate"),
                        b"messageId" | b"serviceId" => {
                            info_field(local, &mut field, stack.len(), &message).map(|()| Place::Notification)?
                        }
                        _ => return Err(ShepError::Unexpected(name())),
                    },
                    Some(Place::Status) => match local {
                        b"receiveStatus" => notice_field(Field::ReceiveStatus, &mut field, stack.len(), &message)?,
                        b"resendMessage" => notice_field(Field::ResendMessage, &mut field, stack.len(), &message)?,
                        b"statusDate" => unused(&mut field, stack.len(), "statusDate"),
                        b"error" => Place::StatusError,
                        _ => return Err(ShepError::Unexpected(name())),
                    },
                    Some(Place::StatusError) => match local {
                        b"errorCode" => notice_field(Field::ErrorCode, &mut field, stack.len(), &message)?,
                        b"errorMessage" => notice_field(Field::ErrorMessage, &mut field, stack.len(), &message)?,
                        b"errorDate" => unused(&mut field, stack.len(), "errorDate"),
                        b"sessionId" => unused(&mut field, stack.len(), "error/sessionId"),
                        _ => return Err(ShepError::Unexpected(name())),
                    },
                    Some(Place::Request) => match local {
                        b"requestInfo" | b"messageInfo" => Place::Info,
                        b"requestData" | b"messageData" => Place::DataBlock,
                        b"sender" => start_sender(&mut message)?,
                        // getMessageStatus and friends carry their fields in `request`.
                        _ => info_field(local, &mut field, stack.len(), &message).map(|()| Place::Info)?,
                    },
                    Some(Place::Info) => match local {
                        b"sender" => start_sender(&mut message)?,
                        b"properties" => {
                            if message.properties.len() >= MAX_PROPERTIES {
                                return Err(ShepError::TooManyProperties);
                            }
                            property = (None, None);
                            Place::Property
                        }
                        _ => info_field(local, &mut field, stack.len(), &message).map(|()| Place::Info)?,
                    },
                    Some(Place::Sender) => {
                        let f = match local {
                            b"senderId" => Field::SenderId,
                            b"password" => Field::Password,
                            _ => return Err(ShepError::Unexpected(name())),
                        };
                        let sender = message.sender.as_ref();
                        let given = match f {
                            Field::SenderId => sender.is_some_and(|s| s.sender_id.is_some()),
                            _ => sender.is_some_and(|s| s.password.is_some()),
                        };
                        if given {
                            return Err(ShepError::Duplicate(f.name()));
                        }
                        field = Some((f, stack.len()));
                        Place::Sender
                    }
                    Some(Place::Property) => {
                        let f = match local {
                            b"key" if property.0.is_none() => Field::Key,
                            b"value" if property.1.is_none() => Field::Value,
                            b"key" | b"value" => return Err(ShepError::Duplicate("properties/key or value")),
                            _ => return Err(ShepError::Unexpected(name())),
                        };
                        field = Some((f, stack.len()));
                        Place::Property
                    }
                    Some(Place::DataBlock) if local == b"data" => {
                        if message.data_element.is_some() {
                            return Err(ShepError::Duplicate("data"));
                        }
                        message.data_type = xsi_type(e);
                        message.data_element = Some(base + before..base + after);
                        message.data = Some(base + after..base + after);
                        data_start = base + after;
                        Place::Data
                    }
                    Some(Place::Data) => Place::Data,
                    Some(_) => return Err(ShepError::Unexpected(name())),
                };
                if empty {
                    // An empty field is an empty string; an empty block closes at once.
                    if let Some((f, _)) = field.take() {
                        store(&mut message, &mut property, f, String::new());
                    }
                    if place == Place::Property {
                        push_property(&mut message, &mut property);
                    }
                } else {
                    stack.push(place);
                }
            }
            Event::End(_) => {
                let depth = stack.len();
                let place = stack.pop();
                if let Some((f, d)) = field {
                    if d + 1 == depth {
                        field = None;
                        store(&mut message, &mut property, f, std::mem::take(&mut text));
                        continue;
                    }
                }
                match place {
                    Some(Place::Property) => push_property(&mut message, &mut property),
                    Some(Place::Data) if stack.last() != Some(&Place::Data) => {
                        message.data = Some(data_start..base + before);
                        if let Some(el) = message.data_element.as_mut() {
                            el.end = base + after;
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(ref t) => {
                if let Some((f, _)) = field {
                    let s = t.xml_content().map_err(|e| ShepError::Malformed(e.to_string()))?;
                    push(&mut text, &s, f)?;
                }
            }
            Event::CData(ref t) => {
                if let Some((f, _)) = field {
                    push(&mut text, &String::from_utf8_lossy(t), f)?;
                }
            }
            Event::GeneralRef(ref r) => {
                if let Some((f, _)) = field {
                    let c = if r.is_char_ref() {
                        r.resolve_char_ref().map_err(|e| ShepError::Malformed(e.to_string()))?
                    } else {
                        soap::predefined_entity(r.as_ref())
                    };
                    if let Some(c) = c {
                        push(&mut text, c.encode_utf8(&mut [0; 4]), f)?;
                    }
                }
            }
            Event::Comment(_) => {
                if let Some((f, _)) = field {
                    return Err(ShepError::CommentInField(f.name()));
                }
            }
            // The SOAP reader has refused these already; a Body slice cannot hold them.
            Event::DocType(_) | Event::PI(_) | Event::Decl(_) => {
                return Err(ShepError::Malformed("a declaration inside the Body".into()))
            }
            Event::Eof => break,
        }
    }
    Ok(message)
}

/// Starts reading `sender`, refusing a second one.
fn start_sender(message: &mut Message) -> Result<Place, ShepError> {
    if message.sender.is_some() {
        return Err(ShepError::Duplicate("sender"));
    }
    message.sender = Some(Sender::default());
    Ok(Place::Sender)
}

/// Starts reading an info field (`messageId`, …), refusing one given twice.
fn info_field(
    local: &[u8],
    field: &mut Option<(Field, usize)>,
    depth: usize,
    message: &Message,
) -> Result<(), ShepError> {
    let f = Field::info(local).ok_or_else(|| ShepError::Unexpected(String::from_utf8_lossy(local).into_owned()))?;
    if slot(message, f).is_some() {
        return Err(ShepError::Duplicate(f.name()));
    }
    *field = Some((f, depth));
    Ok(())
}

/// Starts a field of no use to the gateway (a date): read and bounded like the others.
fn unused(field: &mut Option<(Field, usize)>, depth: usize, name: &'static str) -> Place {
    *field = Some((Field::Unused(name), depth));
    Place::Status
}

/// Starts a field of `deliveryStatus` or its `error`, refusing one given twice.
fn notice_field(
    f: Field,
    field: &mut Option<(Field, usize)>,
    depth: usize,
    message: &Message,
) -> Result<Place, ShepError> {
    if slot(message, f).is_some() {
        return Err(ShepError::Duplicate(f.name()));
    }
    *field = Some((f, depth));
    Ok(Place::Status)
}

fn slot(message: &Message, f: Field) -> Option<&String> {
    let notice = message.notice.as_ref();
    match f {
        Field::ReceiveStatus => notice.and_then(|n| n.receive_status.as_ref()),
        Field::ResendMessage => notice.and_then(|n| n.resend_message.as_ref()),
        Field::ErrorCode => notice.and_then(|n| n.error_code.as_ref()),
        Field::ErrorMessage => notice.and_then(|n| n.error_message.as_ref()),
        Field::MessageId => message.message_id.as_ref(),
        Field::CorrelationId => message.correlation_id.as_ref(),
        Field::ServiceId => message.service_id.as_ref(),
        Field::MessageDate => message.message_date.as_ref(),
        Field::RouteId => message.route_id.as_ref(),
        Field::MessageType => message.message_type.as_ref(),
        Field::SessionId => message.session_id.as_ref(),
        _ => None,
    }
}

fn store(message: &mut Message, property: &mut (Option<String>, Option<String>), f: Field, text: String) {
    // Identifiers are trimmed; a password is taken exactly as sent.
    let value = if f == Field::Password { text } else { text.trim().to_owned() };
    let sender = || Sender::default();
    match f {
        Field::MessageId => message.message_id = Some(value),
        Field::CorrelationId => message.correlation_id = Some(value),
        Field::ServiceId => message.service_id = Some(value),
        Field::MessageDate => message.message_date = Some(value),
        Field::RouteId => message.route_id = Some(value),
        Field::MessageType => message.message_type = Some(value),
        Field::SessionId => message.session_id = Some(value),
        Field::SenderId => message.sender.get_or_insert_with(sender).sender_id = Some(value),
        Field::Password => message.sender.get_or_insert_with(sender).password = Some(Password(value)),
        Field::Key => property.0 = Some(value),
        Field::Value => property.1 = Some(value),
        Field::ReceiveStatus => message.notice.get_or_insert_with(Default::default).receive_status = Some(value),
        Field::ResendMessage => message.notice.get_or_insert_with(Default::default).resend_message = Some(value),
        Field::ErrorCode => message.notice.get_or_insert_with(Default::default).error_code = Some(value),
        Field::ErrorMessage => message.notice.get_or_insert_with(Default::default).error_message = Some(value),
        Field::Unused(_) => {}
    }
}

fn push_property(message: &mut Message, property: &mut (Option<String>, Option<String>)) {
    let (key, value) = std::mem::take(property);
    if let Some(key) = key {
        message.properties.push((key, value.unwrap_or_default()));
    }
}

fn push(text: &mut String, s: &str, f: Field) -> Result<(), ShepError> {
    if text.len() + s.len() > MAX_FIELD_LEN {
        return Err(ShepError::FieldTooLong(f.name()));
    }
    text.push_str(s);
    Ok(())
}

/// The `xsi:type` of `data` (any prefix whose attribute local name is `type`).
fn xsi_type(e: &BytesStart<'_>) -> Option<String> {
    e.attributes().filter_map(Result::ok).find_map(|a| {
        let key = a.key.as_ref();
        let is_type = key.ends_with(b":type") && key.len() > 5;
        is_type.then(|| String::from_utf8_lossy(&a.value).chars().take(MAX_FIELD_LEN).collect())
    })
}
