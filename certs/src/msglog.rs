//! The message log's format and its offline verification (docs/operations.md#message-log): append-only
//! segments of JSON lines. Every line carries `prev`, the SHA-256 of the line before
//! it (across segments), so the lines form one hash chain. Record lines describe one
//! exchange each; after every batch a seal line holds the Merkle root of the batch's
//! record hashes and the gateway's signature over it. An auditor needs only the files
//! and the gateway's certificate: `verify` names the first line that breaks the
//! chain, a seal, or the sequence; an evidence bundle proves one record to its seal.
//!
//! Pure: the writer (disk, clock, batching) is the gateway's.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::keys::{self, SignatureAlg, SigningKey};

/// `prev` of the very first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One exchange as logged. Bodies are not kept (personal data): their digests are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Microseconds since the Unix epoch.
    pub time: i64,
    pub node: String,
    pub id: String,
    pub client: String,
    pub service: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Base64 SHA-512 of the request body as received, when it was read to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha512: Option<String>,
    /// Base64 signature value of the request (XMLDSig SignatureValue or JWS signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// What happened to an asynchronous message, when the record is a step of one
    /// (docs/asynchronous.md): `send`, `take`, `push`, `reply`, `ack`,
    /// `dead_letter`, `replay`, `drop`; absent for a synchronous exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The bus's id of that asynchronous message (`Qaqpa-Message-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_id: Option<String>,
    /// The sender's own id of that message (its `X-Road-Id`), when the record's
    /// `id` is another exchange's (a take, an ack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The delivery attempt a `take` or `push` record is, counting from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub prev: String,
}

impl Record {
    /// Whether the record concerns message `id`: as the exchange's own id, the
    /// sender's id of an asynchronous message, or its bus id.
    pub fn names(&self, id: &str) -> bool {
        self.id == id || self.message.as_deref() == Some(id) || self.bus_id.as_deref() == Some(id)
    }
}

/// The gateway's signature over one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// First and last record sequence of the batch.
    pub first: u64,
    pub last: u64,
    /// Hex Merkle root of the batch's record-line hashes.
    pub root: String,
    pub time: i64,
    /// JWS algorithm name of `sig`.
    pub alg: String,
    /// Base64 DER of the signing certificate chain, leaf first.
    pub chain: Vec<String>,
    pub sig: String,
    pub prev: String,
    /// The seal's number, counting from 1 without gaps; 0 in logs written before
    /// seals were numbered (their signature does not cover it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub batch: u64,
    /// Hex SHA-256 of the previous seal line ([`GENESIS`] for the first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_seal: String,
}

impl Seal {
    /// Where this seal joins the chains (to re-make one, or to make the next).
    pub fn links(&self) -> SealLinks {
        SealLinks { prev: self.prev.clone(), batch: self.batch, prev_seal: self.prev_seal.clone() }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where a new seal joins the two chains: the line before it, and the seal before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealLinks {
    /// Hash of the line before the seal (the record chain).
    pub prev: String,
    /// The new seal's number.
    pub batch: u64,
    /// Hash of the previous seal line, or [`GENESIS`].
    pub prev_seal: String,
}

/// The latest seal: its number and the hash of its line. What the gateway publishes
/// and an auditor compares against (`qaqpa log verify --expect-head BATCH:HASH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub batch: u64,
    pub hash: String,
}

impl std::str::FromStr for Head {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (batch, hash) = text.split_once(':').ok_or("expected BATCH:HASH")?;
        let batch = batch.parse().map_err(|_| format!("{batch:?} is not a batch number"))?;
        if from_hex(hash).is_none() {
            return Err(format!("{hash:?} is not a hex SHA-256"));
        }
        Ok(Head { batch, hash: hash.to_ascii_lowercase() })
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.batch, self.hash)
    }
}

/// What the gateway knows of a record when it is appended: every field but `seq`
/// and `prev` (the writer's), borrowed from the exchange. Same names and order as
/// [`Record`], so an [`Entry`] made of them writes the line serde would.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Fields<'a> {
    pub time: i64,
    pub node: &'a str,
    pub id: &'a str,
    pub client: &'a str,
    pub service: &'a str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_sha512: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl<'a> Fields<'a> {
    /// A record's fields (tests, tools).
    pub fn of(record: &'a Record) -> Self {
        Self {
            time: record.time,
            node: &record.node,
            id: &record.id,
            client: &record.client,
            service: &record.service,
            status: record.status,
            code: record.code.as_deref(),
            body_sha512: record.body_sha512.as_deref(),
            signature: record.signature.as_deref(),
            event: record.event.as_deref(),
            bus_id: record.bus_id.as_deref(),
            message: record.message.as_deref(),
            attempt: record.attempt,
        }
    }
}

/// A record encoded by the exchange that appends it: one buffer, instead of a
/// [`Record`] of owned strings handed to the writer and serialized there (~10
/// allocations a record, two records an exchange; issue 20). The writer adds the
/// record's place in the chain with [`Entry::write_line`].
#[derive(Debug, Clone)]
pub struct Entry(Vec<u8>);

impl Entry {
    /// The fields as JSON, byte for byte what `serde_json` writes for them. Written
    /// here rather than through serde's derived `Serialize` (~7k instructions a
    /// record that way, the log's largest share of an exchange: issue 20); strings
    /// that need escaping still go through `serde_json`.
    pub fn encode(fields: &Fields<'_>) -> Self {
        let mut json = Vec::with_capacity(320);
        let mut number = itoa::Buffer::new();
        json.extend_from_slice(b"{\"time\":");
        json.extend_from_slice(number.format(fields.time).as_bytes());
        for (key, value) in [
            (&b",\"node\":"[..], fields.node),
            (b",\"id\":", fields.id),
            (b",\"client\":", fields.client),
            (b",\"service\":", fields.service),
        ] {
            json.extend_from_slice(key);
            let _ = json_string(&mut json, value);
        }
        json.extend_from_slice(b",\"status\":");
        json.extend_from_slice(number.format(fields.status).as_bytes());
        for (key, value) in [
            (&b",\"code\":"[..], fields.code),
            (b",\"body_sha512\":", fields.body_sha512),
            (b",\"signature\":", fields.signature),
            (b",\"event\":", fields.event),
            (b",\"bus_id\":", fields.bus_id),
            (b",\"message\":", fields.message),
        ] {
            if let Some(value) = value {
                json.extend_from_slice(key);
                let _ = json_string(&mut json, value);
            }
        }
        if let Some(attempt) = fields.attempt {
            json.extend_from_slice(b",\"attempt\":");
            json.extend_from_slice(number.format(attempt).as_bytes());
        }
        json.push(b'}');
        Self(json)
    }

    /// The record's line (without its newline) at `seq` after the line hashing to
    /// `prev`: exactly `serde_json` of `Line::Record` with those values.
    pub fn write_line(&self, seq: u64, prev: &str, out: &mut Vec<u8>) {
        use std::io::Write;
        // The fields' object without its braces, between `seq` and `prev`.
        let members = &self.0[1..self.0.len() - 1];
        out.extend_from_slice(b"{\"record\":{\"seq\":");
        let _ = write!(out, "{seq}");
        out.push(b',');
        out.extend_from_slice(members);
        out.extend_from_slice(b",\"prev\":");
        serde_json::to_writer(&mut *out, prev).expect("a string serializes");
        out.extend_from_slice(b"}}");
    }
}

/// `value` as a JSON string, as `serde_json` writes it: copied as it is unless it
/// holds a byte JSON escapes (then `serde_json` writes it). For the gateway's
/// record writers (the log's entries, the monitoring records), where a string
/// serialized through serde's derived code cost several times the copy.
pub fn json_string<W: std::io::Write>(out: &mut W, value: &str) -> std::io::Result<()> {
    if value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        serde_json::to_writer(out, value).map_err(std::io::Error::other)
    } else {
        out.write_all(b"\"")?;
        out.write_all(value.as_bytes())?;
        out.write_all(b"\"")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Line {
    Record(Record),
    Seal(Seal),
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().try_into().expect("32 bytes")
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    hex_into(bytes, &mut out);
    out
}

/// [`hex`] into `out`, replacing what it held (the log writer's chain keeps one
/// string for the last line's hash instead of a new one per line).
pub fn hex_into(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// RFC 6962-style tree: leaves and inner nodes hashed apart, an odd node promoted.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return sha256(b"");
    }
    let mut level: Vec<[u8; 32]> = leaves.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        level =
            level.chunks(2).map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] }).collect();
    }
    level[0]
}

fn leaf_hash(leaf: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 33];
    buf[1..].copy_from_slice(leaf);
    sha256(&buf)
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    sha256(&buf)
}

/// The sibling hashes from leaf `index` to the root: (sibling is on the right, hash).
pub fn merkle_proof(leaves: &[[u8; 32]], mut index: usize) -> Vec<(bool, String)> {
    let mut proof = Vec::new();
    let mut level: Vec<[u8; 32]> = leaves.iter().map(leaf_hash).collect();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if sibling < level.len() {
            proof.push((sibling > index, hex(&level[sibling])));
        }
        level =
            level.chunks(2).map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] }).collect();
        index /= 2;
    }
    proof
}

pub fn proof_root(leaf: &[u8; 32], proof: &[(bool, String)]) -> Option<[u8; 32]> {
    let mut at = leaf_hash(leaf);
    for (right, sibling) in proof {
        let sibling: [u8; 32] = from_hex(sibling)?;
        at = if *right { node_hash(&at, &sibling) } else { node_hash(&sibling, &at) };
    }
    Some(at)
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn seal_input(s: &Seal) -> Vec<u8> {
    let (first, last, root, time) = (s.first, s.last, &s.root, s.time);
    if s.batch == 0 {
        // Seals written before they were numbered.
        return format!("qaqpa-message-log-seal\n{first}\n{last}\n{root}\n{time}").into_bytes();
    }
    let (batch, prev_seal) = (s.batch, &s.prev_seal);
    format!("qaqpa-message-log-seal-2\n{first}\n{last}\n{root}\n{time}\n{batch}\n{prev_seal}").into_bytes()
}

/// A seal over records `first..=last` whose line hashes are `leaves`.
pub fn seal(
    key: &SigningKey,
    chain: &[Vec<u8>],
    first: u64,
    last: u64,
    leaves: &[[u8; 32]],
    time: i64,
    links: SealLinks,
) -> Result<Seal, keys::KeyError> {
    let root = hex(&merkle_root(leaves));
    let chain = chain.iter().map(|c| STANDARD.encode(c)).collect();
    let SealLinks { prev, batch, prev_seal } = links;
    let alg = key.alg().jws_name().to_owned();
    let mut seal = Seal { first, last, root, time, alg, chain, sig: String::new(), prev, batch, prev_seal };
    seal.sig = STANDARD.encode(key.sign(&seal_input(&seal))?);
    Ok(seal)
}

fn check_seal_signature(seal: &Seal, expected_signer: Option<&[u8]>) -> Result<(), String> {
    let alg = SignatureAlg::from_jws_name(&seal.alg).ok_or_else(|| format!("unknown seal algorithm {}", seal.alg))?;
    let leaf = seal.chain.first().and_then(|c| STANDARD.decode(c).ok()).ok_or("the seal carries no certificate")?;
    if let Some(expected) = expected_signer {
        if leaf != expected {
            return Err("the seal is signed by another certificate than the gateway's".into());
        }
    }
    let sig = STANDARD.decode(&seal.sig).map_err(|_| "the seal's signature is not base64")?;
    keys::verify(alg, &leaf, &seal_input(seal), &sig).map_err(|e| format!("the seal's signature does not verify ({e})"))
}

/// A line as verification reads it: of a record only what the chain needs, borrowed
/// (the hash covers the rest), so verifying allocates nothing per record.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum LineView<'a> {
    Record(#[serde(borrow)] RecordView<'a>),
    Seal(Seal),
}

impl LineView<'_> {
    fn prev(&self) -> &str {
        match self {
            LineView::Record(r) => &r.prev,
            LineView::Seal(s) => &s.prev,
        }
    }
}

#[derive(Deserialize)]
struct RecordView<'a> {
    seq: u64,
    #[serde(borrow)]
    prev: std::borrow::Cow<'a, str>,
}

/// Where verification failed: the segment, the line (1-based) and, for a record,
/// its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{segment}:{line}{}: {reason}", seq.map(|s| format!(" (record {s})")).unwrap_or_default())]
pub struct LogFault {
    pub segment: String,
    pub line: usize,
    pub seq: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub seals: u64,
    /// The last seal, numbered or not (its number is 0 in logs written before
    /// seals were numbered).
    pub head: Option<Head>,
    /// The seal numbered as asked of [`verify_watching`], if the log holds it.
    pub watched: Option<Head>,
}

/// Checks a seal's place in the chain of seals: its number follows the last one's
/// and it names the last seal line's hash. Seals written before numbering (0) are
/// accepted only before the first numbered one.
fn check_seal_link(seal: &Seal, last: Option<&Head>) -> Result<(), String> {
    let (last_batch, last_hash) = last.map_or((0, GENESIS), |h| (h.batch, h.hash.as_str()));
    if seal.batch == 0 {
        return match last_batch {
            0 => Ok(()),
            n => Err(format!("an unnumbered seal follows seal {n} (seals are numbered from then on)")),
        };
    }
    if seal.batch != last_batch + 1 {
        return Err(format!(
            "seal {} where seal {} was due (seals {}..{} are missing or out of order)",
            seal.batch,
            last_batch + 1,
            last_batch + 1,
            seal.batch
        ));
    }
    if seal.prev_seal != last_hash {
        return Err(format!(
            "seal {} names the previous seal {} but the previous seal line hashes to {last_hash}",
            seal.batch, seal.prev_seal
        ));
    }
    Ok(())
}

/// Compares a verified log's last seal with a head published earlier (`expected`):
/// a log whose trailing batches were deleted ends before it, an exchanged one at
/// another hash. The log may have grown since: then the published seal must still
/// be in it, which [`verify`] already ensured by the seal chain up to its head;
/// here only the hash of that very seal is compared (`summary` from
/// [`verify_watching`] with the expected head's number).
pub fn check_head(summary: &Summary, expected: &Head) -> Result<(), String> {
    let Some(head) = &summary.head else {
        return Err(format!("the log holds no seal, but seal {} was published", expected.batch));
    };
    if head.batch < expected.batch {
        return Err(format!(
            "the log ends at seal {} but seal {} was published: batches {}..={} are missing (deleted at the end)",
            head.batch,
            expected.batch,
            head.batch + 1,
            expected.batch
        ));
    }
    match summary.watched.as_ref().filter(|s| s.batch == expected.batch) {
        Some(found) if found.hash == expected.hash => Ok(()),
        Some(found) => Err(format!(
            "seal {} hashes to {} but {} was published (the log was rewritten from there)",
            expected.batch, found.hash, expected.hash
        )),
        None => Err(format!("seal {} is not in the log", expected.batch)),
    }
}

/// The written part of a segment. The gateway preallocates a segment with zeros
/// ahead of its end (a sync then writes data only, never the file's size), so a
/// segment copied while the gateway runs, or left by a crash, ends in NUL bytes;
/// no line holds one (JSON escapes control characters).
pub fn written(segment: &[u8]) -> &[u8] {
    let end = segment.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &segment[..end]
}

/// Checks segments (name, bytes) in order: the record sequence, every line's `prev`,
/// every seal's root and signature (by `signer` when given, else by the certificate
/// of the first seal throughout), and that the log ends with a seal.
pub fn verify(segments: &[(String, Vec<u8>)], signer: Option<&[u8]>) -> Result<Summary, LogFault> {
    verify_watching(segments, signer, None)
}

/// [`verify`], noting the seal numbered `watch` in [`Summary::watched`].
pub fn verify_watching(
    segments: &[(String, Vec<u8>)],
    signer: Option<&[u8]>,
    watch: Option<u64>,
) -> Result<Summary, LogFault> {
    let mut prev = GENESIS.to_owned();
    let mut next_seq = None::<u64>;
    let mut batch: Vec<[u8; 32]> = Vec::new();
    let mut batch_first = None;
    let mut summary = Summary::default();
    let mut last_place = (String::new(), 0usize);
    // The previous line's record sequence (None after a seal).
    let mut last_seq = None::<u64>;
    // Without a given signer, every seal must be by the first seal's certificate.
    let mut first_signer: Option<Vec<u8>> = None;
    for (name, bytes) in segments {
        let bytes = written(bytes);
        let fault =
            |line: usize, seq: Option<u64>, reason: String| LogFault { segment: name.clone(), line, seq, reason };
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            let line = bytes.split(|&b| b == b'\n').count();
            return Err(fault(line, None, "the segment ends in the middle of a line (truncated)".into()));
        }
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            let n = i + 1;
            last_place = (name.clone(), n);
            let line: LineView<'_> =
                serde_json::from_slice(raw).map_err(|e| fault(n, None, format!("not a log line: {e}")))?;
            let seq = match &line {
                LineView::Record(r) => Some(r.seq),
                LineView::Seal(_) => None,
            };
            // Sequence first: a deleted or swapped record shows as a gap or a step back.
            if let (Some(seq), Some(expected)) = (seq, next_seq) {
                if seq != expected {
                    return Err(fault(
                        n,
                        Some(seq),
                        format!("record {seq} where {expected} was due (deleted or reordered)"),
                    ));
                }
            }
            if line.prev() != prev {
                // The line before was changed (its hash moved), or this line's prev was.
                let (line, seq) = if n > 1 { (n - 1, last_seq) } else { (n, seq) };
                return Err(fault(line, seq, "changed: its hash is not the prev the next line holds".into()));
            }
            let hash = sha256(raw);
            match line {
                LineView::Record(r) => {
                    next_seq = Some(r.seq + 1);
                    last_seq = Some(r.seq);
                    batch_first.get_or_insert(r.seq);
                    batch.push(hash);
                    summary.records += 1;
                }
                LineView::Seal(s) => {
                    last_seq = None;
                    let signer = signer.or(first_signer.as_deref());
                    let (first, last) = (batch_first.unwrap_or(s.first), next_seq.map_or(s.last, |n| n - 1));
                    if batch.is_empty() || s.first != first || s.last != last {
                        return Err(fault(
                            n,
                            None,
                            format!("the seal covers {}..={} but the batch is {first}..={last}", s.first, s.last),
                        ));
                    }
                    if hex(&merkle_root(&batch)) != s.root {
                        return Err(fault(n, None, "the seal's Merkle root does not match its records".into()));
                    }
                    check_seal_signature(&s, signer).map_err(|reason| fault(n, None, reason))?;
                    check_seal_link(&s, summary.head.as_ref()).map_err(|reason| fault(n, None, reason))?;
                    let head = Head { batch: s.batch, hash: hex(&hash) };
                    if watch == Some(s.batch) {
                        summary.watched = Some(head.clone());
                    }
                    summary.head = Some(head);
                    if first_signer.is_none() {
                        first_signer = s.chain.first().and_then(|c| STANDARD.decode(c).ok());
                    }
                    batch.clear();
                    batch_first = None;
                    summary.seals += 1;
                }
            }
            prev = hex(&hash);
        }
    }
    if !batch.is_empty() {
        return Err(LogFault {
            segment: last_place.0,
            line: last_place.1,
            seq: next_seq.map(|n| n - 1),
            reason: format!(
                "{} records at the end are not sealed (the log was truncated, or the gateway did not stop cleanly)",
                batch.len()
            ),
        });
    }
    Ok(summary)
}

/// One record with the proof that its batch's seal covers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The record line exactly as logged.
    pub record: String,
    /// Its place in the batch and the sibling hashes up to the root.
    pub index: usize,
    pub proof: Vec<(bool, String)>,
    /// The seal line exactly as logged.
    pub seal: String,
}

/// Builds the evidence for every sealed record that names message `id` (see
/// [`Record::names`]: an exchange, or each step of an asynchronous message's life)
/// from the segments' bytes, in order. Segments are taken one at a time, so a
/// caller can read them lazily and stop holding each once it is scanned. Records
/// after the last seal are not evidence yet (they are sealed within a batch interval).
pub fn evidence<S: AsRef<[u8]>>(segments: impl IntoIterator<Item = S>, id: &str) -> Vec<Evidence> {
    let mut found = Vec::new();
    let mut batch: Vec<(String, [u8; 32])> = Vec::new();
    let mut wanted: Vec<usize> = Vec::new();
    for bytes in segments {
        for raw in written(bytes.as_ref()).split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            // A line that does not parse still holds its place among the batch's
            // leaves (its hash is what the seal covered); it names nothing.
            let line = serde_json::from_slice::<Line>(raw).ok();
            match line {
                None => batch.push((String::from_utf8_lossy(raw).into_owned(), sha256(raw))),
                Some(Line::Record(r)) => {
                    if r.names(id) {
                        wanted.push(batch.len());
                    }
                    batch.push((String::from_utf8_lossy(raw).into_owned(), sha256(raw)));
                }
                Some(Line::Seal(_)) => {
                    if !wanted.is_empty() {
                        let leaves: Vec<[u8; 32]> = batch.iter().map(|(_, h)| *h).collect();
                        let seal = String::from_utf8_lossy(raw).into_owned();
                        found.extend(wanted.drain(..).map(|index| Evidence {
                            record: batch[index].0.clone(),
                            index,
                            proof: merkle_proof(&leaves, index),
                            seal: seal.clone(),
                        }));
                    }
                    batch.clear();
                }
            }
        }
    }
    found
}

/// Everything the logs hold on one message: each record that names it, with its
/// proof, possibly from several nodes' logs (each record names its node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The id asked for.
    pub id: String,
    pub evidence: Vec<Evidence>,
}

/// Checks every item of a bundle alone (see [`verify_evidence`]) and that each
/// belongs: it names the id asked for, or the bus id (or sender's id) of a record
/// that does (the steps of an asynchronous message that know only its bus id).
/// The records in time order, or the first item that fails, by its place.
pub fn verify_bundle(bundle: &Bundle, signer: Option<&[u8]>) -> Result<Vec<Record>, String> {
    if bundle.evidence.is_empty() {
        return Err(format!("the bundle holds no evidence for {}", bundle.id));
    }
    let mut records = Vec::with_capacity(bundle.evidence.len());
    for (n, item) in bundle.evidence.iter().enumerate() {
        records.push(verify_evidence(item, signer).map_err(|why| format!("item {n}: {why}"))?);
    }
    let mut linked = vec![bundle.id.as_str()];
    for r in records.iter().filter(|r| r.names(&bundle.id)) {
        linked.extend(r.bus_id.as_deref().into_iter().chain(r.message.as_deref()));
    }
    if let Some((n, r)) = records.iter().enumerate().find(|(_, r)| !linked.iter().any(|id| r.names(id))) {
        return Err(format!("item {n}: record {} does not name {} (nor its bus id)", r.seq, bundle.id));
    }
    records.sort_by_key(|r| r.time);
    Ok(records)
}

/// Checks an evidence bundle alone: the record hashes up the proof to the seal's
/// root, and the seal's signature holds. Returns the record.
pub fn verify_evidence(evidence: &Evidence, signer: Option<&[u8]>) -> Result<Record, String> {
    let Line::Record(record) = serde_json::from_str(&evidence.record).map_err(|e| format!("record: {e}"))? else {
        return Err("the record is a seal".into());
    };
    let Line::Seal(seal) = serde_json::from_str(&evidence.seal).map_err(|e| format!("seal: {e}"))? else {
        return Err("the seal is a record".into());
    };
    if !(seal.first..=seal.last).contains(&record.seq) {
        return Err(format!("record {} is outside the seal's {}..={}", record.seq, seal.first, seal.last));
    }
    let root = proof_root(&sha256(evidence.record.as_bytes()), &evidence.proof).ok_or("malformed proof")?;
    if hex(&root) != seal.root {
        return Err("the record does not hash to the seal's Merkle root (changed record or proof)".into());
    }
    check_seal_signature(&seal, signer)?;
    Ok(record)
}

#[cfg(test)]
mod tests;
