//! The client-certificate layer, fail-closed: every check of `CLIENT_CERT_*` with
//! certificates made here by rcgen, over real HTTP. Every rejection is HTTP 403 with the B2C
//! body (`ClientCertificateRejected`) and never a 5xx.

use std::time::Duration;

use crate::support::{assert_b2c_error, spawn_app, TestApp};
use base64::Engine;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::{json, Value};

fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn thumbprint(der: &[u8]) -> String {
    b2c_authy::client_cert::Thumbprint::of(der).to_string()
}

fn leaf_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn self_signed(params: CertificateParams) -> Vec<u8> {
    params
        .self_signed(&KeyPair::generate().unwrap())
        .unwrap()
        .der()
        .to_vec()
}

fn ca(common_name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// POSTs an empty claims object to Register with `headers`: a certificate that passes the
/// layer gets `MissingClaim` (409) from the function; a refused one gets 403.
async fn call_with(app: &TestApp, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/Register", app.base))
        .json(&json!({}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn assert_passes(result: (u16, Value)) {
    assert_eq!(result.0, 409, "{}", result.1);
    assert_b2c_error(&result.1, "MissingClaim");
}

fn assert_rejected(result: (u16, Value), reason: &str) {
    assert_eq!(result.0, 403, "{}", result.1);
    assert_b2c_error(&result.1, "ClientCertificateRejected");
    let developer = result.1["developerMessage"].as_str().unwrap();
    assert!(
        developer.contains(reason),
        "{developer:?} should say {reason:?}"
    );
}

async fn app_with(settings: &[(&str, &str)]) -> TestApp {
    spawn_app(Duration::from_millis(50), settings).await
}

#[tokio::test]
async fn thumbprint_allow_list_with_rotation() {
    let first = self_signed(leaf_params("b2c.contoso.com"));
    let second = self_signed(leaf_params("b2c.contoso.com"));
    let unknown = self_signed(leaf_params("b2c.contoso.com"));
    // The second thumbprint is written as people paste it: lower case with colons.
    let pasted: String = thumbprint(&second)
        .to_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let list = format!("{} ; {pasted}", thumbprint(&first));
    let app = app_with(&[("CLIENT_CERT_THUMBPRINTS", &list)]).await;
    assert_passes(call_with(&app, &[("X-ARR-ClientCert", &b64(&first))]).await);
    assert_passes(call_with(&app, &[("X-ARR-ClientCert", &b64(&second))]).await);
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", &b64(&unknown))]).await,
        &format!(
            "thumbprint {} is not in CLIENT_CERT_THUMBPRINTS",
            thumbprint(&unknown)
        ),
    );
}

#[tokio::test]
async fn validity_dates() {
    let mut expired = leaf_params("b2c.contoso.com");
    expired.not_before = date_time_ymd(2020, 1, 1);
    expired.not_after = date_time_ymd(2021, 1, 1);
    let expired = self_signed(expired);
    let mut future = leaf_params("b2c.contoso.com");
    future.not_before = date_time_ymd(2090, 1, 1);
    future.not_after = date_time_ymd(2091, 1, 1);
    let future = self_signed(future);
    let list = format!("{},{}", thumbprint(&expired), thumbprint(&future));
    let app = app_with(&[("CLIENT_CERT_THUMBPRINTS", &list)]).await;
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", &b64(&expired))]).await,
        "expired at 2021-01-01",
    );
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", &b64(&future))]).await,
        "not valid before 2090-01-01",
    );
}

#[tokio::test]
async fn subject_and_issuer_must_match_when_configured() {
    let good = self_signed(leaf_params("b2c.contoso.com"));
    let other = self_signed(leaf_params("b2c.fabrikam.com"));
    let list = format!("{},{}", thumbprint(&good), thumbprint(&other));
    let app = app_with(&[
        ("CLIENT_CERT_THUMBPRINTS", &list),
        ("CLIENT_CERT_SUBJECT", "CN=b2c.contoso.com"),
        ("CLIENT_CERT_ISSUER", "cn=b2c.contoso.com"),
    ])
    .await;
    assert_passes(call_with(&app, &[("X-ARR-ClientCert", &b64(&good))]).await);
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", &b64(&other))]).await,
        "subject 'CN=b2c.fabrikam.com'",
    );

    let app = app_with(&[
        ("CLIENT_CERT_THUMBPRINTS", &list),
        ("CLIENT_CERT_ISSUER", "CN=b2c.contoso.com"),
    ])
    .await;
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", &b64(&other))]).await,
        "issuer 'CN=b2c.fabrikam.com'",
    );
}

#[tokio::test]
async fn the_chain_must_reach_the_pinned_ca_not_a_namesake() {
    let pinned = ca("Contoso B2C Client CA");
    let impostor = ca("Contoso B2C Client CA"); // same name, other key
    let signed = leaf_params("b2c.contoso.com")
        .signed_by(&KeyPair::generate().unwrap(), &pinned)
        .unwrap();
    let forged = leaf_params("b2c.contoso.com")
        .signed_by(&KeyPair::generate().unwrap(), &impostor)
        .unwrap();
    let list = format!("{},{}", thumbprint(signed.der()), thumbprint(forged.der()));
    // The CA as inline PEM and as a file path.
    let ca_file =
        std::env::temp_dir().join(format!("b2c-authy-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, pinned.pem()).unwrap();
    for ca_setting in [pinned.pem(), ca_file.display().to_string()] {
        let app = app_with(&[
            ("CLIENT_CERT_THUMBPRINTS", &list),
            ("CLIENT_CERT_CA", &ca_setting),
        ])
        .await;
        assert_passes(call_with(&app, &[("X-ARR-ClientCert", &b64(signed.der()))]).await);
        assert_rejected(
            call_with(&app, &[("X-ARR-ClientCert", &b64(forged.der()))]).await,
            "does not chain to the pinned CA",
        );
    }
    let _ = std::fs::remove_file(ca_file);
}

#[tokio::test]
async fn malformed_missing_and_repeated_headers() {
    let cert = self_signed(leaf_params("b2c.contoso.com"));
    let app = app_with(&[("CLIENT_CERT_THUMBPRINTS", &thumbprint(&cert))]).await;
    assert_rejected(
        call_with(&app, &[]).await,
        "X-ARR-ClientCert header missing",
    );
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", "***not base64***")]).await,
        "not base64",
    );
    assert_rejected(
        call_with(
            &app,
            &[("X-ARR-ClientCert", &b64(b"these bytes are not DER"))],
        )
        .await,
        "not an X.509 certificate",
    );
    let mut trailing = cert.clone();
    trailing.extend_from_slice(b"junk");
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", &b64(&trailing))]).await,
        "trailing bytes",
    );
    let huge = "A".repeat(17 * 1024);
    assert_rejected(
        call_with(&app, &[("X-ARR-ClientCert", &huge)]).await,
        "larger than 16 KiB",
    );
    assert_rejected(
        call_with(
            &app,
            &[
                ("X-ARR-ClientCert", &b64(&cert)),
                ("X-ARR-ClientCert", &b64(&cert)),
            ],
        )
        .await,
        "sent 2 times",
    );
    // Tolerated: surrounding whitespace, and PEM armour with line breaks (as some proxies send).
    assert_passes(
        call_with(
            &app,
            &[("X-ARR-ClientCert", &format!("  {}  ", b64(&cert)))],
        )
        .await,
    );
    let body = b64(&cert);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE----- {} -----END CERTIFICATE-----",
        lines.join(" ")
    );
    assert_passes(call_with(&app, &[("X-ARR-ClientCert", &pem)]).await);
}

#[tokio::test]
async fn only_the_readiness_probe_needs_no_certificate() {
    let cert = self_signed(leaf_params("b2c.contoso.com"));
    let app = app_with(&[("CLIENT_CERT_THUMBPRINTS", &thumbprint(&cert))]).await;
    let client = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let response = client
            .request(method.clone(), format!("{}/", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method} /");
    }
    // Any other method on `/` is refused like every other request, before routing could
    // answer 405 and name the methods that exist.
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = client
            .request(method.clone(), format!("{}/", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} /");
        assert!(response.headers().get("allow").is_none(), "{method} /");
        assert_b2c_error(&response.json().await.unwrap(), "ClientCertificateRejected");
    }
}

#[tokio::test]
async fn every_function_is_behind_the_layer() {
    let app = app_with(&[]).await;
    for function in [
        "Register",
        "CreateApprovalRequest",
        "WaitForAuthyApproval",
        "register",
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}/api/{function}", app.base))
            .json(&json!({"authyId": "14255550100", "email": "a@example.com", "phoneNumber": "+14255550100"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{function}");
        assert_b2c_error(&response.json().await.unwrap(), "ClientCertificateRejected");
        // A wrong method is refused the same way: no 405, no `Allow` header naming POST.
        let response = reqwest::Client::new()
            .get(format!("{}/api/{function}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "GET {function}");
        assert!(response.headers().get("allow").is_none(), "GET {function}");
    }
}

#[test]
fn disabled_mode_is_refused_in_azure_and_required_needs_thumbprints() {
    use b2c_authy::config::Config;
    let lookup = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let err = Config::from_lookup(lookup(&[
        ("AUTHY_API_KEY", "k"),
        ("CLIENT_CERT_MODE", "disabled"),
        ("WEBSITE_INSTANCE_ID", "instance-1"),
    ]))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("CLIENT_CERT_MODE: 'disabled' is refused in Azure"),
        "{err}"
    );
    let err = Config::from_lookup(lookup(&[("AUTHY_API_KEY", "k")])).unwrap_err();
    assert!(
        err.to_string()
            .contains("CLIENT_CERT_THUMBPRINTS: required"),
        "{err}"
    );
    let err = Config::from_lookup(lookup(&[
        ("AUTHY_API_KEY", "k"),
        ("CLIENT_CERT_THUMBPRINTS", "12:34"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("40 hex digits"), "{err}");
    let ok = Config::from_lookup(lookup(&[
        ("AUTHY_API_KEY", "k"),
        ("CLIENT_CERT_MODE", "disabled"),
    ]))
    .unwrap();
    assert!(ok
        .warnings
        .iter()
        .any(|w| w.contains("CLIENT_CERT_MODE=disabled")));
}

#[tokio::test]
async fn disabled_mode_lets_calls_through_locally() {
    let app = app_with(&[("CLIENT_CERT_MODE", "disabled")]).await;
    assert_passes(call_with(&app, &[]).await);
}
