//! Criterion benchmarks of the per-request decisions on the pass-through path.
//! Run: `cargo bench -p qaqpa-benches`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use qaqpa_adapters::problem::problem_json;
use qaqpa_adapters::ErrorCode;
use qaqpa_routing::{split_rest_path, RouteTable, ServiceId};

/// A registry the size of a national bus: 2,000 services, most with two versions.
fn table() -> RouteTable<u32> {
    let mut b = RouteTable::builder();
    let mut n = 0;
    for org in 0..200 {
        for svc in 0..5 {
            for v in 1..=2 {
                let id = format!("KZ/GOV/{org:012}/system-{org}/service-{svc}/v{v}");
                b.insert(&ServiceId::parse(&id).unwrap(), n).unwrap();
                n += 1;
            }
        }
    }
    b.build()
}

fn route_lookup(c: &mut Criterion) {
    let t = table();
    let path = "KZ/GOV/000000000123/system-123/service-4/v2/persons/900101300123";
    c.bench_function("split_rest_path", |b| b.iter(|| split_rest_path(black_box(path)).unwrap()));
    c.bench_function("split_and_resolve (2000 services)", |b| {
        b.iter(|| {
            let target = split_rest_path(black_box(path)).unwrap();
            **t.resolve(target).unwrap().0
        })
    });
    c.bench_function("resolve_miss", |b| {
        let target = split_rest_path("KZ/GOV/000000000999/system-999/service-4/v2/x").unwrap();
        b.iter(|| t.resolve(black_box(target)).is_none())
    });
}

fn error_body(c: &mut Criterion) {
    c.bench_function("problem_json", |b| {
        b.iter(|| {
            problem_json(ErrorCode::AccessDenied, black_box("KZ/GOV/1/a may not call KZ/GOV/2/b/c/v1"), Some("id-1"))
        })
    });
}

fn header_work(c: &mut Criterion) {
    use qaqpa_gateway::headers;
    let req = http::Request::post("/r1/KZ/GOV/000000000001/bench/echo/v1/item?x=1")
        .header("host", "gateway.example")
        .header("x-road-client", "KZ/GOV/000000000003/egov-portal")
        .header("x-road-id", "0192f0c4-6f6e-7a3b-9c1d-2e3f4a5b6c7d")
        .header("content-type", "application/json")
        .header("content-length", "1024")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .body(())
        .unwrap();
    c.bench_function("message_id (client-supplied)", |b| b.iter(|| headers::message_id(black_box(req.headers()))));
    let head = req.clone().into_parts().0;
    c.bench_function("request_head_digest (7 headers)", |b| {
        b.iter(|| headers::request_head_digest(black_box(&head), "f92591a3-6bf0-49b1-987b-0dd78c034cc3", "msg-1"))
    });
    let body = vec![b'x'; 1024];
    c.bench_function("request body SHA-512 (1 KiB)", |b| {
        use sha2::Digest;
        b.iter(|| sha2::Sha512::digest(black_box(&body)))
    });
    c.bench_function("strip_hop_by_hop + add_forwarded", |b| {
        b.iter_batched(
            || req.headers().clone(),
            |mut h| {
                headers::strip_hop_by_hop(&mut h);
                headers::add_forwarded(&mut h, "127.0.0.1:40000".parse().unwrap(), true);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn limiter(c: &mut Criterion) {
    use qaqpa_routing::limit::{LocalLimiter, Rate};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let rate = Rate::new(1_000_000, 1_000_000_000, 1000).unwrap();
    let limiter = Arc::new(LocalLimiter::default());
    for key in 0..10_000u64 {
        limiter.check(key, rate, 0);
    }
    let clock = AtomicU64::new(1);
    c.bench_function("gcra check (10k keys, single thread)", |b| {
        b.iter(|| {
            let t = clock.fetch_add(1000, Ordering::Relaxed);
            limiter.check(black_box(t % 10_000), rate, t)
        })
    });
    // Contended: a second thread hammers the same key for the whole measurement.
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (limiter, stop) = (limiter.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut t = 0u64;
            while !stop.load(Ordering::Relaxed) {
                t += 1000;
                limiter.check(42, rate, t);
            }
        })
    };
    c.bench_function("gcra check (one key, contended by a 2nd thread)", |b| {
        b.iter(|| {
            let t = clock.fetch_add(1000, Ordering::Relaxed);
            limiter.check(black_box(42), rate, t)
        })
    });
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
}

fn soap(c: &mut Criterion) {
    use criterion::Throughput;
    use qaqpa_adapters::mapping::{json_to_xml, xml_to_json, Rules};
    use qaqpa_adapters::soap::{read_envelope, XmlLimits};
    let head = qaqpa_gateway::demo::upstreams::sample_get_debt("900101300123");
    let limits = XmlLimits { max_elements: 1_000_000, ..XmlLimits::default() };
    let mut group = c.benchmark_group("soap header extraction");
    for size in [1024usize, 64 * 1024, 1024 * 1024] {
        // Pad the Body with realistic records up to the size.
        let record =
            "<tax:record><tax:year>2025</tax:year><tax:amount>1250.00</tax:amount><tax:note>ok</tax:note></tax:record>";
        let pad = record.repeat(size.saturating_sub(head.len()) / record.len());
        let doc = head.replace("</tax:GetDebt>", &format!("{pad}</tax:GetDebt>"));
        let bytes = bytes::Bytes::from(doc);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("{} bytes", bytes.len()), |b| {
            b.iter(|| read_envelope(black_box(&bytes), Some("text/xml"), &limits).unwrap())
        });
    }
    group.finish();
    let person = r#"<GetPersonResponse xmlns="urn:p"><iin>900101300123</iin><surname>Abenova</surname><name>Aigerim</name><birthDate>1990-01-01</birthDate><region>Astana</region><phone>1</phone><phone>2</phone></GetPersonResponse>"#;
    let json = xml_to_json(person.as_bytes(), &Rules::default(), &XmlLimits::default()).unwrap();
    let object = json["GetPersonResponse"].as_object().unwrap().clone();
    c.bench_function("SOAP body -> JSON (person record)", |b| {
        b.iter(|| xml_to_json(black_box(person.as_bytes()), &Rules::default(), &XmlLimits::default()).unwrap())
    });
    c.bench_function("JSON -> SOAP body (person record)", |b| {
        b.iter(|| json_to_xml("GetPersonResponse", "urn:p", black_box(&object)).unwrap())
    });
}

criterion_group!(benches, route_lookup, error_body, header_work, limiter, soap);
criterion_main!(benches);
