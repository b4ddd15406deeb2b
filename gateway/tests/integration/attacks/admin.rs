//! The admin API as an attacker with a valid agency certificate sees it (issue 15
//! item 9): where the admin listener admits the agencies' CA, the certificate
//! connects but is no operator, so it cannot reload or touch dead letters (403
//! `client.access_denied`) and the running configuration stays; operators act by
//! role.

use std::time::Duration;

use crate::common::*;

const ADMIN_INSECURE: &str = "[admin]\naddress = \"127.0.0.1:0\"\ninsecure = true\n";

/// The test gateway with an mTLS admin listener trusting `client_ca` and these
/// `[[operator]]` tables; the operators' CA also issues `auditor` and `stranger`.
async fn gateway_with_admin(client_ca: &'static str, operators: &'static str) -> TestGateway {
    TestGateway::start_with("", move |pki, text| {
        let dir = pki.path("");
        let ca = std::fs::read_to_string(pki.path("operator-ca.crt")).unwrap();
        let key = std::fs::read_to_string(pki.path("operator-ca.key")).unwrap();
        let operators_ca = qaqpa_certs::DevCa::load(&ca, &key).unwrap();
        let now = time::OffsetDateTime::now_utc();
        for name in ["auditor", "stranger"] {
            qaqpa_gateway::cli::pki_files::write_pair(&dir, name, &operators_ca.issue_operator(name, now).unwrap())
                .unwrap();
        }
        // The misconfiguration of the issue: operators and agencies in one bundle.
        let agencies = std::fs::read_to_string(pki.path("ca.crt")).unwrap();
        std::fs::write(pki.path("operators-and-agencies.crt"), ca + &agencies).unwrap();
        assert!(text.contains(ADMIN_INSECURE));
        let admin = format!(
            "[admin]\naddress = \"127.0.0.1:0\"\ntls = {{ cert = \"pki/gateway.crt\", key = \"pki/gateway.key\", client_ca = \"pki/{client_ca}\" }}\n"
        );
        text.replace(ADMIN_INSECURE, &admin) + operators
    })
    .await
}

fn admin_url(gw: &TestGateway, path: &str) -> String {
    format!("https://localhost:{}{path}", gw.running.admin_addr.unwrap().port())
}

/// (status, X-Road-Error code, content type) of an admin call presenting `stem`.
async fn call(gw: &TestGateway, stem: &str, method: reqwest::Method, path: &str) -> (u16, String, String) {
    let client = gw.pki.client(Some(stem)).build().unwrap();
    let r = client.request(method, admin_url(gw, path)).send().await.unwrap();
    let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status().as_u16(), header("qaqpa-error"), header("content-type"))
}

/// Points the test service at a dead port in the config file on disk: a reload
/// that went through would make the next request fail.
fn break_the_upstream_on_disk(gw: &TestGateway) {
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let provider = format!("upstream = [\"http://{}/base\"]", gw.provider.addr);
    assert!(text.contains(&provider));
    std::fs::write(&gw.config_path, text.replacen(&provider, "upstream = [\"http://127.0.0.1:9/base\"]", 1)).unwrap();
}

async fn through_the_data_listener(gw: &TestGateway) -> u16 {
    let url = gw.tls_url(&format!("/r1/{SERVICE}/echo/x"));
    gw.client().get(url).header("X-Road-Client", CLIENT).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_data_client_certificate_on_the_admin_listener_cannot_reload() {
    let operators = "\n[[operator]]\nname = \"duty-operator\"\nrole = \"admin\"\n";
    let gw = gateway_with_admin("operators-and-agencies.crt", operators).await;
    let post = reqwest::Method::POST;
    break_the_upstream_on_disk(&gw);
    // The agency's certificate chains to the admin listener's CA bundle: it connects,
    // but it is not an operator.
    let (status, code, content_type) = call(&gw, "egov-portal", post.clone(), "/admin/v1/reload").await;
    assert_eq!((status, code.as_str()), (403, "client.access_denied"));
    assert_eq!(content_type, "application/problem+json");
    let uuid = "/admin/v1/dead-letters/6f1c2b9e-0f6a-4e8e-9a51-1d4f3c2b1a00";
    let (status, code, _) = call(&gw, "egov-portal", post.clone(), &format!("{uuid}/replay")).await;
    assert_eq!((status, code.as_str()), (403, "client.access_denied"));
    let (status, _, _) = call(&gw, "egov-portal", reqwest::Method::DELETE, uuid).await;
    assert_eq!(status, 403);
    // Nor may it read: the list names who may.
    let (status, _, _) = call(&gw, "egov-portal", reqwest::Method::GET, "/admin/v1/systems").await;
    assert_eq!(status, 403);
    // The running configuration is unchanged: the provider still answers.
    let before = gw.provider.seen.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(through_the_data_listener(&gw).await, 200);
    assert_eq!(gw.provider.seen.requests.load(std::sync::atomic::Ordering::SeqCst), before + 1);

    // The operator's certificate reloads, and the change takes effect.
    let (status, _, _) = call(&gw, "operator", post, "/admin/v1/reload").await;
    assert_eq!(status, 200);
    assert_ne!(through_the_data_listener(&gw).await, 200, "the reloaded upstream is the dead port");
}

#[tokio::test]
async fn without_an_operator_list_any_admitted_certificate_reads_but_none_may_change() {
    let gw = gateway_with_admin("operators-and-agencies.crt", "").await;
    break_the_upstream_on_disk(&gw);
    for stem in ["egov-portal", "operator"] {
        let (status, _, _) = call(&gw, stem, reqwest::Method::GET, "/admin/v1/systems").await;
        assert_eq!(status, 200, "{stem} reads");
        let (status, code, _) = call(&gw, stem, reqwest::Method::POST, "/admin/v1/reload").await;
        assert_eq!((status, code.as_str()), (403, "client.access_denied"), "{stem} may not reload");
    }
    assert_eq!(through_the_data_listener(&gw).await, 200, "nothing was reloaded");
}

#[tokio::test]
async fn a_read_only_operator_cannot_post_and_agencies_cannot_connect() {
    let operators = "\n[[operator]]\nname = \"duty-operator\"\nrole = \"admin\"\n\n[[operator]]\nname = \"auditor\"\nrole = \"read\"\n";
    let gw = gateway_with_admin("operator-ca.crt", operators).await;
    break_the_upstream_on_disk(&gw);
    for path in ["/admin/v1/stats", "/admin/v1/systems", "/metrics", "/healthz"] {
        assert_eq!(call(&gw, "auditor", reqwest::Method::GET, path).await.0, 200, "auditor reads {path}");
    }
    let (status, code, _) = call(&gw, "auditor", reqwest::Method::POST, "/admin/v1/reload").await;
    assert_eq!((status, code.as_str()), (403, "client.access_denied"));
    let uuid = "/admin/v1/dead-letters/6f1c2b9e-0f6a-4e8e-9a51-1d4f3c2b1a00";
    assert_eq!(call(&gw, "auditor", reqwest::Method::POST, &format!("{uuid}/replay")).await.0, 403);
    assert_eq!(call(&gw, "auditor", reqwest::Method::DELETE, uuid).await.0, 403);
    // An operator certificate of the right CA but not on the list: health only.
    assert_eq!(call(&gw, "stranger", reqwest::Method::GET, "/admin/v1/systems").await.0, 403);
    assert_eq!(call(&gw, "stranger", reqwest::Method::GET, "/healthz").await.0, 200);
    assert_eq!(through_the_data_listener(&gw).await, 200, "nothing was reloaded");
    // An agency's certificate does not chain to the operators' CA: no session.
    let agency = gw.pki.client(Some("egov-portal")).timeout(Duration::from_secs(5)).build().unwrap();
    let refused = agency.get(admin_url(&gw, "/healthz")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    // The admin operator may.
    assert_eq!(call(&gw, "operator", reqwest::Method::POST, "/admin/v1/reload").await.0, 200);
    assert_ne!(through_the_data_listener(&gw).await, 200);
}
