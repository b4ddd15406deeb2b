//! The demo's SMEV 3 tour (docs/smev3.md): the address-change service is also the
//! kind of information `SMEV_KIND`. At each start the demo writes six signed SMEV 3
//! calls into DIR/smev3/ — the portal's `SendRequest`, the register's `GetRequest`,
//! `Ack` and `SendResponse`, the portal's `GetResponse` and `Ack` — so the printed
//! curl lines run the whole cycle. Each is signed with its system's dev key, the
//! way a SMEV 3 client signs (`CallerInformationSystemSignature` over
//! `#SIGNED_BY_CALLER`, exclusive c14n and the SMEV transform); the `To` of the
//! register's answer is a `ReplyTo` the gateway's key signs, as `GetRequest` hands out.

use std::path::{Path, PathBuf};

use qaqpa_certs::xmldsig::{self, DigestAlg, KeySigner};
use qaqpa_routing::SystemId;

use super::{ASYNC_SERVICE, CLIENT_SYSTEM, REST_SYSTEM};
use crate::cli::pki_files;
use crate::faces::smev3::trust::ReplyTo;
use crate::runtime::Signer;

/// The kind of information (вид сведений) of the demo's address changes.
pub const SMEV_KIND: &str = "urn://x-artefacts-qaqpa-demo/address-change/1.0.0";
const T: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1";
const B: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1";

/// The six calls in the order the tour runs them: (what, file).
pub const CALLS: [(&str, &str); 6] = [
    ("the portal sends the address change (SendRequest)", "send-request.xml"),
    ("the register takes it (GetRequest)", "get-request.xml"),
    ("the register acknowledges it (Ack)", "ack-request.xml"),
    ("the register answers to its ReplyTo (SendResponse)", "send-response.xml"),
    ("the portal collects the answer (GetResponse)", "get-response.xml"),
    ("the portal acknowledges the answer (Ack)", "ack-response.xml"),
];

fn keys(pki: &Path, stem: &str) -> anyhow::Result<Signer> {
    Ok(Signer::load(&pki.join(format!("{stem}.crt")), &pki.join(format!("{stem}.key")))?)
}

/// A SMEV 3 call `{op}Request` with `signed` (`Id="SIGNED_BY_CALLER"`), signed by `by`.
pub fn signed_call(op: &str, signed: &str, by: &Signer) -> anyhow::Result<String> {
    let unsigned = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:ns=\"{T}\" xmlns:ns2=\"{B}\"><S:Header/><S:Body><ns:{op}Request>{signed}<ns:CallerInformationSystemSignature>@@</ns:CallerInformationSystemSignature></ns:{op}Request></S:Body></S:Envelope>"
    );
    let signer = KeySigner { key: &by.key, chain: &by.chain, digest: DigestAlg::Sha256 };
    let signature = xmldsig::sign_detached(unsigned.replace("@@", "").as_bytes(), "SIGNED_BY_CALLER", &signer)?;
    Ok(unsigned.replace("@@", &signature))
}

fn selector(op: &str, kind: Option<&str>, by: &Signer) -> anyhow::Result<String> {
    let ns = kind.map(|k| format!("<ns2:NamespaceURI>{k}</ns2:NamespaceURI>")).unwrap_or_default();
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    signed_call(
        op,
        &format!("<ns2:MessageTypeSelector Id=\"SIGNED_BY_CALLER\">{ns}<ns2:Timestamp>{now}</ns2:Timestamp></ns2:MessageTypeSelector>"),
        by,
    )
}

fn ack(target: &str, by: &Signer) -> anyhow::Result<String> {
    signed_call(
        "Ack",
        &format!("<ns2:AckTargetMessage Id=\"SIGNED_BY_CALLER\" accepted=\"true\">{target}</ns2:AckTargetMessage>"),
        by,
    )
}

/// Writes DIR/smev3/*.xml (fresh message ids each start); gives the register a
/// certificate in a demo PKI made before it had one.
pub fn write_messages(dir: &Path, iin: &str) -> anyhow::Result<PathBuf> {
    let pki = dir.join("pki");
    let register = SystemId::parse(REST_SYSTEM)?;
    if !pki.join(format!("{}.crt", register.short_name())).exists() {
        let ca = pki_files::load_ca(&pki)?;
        pki_files::write_pair(
            &pki,
            register.short_name(),
            &ca.issue_client(&register, time::OffsetDateTime::now_utc())?,
        )?;
    }
    let portal = keys(&pki, SystemId::parse(CLIENT_SYSTEM)?.short_name())?;
    let register_keys = keys(&pki, register.short_name())?;
    let gateway = keys(&pki, "gateway")?;
    let request_id = uuid::Uuid::now_v7().to_string();
    let response_id = uuid::Uuid::now_v7().to_string();
    let content = format!(
        "<ac:AddressChangeRequest xmlns:ac=\"{SMEV_KIND}\"><ac:Iin>{iin}</ac:Iin><ac:Address>Astana, Mangilik El 8</ac:Address></ac:AddressChangeRequest>"
    );
    let reply_to = ReplyTo {
        c: CLIENT_SYSTEM.to_owned(),
        s: ASYNC_SERVICE.to_owned(),
        m: request_id.clone(),
        r: crate::faces::smev3::smev_mid(&request_id),
    }
    .issue_with(&gateway)
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = format!(
        "<ac:AddressChangeResponse xmlns:ac=\"{SMEV_KIND}\"><ac:Accepted>true</ac:Accepted></ac:AddressChangeResponse>"
    );
    let texts = [
        signed_call(
            "SendRequest",
            &format!("<ns:SenderProvidedRequestData Id=\"SIGNED_BY_CALLER\"><ns:MessageID>{request_id}</ns:MessageID><ns2:MessagePrimaryContent>{content}</ns2:MessagePrimaryContent></ns:SenderProvidedRequestData>"),
            &portal,
        )?,
        selector("GetRequest", Some(SMEV_KIND), &register_keys)?,
        ack(&request_id, &register_keys)?,
        signed_call(
            "SendResponse",
            &format!("<ns:SenderProvidedResponseData Id=\"SIGNED_BY_CALLER\"><ns:MessageID>{response_id}</ns:MessageID><ns:To>{reply_to}</ns:To><ns2:MessagePrimaryContent>{answer}</ns2:MessagePrimaryContent></ns:SenderProvidedResponseData>"),
            &register_keys,
        )?,
        selector("GetResponse", None, &portal)?,
        ack(&response_id, &portal)?,
    ];
    let out = dir.join("smev3");
    std::fs::create_dir_all(&out)?;
    for ((_, file), text) in CALLS.iter().zip(texts) {
        pki_files::write_file(&out.join(file), &text, false)?;
    }
    Ok(out)
}
