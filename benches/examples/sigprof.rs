//! A small driver for instruction-count profiles of the signature paths
//! (docs/PERFORMANCE.md, "Signatures"): `valgrind --tool=callgrind` over it shows
//! where the instructions of one operation go, which stays stable on a busy
//! machine where wall-clock does not. Usage: `sigprof <what> <iterations>`, what is
//! one of bare, sign1, verify1, vs1, sign64, verify64, vs64, behalf1 and behalf64
//! (sign on behalf as the gateway does it; `-twoparse` parses for the failed verify
//! and again for the signing, `-reverify` also verifies the result, as the gateway
//! used to), read1 and read64
//! (the faces' hardened envelope reader on the signed message), c14n1m, jws-bare,
//! jws, chain (a cached chain validation), chain-cold (a fresh store each time).
//! It prints nanoseconds per iteration (indicative only; use criterion for rates).

use std::time::Instant;

use qaqpa_adapters::soap::{read_envelope, XmlLimits};
use qaqpa_benches::soap_message as message;
use qaqpa_certs::c14n::{canonicalize, C14nOptions};
use qaqpa_certs::jws;
use qaqpa_certs::keys::{self, SigningKey};
use qaqpa_certs::pki::{CertAndKey, DevCa};
use qaqpa_certs::trust::TrustStore;
use qaqpa_certs::xmldsig::{self, DigestAlg};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "vs1".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let now = time::OffsetDateTime::now_utc();
    let ca = DevCa::generate("Prof CA", now).expect("ca");
    let id = qaqpa_routing::SystemId::parse("KZ/GOV/000000000003/egov-portal").expect("id");
    let pair = ca.issue_client(&id, now).expect("pair");
    let key = SigningKey::from_pem(pair.key_pem.as_bytes()).expect("key");
    let chain = vec![pair.cert_der().expect("der").to_vec()];
    let ts = now.unix_timestamp();
    let kib = if what.contains("64") { 64 } else { 1 };
    let doc = message(kib * 1024);
    let signed = xmldsig::sign_soap(doc.as_bytes(), &key, &chain, DigestAlg::Sha256, ts).expect("sign");
    let big = message(1024 * 1024);
    let body_at = big.find("<env:Body").expect("body");
    let info = vec![b'x'; 1600];
    let signature = key.sign(&info).expect("bare sign");
    let payload = vec![b'{'; 1024];
    let payload_signature = key.sign(&payload).expect("bare sign");
    let token = jws::sign_detached(&key, &chain, serde_json::Map::new(), &payload).expect("jws");
    let mut out = Vec::with_capacity(big.len());
    // The CA certificate as DER, through the PEM reader CertAndKey already has.
    let anchor = CertAndKey { cert_pem: ca.cert_pem.clone(), key_pem: String::new() }.cert_der().expect("ca der");
    let store = TrustStore::new(std::slice::from_ref(&anchor), &[]).expect("store");
    let der_chain = [pair.cert_der().expect("der")];
    let limits = XmlLimits { max_elements: 1_000_000, ..XmlLimits::default() };
    let started = Instant::now();
    for _ in 0..n {
        match what.as_str() {
            "bare" => {
                keys::verify(key.alg(), &chain[0], &info, &signature).expect("verify");
                key.sign(&info).expect("sign");
            }
            "sign1" | "sign64" => {
                xmldsig::sign_soap(doc.as_bytes(), &key, &chain, DigestAlg::Sha256, ts).expect("sign");
            }
            "verify1" | "verify64" => {
                xmldsig::verify_soap(&signed).expect("verify");
            }
            "vs1" | "vs64" => {
                xmldsig::verify_soap(&signed).expect("verify");
                xmldsig::sign_soap(doc.as_bytes(), &key, &chain, DigestAlg::Sha256, ts).expect("sign");
            }
            "behalf1" | "behalf64" => {
                // Sign on behalf as the gateway does it: one parse for the verify that
                // finds no signature and the signing (its value known without a verify).
                let with = xmldsig::SignWith { key: &key, chain: &chain, digest: DigestAlg::Sha256, now_unix: ts };
                xmldsig::verify_or_sign_soap(doc.as_bytes(), Some(with)).expect("signed");
            }
            "behalf1-twoparse" | "behalf64-twoparse" => {
                // The same with a parse each for the verify and the signing.
                assert!(xmldsig::verify_soap(doc.as_bytes()).is_err());
                xmldsig::sign_soap_with_value(doc.as_bytes(), &key, &chain, DigestAlg::Sha256, ts).expect("sign");
            }
            "behalf1-reverify" | "behalf64-reverify" => {
                // The same with the verify of the gateway's own signature it used to do.
                assert!(xmldsig::verify_soap(doc.as_bytes()).is_err());
                let signed = xmldsig::sign_soap(doc.as_bytes(), &key, &chain, DigestAlg::Sha256, ts).expect("sign");
                xmldsig::verify_soap(&signed).expect("verify");
            }
            "read1" | "read64" => {
                read_envelope(&signed, Some("text/xml"), &limits).expect("read");
            }
            "c14n1m" => {
                out.clear();
                canonicalize(big.as_bytes(), body_at, None, &C14nOptions::default(), &mut out).expect("c14n");
            }
            "jws-bare" => {
                keys::verify(key.alg(), &chain[0], &payload, &payload_signature).expect("verify");
                key.sign(&payload).expect("sign");
            }
            "jws" => {
                jws::verify_detached(&token, &payload).expect("verify");
                jws::sign_detached(&key, &chain, serde_json::Map::new(), &payload).expect("sign");
            }
            "chain" => {
                store.verify(&der_chain, ts as u64).expect("trusted");
            }
            "chain-cold" => {
                let cold = TrustStore::new(std::slice::from_ref(&anchor), &[]).expect("store");
                cold.verify(&der_chain, ts as u64).expect("trusted");
            }
            other => panic!("unknown {other}"),
        }
    }
    let per = started.elapsed().as_nanos() / u128::from(n.max(1));
    println!("{what}: {per} ns/iter over {n}");
}
