//! The `qaqpa` binary as an operator runs it: check-config, certs, and the demo
//! answering its own printed curl lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const QAQPA: &str = env!("CARGO_BIN_EXE_qaqpa");

fn qaqpa(args: &[&str]) -> std::process::Output {
    Command::new(QAQPA).args(args).output().unwrap()
}

#[test]
fn certs_init_issue_and_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = qaqpa(&["certs", "init", "--dir", pki.to_str().unwrap(), "--system", "KZ/GOV/000000000003/egov-portal"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["ca.crt", "ca.key", "gateway.crt", "gateway.key", "egov-portal.crt", "egov-portal.key"] {
        assert!(pki.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki.join("ca.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private keys must not be group/world readable");
    }
    // A second init refuses to overwrite the CA.
    let again = qaqpa(&["certs", "init", "--dir", pki.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let out = qaqpa(&[
        "certs",
        "issue",
        "--dir",
        pki.to_str().unwrap(),
        "--system",
        "KZ/GOV/000000000001/population-register",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cert_sha256 = \""), "{stdout}");
    let der = rustls_pki_types::pem::PemObject::from_pem_file(pki.join("population-register.crt"));
    let der: rustls_pki_types::CertificateDer = der.unwrap();
    let id = qaqpa_certs::inspect(&der).unwrap();
    assert_eq!(id.san_system.unwrap().as_str(), "KZ/GOV/000000000001/population-register");
    assert!(stdout.contains(&qaqpa_certs::fingerprint_hex(&id.sha256)));

    let bad = qaqpa(&["certs", "issue", "--dir", pki.to_str().unwrap(), "--system", "not/an/id"]);
    assert!(!bad.status.success());

    // Operators come from the operators' CA, named by their SAN URI.
    for f in ["operator-ca.crt", "operator-ca.key", "operator.crt", "operator.key"] {
        assert!(pki.join(f).exists(), "{f} missing");
    }
    let out = qaqpa(&["certs", "issue", "--dir", pki.to_str().unwrap(), "--operator", "auditor"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let der: rustls_pki_types::CertificateDer =
        rustls_pki_types::pem::PemObject::from_pem_file(pki.join("auditor.crt")).unwrap();
    let id = qaqpa_certs::inspect(&der).unwrap();
    assert_eq!((id.san_system, id.san_operator.as_deref()), (None, Some("auditor")));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[[operator]] name = \"auditor\""));
    let bad = qaqpa(&["certs", "issue", "--dir", pki.to_str().unwrap(), "--operator", "not an operator"]);
    assert!(!bad.status.success());

    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/qaqpa.example.toml")).unwrap();
    let config = dir.path().join("qaqpa.toml");
    std::fs::write(&config, &example).unwrap();
    let out = qaqpa(&["check-config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (2 listeners, 3 systems, 2 services, 2 access lists)"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", String::from_utf8_lossy(&out.stderr));

    // The admin listener trusting the agencies' CA: valid, but check-config warns
    // with the key and line, and exits 0.
    let shared_ca = example.replace("client_ca = \"pki/operator-ca.crt\"", "client_ca = \"pki/ca.crt\"");
    std::fs::write(&config, &shared_ca).unwrap();
    let out = qaqpa(&["check-config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let admin = shared_ca.find("[admin]").unwrap();
    let line = shared_ca[..admin + shared_ca[admin..].find("client_ca").unwrap()].matches('\n').count() + 1;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!("qaqpa.toml:{line}: admin.tls.client_ca: is the same file as listener[0].tls.client_ca");
    assert!(stderr.contains(&expected), "{expected} in {stderr}");
}

#[test]
fn check_config_on_a_broken_file_names_key_and_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broken.toml");
    std::fs::write(
        &config,
        "[[listener]]\naddress = \"127.0.0.1:1\"\ninsecure = true\n\n[[system]]\nid = \"KZ/GOV/1/a\"\n\n[[access]]\nservice = \"KZ/GOV/1/a/nope\"\nclients = [\"KZ/GOV/1/a\"]\n",
    )
    .unwrap();
    let out = qaqpa(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml:9: access[0].service: service KZ/GOV/1/a/nope is not registered"), "{stderr}");

    std::fs::write(&config, "[[listener]]\naddress = \"127.0.0.1:1\"\ninsecure = true\nbogus = 1\n").unwrap();
    let out = qaqpa(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml:4: bogus: unknown field `bogus`"), "{stderr}");

    let out = qaqpa(&["check-config", dir.path().join("absent.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

/// Kills the child on drop so a failed assertion leaves no gateway running.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_answers_its_printed_curl_lines_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        Command::new(QAQPA)
            .args([
                "demo",
                "--dir",
                dir.path().to_str().unwrap(),
                "--data-port",
                "0",
                "--plain-port",
                "0",
                "--admin-port",
                "0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut curls = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while curls.len() < 20 {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("demo printed no curl lines");
        if line.starts_with("curl ") {
            curls.push(line);
        }
    }
    for dir_file in
        ["pki/ca.crt", "pki/gateway.crt", "pki/gateway.key", "pki/egov-portal.crt", "pki/egov-portal.key", "qaqpa.toml"]
    {
        assert!(dir.path().join(dir_file).exists(), "{dir_file} missing");
    }
    let run = |line: &str| {
        let out = Command::new("sh").arg("-c").arg(format!("{line} -sS --max-time 10")).output().unwrap();
        assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mtls = run(&curls[0]);
    assert!(curls[0].starts_with("curl --cacert") && curls[0].contains("https://"));
    let person: serde_json::Value = serde_json::from_str(&mtls).unwrap_or_else(|e| panic!("{e}: {mtls}"));
    assert_eq!(person["surname"], "Abenova");
    let plain = run(&curls[1]);
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(plain.to_ascii_lowercase().contains("x-road-request-hash:"), "{plain}");
    let soap = run(&curls[2]);
    assert!(soap.contains("<tax:amount currency=\"KZT\">12500</tax:amount>"), "{soap}");
    // The printed SOAP call is one X-Road accepts (its client proxy's checks), and
    // the answer carries X-Road's requestHash.
    let printed = curls[2].split("--data '").nth(1).and_then(|s| s.split('\'').next()).unwrap();
    let envelope =
        qaqpa_adapters::soap::read_envelope(printed.as_bytes(), Some("text/xml"), &Default::default()).unwrap();
    assert_eq!(qaqpa_adapters::xroad::check_request(&envelope), Ok(()), "{printed}");
    let code = envelope.header.service.as_ref().and_then(|s| s.service_code.clone()).unwrap();
    assert_eq!(envelope.operation.map(|(_, name)| name), Some(code), "service code = Body element");
    assert!(envelope.header.id.is_some(), "{printed}");
    assert!(soap.contains("<xrd:requestHash "), "{soap}");
    assert!(
        soap.contains("<xrd:protocolVersion>4.0</xrd:protocolVersion>"),
        "the provider echoes the X-Road header: {soap}"
    );
    let debt: serde_json::Value = serde_json::from_str(&run(&curls[3])).unwrap();
    assert_eq!(debt["amount"]["#text"], 12500, "REST → SOAP mediation: {debt}");
    let person = run(&curls[4]);
    assert!(person.contains("<surname>Abenova</surname>"), "SOAP → REST mediation: {person}");
    let wsdl = run(&curls[5]);
    let tls_port = curls[0].rsplit("https://127.0.0.1:").next().unwrap().split('/').next().unwrap();
    assert!(wsdl.contains(&format!("<soap:address location=\"https://127.0.0.1:{tls_port}/soap\"/>")), "{wsdl}");
    assert!(wsdl.contains(&format!("<soap12:address location=\"https://127.0.0.1:{tls_port}/soap\"/>")));
    let sent: serde_json::Value = serde_json::from_str(&run(&curls[6])).unwrap();
    assert_eq!((sent["message_id"].as_str(), sent["duplicate"].as_bool()), (Some("demo-async-1"), Some(false)));
    let taken = run(&curls[7]);
    assert!(taken.starts_with("HTTP/1.1 200"), "{taken}");
    assert!(taken.contains(&format!("qaqpa-message-id: {}", sent["id"].as_str().unwrap())), "{taken}");
    assert!(taken.ends_with(r#"{"iin":"900101300123","address":"Astana"}"#), "the body as sent: {taken}");
    let published: serde_json::Value = serde_json::from_str(&run(&curls[8])).unwrap();
    assert_eq!(published["seq"], 1, "{published}");
    let event = run(&curls[9]);
    assert!(event.starts_with("HTTP/1.1 200") && event.contains("qaqpa-event-seq: 1"), "{event}");
    assert!(event.ends_with(r#"{"iin":"900101300123"}"#), "{event}");
    // The admin API with the operator's certificate from the operators' own CA.
    for file in ["pki/operator-ca.crt", "pki/operator.crt", "pki/operator.key"] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    assert!(curls[10].contains("operator.crt") && curls[10].contains("/admin/v1/stats"), "{}", curls[10]);
    let stats: serde_json::Value = serde_json::from_str(&run(&curls[10])).unwrap();
    assert!(stats.is_object(), "{stats}");
    let reloaded: serde_json::Value = serde_json::from_str(&run(&curls[11])).unwrap();
    assert_eq!(reloaded["reloaded"], true, "{reloaded}");
    // An agency's certificate does not open the admin listener.
    let agency = curls[10].replace("operator.crt", "egov-portal.crt").replace("operator.key", "egov-portal.key");
    let refused = Command::new("sh").arg("-c").arg(format!("{agency} -sS --max-time 10")).output().unwrap();
    assert!(!refused.status.success(), "an agency certificate reached the admin API");
    // SMEV 3: send → take → ack → answer → collect → ack, each call as printed.
    let sent = run(&curls[12]);
    assert!(sent.contains("<s:SendRequestResponse") && sent.contains("requestIsQueued"), "{sent}");
    let taken = run(&curls[13]);
    assert!(taken.contains("<s:RequestMessage>") && taken.contains("<ac:Iin>900101300123</ac:Iin>"), "{taken}");
    assert!(taken.contains("<s:SMEVSignature><ds:Signature"), "{taken}");
    assert!(run(&curls[14]).contains("AckResponse"));
    let answered = run(&curls[15]);
    assert!(answered.contains("<s:SendResponseResponse"), "{answered}");
    let collected = run(&curls[16]);
    assert!(
        collected.contains("<s:ResponseMessage>") && collected.contains("<ac:Accepted>true</ac:Accepted>"),
        "{collected}"
    );
    let acked = run(&curls[17]);
    assert!(acked.contains("AckResponse") && !acked.contains("Fault"), "{acked}");

    // ШЭП (issue 18): the SyncChannel call answers with the register's person, the
    // AsyncChannel send is queued.
    let sync = run(&curls[18]);
    assert!(sync.contains("<code>SCSS001</code>") && sync.contains("<surname>Abenova</surname>"), "{sync}");
    let queued = run(&curls[19]);
    assert!(queued.contains("<code>ON_DELIVERY</code>"), "{queued}");

    // SIGTERM drains and exits 0.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "demo exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The printed message-log check passes over what the demo just carried.
    let verify = rx.try_iter().find(|l| l.starts_with("qaqpa log verify")).expect("demo printed the log check");
    let args: Vec<&str> = verify.split_whitespace().skip(1).collect();
    let out = Command::new(QAQPA).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.starts_with("VALID: "), "{verify}: {text}");
    let records: u64 = text["VALID: ".len()..].split(' ').next().unwrap().parse().unwrap();
    // Records by exchange id: a forwarded exchange has its forwarding and its
    // answer, a take one more record per message it handed out.
    let mut exchanges = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (_, bytes) in qaqpa_gateway::observe::message_log::read_segments(std::path::Path::new(args[2])).unwrap() {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line: serde_json::Value = serde_json::from_slice(line).unwrap();
            if let Some(r) = line.get("record") {
                let event = r["event"].as_str().unwrap_or("exchange").to_owned();
                exchanges.entry(r["id"].as_str().unwrap().to_owned()).or_default().push(event);
            }
        }
    }
    let total: usize = exchanges.values().map(Vec::len).sum();
    assert_eq!(total as u64, records);
    // Nine exchanges, two ШЭП ones, then six SMEV 3 calls under four ids: an Ack is
    // recorded under the MessageID it acknowledges (send + ack, reply + send + ack).
    assert_eq!(exchanges.len(), 15, "the exchanges are logged (the WSDL downloads are not): {exchanges:?}");
    let smev_sent = exchanges.values().filter(|e| e.as_slice() == ["send", "ack"]).count();
    assert_eq!(smev_sent, 1, "the SMEV 3 request's send and ack: {exchanges:?}");
    assert!(exchanges.values().any(|e| e.as_slice() == ["reply", "send", "ack"]), "{exchanges:?}");
    let forwarded = exchanges.values().filter(|e| e.first().is_some_and(|e| e == "forward")).count();
    assert!(forwarded >= 3, "the synchronous ones were on the record before the provider was called: {exchanges:?}");
}

/// A free loopback port (bound, then released for the child process to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_ready(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{admin}/readyz")])
            .output();
        if out.is_ok_and(|o| o.stdout == b"200") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gateway did not become ready");
}

#[test]
fn quota_survives_a_restart_of_the_gateway_process() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    assert!(qaqpa(&["certs", "init", "--dir", pki.to_str().unwrap(), "--system", "KZ/GOV/000000000003/egov-portal"])
        .status
        .success());
    // The demo's REST register is the provider.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let provider = rt.block_on(qaqpa_gateway::demo::upstreams::start_rest("127.0.0.1:0".parse().unwrap())).unwrap();
    let (plain, admin) = (free_port(), free_port());
    let service = "KZ/GOV/000000000001/population-register/person/v1";
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:{plain}\"\ninsecure = true\n[admin]\naddress = \"127.0.0.1:{admin}\"\ninsecure = true\n\
         [[system]]\nid = \"KZ/GOV/000000000003/egov-portal\"\n[[system]]\nid = \"KZ/GOV/000000000001/population-register\"\n\
         [[service]]\nid = \"{service}\"\nkind = \"rest\"\nupstream = [\"http://{}/persons\"]\n\
         [[access]]\nservice = \"{service}\"\nclients = [\"KZ/GOV/000000000003/egov-portal\"]\n\
         [[limit]]\nservice = \"{service}\"\nquota_day = 3\n",
        provider.addr
    );
    let path = dir.path().join("qaqpa.toml");
    std::fs::write(&path, config).unwrap();
    let call = || {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "X-Road-Client: KZ/GOV/000000000003/egov-portal",
                // Qaqpa's statuses (429) rather than X-Road's 400 for client.*.
                "-H",
                "Accept: application/problem+json",
            ])
            .arg(format!("http://127.0.0.1:{plain}/r1/{service}/900101300123"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let start = || {
        let child = Child(
            Command::new(QAQPA)
                .args(["run", "--config", path.to_str().unwrap()])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_ready(admin);
        child
    };
    let stop = |mut child: Child| {
        assert!(Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap().success());
        assert!(child.0.wait().unwrap().success());
    };
    let gateway = start();
    assert_eq!([call(), call()], ["200", "200"]);
    stop(gateway);
    assert!(dir.path().join("data/quotas.tsv").exists());
    let gateway = start();
    assert_eq!(call(), "200", "the third request of the day still fits");
    assert_eq!(call(), "429", "the quota of 3 counted the requests from before the restart");
    stop(gateway);
    rt.block_on(provider.stop());
}
