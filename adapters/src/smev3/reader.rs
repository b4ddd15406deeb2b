//! The SMEV 3 call reader: the hardened SOAP reader first, then one pass that
//! picks fields by position (see the module documentation of [`super`]).

use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::call::{Call, Part, Smev3Error};
use super::{Operation, Version, MAX_ATTACHMENT_TEXT};
use crate::soap::{self, SoapError, XmlLimits};

/// Longest id, selector or code field accepted (a UUID is 36).
const MAX_FIELD: usize = 1024;

/// One open element of the pass.
struct Open {
    local: Vec<u8>,
    start: usize,
    declarations: Vec<(String, String)>,
    id: Option<String>,
    /// `accepted` (on `AckTargetMessage`).
    accepted: Option<String>,
}

/// Which field's text is being collected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    MessageId,
    ReferenceMessageId,
    TransactionCode,
    To,
    TestMessage,
    SelectorNamespace,
    SelectorRoot,
    AckTarget,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::MessageId => "MessageID",
            Self::ReferenceMessageId => "ReferenceMessageID",
            Self::TransactionCode => "TransactionCode",
            Self::To => "To",
            Self::TestMessage => "TestMessage",
            Self::SelectorNamespace => "NamespaceURI",
            Self::SelectorRoot => "RootElementLocalName",
            Self::AckTarget => "AckTargetMessage",
        }
    }

    /// A field of the signed part, by its local name.
    fn of(local: &[u8]) -> Option<Self> {
        Some(match local {
            b"MessageID" => Self::MessageId,
            b"ReferenceMessageID" => Self::ReferenceMessageId,
            b"TransactionCode" => Self::TransactionCode,
            b"To" => Self::To,
            b"TestMessage" => Self::TestMessage,
            b"NamespaceURI" => Self::SelectorNamespace,
            b"RootElementLocalName" => Self::SelectorRoot,
            _ => return None,
        })
    }
}

/// Reads a SMEV 3 call. `limits` are the gateway's XML limits; an inline
/// attachment's text may exceed `max_text_len` up to [`MAX_ATTACHMENT_TEXT`].
pub fn read(input: &[u8], content_type: Option<&str>, limits: &XmlLimits) -> Result<Call, Smev3Error> {
    let soap_limits = XmlLimits { max_text_len: limits.max_text_len.max(MAX_ATTACHMENT_TEXT + 1), ..*limits };
    let envelope = soap::read_envelope(input, content_type, &soap_limits)?;
    let (op_ns, op_local) = envelope.operation.clone().ok_or(Smev3Error::NotSmev3)?;
    let version = Version::of_types_ns(op_ns.as_bytes()).ok_or(Smev3Error::NotSmev3)?;
    let operation =
        Operation::of_element(op_local.as_bytes()).ok_or_else(|| Smev3Error::UnknownOperation(op_local.clone()))?;
    let mut call = Call {
        version,
        operation,
        soap: envelope.version,
        signed: None,
        signature: None,
        attachments: None,
        message_id: None,
        reference_message_id: None,
        transaction_code: None,
        to: None,
        content: None,
        kind: None,
        selector_namespace: None,
        selector_root: None,
        ack_target: None,
        accepted: true,
        test_message: false,
        response_status: None,
    };
    Pass::new(input, limits).run(&mut call)?;
    Ok(call)
}

struct Pass<'a> {
    input: &'a [u8],
    limits: &'a XmlLimits,
    stack: Vec<Open>,
    /// The open field and the depth of its element.
    field: Option<(Field, usize)>,
    text: String,
    /// Depth of the open `AttachmentContent` element, and its text so far.
    attachment: Option<(usize, usize)>,
    /// `MessagePrimaryContent` is open at this depth.
    primary: Option<usize>,
    /// The operation's children seen so far.
    children: usize,
    in_caller_signature: bool,
    /// Elements directly in the Body.
    operations: usize,
}

fn invalid(why: impl Into<String>) -> Smev3Error {
    Smev3Error::Invalid(why.into())
}

impl<'a> Pass<'a> {
    fn new(input: &'a [u8], limits: &'a XmlLimits) -> Self {
        Self {
            input,
            limits,
            stack: Vec::new(),
            field: None,
            text: String::new(),
            attachment: None,
            primary: None,
            children: 0,
            in_caller_signature: false,
            operations: 0,
        }
    }

    fn scope(&self) -> Vec<(String, String)> {
        self.stack.iter().flat_map(|o| o.declarations.iter().cloned()).collect()
    }

    fn run(mut self, call: &mut Call) -> Result<(), Smev3Error> {
        let mut reader = NsReader::from_reader(self.input);
        reader.config_mut().check_end_names = true;
        let malformed = |e: &dyn fmt::Display| invalid(format!("malformed XML: {e}"));
        loop {
            let before = reader.buffer_position() as usize;
            let (ns, event) = match reader.read_resolved_event() {
                Ok((ResolveResult::Bound(n), event)) => (Some(n.as_ref().to_vec()), event),
                Ok((_, event)) => (None, event),
                Err(e) => return Err(malformed(&e)),
            };
            match event {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(event, Event::Empty(_));
                    let after = reader.buffer_position() as usize;
                    let open = open(e, before)?;
                    self.start(call, ns.as_deref(), open, empty, after)?;
                }
                Event::End(_) => {
                    let after = reader.buffer_position() as usize;
                    self.end(call, after)?;
                }
                Event::Text(ref t) => {
                    let text = t.xml_content().map_err(|e| malformed(&e))?;
                    self.text(call, &text, t.len())?;
                }
                Event::CData(ref t) => {
                    let text = String::from_utf8_lossy(t).into_owned();
                    self.text(call, &text, t.len())?;
                }
                Event::GeneralRef(ref r) => {
                    let c = match r.resolve_char_ref().map_err(|e| malformed(&e))? {
                        Some(c) => c,
                        None => soap::predefined_entity(r.as_ref()).ok_or_else(|| invalid("unknown entity"))?,
                    };
                    self.text(call, c.encode_utf8(&mut [0; 4]), 1)?;
                }
                Event::Comment(_) => {
                    if let Some((f, _)) = self.field {
                        return Err(invalid(format!("a comment inside {}", f.name())));
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if call.signed.is_none() {
            return Err(invalid(format!("{}Request has no content", call.operation.name())));
        }
        Ok(())
    }

    fn start(
        &mut self,
        call: &mut Call,
        ns: Option<&[u8]>,
        open: Open,
        empty: bool,
        after: usize,
    ) -> Result<(), Smev3Error> {
        let depth = self.stack.len();
        let local = open.local.clone();
        if self.field.is_some() {
            return Err(invalid(format!("{} must hold text only", self.field.map_or("", |f| f.0.name()))));
        }
        let signed_depth = 3;
        if !self.open_is(1, b"Body") {
            // The Header's content is not SMEV 3's.
            if !empty {
                self.stack.push(open);
            }
            return Ok(());
        }
        if depth == 2 {
            self.operations += 1;
            if self.operations > 1 {
                return Err(invalid("the Body must hold one operation element"));
            }
        }
        match depth {
            3 => {
                self.children += 1;
                match local.as_slice() {
                    b"CallerInformationSystemSignature" => {
                        if call.signature.is_some() || self.in_caller_signature {
                            return Err(Smev3Error::Duplicate("CallerInformationSystemSignature"));
                        }
                        self.in_caller_signature = !empty;
                    }
                    b"AttachmentContentList" => {
                        if call.attachments.is_some() {
                            return Err(Smev3Error::Duplicate("AttachmentContentList"));
                        }
                        call.attachments = Some(self.part(&open, before_end(&open, empty, after)));
                    }
                    _ if self.children == 1 => {
                        let part = self.part(&open, before_end(&open, empty, after));
                        if call.operation == super::Operation::Ack && local.as_slice() == b"AckTargetMessage" {
                            self.field = (!empty).then_some((Field::AckTarget, depth));
                            self.text.clear();
                            call.accepted = !matches!(open.accepted.as_deref(), Some("false" | "0"));
                        }
                        call.signed = Some(part);
                    }
                    other => {
                        return Err(invalid(format!(
                            "unexpected element {} in {}Request",
                            String::from_utf8_lossy(other),
                            call.operation.name()
                        )))
                    }
                }
            }
            4 if self.in_caller_signature => {
                if local.as_slice() != b"Signature" || ns != Some(b"http://www.w3.org/2000/09/xmldsig#") {
                    return Err(invalid("CallerInformationSystemSignature must hold one ds:Signature"));
                }
                if call.signature.is_some() {
                    return Err(Smev3Error::Duplicate("ds:Signature"));
                }
                call.signature = Some(self.part(&open, before_end(&open, empty, after)));
            }
            4 if self.is_signed_open(signed_depth) => {
                if let Some(field) = Field::of(&local) {
                    if self.already(call, field) {
                        return Err(Smev3Error::Duplicate(field.name()));
                    }
                    self.text.clear();
                    if empty {
                        self.store(call, field)?;
                    } else {
                        self.field = Some((field, depth));
                    }
                } else if local.as_slice() == b"MessagePrimaryContent" {
                    if self.primary.is_some() || call.content.is_some() {
                        return Err(Smev3Error::Duplicate("MessagePrimaryContent"));
                    }
                    self.primary = (!empty).then_some(depth);
                } else if matches!(local.as_slice(), b"RequestRejected" | b"RequestStatus" | b"AsyncProcessingStatus") {
                    call.response_status = Some(String::from_utf8_lossy(&local).into_owned());
                }
            }
            5 if self.primary == Some(4) => {
                if call.content.is_some() {
                    return Err(invalid("MessagePrimaryContent must hold exactly one element"));
                }
                let namespace = ns.map(|n| String::from_utf8_lossy(n).into_owned()).ok_or_else(|| {
                    invalid("the root element of MessagePrimaryContent has no namespace (the kind of information)")
                })?;
                call.kind = Some((namespace, String::from_utf8_lossy(&local).into_owned()));
                call.content = Some(self.part(&open, before_end(&open, empty, after)));
            }
            _ => {}
        }
        if self.attachment.is_none() && depth == 4 && self.open_is(3, b"AttachmentContentList") {
            self.attachment = Some((depth, 0));
        }
        if !empty {
            self.stack.push(open);
        }
        Ok(())
    }

    fn open_is(&self, depth: usize, local: &[u8]) -> bool {
        self.stack.get(depth).is_some_and(|o| o.local == local)
    }

    fn is_signed_open(&self, depth: usize) -> bool {
        self.stack.get(depth).is_some_and(|o| {
            !matches!(o.local.as_slice(), b"CallerInformationSystemSignature" | b"AttachmentContentList")
        }) && self.children == 1
    }

    fn part(&self, open: &Open, end: usize) -> Part {
        Part { range: open.start..end, id: open.id.clone(), scope: self.scope(), own: open.declarations.clone() }
    }

    fn already(&self, call: &Call, field: Field) -> bool {
        match field {
            Field::MessageId => call.message_id.is_some(),
            Field::ReferenceMessageId => call.reference_message_id.is_some(),
            Field::TransactionCode => call.transaction_code.is_some(),
            Field::To => call.to.is_some(),
            Field::TestMessage => call.test_message,
            Field::SelectorNamespace => call.selector_namespace.is_some(),
            Field::SelectorRoot => call.selector_root.is_some(),
            Field::AckTarget => call.ack_target.is_some(),
        }
    }

    fn store(&mut self, call: &mut Call, field: Field) -> Result<(), Smev3Error> {
        let text = std::mem::take(&mut self.text).trim().to_owned();
        match field {
            Field::MessageId => call.message_id = Some(text),
            Field::ReferenceMessageId => call.reference_message_id = Some(text),
            Field::TransactionCode => call.transaction_code = Some(text),
            Field::To => call.to = Some(text),
            Field::TestMessage => call.test_message = true,
            Field::SelectorNamespace => call.selector_namespace = Some(text),
            Field::SelectorRoot => call.selector_root = Some(text),
            Field::AckTarget => call.ack_target = Some(text),
        }
        Ok(())
    }

    fn end(&mut self, call: &mut Call, after: usize) -> Result<(), Smev3Error> {
        let open = self.stack.pop().ok_or_else(|| invalid("unbalanced end tag"))?;
        let depth = self.stack.len();
        if let Some((field, d)) = self.field {
            if d == depth {
                self.field = None;
                self.store(call, field)?;
            }
        }
        if self.primary == Some(depth) {
            self.primary = None;
            if call.content.is_none() {
                return Err(invalid("MessagePrimaryContent must hold exactly one element"));
            }
        }
        if let Some((d, _)) = self.attachment {
            if d == depth {
                self.attachment = None;
            }
        }
        // Parts opened at this depth end here.
        let fix = |part: &mut Option<Part>| {
            if let Some(p) = part.as_mut().filter(|p| p.range.start == open.start && p.range.end == open.start) {
                p.range.end = after;
            }
        };
        fix(&mut call.signed);
        fix(&mut call.signature);
        fix(&mut call.attachments);
        fix(&mut call.content);
        if depth == 3 && open.local == b"CallerInformationSystemSignature" {
            self.in_caller_signature = false;
            if call.signature.is_none() {
                return Err(invalid("CallerInformationSystemSignature must hold one ds:Signature"));
            }
        }
        Ok(())
    }

    fn text(&mut self, _call: &mut Call, text: &str, raw_len: usize) -> Result<(), Smev3Error> {
        if let Some((_, total)) = self.attachment.as_mut() {
            // Base64 digits, whitespace aside: three bytes for every four.
            *total += text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
            if raw_len > MAX_ATTACHMENT_TEXT || *total / 4 * 3 > super::MAX_ATTACHMENT_BYTES {
                return Err(Smev3Error::AttachmentTooLarge(super::MAX_ATTACHMENT_BYTES));
            }
        } else if raw_len > self.limits.max_text_len {
            return Err(Smev3Error::Soap(SoapError::TextTooLong(self.limits.max_text_len)));
        }
        if self.field.is_some() {
            if self.text.len() + text.len() > MAX_FIELD {
                return Err(invalid(format!(
                    "{} is longer than {MAX_FIELD} bytes",
                    self.field.map_or("", |f| f.0.name())
                )));
            }
            self.text.push_str(text);
        }
        Ok(())
    }
}

/// The end of an element's range as far as known at its start tag: the tag's end
/// for an empty element, else its start (fixed up at the end tag).
fn before_end(open: &Open, empty: bool, after: usize) -> usize {
    if empty {
        after
    } else {
        open.start
    }
}

fn open(e: &BytesStart<'_>, start: usize) -> Result<Open, Smev3Error> {
    let mut declarations = Vec::new();
    let mut id = None;
    let mut accepted = None;
    for attr in e.attributes().with_checks(true) {
        let attr = attr.map_err(|err| invalid(format!("malformed attribute: {err}")))?;
        let key = attr.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            let prefix = String::from_utf8_lossy(key.get(6..).unwrap_or_default()).into_owned();
            let value = attr.unescape_value().map_err(|err| invalid(err.to_string()))?.into_owned();
            declarations.push((prefix, value));
        } else if matches!(key, b"Id" | b"ID" | b"id") {
            id = Some(attr.unescape_value().map_err(|err| invalid(err.to_string()))?.into_owned());
        } else if key == b"accepted" {
            accepted = Some(attr.unescape_value().map_err(|err| invalid(err.to_string()))?.trim().to_owned());
        }
    }
    Ok(Open { local: e.local_name().as_ref().to_vec(), start, declarations, id, accepted })
}
