//! Criterion benchmarks of message signatures (DESIGN §8): exclusive c14n
//! throughput, XMLDSig sign and verify of 1 KiB and 64 KiB SOAP messages, and —
//! measured in the same run — the bare signature operations they contain, so the
//! XML overhead shows as a ratio. Run: `cargo bench -p qaqpa-benches --bench signatures`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use qaqpa_adapters::soap::{write_envelope, SoapVersion, XRoadHeader, XRoadIdentifier};
use qaqpa_certs::c14n::{canonicalize, C14nOptions};
use qaqpa_certs::jws;
use qaqpa_certs::keys::{self, SigningKey};
use qaqpa_certs::pki::DevCa;
use qaqpa_certs::xmldsig::{self, DigestAlg};
use qaqpa_routing::SystemId;

/// An X-Road SOAP request whose Body holds about `size` bytes of records.
fn message(size: usize) -> String {
    let header = XRoadHeader {
        client: Some(XRoadIdentifier::from_id("KZ/GOV/000000000003/egov-portal")),
        service: Some(XRoadIdentifier::from_id("KZ/GOV/000000000002/legacy-tax/debt/v1")),
        id: Some("bench-1".into()),
        protocol_version: Some("4.0".into()),
        ..Default::default()
    };
    let mut body = String::from("<t:GetDebts xmlns:t=\"http://legacy-tax.gov.kz/debt\">");
    while body.len() < size {
        body.push_str(
            "<t:person iin=\"900101300123\"><t:name>Әлия Серікқызы</t:name><t:amount>1250.50</t:amount></t:person>",
        );
    }
    body.push_str("</t:GetDebts>");
    write_envelope(SoapVersion::V11, &header, &body)
}

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
    let mut group = c.benchmark_group("jws");
    group.bench_function("sign 1 KiB", |b| {
        b.iter(|| jws::sign_detached(&key, &chain, serde_json::Map::new(), black_box(&body)).unwrap())
    });
    group.bench_function("verify 1 KiB", |b| b.iter(|| jws::verify_detached(black_box(&token), &body).unwrap()));
    group.finish();
}

criterion_group!(benches, c14n, xmldsig, jws_detached);
criterion_main!(benches);
