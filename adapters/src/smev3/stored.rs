//! A SMEV 3 message as the mailbox keeps it: the sender's signed part, its
//! signature and inline attachments, each as sent (detached with its namespaces,
//! see [`super::Part::detached`]), so the taker receives them byte for byte and the
//! sender's signature stays verifiable.
//!
//! ```text
//! <qs:Stored xmlns:qs="urn:qaqpa:smev3:stored:1" version="1.1">
//!   <qs:Data>SenderProvided…Data</qs:Data><qs:Signature>ds:Signature</qs:Signature>?
//!   <qs:Attachments>AttachmentContentList</qs:Attachments>?
//! </qs:Stored>
//! ```

use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::Version;

pub const STORED_NS: &str = "urn:qaqpa:smev3:stored:1";
/// The content type a stored SMEV 3 message travels with in the mailbox.
pub const STORED_CONTENT_TYPE: &str = "application/vnd.qaqpa.smev3+xml";

/// The stored form of a message's parts.
pub fn store(version: Version, data: &[u8], signature: Option<&[u8]>, attachments: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + signature.map_or(0, <[u8]>::len) + 256);
    out.extend_from_slice(format!("<qs:Stored xmlns:qs=\"{STORED_NS}\" version=\"{}\">", version.label()).as_bytes());
    for (tag, part) in [("Data", Some(data)), ("Signature", signature), ("Attachments", attachments)] {
        if let Some(part) = part {
            out.extend_from_slice(format!("<qs:{tag}>").as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(format!("</qs:{tag}>").as_bytes());
        }
    }
    out.extend_from_slice(b"</qs:Stored>");
    out
}

/// Byte ranges of a stored message's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub version: Version,
    pub data: Range<usize>,
    pub signature: Option<Range<usize>>,
    pub attachments: Option<Range<usize>>,
}

/// Reads what [`store`] wrote; `None` for anything else (a message that did not
/// come through the SMEV 3 face).
pub fn load(bytes: &[u8]) -> Option<Stored> {
    if !bytes.starts_with(b"<qs:Stored ") {
        return None;
    }
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut version = None;
    let (mut data, mut signature, mut attachments) = (None, None, None);
    let mut open: Option<(Vec<u8>, usize)> = None;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event().ok()? {
            Event::Start(e) => {
                if depth == 0 {
                    let v = e.try_get_attribute("version").ok()??;
                    version = Version::parse(std::str::from_utf8(&v.value).ok()?);
                } else if depth == 1 {
                    open = Some((e.local_name().as_ref().to_vec(), reader.buffer_position() as usize));
                }
                depth += 1;
            }
            Event::End(_) => {
                depth = depth.checked_sub(1)?;
                if depth == 1 {
                    let (name, start) = open.take()?;
                    let range = Some(start..before);
                    match name.as_slice() {
                        b"Data" => data = range,
                        b"Signature" => signature = range,
                        b"Attachments" => attachments = range,
                        _ => return None,
                    }
                }
            }
            Event::Eof => break,
            Event::DocType(_) => return None,
            _ => {}
        }
    }
    Some(Stored { version: version?, data: data?, signature, attachments })
}

/// The text as one element (an XML declaration before it dropped), if it is one
/// well-formed element whose elements all have a namespace (what SMEV 3 content
/// must be): such a payload goes into `MessagePrimaryContent` as it is.
pub fn xml_fragment(text: &str) -> Option<&str> {
    let mut rest = text.trim();
    if rest.starts_with("<?xml") {
        rest = rest[rest.find("?>")? + 2..].trim_start();
    }
    let mut reader = quick_xml::NsReader::from_str(rest);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        let (ns, event) = reader.read_resolved_event().ok()?;
        let qualified = matches!(ns, quick_xml::name::ResolveResult::Bound(_));
        match event {
            Event::Start(_) | Event::Empty(_) if !qualified || depth >= 256 => return None,
            Event::Start(_) => {
                roots += usize::from(depth == 0);
                depth += 1;
            }
            Event::Empty(_) => roots += usize::from(depth == 0),
            Event::End(_) => depth = depth.checked_sub(1)?,
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => return None,
            Event::GeneralRef(r)
                if r.resolve_char_ref().ok()?.is_none() && crate::soap::predefined_entity(&r).is_none() =>
            {
                return None
            }
            Event::PI(_) | Event::DocType(_) | Event::Decl(_) => return None,
            Event::Eof => break,
            _ => {}
        }
    }
    (roots == 1 && depth == 0).then_some(rest)
}

/// Whether a text is well-formed XML (the face's own contract documents).
pub fn well_formed(text: &str) -> bool {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_come_back_byte_for_byte() {
        let data = b"<a:D xmlns:a=\"u\">x</a:D>";
        let sig = b"<ds:Signature xmlns:ds=\"d\"><ds:SignedInfo/></ds:Signature>";
        let stored = store(Version::V12, data, Some(sig), None);
        let parts = load(&stored).unwrap();
        assert_eq!(parts.version, Version::V12);
        assert_eq!(&stored[parts.data.clone()], data);
        assert_eq!(&stored[parts.signature.clone().unwrap()], sig);
        assert_eq!(parts.attachments, None);
        assert_eq!(load(b"{\"json\": true}"), None);
        assert_eq!(load(b"<qs:Stored version=\"1.1\"><qs:Data>"), None);
    }
}
