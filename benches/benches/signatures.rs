//! Criterion benchmarks of message signatures (docs/PERFORMANCE.md): exclusive c14n
//! throughput, XMLDSig sign and verify of 1 KiB and 64 KiB SOAP messages, and —
//! measured in the same run — the bare signature operations they contain, so the
//! XML overhead shows as a ratio. Run: `cargo bench -p qaqpa-benches --bench signatures`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use qaqpa_benches::soap_message as message;
use qaqpa_certs::c14n::{canonicalize, C14nOptions};
use qaqpa_certs::jws;
use qaqpa_certs::keys::{self, SigningKey};
use qaqpa_certs::pki::DevCa;
use qaqpa_certs::trust::TrustStore;
use qaqpa_certs::xmldsig::{self, DigestAlg};
use qaqpa_routing::SystemId;
use sha2::Digest;

fn signer() -> (SigningKey, Vec<Vec<u8>>) {
    let now = time::OffsetDateTime::now_utc();
    let ca = DevCa::generate("Bench CA", now).unwrap();
    let pair = ca.issue_client(&SystemId::parse("KZ/GOV/000000000003/egov-portal").unwrap(), now).unwrap();
    (SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap(), vec![pair.cert_der().unwrap().to_vec()])
}

fn c14n(c: &mut Criterion) {
    let mut group = c.benchmark_group("exc-c14n");
    for size in [1024, 64 * 1024, 1024 * 1024] {
        let doc = message(size);
        let body = doc.find("<env:Body").unwrap();
        group.throughput(Throughput::Bytes((doc.len() - body) as u64));
        let mut out = Vec::with_capacity(doc.len());
        group.bench_function(format!("Body of {} KiB", size / 1024), |b| {
            b.iter(|| {
                out.clear();
                canonicalize(black_box(doc.as_bytes()), body, None, &C14nOptions::default(), &mut out).unwrap();
                out.len()
            })
        });
    }
    group.finish();
}

fn xmldsig(c: &mut Criterion) {
    let (key, chain) = signer();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut group = c.benchmark_group("xmldsig");
    // The bare operations: one ECDSA P-256 signature and one verification over a
    // SignedInfo-sized message (what XMLDSig adds on top is XML work).
    let signed_info = vec![b'x'; 1600];
    let signature = key.sign(&signed_info).unwrap();
    group.bench_function("bare sign (P-256)", |b| b.iter(|| key.sign(black_box(&signed_info)).unwrap()));
    group.bench_function("bare verify (P-256)", |b| {
        b.iter(|| keys::verify(key.alg(), &chain[0], black_box(&signed_info), &signature).unwrap())
    });
    group.bench_function("bare verify + sign (P-256)", |b| {
        b.iter(|| {
            keys::verify(key.alg(), &chain[0], black_box(&signed_info), &signature).unwrap();
            key.sign(black_box(&signed_info)).unwrap()
        })
    });
    for size in [1024, 64 * 1024] {
        let doc = message(size);
        let signed = xmldsig::sign_soap(doc.as_bytes(), &key, &chain, DigestAlg::Sha256, now).unwrap();
        let kib = size / 1024;
        group.bench_function(format!("sign {kib} KiB"), |b| {
            b.iter(|| xmldsig::sign_soap(black_box(doc.as_bytes()), &key, &chain, DigestAlg::Sha256, now).unwrap())
        });
        group.bench_function(format!("verify {kib} KiB"), |b| {
            b.iter(|| xmldsig::verify_soap(black_box(&signed)).unwrap())
        });
        // What the gateway does for SOAP→REST with verify and sign-on-behalf.
        // The crypto's floor at this size: the bare operations plus one SHA-256 of
        // the Body for each side (each must digest its own canonical Body; the
        // signer's carries a wsu:Id the verifier's may not), so the ratio against
        // it shows what the XML costs beyond the hash it cannot avoid.
        let body = &doc[doc.find("<env:Body").unwrap()..];
        group.bench_function(format!("bare verify + sign + 2 Body digests {kib} KiB"), |b| {
            b.iter(|| {
                keys::verify(key.alg(), &chain[0], black_box(&signed_info), &signature).unwrap();
                let a = sha2::Sha256::digest(black_box(body.as_bytes()));
                let b2 = sha2::Sha256::digest(black_box(body.as_bytes()));
                (key.sign(black_box(&signed_info)).unwrap(), a, b2)
            })
        });
        group.bench_function(format!("verify + sign {kib} KiB"), |b| {
            b.iter(|| {
                xmldsig::verify_soap(black_box(&signed)).unwrap();
                xmldsig::sign_soap(black_box(doc.as_bytes()), &key, &chain, DigestAlg::Sha256, now).unwrap()
            })
        });
    }
    group.finish();
}

fn jws_detached(c: &mut Criterion) {
    let (key, chain) = signer();
    let body = vec![b'{'; 1024];
    let token = jws::sign_detached(&key, &chain, serde_json::Map::new(), &body).unwrap();
    let payload_signature = key.sign(&body).unwrap();
    let mut group = c.benchmark_group("jws");
    // The bare operations on the same 1 KiB: JWS's floor (target ≥ 85 %).
    group.bench_function("bare verify + sign 1 KiB (P-256)", |b| {
        b.iter(|| {
            keys::verify(key.alg(), &chain[0], black_box(&body), &payload_signature).unwrap();
            key.sign(black_box(&body)).unwrap()
        })
    });
    group.bench_function("verify + sign 1 KiB", |b| {
        b.iter(|| {
            jws::verify_detached(black_box(&token), &body).unwrap();
            jws::sign_detached(&key, &chain, serde_json::Map::new(), black_box(&body)).unwrap()
        })
    });
    group.bench_function("sign 1 KiB", |b| {
        b.iter(|| jws::sign_detached(&key, &chain, serde_json::Map::new(), black_box(&body)).unwrap())
    });
    group.bench_function("verify 1 KiB", |b| b.iter(|| jws::verify_detached(black_box(&token), &body).unwrap()));
    group.finish();
}

/// Message log: records serialized, chained and sealed per 1,000 (what the writer
/// does before its write and fsync), and offline verification.
fn message_log(c: &mut Criterion) {
    use qaqpa_certs::msglog::{self, Line, Record};
    let (key, chain) = signer();
    let build = |n: u64| {
        let mut out = Vec::with_capacity(n as usize * 400);
        let mut prev = msglog::GENESIS.to_owned();
        let mut leaves = Vec::with_capacity(1000);
        let mut last_seal = (0u64, msglog::GENESIS.to_owned());
        for seq in 1..=n {
            let record = Record {
                seq,
                time: 1_795_000_000_000_000,
                node: "node-1".into(),
                id: format!("0192c3d4-aaaa-7bbb-8ccc-{seq:012}"),
                client: "KZ/GOV/000000000003/egov-portal".into(),
                service: "KZ/GOV/000000000001/population-register/person/v1".into(),
                status: 200,
                code: None,
                body_sha512: Some("x".repeat(88)),
                signature: None,
                event: None,
                bus_id: None,
                message: None,
                attempt: None,
                prev: std::mem::take(&mut prev),
            };
            let line = serde_json::to_vec(&Line::Record(record)).unwrap();
            let hash = msglog::sha256(&line);
            prev = msglog::hex(&hash);
            leaves.push(hash);
            out.extend_from_slice(&line);
            out.push(b'\n');
            if leaves.len() == 1000 || seq == n {
                let first = seq + 1 - leaves.len() as u64;
                let batch = last_seal.0 + 1;
                let links = msglog::SealLinks { prev: prev.clone(), batch, prev_seal: last_seal.1.clone() };
                let seal = msglog::seal(&key, &chain, first, seq, &leaves, 0, links).unwrap();
                let line = serde_json::to_vec(&Line::Seal(seal)).unwrap();
                prev = msglog::hex(&msglog::sha256(&line));
                last_seal = (batch, prev.clone());
                out.extend_from_slice(&line);
                out.push(b'\n');
                leaves.clear();
            }
        }
        out
    };
    let mut group = c.benchmark_group("message log");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("append + seal 10k records", |b| b.iter(|| build(black_box(10_000)).len()));
    let segments = vec![("seg-000001.log".to_owned(), build(10_000))];
    group.bench_function("verify 10k records", |b| {
        b.iter(|| msglog::verify(black_box(&segments), Some(&chain[0])).unwrap())
    });
    group.finish();
}

/// Chain validation: a full webpki validation (a fresh store: what every
/// message paid before the cache) against a cached one (clock and CRLs re-checked).
fn chain_validation(c: &mut Criterion) {
    use qaqpa_certs::pki::CertAndKey;
    let now = time::OffsetDateTime::now_utc();
    let ca = DevCa::generate("Bench CA", now).unwrap();
    let pair: CertAndKey = ca.issue_client(&SystemId::parse("KZ/GOV/000000000003/egov-portal").unwrap(), now).unwrap();
    // The CA certificate as DER, through the PEM reader CertAndKey already has.
    let anchor = CertAndKey { cert_pem: ca.cert_pem.clone(), key_pem: String::new() }.cert_der().unwrap();
    let chain = [pair.cert_der().unwrap()];
    let ts = now.unix_timestamp() as u64;
    let store = TrustStore::new(std::slice::from_ref(&anchor), &[]).unwrap();
    let mut group = c.benchmark_group("chain");
    group.bench_function("validate (cold)", |b| {
        b.iter(|| {
            let cold = TrustStore::new(std::slice::from_ref(&anchor), &[]).unwrap();
            cold.verify(black_box(&chain), ts).unwrap()
        })
    });
    group.bench_function("validate (cached)", |b| b.iter(|| store.verify(black_box(&chain), ts).unwrap()));
    group.finish();
}

criterion_group!(benches, c14n, xmldsig, jws_detached, chain_validation, message_log);
criterion_main!(benches);
