//! SOAP 1.1 / 1.2 envelopes with X-Road 4.0 headers: a hardened reader that extracts
//! the routing fields and the byte range of the Body without copying it, and the
//! fault writer.
//!
//! The reader is a single pass of quick-xml events over the borrowed input. It
//! refuses what has no place in a SOAP message and every known XML bomb: any
//! DOCTYPE (so no entity can be declared, let alone expanded), entity references
//! other than the five predefined ones and character references, processing
//! instructions, non-UTF-8 input, and anything over the configured limits.
//!
//! It also refuses what a provider could read differently from the gateway (issue
//! 15): a SOAP Body or Header anywhere but as the Envelope's child (a provider that
//! takes the first `Body` it meets would read an unverified one), X-Road header
//! elements anywhere but as the Header's children and identifier parts anywhere but
//! in `client`/`service` (an XPath `//xrd:service` would find a nested copy), an
//! identifier part given twice (first wins here, last wins elsewhere), and comments
//! inside X-Road header fields (`0000<!---->03` is one string here, two text nodes
//! to a DOM reader that takes the first).

use std::fmt;
use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::ErrorCode;

pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const XROAD_NS: &str = "http://x-road.eu/xsd/xroad.xsd";
pub const XROAD_ID_NS: &str = "http://x-road.eu/xsd/identifiers";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            Self::V11 => SOAP11_NS,
            Self::V12 => SOAP12_NS,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::V11 => "text/xml; charset=utf-8",
            Self::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    /// The version a `Content-Type` announces, if it announces one.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "text/xml" => Some(Self::V11),
            "application/soap+xml" => Some(Self::V12),
            _ => None,
        }
    }
}

/// Hard limits on what the reader accepts. Defaults are safe for agency traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    pub max_depth: usize,
    pub max_attributes: usize,
    pub max_elements: usize,
    pub max_name_len: usize,
    pub max_text_len: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_attributes: 64,
            max_elements: 100_000,
            max_name_len: 256,
            max_text_len: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoapError {
    /// Malformed XML, with the 1-based line and column where it went wrong.
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    Doctype,
    EntityReference(String),
    ProcessingInstruction,
    NotUtf8,
    UnsupportedEncoding(String),
    TooDeep(usize),
    TooManyAttributes(usize),
    TooManyElements(usize),
    NameTooLong(usize),
    TextTooLong(usize),
    NotAnEnvelope,
    VersionMismatch,
    MissingBody,
    TwoBodies,
    TwoHeaders,
    HeaderAfterBody,
    ContentOutsideBody,
    MissingXRoadField(&'static str),
    DuplicateXRoadField(&'static str),
    BadXRoadIdentifier(&'static str),
    /// An X-Road header element or identifier part where the gateway does not read
    /// it (nested in another element); its local name.
    MisplacedXRoadElement(String),
    /// A comment inside an X-Road header field.
    CommentInXRoadField(&'static str),
}

impl SoapError {
    /// The stable error code (docs/protocol.md#errors) the fault carries.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MissingXRoadField(_)
            | Self::DuplicateXRoadField(_)
            | Self::BadXRoadIdentifier(_)
            | Self::MisplacedXRoadElement(_) => ErrorCode::BadRequest,
            _ => ErrorCode::BadXml,
        }
    }
}

impl fmt::Display for SoapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { line, column, message } => {
                write!(f, "malformed XML at line {line}, column {column}: {message}")
            }
            Self::Doctype => f.write_str("a DOCTYPE is not allowed in a SOAP message"),
            Self::EntityReference(name) => {
                write!(f, "entity reference &{name}; is not allowed (only the five predefined ones)")
            }
            Self::ProcessingInstruction => f.write_str("processing instructions are not allowed in a SOAP message"),
            Self::NotUtf8 => f.write_str("the message is not valid UTF-8"),
            Self::UnsupportedEncoding(e) => write!(f, "encoding {e:?} is not supported; send UTF-8"),
            Self::TooDeep(n) => write!(f, "elements nested deeper than {n}"),
            Self::TooManyAttributes(n) => write!(f, "an element has more than {n} attributes"),
            Self::TooManyElements(n) => write!(f, "more than {n} elements"),
            Self::NameTooLong(n) => write!(f, "a name is longer than {n} bytes"),
            Self::TextTooLong(n) => write!(f, "a text node is longer than {n} bytes"),
            Self::NotAnEnvelope => f.write_str("the root element is not a SOAP 1.1 or 1.2 Envelope"),
            Self::VersionMismatch => {
                f.write_str("the Content-Type and the envelope namespace name different SOAP versions")
            }
            Self::MissingBody => f.write_str("the envelope has no Body"),
            Self::TwoBodies => f.write_str("the envelope has more than one Body"),
            Self::TwoHeaders => f.write_str("the envelope has more than one Header"),
            Self::HeaderAfterBody => f.write_str("the Header comes after the Body"),
            Self::ContentOutsideBody => f.write_str("the envelope has content outside Header and Body"),
            Self::MissingXRoadField(name) => write!(f, "the X-Road header {name} is missing"),
            Self::DuplicateXRoadField(name) => write!(f, "the X-Road header {name} appears twice"),
            Self::BadXRoadIdentifier(name) => write!(f, "the X-Road header {name} is not a valid identifier"),
            Self::MisplacedXRoadElement(name) => {
                write!(f, "the X-Road element {name} is only allowed where the X-Road header puts it")
            }
            Self::CommentInXRoadField(name) => write!(f, "the X-Road header {name} contains a comment"),
        }
    }
}

impl std::error::Error for SoapError {}

/// `client` or `service` from the X-Road header, identifier parts as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XRoadIdentifier {
    pub object_type: String,
    pub instance: String,
    pub member_class: String,
    pub member_code: String,
    pub subsystem_code: Option<String>,
    pub service_code: Option<String>,
    pub service_version: Option<String>,
}

impl XRoadIdentifier {
    /// `INSTANCE/CLASS/CODE/SUBSYSTEM` (a client must be a subsystem).
    pub fn system_id(&self) -> Option<String> {
        Some(format!("{}/{}/{}/{}", self.instance, self.member_class, self.member_code, self.subsystem_code.as_ref()?))
    }

    /// `SYSTEM/SERVICE[/VERSION]`.
    pub fn service_id(&self) -> Option<String> {
        let mut id = format!("{}/{}", self.system_id()?, self.service_code.as_ref()?);
        if let Some(v) = &self.service_version {
            id.push('/');
            id.push_str(v);
        }
        Some(id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XRoadHeader {
    pub client: Option<XRoadIdentifier>,
    pub service: Option<XRoadIdentifier>,
    pub id: Option<String>,
    pub user_id: Option<String>,
    pub issue: Option<String>,
    pub protocol_version: Option<String>,
}

/// What the gateway needs from an envelope; the Body stays in the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub version: SoapVersion,
    pub header: XRoadHeader,
    /// Byte range of the Body's content (between its start and end tags).
    pub body: Range<usize>,
    /// Byte range of the whole Header element, tags included (providers echo it).
    pub header_element: Option<Range<usize>>,
    /// Namespace and local name of the Body's first element (the operation).
    pub operation: Option<(String, String)>,
    /// How many elements the Body holds as children (X-Road requires exactly one).
    pub body_children: usize,
    /// The X-Road header fields that appeared, in order, for X-Road's own checks
    /// (a field in the X-Road namespace the reader does not model is kept by name).
    pub xroad_fields: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Client,
    Service,
    Id,
    UserId,
    Issue,
    ProtocolVersion,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Client => "client",
            Field::Service => "service",
            Field::Id => "id",
            Field::UserId => "userId",
            Field::Issue => "issue",
            Field::ProtocolVersion => "protocolVersion",
        }
    }
}

fn position(input: &[u8], offset: usize) -> (usize, usize) {
    let before = &input[..offset.min(input.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// One pass over the message: the first C0 control character other than tab, LF
/// and CR, and whether every byte is ASCII (then it is UTF-8 without another
/// look). Eight bytes at a time; a word with a byte below 0x20 or above 0x7F is
/// looked at byte by byte. Hand-written: the standard library has no such scan, and
/// the byte loop it replaces cost ~5 instructions a byte, more than the rest of the
/// reader's own work on a large Body.
fn scan_bytes(input: &[u8]) -> (Option<usize>, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut ascii = true;
    let mut words = input.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A high bit in `w.wrapping_sub(0x20 * ONES) & !w` marks a byte below 0x20
        // (never a false alarm when no byte is below it).
        if (w | (w.wrapping_sub(0x20 * ONES) & !w)) & HIGH != 0 {
            for (i, &b) in word.iter().enumerate() {
                if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
                    return (Some(offset + i), ascii);
                }
                ascii &= b.is_ascii();
            }
        }
        offset += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') {
            return (Some(offset + i), ascii);
        }
        ascii &= b.is_ascii();
    }
    (None, ascii)
}

/// The namespace an element is bound to, if any.
struct Ns(Option<&'static [u8]>);

/// A namespace the reader never compares against: it can name no XML namespace.
const OTHER_NS: &[u8] = b"\0";

/// The reader's own copy of a bound namespace name, or [`OTHER_NS`].
fn known_ns(name: &[u8]) -> &'static [u8] {
    [SOAP11_NS, SOAP12_NS, XROAD_NS, XROAD_ID_NS]
        .into_iter()
        .map(str::as_bytes)
        .find(|k| *k == name)
        .unwrap_or(OTHER_NS)
}

fn ns_is(ns: &Ns, uri: &str) -> bool {
    ns.0 == Some(uri.as_bytes())
}

/// Reads an envelope. `content_type`, when given, must agree with the namespace.
pub fn read_envelope(input: &[u8], content_type: Option<&str>, limits: &XmlLimits) -> Result<Envelope, SoapError> {
    let (control, ascii) = scan_bytes(input);
    if !ascii {
        std::str::from_utf8(input).map_err(|_| SoapError::NotUtf8)?;
    }
    // XML 1.0 allows no C0 control characters but tab, CR and LF, not even escaped.
    if let Some(at) = control {
        let (line, column) = position(input, at);
        return Err(SoapError::Malformed {
            line,
            column,
            message: format!("control character U+{:04X} is not allowed in XML", input[at]),
        });
    }
    let mut reader = NsReader::from_reader(input);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    let malformed = |reader: &NsReader<&[u8]>, e: quick_xml::Error| {
        let (line, column) = position(input, reader.error_position() as usize);
        SoapError::Malformed { line, column, message: e.to_string() }
    };

    let mut version = None;
    let mut header = XRoadHeader::default();
    let mut body: Option<Range<usize>> = None;
    let mut header_element: Option<Range<usize>> = None;
    let mut operation = None;
    let mut body_children = 0usize;
    let mut xroad_fields: Vec<String> = Vec::new();
    let mut seen_header = false;
    let mut depth = 0usize;
    let mut elements = 0usize;
    // Where in the envelope we are: which depth-1 child, which X-Road field.
    let mut in_header = false;
    let mut in_body = false;
    let mut field: Option<(Field, usize)> = None;
    let mut id_part: Option<Vec<u8>> = None;
    let mut current_id = XRoadIdentifier::default();
    // Identifier parts already given in `current_id` (bits of `IdPart`).
    let mut parts_seen = 0u8;
    let mut text = String::new();
    let mut envelope_closed = false;

    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| malformed(&reader, e))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                elements += 1;
                if elements > limits.max_elements {
                    return Err(SoapError::TooManyElements(limits.max_elements));
                }
                check_start(e, limits, depth)?;
                if envelope_closed {
                    return Err(SoapError::ContentOutsideBody);
                }
                let local = e.local_name();
                let local = local.as_ref();
                // The namespace is resolved where the reader looks at it: the frame,
                // the Header, a nested Body or Header. An element deeper in the Body
                // is the provider's and is only counted and checked for its limits.
                let looked_at = depth <= 2 || in_header || matches!(local, b"Body" | b"Header");
                let ns = match looked_at {
                    true => match reader.resolve_element(e.name()).0 {
                        ResolveResult::Bound(n) => Ns(Some(known_ns(n.as_ref()))),
                        _ => Ns(None),
                    },
                    false => Ns(Some(OTHER_NS)),
                };
                if depth >= 2 && is_soap_frame(&ns, local) {
                    // A Body or Header below the Envelope's children: one reader's
                    // Body is not another's.
                    return Err(if local == b"Header" { SoapError::TwoHeaders } else { SoapError::TwoBodies });
                }
                if in_header && depth >= 3 && ns_is(&ns, XROAD_NS) {
                    return Err(SoapError::MisplacedXRoadElement(String::from_utf8_lossy(local).into_owned()));
                }
                if in_header && ns_is(&ns, XROAD_ID_NS) {
                    let in_identifier = depth == 3 && matches!(field, Some((Field::Client | Field::Service, _)));
                    if !in_identifier {
                        return Err(SoapError::MisplacedXRoadElement(String::from_utf8_lossy(local).into_owned()));
                    }
                }
                match depth {
                    0 => {
                        if local != b"Envelope" {
                            return Err(SoapError::NotAnEnvelope);
                        }
                        let v = if ns_is(&ns, SOAP11_NS) {
                            SoapVersion::V11
                        } else if ns_is(&ns, SOAP12_NS) {
                            SoapVersion::V12
                        } else {
                            return Err(SoapError::NotAnEnvelope);
                        };
                        if let Some(ct) = content_type.and_then(SoapVersion::from_content_type) {
                            if ct != v {
                                return Err(SoapError::VersionMismatch);
                            }
                        }
                        version = Some(v);
                        if empty {
                            return Err(SoapError::MissingBody);
                        }
                    }
                    1 => {
                        let env_ns = version.map(SoapVersion::namespace).unwrap_or(SOAP11_NS);
                        match (local, ns_is(&ns, env_ns)) {
                            (b"Header", true) => {
                                if body.is_some() {
                                    return Err(SoapError::HeaderAfterBody);
                                }
                                if seen_header {
                                    return Err(SoapError::TwoHeaders);
                                }
                                seen_header = true;
                                in_header = !empty;
                                let end = if empty { reader.buffer_position() as usize } else { before };
                                header_element = Some(before..end);
                            }
                            (b"Body", true) => {
                                if body.is_some() {
                                    return Err(SoapError::TwoBodies);
                                }
                                let start = reader.buffer_position() as usize;
                                body = Some(start..start);
                                in_body = !empty;
                            }
                            _ => return Err(SoapError::ContentOutsideBody),
                        }
                    }
                    2 if in_header && ns_is(&ns, XROAD_NS) => {
                        let f = match local {
                            b"client" => Field::Client,
                            b"service" => Field::Service,
                            b"id" => Field::Id,
                            b"userId" => Field::UserId,
                            b"issue" => Field::Issue,
                            b"protocolVersion" => Field::ProtocolVersion,
                            _ => Field::Issue,
                        };
                        let known =
                            matches!(local, b"client" | b"service" | b"id" | b"userId" | b"issue" | b"protocolVersion");
                        if xroad_fields.len() < limits.max_elements {
                            xroad_fields.push(String::from_utf8_lossy(local).into_owned());
                        }
                        if known {
                            if field_present(&header, f) {
                                return Err(SoapError::DuplicateXRoadField(f.name()));
                            }
                            current_id = XRoadIdentifier::default();
                            parts_seen = 0;
                            if matches!(f, Field::Client | Field::Service) {
                                current_id.object_type = object_type(e);
                            }
                            text.clear();
                            if empty {
                                store_field(&mut header, f, &mut current_id, String::new());
                            } else {
                                field = Some((f, depth));
                            }
                        }
                    }
                    3 if matches!(field, Some((Field::Client | Field::Service, _))) && ns_is(&ns, XROAD_ID_NS) => {
                        if let Some((bit, name)) = id_part_bit(local) {
                            if parts_seen & bit != 0 {
                                return Err(SoapError::DuplicateXRoadField(name));
                            }
                            parts_seen |= bit;
                        }
                        id_part = Some(local.to_vec());
                        text.clear();
                        if empty {
                            set_id_part(&mut current_id, local, String::new());
                            id_part = None;
                        }
                    }
                    2 if in_body => {
                        body_children += 1;
                        if operation.is_none() {
                            let ns = match reader.resolve_element(e.name()).0 {
                                ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                                _ => String::new(),
                            };
                            operation = Some((ns, String::from_utf8_lossy(local).into_owned()));
                        }
                    }
                    _ => {}
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::End(ref e) => {
                depth = depth.saturating_sub(1);
                let local = e.local_name();
                match depth {
                    0 => envelope_closed = true,
                    1 => {
                        if in_body {
                            if let Some(range) = body.as_mut() {
                                range.end = before;
                            }
                        }
                        if in_header {
                            if let Some(range) = header_element.as_mut() {
                                range.end = reader.buffer_position() as usize;
                            }
                        }
                        in_header = false;
                        in_body = false;
                    }
                    _ => {}
                }
                if let Some(part) = id_part.take() {
                    if depth == 3 && part == local.as_ref() {
                        set_id_part(&mut current_id, &part, std::mem::take(&mut text));
                    }
                }
                if let Some((f, d)) = field {
                    if d == depth {
                        store_field(&mut header, f, &mut current_id, std::mem::take(&mut text));
                        field = None;
                    }
                }
            }
            Event::Text(ref t) => {
                if t.len() > limits.max_text_len {
                    return Err(SoapError::TextTooLong(limits.max_text_len));
                }
                // Decoded only where it is read: the input is UTF-8 already, and
                // text deeper in the Body is the provider's, passed on as it is.
                if depth <= 1 || field.is_some() {
                    let s = t.xml_content().map_err(|e| malformed(&reader, e.into()))?;
                    if depth <= 1 && !s.trim().is_empty() {
                        return Err(if depth == 0 && version.is_none() {
                            SoapError::NotAnEnvelope
                        } else {
                            SoapError::ContentOutsideBody
                        });
                    }
                    if field.is_some() {
                        push_text(&mut text, &s, limits)?;
                    }
                }
            }
            Event::CData(ref t) => {
                if t.len() > limits.max_text_len {
                    return Err(SoapError::TextTooLong(limits.max_text_len));
                }
                if depth <= 1 {
                    return Err(SoapError::ContentOutsideBody);
                }
                if field.is_some() {
                    push_text(&mut text, &String::from_utf8_lossy(t), limits)?;
                }
            }
            Event::GeneralRef(ref r) => {
                let resolved =
                    if r.is_char_ref() {
                        r.resolve_char_ref().map_err(|e| malformed(&reader, e))?
                    } else {
                        Some(predefined_entity(r.as_ref()).ok_or_else(|| {
                            SoapError::EntityReference(String::from_utf8_lossy(r.as_ref()).into_owned())
                        })?)
                    };
                if depth <= 1 {
                    return Err(SoapError::ContentOutsideBody);
                }
                if let (Some(c), true) = (resolved, field.is_some()) {
                    push_text(&mut text, c.encode_utf8(&mut [0; 4]), limits)?;
                }
            }
            Event::Decl(ref d) => {
                if let Some(Ok(enc)) = d.encoding() {
                    let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(SoapError::UnsupportedEncoding(enc));
                    }
                }
            }
            Event::DocType(_) => return Err(SoapError::Doctype),
            Event::PI(_) => return Err(SoapError::ProcessingInstruction),
            Event::Comment(_) => {
                if let Some((f, _)) = field {
                    return Err(SoapError::CommentInXRoadField(f.name()));
                }
            }
            Event::Eof => {
                if depth > 0 || !envelope_closed {
                    let (line, column) = position(input, input.len());
                    return Err(if version.is_none() {
                        SoapError::NotAnEnvelope
                    } else {
                        SoapError::Malformed {
                            line,
                            column,
                            message: "the document ends before the envelope is closed".into(),
                        }
                    });
                }
                break;
            }
        }
    }
    let version = version.ok_or(SoapError::NotAnEnvelope)?;
    let body = body.ok_or(SoapError::MissingBody)?;
    Ok(Envelope { version, header, body, header_element, operation, body_children, xroad_fields })
}

fn check_start(e: &BytesStart<'_>, limits: &XmlLimits, depth: usize) -> Result<(), SoapError> {
    if depth + 1 > limits.max_depth {
        return Err(SoapError::TooDeep(limits.max_depth));
    }
    if e.name().as_ref().len() > limits.max_name_len {
        return Err(SoapError::NameTooLong(limits.max_name_len));
    }
    let mut count = 0;
    for attr in e.attributes().with_checks(true) {
        let attr = attr.map_err(|err| SoapError::Malformed { line: 0, column: 0, message: err.to_string() })?;
        count += 1;
        if count > limits.max_attributes {
            return Err(SoapError::TooManyAttributes(limits.max_attributes));
        }
        if attr.key.as_ref().len() > limits.max_name_len {
            return Err(SoapError::NameTooLong(limits.max_name_len));
        }
        if attr.value.len() > limits.max_text_len {
            return Err(SoapError::TextTooLong(limits.max_text_len));
        }
        if attr.value.contains(&b'&') {
            // Attribute values may hold only the predefined and character references.
            attr.unescape_value().map_err(|err| match err {
                quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(_, name)) => {
                    SoapError::EntityReference(name)
                }
                other => SoapError::Malformed { line: 0, column: 0, message: other.to_string() },
            })?;
        }
    }
    Ok(())
}

fn push_text(text: &mut String, s: &str, limits: &XmlLimits) -> Result<(), SoapError> {
    if text.len() + s.len() > limits.max_text_len {
        return Err(SoapError::TextTooLong(limits.max_text_len));
    }
    text.push_str(s);
    Ok(())
}

fn object_type(e: &BytesStart<'_>) -> String {
    e.attributes()
        .filter_map(Result::ok)
        .find(|a| a.key.local_name().as_ref() == b"objectType")
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .unwrap_or_default()
}

fn field_present(h: &XRoadHeader, f: Field) -> bool {
    match f {
        Field::Client => h.client.is_some(),
        Field::Service => h.service.is_some(),
        Field::Id => h.id.is_some(),
        Field::UserId => h.user_id.is_some(),
        Field::Issue => h.issue.is_some(),
        Field::ProtocolVersion => h.protocol_version.is_some(),
    }
}

fn store_field(h: &mut XRoadHeader, f: Field, id: &mut XRoadIdentifier, text: String) {
    let text = text.trim().to_owned();
    match f {
        Field::Client => h.client = Some(std::mem::take(id)),
        Field::Service => h.service = Some(std::mem::take(id)),
        Field::Id => h.id = Some(text),
        Field::UserId => h.user_id = Some(text),
        Field::Issue => h.issue = Some(text),
        Field::ProtocolVersion => h.protocol_version = Some(text),
    }
}

/// Whether an element is a SOAP 1.1 or 1.2 `Body` or `Header`.
fn is_soap_frame(ns: &Ns, local: &[u8]) -> bool {
    matches!(local, b"Body" | b"Header") && (ns_is(ns, SOAP11_NS) || ns_is(ns, SOAP12_NS))
}

/// The bit and name of an identifier part, for the "given twice" check.
fn id_part_bit(local: &[u8]) -> Option<(u8, &'static str)> {
    Some(match local {
        b"xRoadInstance" => (1, "xRoadInstance"),
        b"memberClass" => (2, "memberClass"),
        b"memberCode" => (4, "memberCode"),
        b"subsystemCode" => (8, "subsystemCode"),
        b"serviceCode" => (16, "serviceCode"),
        b"serviceVersion" => (32, "serviceVersion"),
        _ => return None,
    })
}

fn set_id_part(id: &mut XRoadIdentifier, local: &[u8], text: String) {
    let text = text.trim().to_owned();
    match local {
        b"xRoadInstance" => id.instance = text,
        b"memberClass" => id.member_class = text,
        b"memberCode" => id.member_code = text,
        b"subsystemCode" => id.subsystem_code = Some(text),
        b"serviceCode" => id.service_code = Some(text),
        b"serviceVersion" => id.service_version = Some(text),
        _ => {}
    }
}

impl XRoadIdentifier {
    /// Splits `INSTANCE/CLASS/CODE/SUBSYSTEM[/SERVICE[/VERSION]]` into its parts.
    pub fn from_id(id: &str) -> Self {
        let parts: Vec<&str> = id.split('/').collect();
        let get = |i: usize| parts.get(i).map(|s| s.to_string());
        Self {
            object_type: if parts.len() > 4 { "SERVICE".into() } else { "SUBSYSTEM".into() },
            instance: get(0).unwrap_or_default(),
            member_class: get(1).unwrap_or_default(),
            member_code: get(2).unwrap_or_default(),
            subsystem_code: get(3),
            service_code: get(4),
            service_version: get(5),
        }
    }

    fn write(&self, tag: &str, out: &mut String) {
        out.push_str(&format!("<xrd:{tag} id:objectType=\"{}\">", escape(&self.object_type)));
        let mut part = |name: &str, value: Option<&String>| {
            if let Some(v) = value {
                out.push_str(&format!("<id:{name}>{}</id:{name}>", escape(v)));
            }
        };
        part("xRoadInstance", Some(&self.instance));
        part("memberClass", Some(&self.member_class));
        part("memberCode", Some(&self.member_code));
        part("subsystemCode", self.subsystem_code.as_ref());
        part("serviceCode", self.service_code.as_ref());
        part("serviceVersion", self.service_version.as_ref());
        out.push_str(&format!("</xrd:{tag}>"));
    }
}

/// Writes a whole envelope: the X-Road 4.0 header from `header` and `body` (already
/// serialized XML) inside the Body. Namespaces `xrd` and `id` are declared on the
/// Envelope.
pub fn write_envelope(version: SoapVersion, header: &XRoadHeader, body: &str) -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{}" xmlns:xrd="{XROAD_NS}" xmlns:id="{XROAD_ID_NS}"><env:Header>"#,
        version.namespace()
    );
    if let Some(c) = &header.client {
        c.write("client", &mut out);
    }
    if let Some(s) = &header.service {
        s.write("service", &mut out);
    }
    for (tag, value) in [("id", &header.id), ("userId", &header.user_id), ("issue", &header.issue)] {
        if let Some(v) = value {
            out.push_str(&format!("<xrd:{tag}>{}</xrd:{tag}>", escape(v)));
        }
    }
    out.push_str(&format!(
        "<xrd:protocolVersion>{}</xrd:protocolVersion></env:Header><env:Body>{body}</env:Body></env:Envelope>",
        escape(header.protocol_version.as_deref().unwrap_or("4.0"))
    ));
    out
}

/// The character one of XML's five predefined entities stands for; every other
/// entity reference is refused (no DTD can declare one here).
pub fn predefined_entity(name: &[u8]) -> Option<char> {
    match name {
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"amp" => Some('&'),
        b"apos" => Some('\''),
        b"quot" => Some('"'),
        _ => None,
    }
}

/// Escapes text for element content.
pub fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// A SOAP fault carrying the stable error code: SOAP 1.1 `faultcode` is the code
/// itself; SOAP 1.2 puts it in `Code/Subcode/Value` under `Sender`/`Receiver`.
/// Both repeat it in `detail` with the message id when there is one.
pub fn fault(version: SoapVersion, code: ErrorCode, message: &str, message_id: Option<&str>) -> String {
    let message = escape(message);
    let id = message_id.map(|id| format!("<qaqpa:messageId>{}</qaqpa:messageId>", escape(id))).unwrap_or_default();
    match version {
        SoapVersion::V11 => format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="{ns}"><SOAP-ENV:Body><SOAP-ENV:Fault>"#,
                r#"<faultcode>{code}</faultcode><faultstring>{message}</faultstring>"#,
                r#"<detail><qaqpa:error xmlns:qaqpa="urn:qaqpa:error"><qaqpa:code>{code}</qaqpa:code>{id}</qaqpa:error></detail>"#,
                r#"</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
            ),
            ns = SOAP11_NS,
            code = code.as_str(),
            message = message,
            id = id
        ),
        SoapVersion::V12 => format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<env:Envelope xmlns:env="{ns}" xmlns:qaqpa="urn:qaqpa:error"><env:Body><env:Fault>"#,
                r#"<env:Code><env:Value>env:{side}</env:Value><env:Subcode><env:Value>qaqpa:{code}</env:Value></env:Subcode></env:Code>"#,
                r#"<env:Reason><env:Text xml:lang="en">{message}</env:Text></env:Reason>"#,
                r#"<env:Detail><qaqpa:error><qaqpa:code>{code}</qaqpa:code>{id}</qaqpa:error></env:Detail>"#,
                r#"</env:Fault></env:Body></env:Envelope>"#
            ),
            ns = SOAP12_NS,
            side = if code.is_client_fault() { "Sender" } else { "Receiver" },
            code = code.as_str(),
            message = message,
            id = id
        ),
    }
}

#[cfg(test)]
mod tests;
