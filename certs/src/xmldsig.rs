//! XMLDSig for SOAP messages (docs/signatures.md): an enveloped signature in the SOAP Header
//! signing, by Id reference, the Body, every X-Road header element and a
//! `wsu:Timestamp`; exclusive c14n; rsa-sha256, ecdsa-sha256 (P-256), ed25519;
//! sha256 / sha512 digests; the signer's X.509 chain in KeyInfo.
//!
//! Verification defeats signature wrapping by position, not by name: every Id in the
//! document must be unique, each Reference resolves to exactly one element, and the
//! elements the gateway routes and forwards — the Envelope's one Body and the
//! Header's own X-Road children — must be among the signed ones. A signed Body moved
//! into the Header or an Object, an unsigned second Body, an unsigned header beside
//! a signed one: each leaves an element the gateway would use unsigned, and is refused.
//!
//! Comments inside signed elements are refused too (issue 15): exclusive c14n drops
//! them, so `<iin>1<!---->00</iin>` verifies as `100` while a provider whose parser
//! reads the first text node sees `1` (the SAML comment-truncation class of bugs).

use std::collections::HashMap;
use std::ops::Range;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qaqpa_adapters::soap::{SOAP11_NS, SOAP12_NS, XROAD_NS};
use std::borrow::Cow;

use crate::c14n::scan::{Scanner, Token};

use crate::c14n::{self, C14nError, C14nOptions};
use crate::keys::{KeyError, SignatureAlg, SigningKey};

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const WSU_NS: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Most References one signature may carry (each costs a canonicalization).
pub const MAX_REFERENCES: usize = 32;
/// Most certificates in KeyInfo.
pub const MAX_CHAIN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    Sha256,
    Sha512,
}

impl DigestAlg {
    pub fn uri(self) -> &'static str {
        match self {
            Self::Sha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
            Self::Sha512 => "http://www.w3.org/2001/04/xmlenc#sha512",
        }
    }

    fn from_uri(uri: &str) -> Option<Self> {
        [Self::Sha256, Self::Sha512].into_iter().find(|d| d.uri() == uri)
    }

    fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha512 => &ring::digest::SHA512,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        ring::digest::digest(self.ring(), data).as_ref().to_vec()
    }

    /// A running digest that canonicalization writes into.
    pub fn digester(self) -> Digesting {
        Digesting { context: ring::digest::Context::new(self.ring()), buffer: [0; DIGEST_BUFFER], len: 0 }
    }
}

/// A digest that canonical bytes are written into as they are produced
/// (docs/PERFORMANCE.md, "Signatures"): no canonical copy of a 64 KiB Body. c14n
/// writes many short pieces (a tag, a text run); they gather here so the hash
/// is fed whole blocks, not a call per piece.
pub trait Digester: c14n::Sink {
    fn finish(self: Box<Self>) -> Vec<u8>;
}

const DIGEST_BUFFER: usize = 1024;

pub struct Digesting {
    context: ring::digest::Context,
    buffer: [u8; DIGEST_BUFFER],
    len: usize,
}

impl c14n::Sink for Digesting {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > DIGEST_BUFFER {
            self.context.update(&self.buffer[..self.len]);
            self.len = 0;
            if bytes.len() >= DIGEST_BUFFER {
                self.context.update(bytes);
                return;
            }
        }
        self.buffer[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

impl Digesting {
    pub fn finish(mut self) -> Vec<u8> {
        self.context.update(&self.buffer[..self.len]);
        self.context.finish().as_ref().to_vec()
    }
}

impl Digester for Digesting {
    fn finish(self: Box<Self>) -> Vec<u8> {
        Digesting::finish(*self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsigError {
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("not a SOAP envelope with one Header and one Body")]
    NotSoap,
    #[error("the message is not signed")]
    NoSignature,
    #[error("more than one signature")]
    TooManySignatures,
    #[error("the signature must be a direct child of the SOAP Header")]
    MisplacedSignature,
    #[error("malformed signature: {0}")]
    Malformed(&'static str),
    #[error("the Id {0:?} appears more than once")]
    DuplicateId(String),
    #[error("reference {0:?} must be a same-document Id reference (#id)")]
    BadReferenceUri(String),
    #[error("reference #{0} names no element")]
    UnresolvedReference(String),
    #[error("unsupported or disallowed algorithm {0}")]
    Algorithm(String),
    #[error("the digest of #{0} does not match: the element was changed")]
    DigestMismatch(String),
    #[error("the signature over SignedInfo does not verify ({0})")]
    SignatureValue(KeyError),
    #[error("KeyInfo carries no X.509 certificate")]
    NoCertificate,
    #[error("{0} is not covered by the signature")]
    Unsigned(String),
    #[error("wsu:Timestamp/wsu:Created is missing or not an RFC 3339 time")]
    Timestamp,
    #[error("canonicalization: {0}")]
    C14n(#[from] C14nError),
    #[error("the message already carries a signature")]
    AlreadySigned,
    #[error("{0}")]
    Key(KeyError),
    #[error("a comment inside the signed element {0}: a provider could read it differently than it was signed")]
    CommentInSignedContent(String),
}

/// An element of the document: where it is and what it is.
#[derive(Debug, Clone)]
struct Element {
    /// Start tag: `<` .. just past `>`.
    start: usize,
    start_tag_end: usize,
    /// End tag's `<`; the element ends just past its `>`.
    end_tag: usize,
    name_len: usize,
    parent: Option<usize>,
    /// One of the namespaces the signature policy is about, or "" for any other.
    ns: &'static str,
    /// The local name, for elements of those namespaces only (the names the
    /// checks compare against are static: no allocation per element).
    local: Cow<'static, str>,
    id: Option<String>,
    /// Declares the `wsu` prefix (as what URI).
    declares_wsu: Option<String>,
    /// Namespace declarations on this element: (prefix, "" for the default; URI).
    declarations: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Reference {
    uri: String,
    transforms: Vec<(String, Option<Vec<String>>)>,
    digest_alg: String,
    digest_value: String,
}

#[derive(Debug, Default)]
struct SignatureParts {
    element: usize,
    signed_info: Option<usize>,
    c14n_alg: String,
    c14n_prefixes: Option<Vec<String>>,
    signature_alg: String,
    references: Vec<Reference>,
    value: String,
    certificates: Vec<String>,
}

/// One pass over the document: every element, the Id index, the signatures.
struct Index {
    elements: Vec<Element>,
    ids: HashMap<String, usize>,
    signatures: Vec<SignatureParts>,
    /// Text of each `wsu:Created` element, by element index.
    created: HashMap<usize, String>,
    /// Text of each `xrd:id` element, by element index.
    xroad_ids: HashMap<usize, String>,
    /// Where each comment starts, in document order.
    comments: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    DigestValue,
    SignatureValue,
    Certificate,
    Created,
    XRoadId,
}

/// The namespaces the policy is about, as static strings: no allocation per element.
fn known_ns(uri: &[u8]) -> &'static str {
    [SOAP11_NS, SOAP12_NS, DSIG_NS, WSU_NS, XROAD_NS, EXC_C14N, wsse::WSSE_NS]
        .into_iter()
        .find(|n| n.as_bytes() == uri)
        .unwrap_or("")
}

/// An element's local name as a static string when it is one the checks know (the
/// envelope's, XMLDSig's, WS-Security's, X-Road's header fields), else a copy.
fn known_local(local: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &[
        "Envelope",
        "Header",
        "Body",
        "Fault",
        "Signature",
        "SignedInfo",
        "CanonicalizationMethod",
        "SignatureMethod",
        "Reference",
        "Transforms",
        "Transform",
        "DigestMethod",
        "DigestValue",
        "SignatureValue",
        "KeyInfo",
        "X509Data",
        "X509Certificate",
        "InclusiveNamespaces",
        "Timestamp",
        "Created",
        "Expires",
        "Security",
        "BinarySecurityToken",
        "SecurityTokenReference",
        "KeyIdentifier",
        "client",
        "service",
        "id",
        "userId",
        "issue",
        "protocolVersion",
        "requestHash",
        "representedParty",
    ];
    match KNOWN.iter().find(|k| **k == local) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(local.to_owned()),
    }
}

fn is_id_attribute(local: &[u8], ns: Option<&[u8]>) -> bool {
    match ns {
        None => matches!(local, b"Id" | b"ID" | b"id"),
        Some(ns) => ns == WSU_NS.as_bytes() && local == b"Id",
    }
}

/// The namespace a prefix ("" for the default) is bound to, innermost first;
/// `None` when unbound (an empty URI undeclares).
fn resolve<'s>(bindings: &'s [(&str, Cow<'_, str>)], prefix: &str) -> Option<&'s str> {
    if prefix == "xml" {
        return Some("http://www.w3.org/XML/1998/namespace");
    }
    bindings.iter().rev().find(|(p, _)| *p == prefix).map(|(_, uri)| uri.as_ref()).filter(|u| !u.is_empty())
}

/// The one parse of a message (issue 21): c14n's tokenizer (no quick-xml reader
/// pass), namespaces resolved from the declarations as they open and close.
fn index(doc: &[u8]) -> Result<Index, DsigError> {
    let mut scanner = Scanner::new(doc, 0);
    let scan_error = |(at, message): c14n::scan::ScanError| DsigError::Xml(format!("{message} at byte {at}"));
    let mut elements: Vec<Element> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut signatures: Vec<SignatureParts> = Vec::new();
    let mut created = HashMap::new();
    let mut xroad_ids = HashMap::new();
    let mut comments = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    let mut capture: Option<(Capture, usize, String)> = None;
    // Namespace bindings in scope, and their count at each open element.
    let mut bindings: Vec<(&str, Cow<'_, str>)> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut tag_attributes: Vec<(&str, Cow<'_, str>)> = Vec::new();
    // (local name, unprefixed, value) of the attributes a check looks at, per element.
    let mut attrs: Vec<(&str, bool, Cow<'_, str>)> = Vec::new();
    while let Some((at, token)) = scanner.next_token().map_err(scan_error)? {
        let closes = match token {
            Token::Start { tag, name_len, empty } => {
                let qname = c14n::read_tag(at, tag, name_len, &mut tag_attributes)?;
                marks.push(bindings.len());
                for (key, value) in &tag_attributes {
                    if *key == "xmlns" {
                        bindings.push(("", value.clone()));
                    } else if let Some(prefix) = key.strip_prefix("xmlns:") {
                        bindings.push((prefix, value.clone()));
                    }
                }
                let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
                let ns = match resolve(&bindings, prefix) {
                    Some(uri) => known_ns(uri.as_bytes()),
                    None if prefix.is_empty() => "",
                    None => return Err(DsigError::Xml(format!("unbound prefix {prefix}"))),
                };
                // Elements of other namespaces (the Body's content) need no name.
                let local = if ns.is_empty() { Cow::Borrowed("") } else { known_local(local) };
                let index = elements.len();
                let mut element = Element {
                    start: at,
                    start_tag_end: scanner.position(),
                    end_tag: 0,
                    name_len,
                    parent: stack.last().copied(),
                    ns,
                    local,
                    id: None,
                    declares_wsu: None,
                    declarations: Vec::new(),
                };
                attrs.clear();
                for (key, value) in &tag_attributes {
                    let declaration = *key == "xmlns" || key.starts_with("xmlns:");
                    let (attr_prefix, attr_local) = key.split_once(':').unwrap_or(("", key));
                    let id_like = matches!(attr_local, "Id" | "ID" | "id");
                    if !(declaration || id_like || !element.ns.is_empty()) {
                        continue; // an attribute no check looks at
                    }
                    if declaration {
                        if *key == "xmlns:wsu" {
                            element.declares_wsu = Some(value.to_string());
                        }
                        let prefix = key.strip_prefix("xmlns:").unwrap_or("");
                        element.declarations.push((prefix.to_owned(), value.to_string()));
                        continue;
                    }
                    let attr_ns = match attr_prefix {
                        "" => None,
                        p => Some(resolve(&bindings, p).ok_or_else(|| DsigError::Xml(format!("unbound prefix {p}")))?),
                    };
                    if is_id_attribute(attr_local.as_bytes(), attr_ns.map(str::as_bytes)) {
                        let value = value.to_string();
                        if ids.insert(value.clone(), index).is_some() || element.id.is_some() {
                            return Err(DsigError::DuplicateId(value));
                        }
                        element.id = Some(value);
                    }
                    attrs.push((attr_local, attr_ns.is_none(), value.clone()));
                }
                let attr = |name: &[u8]| {
                    attrs.iter().find(|(l, unprefixed, _)| l.as_bytes() == name && *unprefixed).map(|a| a.2.to_string())
                };
                if element.ns == DSIG_NS {
                    dsig_start(&element, index, &elements, &attr, &mut signatures, &mut capture)?;
                } else if element.ns == EXC_C14N && element.local == "InclusiveNamespaces" {
                    let prefixes = attr(b"PrefixList").unwrap_or_default();
                    let list = Some(prefixes.split_whitespace().map(str::to_owned).collect());
                    let parent = element.parent.map(|p| elements[p].local.as_ref());
                    let sig = signatures.last_mut().ok_or(DsigError::Malformed("InclusiveNamespaces outside"))?;
                    match parent {
                        Some("Transform") => {
                            let t = sig.references.last_mut().and_then(|r| r.transforms.last_mut());
                            t.ok_or(DsigError::Malformed("InclusiveNamespaces without a Transform"))?.1 = list;
                        }
                        Some("CanonicalizationMethod") => sig.c14n_prefixes = list,
                        _ => return Err(DsigError::Malformed("InclusiveNamespaces out of place")),
                    }
                } else if wsse::is_key_identifier(&element, &elements, &attr) {
                    // WS-Security's form of KeyInfo (ШЭП): the certificate itself.
                    let sig = signatures.last_mut().ok_or(DsigError::Malformed("KeyIdentifier outside"))?;
                    if sig.certificates.len() == MAX_CHAIN {
                        return Err(DsigError::Malformed("too many certificates"));
                    }
                    capture = Some((Capture::Certificate, index, String::new()));
                } else if element.ns == WSU_NS && element.local == "Created" {
                    capture = Some((Capture::Created, index, String::new()));
                } else if element.ns == XROAD_NS && element.local == "id" {
                    capture = Some((Capture::XRoadId, index, String::new()));
                }
                elements.push(element);
                stack.push(index);
                empty
            }
            Token::End { name } => {
                let open = stack.last().map(|&i| &elements[i]);
                if open.is_none_or(|e| doc.get(e.start + 1..e.start + 1 + e.name_len) != Some(name)) {
                    return Err(DsigError::Xml(format!("an end tag does not match its start tag at byte {at}")));
                }
                true
            }
            Token::Text(t) => {
                if let Some((_, _, text)) = capture.as_mut() {
                    text.push_str(&String::from_utf8_lossy(t));
                }
                false
            }
            Token::Ref(r) => {
                if let Some((_, _, text)) = capture.as_mut() {
                    text.push(c14n::reference(r).ok_or_else(|| DsigError::Xml("unknown entity".into()))?);
                }
                false
            }
            Token::Comment(_) => {
                comments.push(at);
                false
            }
            Token::DocType => return Err(DsigError::Xml("a DOCTYPE is not allowed".into())),
            Token::CData(_) | Token::Pi(_) => false,
        };
        if !closes {
            continue;
        }
        // An end tag, or an empty element's start tag (it ends where its tag does).
        let index = stack.pop().ok_or_else(|| DsigError::Xml("unbalanced end tag".into()))?;
        bindings.truncate(marks.pop().unwrap_or(0));
        elements[index].end_tag = if matches!(token, Token::End { .. }) { at } else { scanner.position() };
        if let Some((what, _, text)) = capture.take_if(|(_, owner, _)| *owner == index) {
            let sig = signatures.last_mut();
            match (what, sig) {
                (Capture::Created, _) => {
                    created.insert(index, text);
                }
                (Capture::XRoadId, _) => {
                    xroad_ids.insert(index, text);
                }
                (Capture::DigestValue, Some(sig)) => {
                    if let Some(r) = sig.references.last_mut() {
                        r.digest_value = text;
                    }
                }
                (Capture::SignatureValue, Some(sig)) => sig.value = text,
                (Capture::Certificate, Some(sig)) => sig.certificates.push(text),
                _ => {}
            }
        }
    }
    if !stack.is_empty() || elements.is_empty() {
        return Err(DsigError::Xml("the document is incomplete".into()));
    }
    Ok(Index { elements, ids, signatures, created, xroad_ids, comments })
}

/// Collects the parts of a `ds:` element of a Signature, checking it sits where
/// XMLDSig puts it.
fn dsig_start(
    element: &Element,
    index: usize,
    elements: &[Element],
    attr: &dyn Fn(&[u8]) -> Option<String>,
    signatures: &mut Vec<SignatureParts>,
    capture: &mut Option<(Capture, usize, String)>,
) -> Result<(), DsigError> {
    let parent = element.parent.map(|p| (elements[p].ns, elements[p].local.as_ref()));
    let parent_is = |name: &str| matches!(parent, Some((ns, local)) if ns == DSIG_NS && local == name);
    let in_signature = signatures.last().is_some_and(|s| elements[s.element].end_tag == 0);
    if element.local == "Signature" {
        if in_signature {
            return Err(DsigError::Malformed("a Signature inside a Signature"));
        }
        signatures.push(SignatureParts { element: index, ..Default::default() });
        return Ok(());
    }
    if !in_signature {
        // ds: elements elsewhere (e.g. a wrapped copy) are not part of a signature.
        return Ok(());
    }
    let sig = signatures.last_mut().expect("in a signature");
    let misplaced = DsigError::Malformed("a SignedInfo part out of place");
    match element.local.as_ref() {
        "SignedInfo" if parent_is("Signature") && sig.signed_info.is_some() => {
            return Err(DsigError::Malformed("two SignedInfo"))
        }
        "SignedInfo" if parent_is("Signature") => sig.signed_info = Some(element.start),
        "CanonicalizationMethod" if parent_is("SignedInfo") => sig.c14n_alg = attr(b"Algorithm").unwrap_or_default(),
        "SignatureMethod" if parent_is("SignedInfo") => sig.signature_alg = attr(b"Algorithm").unwrap_or_default(),
        "Reference" if parent_is("SignedInfo") => {
            if sig.references.len() == MAX_REFERENCES {
                return Err(DsigError::Malformed("too many References"));
            }
            let uri = attr(b"URI").ok_or(DsigError::BadReferenceUri(String::new()))?;
            sig.references.push(Reference { uri, ..Default::default() });
        }
        "Transforms" if parent_is("Reference") => {}
        "Transform" if parent_is("Transforms") => {
            let r = sig.references.last_mut().ok_or(misplaced)?;
            if r.transforms.len() == 4 {
                return Err(DsigError::Malformed("too many Transforms"));
            }
            r.transforms.push((attr(b"Algorithm").unwrap_or_default(), None));
        }
        "DigestMethod" if parent_is("Reference") => {
            sig.references.last_mut().ok_or(misplaced)?.digest_alg = attr(b"Algorithm").unwrap_or_default()
        }
        "DigestValue" if parent_is("Reference") => *capture = Some((Capture::DigestValue, index, String::new())),
        "SignatureValue" if parent_is("Signature") => *capture = Some((Capture::SignatureValue, index, String::new())),
        "X509Certificate" if parent_is("X509Data") => {
            if sig.certificates.len() == MAX_CHAIN {
                return Err(DsigError::Malformed("too many certificates"));
            }
            *capture = Some((Capture::Certificate, index, String::new()))
        }
        "KeyInfo" | "X509Data" | "Object" => {}
        "SignedInfo"
        | "CanonicalizationMethod"
        | "SignatureMethod"
        | "Reference"
        | "Transforms"
        | "Transform"
        | "DigestMethod"
        | "DigestValue"
        | "SignatureValue"
        | "X509Certificate" => return Err(misplaced),
        _ => {}
    }
    Ok(())
}

impl Index {
    /// Refuses a comment anywhere inside element `i` (between its start and end tags).
    fn refuse_comments_in(&self, i: usize) -> Result<(), DsigError> {
        let e = &self.elements[i];
        // Comments are in document order: the first one past the start tag decides.
        let first = self.comments.partition_point(|&at| at < e.start_tag_end);
        match self.comments.get(first) {
            Some(&at) if at < e.end_tag => {
                let name = if e.local.is_empty() { e.id.clone().unwrap_or_default() } else { e.local.to_string() };
                Err(DsigError::CommentInSignedContent(name))
            }
            _ => Ok(()),
        }
    }

    /// The namespace declarations in scope at element `i` from its ancestors,
    /// outermost first.
    fn scope_of(&self, i: usize) -> Vec<(String, String)> {
        let mut ancestors = Vec::new();
        let mut at = self.elements[i].parent;
        while let Some(p) = at {
            ancestors.push(p);
            at = self.elements[p].parent;
        }
        ancestors.iter().rev().flat_map(|&a| self.elements[a].declarations.iter().cloned()).collect()
    }

    /// Canonicalizes element `i`, reading only its own bytes.
    fn canonicalize<S: c14n::Sink + ?Sized>(
        &self,
        doc: &[u8],
        i: usize,
        exclude: Option<usize>,
        options: &C14nOptions,
        out: &mut S,
    ) -> Result<(), DsigError> {
        let scope = self.scope_of(i);
        Ok(c14n::canonicalize_into(doc, self.elements[i].start, &scope, exclude, options, out)?)
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, DsigError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| DsigError::Malformed("bad base64"))
}

fn c14n_options(alg: &str, prefixes: Option<&Vec<String>>) -> Result<C14nOptions, DsigError> {
    let with_comments = match alg {
        EXC_C14N => false,
        EXC_C14N_COMMENTS => true,
        other => return Err(DsigError::Algorithm(other.to_owned())),
    };
    Ok(C14nOptions { with_comments, inclusive_prefixes: prefixes.cloned().unwrap_or_default() })
}

/// The SOAP structure the policy is about: Envelope, its one Header and one Body.
struct Soap {
    header: usize,
    body: usize,
}

fn soap_structure(index: &Index) -> Result<Soap, DsigError> {
    let envelope = &index.elements[0];
    if envelope.local != "Envelope" || (envelope.ns != SOAP11_NS && envelope.ns != SOAP12_NS) {
        return Err(DsigError::NotSoap);
    }
    let children = |local: &str| {
        index
            .elements
            .iter()
            .enumerate()
            .filter(|(_, e)| e.parent == Some(0) && e.ns == envelope.ns && e.local == local)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    match (children("Header").as_slice(), children("Body").as_slice()) {
        ([header], [body]) => Ok(Soap { header: *header, body: *body }),
        _ => Err(DsigError::NotSoap),
    }
}

/// Where a verifier found the SOAP Header (the whole element) and the Body's
/// content (between its tags), as its own tokenizer read them: the caller compares
/// them with what its reader routed on, so the two parsers cannot disagree about
/// what was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure {
    pub header: Range<usize>,
    pub body_content: Range<usize>,
}

impl Structure {
    fn of(doc: &[u8], index: &Index, soap: &Soap) -> Self {
        let body = &index.elements[soap.body];
        Structure {
            header: element_range(doc, &index.elements[soap.header]),
            body_content: body.start_tag_end..body.end_tag,
        }
    }
}

/// What a verified SOAP signature vouches for.
#[derive(Debug, Clone)]
pub struct SoapSignature {
    pub alg: SignatureAlg,
    /// The signer's chain from KeyInfo, leaf first (trust is the caller's check).
    pub chain: Vec<Vec<u8>>,
    /// `wsu:Created` of the signed Timestamp, Unix seconds.
    pub created: i64,
    pub signature_value: Vec<u8>,
    /// Byte range of the signed Body element.
    pub body: Range<usize>,
    /// Where this verifier found the Header and the Body's content.
    pub structure: Structure,
    /// The signed `xrd:id` (trimmed), if the Header has one. X-Road requires it;
    /// replay protection rests on it, so the caller refuses a signed message without.
    pub message_id: Option<String>,
}

/// What [`check_signature`] proves.
struct Checked {
    /// The elements the References name, each digest checked.
    signed: Vec<usize>,
    /// The signer's chain from KeyInfo, leaf first (trust is the caller's check).
    chain: Vec<Vec<u8>>,
    /// The SignatureValue, decoded.
    value: Vec<u8>,
}

/// The part every enveloped-signature verifier shares (`verify_soap`,
/// `verify_wsse`): each Reference is a same-document `#id` naming one indexed
/// element, canonicalized under its transforms (enveloped, one exclusive c14n) and
/// its digest checked; signed content holds no comments; KeyInfo carries the
/// signer's certificate, whose key made the SignatureValue over the canonical
/// SignedInfo. What the signature must cover is the caller's rule.
fn check_signature(
    index: &Index,
    doc: &[u8],
    sig: &SignatureParts,
    algorithms: &dyn wsse::Algorithms,
) -> Result<Checked, DsigError> {
    let signed_info = sig.signed_info.ok_or(DsigError::Malformed("no SignedInfo"))?;
    let info_options = c14n_options(&sig.c14n_alg, sig.c14n_prefixes.as_ref())?;
    if sig.references.is_empty() {
        return Err(DsigError::Malformed("no Reference"));
    }
    let signature_start = index.elements[sig.element].start;
    let mut signed = Vec::with_capacity(sig.references.len());
    let mut canonical = Vec::new();
    for reference in &sig.references {
        let id = reference
            .uri
            .strip_prefix('#')
            .filter(|id| !id.is_empty() && !id.starts_with("xpointer("))
            .ok_or_else(|| DsigError::BadReferenceUri(reference.uri.clone()))?;
        let target = *index.ids.get(id).ok_or_else(|| DsigError::UnresolvedReference(id.to_owned()))?;
        let mut options = None;
        let mut enveloped = false;
        for (alg, prefixes) in &reference.transforms {
            match alg.as_str() {
                ENVELOPED => enveloped = true,
                EXC_C14N | EXC_C14N_COMMENTS if options.is_none() => {
                    options = Some(c14n_options(alg, prefixes.as_ref())?)
                }
                other => return Err(DsigError::Algorithm(other.to_owned())),
            }
        }
        let options = options.ok_or(DsigError::Algorithm("(no exclusive c14n transform)".to_owned()))?;
        let exclude = enveloped.then_some(signature_start);
        let digest = match algorithms.digester(&reference.digest_alg) {
            // Digesting while canonicalizing: the canonical form is never stored.
            Some(mut digester) => {
                index.canonicalize(doc, target, exclude, &options, &mut *digester)?;
                digester.finish()
            }
            None => {
                canonical.clear();
                index.canonicalize(doc, target, exclude, &options, &mut canonical)?;
                algorithms
                    .digest(&reference.digest_alg, &canonical)
                    .ok_or_else(|| DsigError::Algorithm(reference.digest_alg.clone()))?
            }
        };
        if digest != base64_decode(&reference.digest_value)? {
            return Err(DsigError::DigestMismatch(id.to_owned()));
        }
        signed.push(target);
    }
    for &target in &signed {
        index.refuse_comments_in(target)?;
    }
    if sig.certificates.is_empty() {
        return Err(DsigError::NoCertificate);
    }
    let chain = sig.certificates.iter().map(|c| base64_decode(c)).collect::<Result<Vec<_>, _>>()?;
    canonical.clear();
    let info_element = index.elements.iter().position(|e| e.start == signed_info).expect("indexed");
    index.canonicalize(doc, info_element, None, &info_options, &mut canonical)?;
    let value = base64_decode(&sig.value)?;
    algorithms.verify(&sig.signature_alg, &chain[0], &canonical, &value)?;
    Ok(Checked { signed, chain, value })
}

/// Verifies the signature of a SOAP message and that it covers what the gateway
/// uses. The chain's trust and the timestamp's freshness are the caller's to judge.
pub fn verify_soap(doc: &[u8]) -> Result<SoapSignature, DsigError> {
    verify_indexed(doc, &index(doc)?)
}

/// What [`verify_or_sign_soap`] found or did.
#[derive(Debug)]
pub enum VerifiedOrSigned {
    /// The message was signed; this is what its signature vouches for.
    Verified(SoapSignature),
    /// The message had no signature: it is signed now (`doc`), with `value`.
    Signed { doc: Vec<u8>, value: Vec<u8> },
}

/// The key, chain, digest and time [`verify_or_sign_soap`] signs with.
pub struct SignWith<'a> {
    pub key: &'a SigningKey,
    pub chain: &'a [Vec<u8>],
    pub digest: DigestAlg,
    pub now_unix: i64,
}

/// Which step of [`verify_or_sign_soap`] failed.
#[derive(Debug)]
pub enum VerifyOrSignError {
    Verify(DsigError),
    Sign(DsigError),
}

/// [`verify_soap`]; when the message has no signature and `sign` is given, signs it
/// as [`sign_soap_with_value`] does, on the same index of the message (one parse
/// for the failed verify and the signing: the gateway signing on behalf).
pub fn verify_or_sign_soap(doc: &[u8], sign: Option<SignWith<'_>>) -> Result<VerifiedOrSigned, VerifyOrSignError> {
    let index = index(doc).map_err(VerifyOrSignError::Verify)?;
    match (verify_indexed(doc, &index), sign) {
        (Err(DsigError::NoSignature), Some(s)) => {
            let (doc, value) =
                sign_indexed(doc, index, s.key, s.chain, s.digest, s.now_unix).map_err(VerifyOrSignError::Sign)?;
            Ok(VerifiedOrSigned::Signed { doc, value })
        }
        (verified, _) => verified.map(VerifiedOrSigned::Verified).map_err(VerifyOrSignError::Verify),
    }
}

fn verify_indexed(doc: &[u8], index: &Index) -> Result<SoapSignature, DsigError> {
    let soap = soap_structure(index)?;
    let sig = match index.signatures.as_slice() {
        [] => return Err(DsigError::NoSignature),
        [one] => one,
        _ => return Err(DsigError::TooManySignatures),
    };
    if index.elements[sig.element].parent != Some(soap.header) {
        return Err(DsigError::MisplacedSignature);
    }
    let alg = SignatureAlg::from_xmldsig_uri(&sig.signature_alg)
        .ok_or_else(|| DsigError::Algorithm(sig.signature_alg.clone()))?;
    let Checked { signed, chain, value } = check_signature(index, doc, sig, &wsse::Standard)?;

    // Coverage: what the gateway routes and forwards must be what was signed.
    let is_signed = |i: usize| signed.contains(&i);
    if !is_signed(soap.body) {
        return Err(DsigError::Unsigned("the SOAP Body".into()));
    }
    let mut timestamp = None;
    let mut message_id = None;
    for (i, e) in index.elements.iter().enumerate().filter(|(_, e)| e.parent == Some(soap.header)) {
        if e.ns == XROAD_NS && e.local == "id" {
            message_id = index.xroad_ids.get(&i).map(|t| t.trim().to_owned());
        }
        if e.ns == XROAD_NS && !is_signed(i) {
            return Err(DsigError::Unsigned(format!("the X-Road header element {}", e.local)));
        }
        if e.ns == WSU_NS && e.local == "Timestamp" && (timestamp.replace(i).is_some() || !is_signed(i)) {
            return Err(DsigError::Unsigned("the wsu:Timestamp".into()));
        }
    }
    let timestamp = timestamp.ok_or(DsigError::Timestamp)?;
    let created = index
        .elements
        .iter()
        .enumerate()
        .find(|(_, e)| e.parent == Some(timestamp) && e.ns == WSU_NS && e.local == "Created")
        .and_then(|(i, _)| index.created.get(&i))
        .and_then(|t| time::OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339).ok())
        .ok_or(DsigError::Timestamp)?;
    let body = &index.elements[soap.body];
    Ok(SoapSignature {
        alg,
        chain,
        created: created.unix_timestamp(),
        signature_value: value,
        body: element_range(doc, body),
        structure: Structure::of(doc, index, &soap),
        message_id,
    })
}

/// An indexed element's bytes, its tags included.
fn element_range(doc: &[u8], e: &Element) -> Range<usize> {
    let end = if e.end_tag == e.start_tag_end && doc.get(e.start_tag_end.wrapping_sub(2)) == Some(&b'/') {
        e.end_tag // <Empty/>: the start tag is the element
    } else {
        e.end_tag + doc[e.end_tag..].iter().position(|&b| b == b'>').map_or(0, |p| p + 1)
    };
    e.start..end
}

/// Signs a SOAP message: gives the Body and the X-Road header elements `wsu:Id`s
/// where they have none, adds a signed `wsu:Timestamp` (created `now_unix`) and a
/// `ds:Signature` as the Header's last child. Nothing else of the message changes.
pub fn sign_soap(
    doc: &[u8],
    key: &SigningKey,
    chain: &[Vec<u8>],
    digest: DigestAlg,
    now_unix: i64,
) -> Result<Vec<u8>, DsigError> {
    sign_soap_with_value(doc, key, chain, digest, now_unix).map(|(signed, _)| signed)
}

/// [`sign_soap`], also returning the signature value (raw bytes): what a verify of
/// the signed message would report, known without one (the signer is the caller,
/// the chain the one it passed, the time `now_unix`).
pub fn sign_soap_with_value(
    doc: &[u8],
    key: &SigningKey,
    chain: &[Vec<u8>],
    digest: DigestAlg,
    now_unix: i64,
) -> Result<(Vec<u8>, Vec<u8>), DsigError> {
    sign_indexed(doc, index(doc)?, key, chain, digest, now_unix)
}

fn sign_indexed(
    doc: &[u8],
    index: Index,
    key: &SigningKey,
    chain: &[Vec<u8>],
    digest: DigestAlg,
    now_unix: i64,
) -> Result<(Vec<u8>, Vec<u8>), DsigError> {
    if soap_structure(&index).is_err() {
        // A message without a Header (a provider's answer, a fault) gets an empty one.
        if let Some(with_header) = add_header(doc, &index) {
            return sign_soap_with_value(&with_header, key, chain, digest, now_unix);
        }
    }
    let soap = soap_structure(&index)?;
    if !index.signatures.is_empty() {
        return Err(DsigError::AlreadySigned);
    }
    // Splices by offset: (where, text). Ids first, then the Timestamp.
    let mut splices: Vec<(usize, String)> = Vec::new();
    // What to sign: (Id, element in `doc`, or None for the new Timestamp).
    let mut targets: Vec<(String, Option<usize>)> = Vec::new();
    let mut fresh = 0;
    let mut new_id = |index: &Index| loop {
        fresh += 1;
        let id = format!("qaqpa-{fresh}");
        if !index.ids.contains_key(&id) {
            return id;
        }
    };
    let header = &index.elements[soap.header];
    let to_sign = index
        .elements
        .iter()
        .enumerate()
        .filter(|(i, e)| *i == soap.body || (e.parent == Some(soap.header) && e.ns == XROAD_NS));
    for (i, element) in to_sign {
        // What verify would refuse is not signed either.
        index.refuse_comments_in(i)?;
        match &element.id {
            Some(id) => targets.push((id.clone(), Some(i))),
            None => {
                let id = new_id(&index);
                let declare = match element.declares_wsu.as_deref() {
                    None => format!(" xmlns:wsu=\"{WSU_NS}\""),
                    Some(WSU_NS) => String::new(),
                    Some(_) => return Err(DsigError::Malformed("the wsu prefix is bound to another namespace")),
                };
                splices.push((element.start + 1 + element.name_len, format!("{declare} wsu:Id=\"{id}\"")));
                targets.push((id, Some(i)));
            }
        }
    }
    let timestamp_id = new_id(&index);
    let created = time::OffsetDateTime::from_unix_timestamp(now_unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .ok_or(DsigError::Timestamp)?;
    splices.push((
        header.start_tag_end,
        format!(
            "<wsu:Timestamp xmlns:wsu=\"{WSU_NS}\" wsu:Id=\"{timestamp_id}\"><wsu:Created>{created}</wsu:Created></wsu:Timestamp>"
        ),
    ));
    targets.push((timestamp_id, None));
    let with_ids = splice(doc, &mut splices);

    // Digests over the message as it will be sent, located through the one index
    // of `doc`: an element moves by the length of the splices before it (the Ids
    // go inside start tags, after the `<`; the Timestamp at the Header's start),
    // and its ancestors' declarations are unchanged (issue 21: no second parse).
    let moved = |at: usize, inclusive: bool| {
        at + splices.iter().take_while(|(p, _)| *p < at || (inclusive && *p == at)).map(|(_, t)| t.len()).sum::<usize>()
    };
    let header_scope = || {
        let mut scope = index.scope_of(soap.header);
        scope.extend(header.declarations.iter().cloned());
        scope
    };
    let options = C14nOptions::default();
    let mut references = String::new();
    for (id, element) in &targets {
        let (start, scope) = match element {
            Some(i) => {
                let e = &index.elements[*i];
                let start = moved(e.start, true);
                // The element's name is where it was: a check that costs nothing.
                if with_ids.get(start + 1..start + 1 + e.name_len) != doc.get(e.start + 1..e.start + 1 + e.name_len) {
                    return Err(DsigError::Malformed("an element moved while adding Ids"));
                }
                (start, index.scope_of(*i))
            }
            None => (moved(header.start_tag_end, false), header_scope()),
        };
        let mut digester = digest.digester();
        c14n::canonicalize_into(&with_ids, start, &scope, None, &options, &mut digester)?;
        let value = STANDARD.encode(digester.finish());
        references.push_str(&format!(
            "<ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"{EXC_C14N}\"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"{}\"></ds:DigestMethod><ds:DigestValue>{value}</ds:DigestValue></ds:Reference>",
            digest.uri()
        ));
    }
    let certificates: String =
        chain.iter().map(|c| format!("<ds:X509Certificate>{}</ds:X509Certificate>", STANDARD.encode(c))).collect();
    let head = format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"{}\"></ds:SignatureMethod>{references}</ds:SignedInfo><ds:SignatureValue>",
        key.alg().xmldsig_uri()
    );
    let tail = format!(
        "</ds:SignatureValue><ds:KeyInfo><ds:X509Data>{certificates}</ds:X509Data></ds:KeyInfo></ds:Signature>"
    );
    let insert_at = moved(header.end_tag, true);
    // SignedInfo's namespace context: the Header's, and the Signature's ds prefix.
    let mut scope = header_scope();
    scope.push(("ds".to_owned(), DSIG_NS.to_owned()));
    let mut signed = Vec::with_capacity(with_ids.len() + head.len() + tail.len() + 512);
    signed.extend_from_slice(&with_ids[..insert_at]);
    signed.extend_from_slice(head.as_bytes());
    let value_at = signed.len();
    signed.extend_from_slice(tail.as_bytes());
    signed.extend_from_slice(&with_ids[insert_at..]);
    // SignedInfo as canonicalized in place (its namespace context is the message's).
    let signed_info = insert_at + head.find("<ds:SignedInfo>").expect("written above");
    let mut canonical = Vec::with_capacity(head.len());
    c14n::canonicalize_in_context(&signed, signed_info, &scope, None, &options, &mut canonical)?;
    let value = key.sign(&canonical).map_err(DsigError::Key)?;
    signed.splice(value_at..value_at, STANDARD.encode(&value).into_bytes());
    Ok((signed, value))
}

/// The message with an empty Header before its Body, if it is an Envelope with a
/// Body and no Header.
fn add_header(doc: &[u8], index: &Index) -> Option<Vec<u8>> {
    let envelope = &index.elements[0];
    let is_envelope = envelope.local == "Envelope" && (envelope.ns == SOAP11_NS || envelope.ns == SOAP12_NS);
    let child = |local: &str| index.elements.iter().filter(|e| e.parent == Some(0) && e.local == local).count();
    if !is_envelope || child("Header") != 0 || child("Body") != 1 {
        return None;
    }
    let qname = std::str::from_utf8(&doc[envelope.start + 1..envelope.start + 1 + envelope.name_len]).ok()?;
    let prefix = qname.split_once(':').map_or(String::new(), |(p, _)| format!("{p}:"));
    let header = format!("<{prefix}Header></{prefix}Header>");
    Some(splice(doc, &mut [(envelope.start_tag_end, header)]))
}

fn splice(doc: &[u8], splices: &mut [(usize, String)]) -> Vec<u8> {
    splices.sort_by_key(|(at, _)| *at);
    let mut out = Vec::with_capacity(doc.len() + splices.iter().map(|(_, s)| s.len()).sum::<usize>());
    let mut from = 0;
    for (at, text) in splices.iter() {
        out.extend_from_slice(&doc[from..*at]);
        out.extend_from_slice(text.as_bytes());
        from = *at;
    }
    out.extend_from_slice(&doc[from..]);
    out
}

pub mod wsse;
pub use wsse::verify_wsse;
mod detached;
pub use detached::{sign_detached, verify_detached, DetachedSignature, KeySigner, Signer, StandardSuite, Suite};

#[cfg(test)]
mod tests;
