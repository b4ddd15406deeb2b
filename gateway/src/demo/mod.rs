//! `qaqpa demo`: the whole bus on one machine (README.md). Writes a dev PKI and a
//! config into DIR, starts two in-process demo systems and the gateway, prints
//! commands that work, and stops cleanly on Ctrl-C.
//!
//! Integration tests and benchmarks start from the same config, so it stays true.

pub mod smev3;
pub mod upstreams;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use qaqpa_routing::SystemId;

use crate::cli::pki_files;
use crate::config;

pub const CLIENT_SYSTEM: &str = "KZ/GOV/000000000003/egov-portal";
pub const REST_SYSTEM: &str = "KZ/GOV/000000000001/population-register";
pub const REST_SERVICE: &str = "KZ/GOV/000000000001/population-register/person/v1";
pub const SOAP_SYSTEM: &str = "KZ/GOV/000000000002/legacy-tax";
/// Its service code is the Body element's name, as X-Road requires of a SOAP call
/// (`SoapUtils.validateServiceName`: the element's name starts with the code).
pub const SOAP_SERVICE: &str = "KZ/GOV/000000000002/legacy-tax/GetDebt/v1";
/// The legacy tax system's WSDL (written to DIR/wsdl/, served by the gateway).
pub const LEGACY_TAX_WSDL: &str = include_str!("legacy-tax.wsdl");
/// The register's OpenAPI document (written to DIR/openapi/): it types the
/// register's SOAP face, so SOAP clients get fields (docs/mapping.md#typed-contracts).
pub const REGISTER_OPENAPI: &str = include_str!("population-register.openapi.json");
/// A person the demo register knows.
pub const DEMO_IIN: &str = "900101300123";
/// The register's asynchronous intake: clients leave address changes, it takes them.
pub const ASYNC_SERVICE: &str = "KZ/GOV/000000000001/population-register/address-change/v1";
/// The register's change notifications, for its subscribers.
pub const TOPIC: &str = "KZ/GOV/000000000001/population-register/person-changed/v1";
/// ШЭП names of the demo (docs/shep.md): the portal's senderId and password, and the
/// serviceIds legacy SyncChannel and AsyncChannel clients call.
pub const SHEP_SENDER: &str = "egov_portal";
pub const SHEP_PASSWORD: &str = "demo-shep-password";
pub const SHEP_REGISTER_SENDER: &str = "population_register";
pub const SHEP_PERSON: &str = "PopulationRegister_Person";
pub const SHEP_DEBT: &str = "LegacyTax_Debt";
pub const SHEP_ADDRESS_CHANGE: &str = "PopulationRegister_AddressChange";

#[derive(Args, Clone, Debug)]
pub struct DemoArgs {
    /// Directory for the PKI (DIR/pki), config (DIR/qaqpa.toml) and data (DIR/data).
    #[arg(long, default_value = "./qaqpa-demo")]
    pub dir: PathBuf,
    /// Address all demo listeners bind to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// mTLS data listener port (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    pub data_port: u16,
    /// Plaintext demo listener port; it trusts the X-Road-Client header (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub plain_port: u16,
    /// Admin listener port (0 picks a free one).
    #[arg(long, default_value_t = 9090)]
    pub admin_port: u16,
}

/// Writes DIR/pki (once; kept across runs) and DIR/qaqpa.toml pointing at the
/// given upstream addresses. Returns the config path.
pub fn write_files(args: &DemoArgs, rest: SocketAddr, soap: SocketAddr) -> anyhow::Result<PathBuf> {
    let pki = args.dir.join("pki");
    std::fs::create_dir_all(args.dir.join("data"))?;
    if !pki.join(pki_files::CA_CERT).exists() {
        let client = SystemId::parse(CLIENT_SYSTEM)?;
        let names = vec!["localhost".to_owned(), args.bind.to_string()];
        pki_files::init(&pki, &[client], &names, false)?;
    }
    // A PKI kept from a demo before operators had their own CA gains one.
    if !pki.join(pki_files::OPERATOR_CA_CERT).exists() {
        pki_files::init_operators(&pki)?;
    }
    smev3::write_messages(&args.dir, DEMO_IIN)?;
    std::fs::create_dir_all(args.dir.join("wsdl"))?;
    pki_files::write_file(&args.dir.join("wsdl/legacy-tax.wsdl"), LEGACY_TAX_WSDL, false)?;
    std::fs::create_dir_all(args.dir.join("openapi"))?;
    pki_files::write_file(&args.dir.join("openapi/population-register.json"), REGISTER_OPENAPI, false)?;
    let path = args.dir.join("qaqpa.toml");
    pki_files::write_file(&path, &config_text(args, rest, soap), false)?;
    Ok(path)
}

fn config_text(args: &DemoArgs, rest: SocketAddr, soap: SocketAddr) -> String {
    let bind = args.bind;
    format!(
        r#"# Written by `qaqpa demo`; rewritten on every start. See deploy/qaqpa.example.toml
# for every key with its meaning.

[gateway]
node = "demo"

[[listener]]
name = "data"
address = "{bind}:{data}"
tls = {{ cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/ca.crt" }}

# Plaintext, for trying the bus with a bare curl: it trusts X-Road-Client as claimed.
[[listener]]
name = "demo-plain"
address = "{bind}:{plain}"
insecure = true

# Operators have a CA of their own: no member system's certificate opens the admin
# API. The operator listed below may also reload and handle dead letters.
[admin]
address = "{bind}:{admin}"
tls = {{ cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/{operator_ca}" }}

[[operator]]
name = "{operator}"
role = "admin"

[[system]]
id = "{CLIENT_SYSTEM}"
# Its ШЭП identity: SyncChannel/AsyncChannel messages from senderId {SHEP_SENDER}
# (password {SHEP_PASSWORD}, kept only as this Argon2 hash) are this system's.
shep_sender = "{SHEP_SENDER}"
shep_password_hash = "{password_hash}"

[[system]]
id = "{REST_SYSTEM}"
shep_sender = "{SHEP_REGISTER_SENDER}"

[[system]]
id = "{SOAP_SYSTEM}"

[[service]]
id = "{REST_SERVICE}"
kind = "rest"
upstream = ["http://{rest}/persons"]
openapi = "openapi/population-register.json"
timeout = "10s"
sla = {{ availability = 99.9, latency = "200ms", latency_target = 99.0, window = "30d" }}
# Legacy ШЭП clients reach it at /bip-sync/ with this serviceId (through the SOAP face below).
shep_service_id = "{SHEP_PERSON}"

# Its SOAP face for legacy systems: person(iin) → GET /{{iin}} (docs/mapping.md). The
# operation is named after the service code: X-Road requires the Body element's name
# to start with it.
[service.soap]
namespace = "http://population-register.gov.kz/person"

[[service.soap.operation]]
name = "person"
method = "GET"
path = "/{{iin}}"

[[service]]
id = "{SOAP_SERVICE}"
kind = "soap"
upstream = ["http://{soap}/tax"]
wsdl = "wsdl/legacy-tax.wsdl"
timeout = "10s"
shep_service_id = "{SHEP_DEBT}"

# Its REST face for platform services: GET /{{iin}} → GetDebt(iin).
[service.rest]
namespace = "http://legacy-tax.gov.kz/debt"
types = {{ amount = "number" }}

[[service.rest.operation]]
name = "GetDebt"
method = "GET"
path = "/{{iin}}"
soap_action = "http://legacy-tax.gov.kz/debt/GetDebt"

# Asynchronous: clients POST /a1/{{service}} and get 202 once it is on disk; the
# register takes work from GET /a1/inbox/{{its system}} (docs/asynchronous.md).
[[service]]
id = "{ASYNC_SERVICE}"
kind = "rest"
upstream = ["http://{rest}/persons"]
mailbox = "pull"
shep_service_id = "{SHEP_ADDRESS_CHANGE}"
# Also a SMEV 3 kind of information: SMEV 3 systems reach it at /smev3/ (docs/smev3.md).
smev_kinds = ["{smev_kind}"]

# Events: the register announces changed records; its subscribers read them in order.
[[topic]]
id = "{TOPIC}"
subscribers = ["{CLIENT_SYSTEM}"]

[[access]]
service = "{REST_SERVICE}"
clients = ["{CLIENT_SYSTEM}"]

[[access]]
service = "{ASYNC_SERVICE}"
clients = ["{CLIENT_SYSTEM}"]

[[access]]
service = "{SOAP_SERVICE}"
clients = ["{CLIENT_SYSTEM}"]

# Each client of the register: 50 requests per second (bursts of 100), 100,000 a day.
[[limit]]
service = "{REST_SERVICE}"
rate = "50/s"
burst = 100
quota_day = 100000

# Signature trust, and the gateway's key (it signs its SMEV 3 answers, SIGNED_BY_SMEV).
[signatures]
trust_anchors = "pki/ca.crt"
cert = "pki/gateway.crt"
key = "pki/gateway.key"

[storage]
data_dir = "data"
"#,
        smev_kind = smev3::SMEV_KIND,
        data = args.data_port,
        plain = args.plain_port,
        admin = args.admin_port,
        operator_ca = pki_files::OPERATOR_CA_CERT,
        operator = pki_files::OPERATOR_NAME,
        password_hash = crate::cli::shep_password_hash(SHEP_PASSWORD).unwrap_or_default(),
    )
}

/// A SyncChannel `SendMessage` as legacy ШЭП clients send it (docs/shep.md#sources).
pub fn sample_sync(message_id: &str, iin: &str) -> String {
    format!(
        concat!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:typ="http://bip.bee.kz/SyncChannel/v10/Types">"#,
            r#"<soapenv:Header/><soapenv:Body><typ:SendMessage><request><requestInfo>"#,
            r#"<messageId>{id}</messageId><serviceId>{service}</serviceId><messageDate>2026-12-01T10:00:00+05:00</messageDate>"#,
            r#"<sender><senderId>{sender}</senderId><password>{password}</password></sender></requestInfo>"#,
            r#"<requestData><data><iin>{iin}</iin></data></requestData></request></typ:SendMessage></soapenv:Body></soapenv:Envelope>"#
        ),
        id = message_id,
        service = SHEP_PERSON,
        sender = SHEP_SENDER,
        password = SHEP_PASSWORD,
        iin = iin,
    )
}

/// An AsyncChannel `sendMessage` as legacy ШЭП clients send it.
pub fn sample_async(message_id: &str, iin: &str) -> String {
    format!(
        concat!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            r#"<soapenv:Body><typ:sendMessage xmlns:typ="http://bip.bee.kz/AsyncChannel/v10/Types"><request><messageInfo>"#,
            r#"<messageId>{id}</messageId><serviceId>{service}</serviceId><messageType>REQUEST</messageType>"#,
            r#"<messageDate>2026-12-01T10:00:00+05:00</messageDate><sender><senderId>{sender}</senderId><password>{password}</password></sender>"#,
            r#"</messageInfo><messageData><data><iin>{iin}</iin><address>Astana</address></data></messageData></request></typ:sendMessage></soapenv:Body></soapenv:Envelope>"#
        ),
        id = message_id,
        service = SHEP_ADDRESS_CHANGE,
        sender = SHEP_SENDER,
        password = SHEP_PASSWORD,
        iin = iin,
    )
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let localhost = SocketAddr::new(args.bind, 0);
    let rest = upstreams::start_rest(localhost).await?;
    let soap = upstreams::start_soap(localhost).await?;
    let path = write_files(&args, rest.addr, soap.addr)?;
    let config = config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = crate::server::start(config, Some(path.clone())).await?;
    let tls_addr = running.data_addrs[0];
    let plain_addr = running.data_addrs[1];
    let admin_addr = running.admin_addr.expect("demo config has an admin listener");
    print_tour(&args.dir, tls_addr, plain_addr, admin_addr);
    running.serve_until_signalled().await;
    rest.stop().await;
    soap.stop().await;
    Ok(())
}

fn print_tour(dir: &Path, tls: SocketAddr, plain: SocketAddr, admin: SocketAddr) {
    let pki = dir.join("pki");
    let pki = pki.display();
    let url = |scheme: &str, addr: SocketAddr| format!("{scheme}://{addr}/r1/{REST_SERVICE}/{DEMO_IIN}");
    println!("Qaqpa demo is running. Config: {}/qaqpa.toml", dir.display());
    println!();
    println!("# mTLS, as a registered system would call (certificate bound to {CLIENT_SYSTEM}):");
    println!(
        "curl --cacert {pki}/ca.crt --cert {pki}/egov-portal.crt --key {pki}/egov-portal.key -H 'X-Road-Client: {CLIENT_SYSTEM}' {}",
        url("https", tls)
    );
    println!();
    println!("# plaintext demo listener:");
    println!("curl -i -H 'X-Road-Client: {CLIENT_SYSTEM}' {}", url("http", plain));
    println!();
    println!("# the legacy SOAP system through the gateway (SOAP 1.1 with the X-Road 4.0 header, over mTLS):");
    println!(
        "curl --cacert {pki}/ca.crt --cert {pki}/egov-portal.crt --key {pki}/egov-portal.key -H 'Content-Type: text/xml' --data '{}' https://{tls}/soap",
        upstreams::sample_get_debt(DEMO_IIN)
    );
    println!();
    println!("# the legacy SOAP system's debt as JSON, for a REST client (REST → SOAP mediation):");
    println!("curl -H 'X-Road-Client: {CLIENT_SYSTEM}' http://{plain}/r1/{SOAP_SERVICE}/{DEMO_IIN}");
    println!();
    println!("# the REST population register as a SOAP operation, for a legacy client (SOAP → REST mediation):");
    println!(
        "curl -H 'Content-Type: text/xml' --data '{}' http://{plain}/soap",
        upstreams::sample_get_person(DEMO_IIN)
    );
    println!();
    println!("# its WSDL, with the endpoint pointed at the gateway (zeep and other SOAP clients load it from here):");
    println!(
        "curl --cacert {pki}/ca.crt --cert {pki}/egov-portal.crt --key {pki}/egov-portal.key 'https://{tls}/soap/{SOAP_SERVICE}?wsdl'"
    );
    println!();
    println!("# asynchronous: leave a request in the register's mailbox (202 once it is on disk; a resend gets the same id),");
    println!(
        "curl -H 'X-Road-Client: {CLIENT_SYSTEM}' -H 'X-Road-Id: demo-async-1' -H 'Content-Type: application/json' --data '{{\"iin\":\"{DEMO_IIN}\",\"address\":\"Astana\"}}' http://{plain}/a1/{ASYNC_SERVICE}"
    );
    println!("# then take it as the register (long-poll; answer with POST /a1/reply/{{id}}, or POST /a1/ack/{{id}}):");
    println!("curl -i -H 'X-Road-Client: {REST_SYSTEM}' 'http://{plain}/a1/inbox/{REST_SYSTEM}?wait=5s'");
    println!();
    println!("# events: the register announces a change; a subscriber reads it (then POST /e1/ack/{{topic}}?seq=N):");
    println!(
        "curl -H 'X-Road-Client: {REST_SYSTEM}' -H 'Content-Type: application/json' --data '{{\"iin\":\"{DEMO_IIN}\"}}' http://{plain}/e1/{TOPIC}"
    );
    println!("curl -i -H 'X-Road-Client: {CLIENT_SYSTEM}' 'http://{plain}/e1/{TOPIC}?wait=5s'");
    println!();
    let operator = format!("--cacert {pki}/ca.crt --cert {pki}/operator.crt --key {pki}/operator.key");
    println!("# the admin API, as the operator {} (certificate from the operators' own CA):", pki_files::OPERATOR_NAME);
    println!("curl {operator} https://{admin}/admin/v1/stats");
    println!("# reload the config (role \"admin\" only; agency certificates do not chain to the operators' CA):");
    println!("curl {operator} -X POST https://{admin}/admin/v1/reload");
    println!();
    println!(
        "# operator dashboard https://{admin}/ui (a browser needs {pki}/operator.crt/.key as its client certificate)   metrics: https://{admin}/metrics   SLA: https://{admin}/admin/v1/sla"
    );
    println!();
    println!("# SMEV 3 (docs/smev3.md): systems built for СМЭВ 3 connect unchanged; these calls are signed by the systems' keys");
    for (what, file) in smev3::CALLS {
        println!("# {what}:");
        println!(
            "curl -H 'Content-Type: text/xml; charset=utf-8' --data-binary @{}/smev3/{file} http://{plain}/smev3/",
            dir.display()
        );
    }
    println!("# the SMEV 3 WSDL (zeep loads it): curl 'http://{plain}/smev3/?wsdl'");
    println!();
    println!("# ШЭП SyncChannel, as a legacy system calls it (only the URL and the certificate change; WSDL at /bip-sync/?wsdl):");
    println!(
        "curl --cacert {pki}/ca.crt --cert {pki}/egov-portal.crt --key {pki}/egov-portal.key -H 'Content-Type: text/xml' --data '{}' https://{tls}/bip-sync/",
        sample_sync("6f1c2a3e-0d4b-4f7e-9a51-3c2b1d0e9f88", DEMO_IIN)
    );
    println!("# ШЭП AsyncChannel: the request is durably queued for the register (WSDL at /bip-async/?wsdl):");
    println!(
        "curl -H 'Content-Type: text/xml' --data '{}' http://{plain}/bip-async/",
        sample_async("5024113e-b70b-479d-8ac7-8c65103e3338", DEMO_IIN)
    );
    println!();
    println!("# monitoring records: curl {operator} 'https://{admin}/admin/v1/monitoring?format=csv'");
    println!("# health: curl {operator} https://{admin}/healthz   readiness: https://{admin}/readyz");
    println!(
        "# every exchange is in the signed message log; after Ctrl-C check it offline:\nqaqpa log verify {}/data/log --cert {pki}/gateway.crt",
        dir.display()
    );
    println!("# Ctrl-C stops the gateway and the demo systems.");
}
