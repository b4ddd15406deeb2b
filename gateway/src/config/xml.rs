//! `[xml]`: limits on SOAP/XML messages.

use toml::Spanned;

use super::checker::Checker;
use super::defaults;
use super::raw::RawXml;
use super::Xml;

pub(super) fn check(c: &mut Checker, raw: Option<&RawXml>) -> Xml {
    let adapter = defaults::xml_limits();
    let mut value = |get: fn(&RawXml) -> Option<&Spanned<usize>>, default: usize, key: &str| {
        c.nonzero(raw.and_then(get), default, &format!("xml.{key}"), "must be positive")
    };
    Xml {
        max_message_bytes: value(|x| x.max_message_bytes.as_ref(), defaults::XML_MESSAGE_BYTES, "max_message_bytes"),
        limits: qaqpa_adapters::soap::XmlLimits {
            max_depth: value(|x| x.max_depth.as_ref(), adapter.max_depth, "max_depth"),
            max_attributes: value(|x| x.max_attributes.as_ref(), adapter.max_attributes, "max_attributes"),
            max_elements: value(|x| x.max_elements.as_ref(), adapter.max_elements, "max_elements"),
            max_name_len: value(|x| x.max_name_len.as_ref(), adapter.max_name_len, "max_name_len"),
            max_text_len: value(|x| x.max_text_len.as_ref(), adapter.max_text_len, "max_text_len"),
        },
    }
}
