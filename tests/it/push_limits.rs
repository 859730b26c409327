//! The push-limit store in Azure Blob Storage, against Azurite: the store's conditional
//! writes, the limits shared by several [`PushLimits`] (as by several Function App
//! instances), and three `handler` processes sharing one storage account.
//!
//! Azurite's connection string comes from `B2C_AUTHY_AZURITE` (`.ci/run` starts Azurite and
//! sets it; docs/testing.md says how to start it by hand). Without it these tests skip, or
//! fail under `CI=true`. Each test works in a container of its own, so they run in parallel.

use std::sync::Arc;
use std::time::Duration;

use b2c_authy::config::parse_connection_string;
use b2c_authy::domain::{ApprovalRequestId, AuthyId, CorrelationId};
use b2c_authy::push_limits::blob::BlobSettings;
use b2c_authy::push_limits::store::{Condition, Conflict, Etag, PushStore, StoreSettings};
use b2c_authy::push_limits::{Limit, PushDecision, PushLimitSettings, PushLimits, Refusal};
use serde_json::{json, Value};

use crate::support::{self, client_cert, spawn_simulator, HandlerProcess, TEST_API_KEY};

/// Azurite's connection string, or `None` after [`support::skip_or_fail`].
fn azurite() -> Option<String> {
    match std::env::var("B2C_AUTHY_AZURITE") {
        Ok(s) if !s.trim().is_empty() => Some(s),
        _ => {
            support::skip_or_fail(
                "B2C_AUTHY_AZURITE (Azurite's connection string) is not set; see docs/testing.md, \"The push-limit store against Azurite\"",
            );
            None
        }
    }
}

/// A container name of this test's own: `t-<what>-<random>`.
fn container(what: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("t-{what}-{}", &random[..12])
}

fn blob_settings(connection_string: &str, container: &str) -> StoreSettings {
    let (endpoint, account, auth) =
        parse_connection_string(connection_string).expect("Azurite's connection string parses");
    StoreSettings::Blob(BlobSettings {
        endpoint,
        account,
        auth,
        container: container.into(),
        extra_root_ca_pem: None,
    })
}

async fn blob_store(connection_string: &str, container: &str) -> PushStore {
    PushStore::connect(
        &blob_settings(connection_string, container),
        Duration::from_secs(2),
    )
    .await
    .expect("Azurite answers")
}

fn authy_id(s: &str) -> AuthyId {
    AuthyId::parse(s).unwrap()
}

#[tokio::test]
async fn blob_store_honours_conditions_and_reports_conflicts() {
    let Some(azurite) = azurite() else { return };
    let name = container("conditions");
    let store = blob_store(&azurite, &name).await;
    // Connecting again to an existing container is fine ("already exists").
    let _again = blob_store(&azurite, &name).await;

    assert!(
        store.get("pushes/none").await.unwrap().is_none(),
        "404 → None"
    );
    let first = store
        .put("pushes/a", b"{\"n\":1}".to_vec(), Condition::Absent)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        store
            .put("pushes/a", b"{}".to_vec(), Condition::Absent)
            .await
            .unwrap(),
        Err(Conflict),
        "If-None-Match: * on an existing blob"
    );
    let read = store.get("pushes/a").await.unwrap().unwrap();
    assert_eq!(read.body, b"{\"n\":1}");
    assert_eq!(read.etag, first);
    let second = store
        .put(
            "pushes/a",
            b"{\"n\":2}".to_vec(),
            Condition::Matches(first.clone()),
        )
        .await
        .unwrap()
        .expect("replaced");
    assert_ne!(first, second);
    assert_eq!(
        store
            .put(
                "pushes/a",
                b"{\"n\":3}".to_vec(),
                Condition::Matches(first.clone())
            )
            .await
            .unwrap(),
        Err(Conflict),
        "If-Match with a stale ETag"
    );
    assert_eq!(
        store
            .put(
                "pushes/missing",
                b"{}".to_vec(),
                Condition::Matches(first.clone())
            )
            .await
            .unwrap(),
        Err(Conflict),
        "If-Match on a blob that does not exist"
    );
    // Delete with a stale ETag leaves the blob; with the current one removes it; again is fine.
    store.delete("pushes/a", &first).await.unwrap();
    assert_eq!(
        store.get("pushes/a").await.unwrap().unwrap().body,
        b"{\"n\":2}"
    );
    store.delete("pushes/a", &second).await.unwrap();
    assert!(store.get("pushes/a").await.unwrap().is_none());
    store.delete("pushes/a", &second).await.unwrap();
    store
        .delete("pushes/never", &Etag("\"0x1\"".into()))
        .await
        .unwrap();
}

/// The name [`PushLimits`] gives an authy id's history (src/push_limits/mod.rs, `name`):
/// `pushes/` and the first 16 bytes of HMAC-SHA256(secret, "pushes" \0 authy id), hex. The
/// test checks that it is the name in use (the document is rewritten there).
fn history_name(secret: &[u8], authy_id: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(b"pushes");
    ctx.update(b"\0");
    ctx.update(authy_id.as_bytes());
    let tag = ctx.sign();
    let hex: String = tag.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("pushes/{hex}")
}

#[tokio::test]
async fn a_document_that_is_not_json_does_not_break_the_limits() {
    let Some(azurite) = azurite() else { return };
    let name = container("garbage");
    let settings = blob_settings(&azurite, &name);
    let store = PushStore::connect(&settings, Duration::from_secs(2))
        .await
        .unwrap();
    let secret = b"garbage-secret";
    let blob = history_name(secret, "31");
    store
        .put(&blob, b"\x00not json at all".to_vec(), Condition::Absent)
        .await
        .unwrap()
        .unwrap();
    let limits = PushLimits::new(PushLimitSettings::default(), store, secret);
    for _ in 0..3 {
        assert!(matches!(
            limits.begin_push(&authy_id("31"), None).await,
            Ok(PushDecision::Send(_))
        ));
    }
    assert!(matches!(
        limits.begin_push(&authy_id("31"), None).await,
        Err(Refusal::LimitReached { .. })
    ));
    // The unreadable document was replaced by a history in the same place.
    let doc = limits.store().get(&blob).await.unwrap().unwrap();
    let history: Value = serde_json::from_slice(&doc.body).expect("JSON now");
    assert_eq!(
        history["sent"].as_array().map(Vec::len),
        Some(3),
        "{history}"
    );
}

/// Three [`PushLimits`], each with its own client to the same container: three instances.
async fn three_instances(
    azurite: &str,
    container: &str,
    settings: PushLimitSettings,
) -> Vec<Arc<PushLimits>> {
    let store_settings = blob_settings(azurite, container);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Arc::new(
            PushLimits::connect(settings.clone(), &store_settings, b"shared-secret")
                .await
                .unwrap(),
        ));
    }
    instances
}

#[tokio::test]
async fn twenty_parallel_pushes_through_three_instances_send_exactly_the_burst() {
    let Some(azurite) = azurite() else { return };
    let settings = PushLimitSettings {
        // Generous: 20 conflicting writers over three clients need a few rounds.
        store_timeout: Duration::from_secs(8),
        on_store_failure: b2c_authy::push_limits::OnStoreFailure::Closed,
        ..Default::default()
    };
    let instances = three_instances(&azurite, &container("burst"), settings).await;
    let who = authy_id("41");
    let mut tasks = Vec::new();
    for n in 0..20 {
        let limits = instances[n % 3].clone();
        let who = who.clone();
        tasks.push(tokio::spawn(async move {
            let journey = CorrelationId::parse(&format!("journey-{n}")).unwrap();
            limits.begin_push(&who, Some(&journey)).await
        }));
    }
    let (mut sent, mut refused, mut contended) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(PushDecision::Send(_)) => sent += 1,
            Err(Refusal::LimitReached { .. }) => refused += 1,
            // Lost the race for the whole budget (a loaded machine): refused, never sent.
            Err(Refusal::Unavailable) => contended += 1,
            other => panic!("neither sent nor refused by the limit: {other:?}"),
        }
    }
    assert_exactly_the_burst(sent, refused, contended);
}

/// Never more than the burst (3); exactly the burst unless some calls lost the race for
/// their whole store budget, which only a loaded machine (CI running every test at once)
/// makes happen: those are refused, so fewer pushes go out, never more.
fn assert_exactly_the_burst(sent: usize, refused: usize, contended: usize) {
    assert_eq!(sent + refused + contended, 20);
    assert!(sent <= 3, "{sent} pushes sent, the burst is 3");
    if contended == 0 {
        assert_eq!((sent, refused), (3, 17));
    } else {
        eprintln!("{contended} calls refused after contending for their whole store budget");
        assert!(sent >= 1, "nobody got a push");
    }
}

#[tokio::test]
async fn a_denial_seen_by_one_instance_pauses_the_others() {
    let Some(azurite) = azurite() else { return };
    let instances =
        three_instances(&azurite, &container("pause"), PushLimitSettings::default()).await;
    let who = authy_id("42");
    let journey = CorrelationId::parse("victim-journey").unwrap();
    let Ok(PushDecision::Send(ticket)) = instances[0].begin_push(&who, Some(&journey)).await else {
        panic!("the first push is sent")
    };
    let id = ApprovalRequestId::parse("0000000a-aaaa-4aaa-8aaa-aaaaaaaaaaaa").unwrap();
    instances[0]
        .sent(&who, ticket, &id, Duration::from_secs(120))
        .await;
    let recorded = instances[1]
        .record_denial(&who, Some(&journey), &id)
        .await
        .unwrap();
    assert_eq!(recorded.pause, Duration::from_secs(900));
    assert!(recorded.new);
    for limits in &instances {
        match limits
            .begin_push(&who, Some(&CorrelationId::parse("next").unwrap()))
            .await
        {
            Err(Refusal::Paused { retry_after }) => {
                assert!(retry_after > Duration::from_secs(890), "{retry_after:?}")
            }
            other => panic!("not paused: {other:?}"),
        }
    }
    // Another user is not paused.
    assert!(matches!(
        instances[2].begin_push(&authy_id("43"), None).await,
        Ok(PushDecision::Send(_))
    ));
}

#[tokio::test]
async fn a_short_window_frees_pushes_again_on_every_instance() {
    let Some(azurite) = azurite() else { return };
    let settings = PushLimitSettings {
        burst: Limit {
            count: 2,
            window: Duration::from_secs(2),
        },
        ..Default::default()
    };
    let instances = three_instances(&azurite, &container("window"), settings).await;
    let who = authy_id("44");
    for limits in &instances[..2] {
        assert!(matches!(
            limits.begin_push(&who, None).await,
            Ok(PushDecision::Send(_))
        ));
    }
    assert!(matches!(
        instances[2].begin_push(&who, None).await,
        Err(Refusal::LimitReached { retry_after }) if retry_after <= Duration::from_secs(2)
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        instances[2].begin_push(&who, None).await,
        Ok(PushDecision::Send(_))
    ));
    assert!(matches!(
        instances[0].begin_push(&who, None).await,
        Ok(PushDecision::Send(_))
    ));
    assert!(matches!(
        instances[1].begin_push(&who, None).await,
        Err(Refusal::LimitReached { .. })
    ));
}

/// Three `handler` processes with `AzureWebJobsStorage` = Azurite and one container, against
/// one simulator; the client certificate every process accepts.
async fn three_handlers(
    azurite: &str,
    container: &str,
    approve_after: Duration,
) -> (Vec<HandlerProcess>, String, String) {
    let sim = spawn_simulator(approve_after, TEST_API_KEY).await;
    let (cert, thumbprint) = client_cert("b2c.push-limits.example");
    let mut handlers = Vec::new();
    for _ in 0..3 {
        handlers.push(
            HandlerProcess::start(&[
                ("AUTHY_API_URL", &sim),
                ("AUTHY_API_KEY", TEST_API_KEY),
                ("CLIENT_CERT_THUMBPRINTS", &thumbprint),
                ("APPROVAL_POLL_INTERVAL_MS", "250"),
                ("AzureWebJobsStorage", azurite),
                ("PUSH_LIMITS_CONTAINER", container),
                // The largest budget APPROVAL_WAIT_SECONDS (7 s) allows: 20 writers
                // contending on two CPUs need a few rounds.
                ("PUSH_LIMITS_STORE_TIMEOUT_MS", "3500"),
                // A store too slow for the budget (a loaded machine) refuses rather than
                // sends: the counts below stay exact or err on the side of fewer pushes.
                ("PUSH_LIMITS_ON_STORE_FAILURE", "closed"),
            ])
            .await,
        );
    }
    (handlers, sim, cert)
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    cert: &str,
    function: &str,
    body: Value,
) -> (u16, Value) {
    let response = client
        .post(format!("{base}/api/{function}"))
        .header("x-arr-clientcert", cert)
        .json(&body)
        .send()
        .await
        .expect("the handler answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn three_handler_processes_share_the_burst_limit_through_the_storage_account() {
    let Some(azurite) = azurite() else { return };
    let (handlers, sim, cert) =
        three_handlers(&azurite, &container("processes"), Duration::from_secs(60)).await;
    let client = reqwest::Client::builder()
        .timeout(support::CLIENT_TIMEOUT)
        .build()
        .unwrap();
    // The authy id the simulator issues for +14255550100 (it knows the ids it would issue:
    // docs/simulator.md), without a Register: in a debug handler the first Register waits for
    // the phone-number metadata, seconds on a loaded CI machine, and the test is not about it.
    let authy_id = "14255550100".to_owned();

    let mut calls = Vec::new();
    for n in 0..20 {
        let client = client.clone();
        let base = handlers[n % 3].base.clone();
        let cert = cert.clone();
        let authy_id = authy_id.clone();
        calls.push(tokio::spawn(async move {
            call(
                &client,
                &base,
                &cert,
                "CreateApprovalRequest",
                json!({"authyId": authy_id, "correlationId": format!("journey-{n}")}),
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    let (mut refused, mut contended) = (0, 0);
    for c in calls {
        let (status, body) = c.await.unwrap();
        match (status, body["code"].as_str()) {
            (200, _) => ids.push(body["approvalRequestId"].as_str().unwrap().to_owned()),
            (409, Some("PushLimitReached")) => {
                support::assert_b2c_error(&body, "PushLimitReached");
                refused += 1;
            }
            (409, Some("PushLimitsUnavailable")) => {
                support::assert_b2c_error(&body, "PushLimitsUnavailable");
                contended += 1;
            }
            _ => panic!("{status}: {body}"),
        }
    }
    assert_exactly_the_burst(ids.len(), refused, contended);
    // The simulator received those approval requests: each is recorded.
    for id in &ids {
        let response = client
            .get(format!("{sim}/simulator/approval_requests/{id}"))
            .header("X-Authy-API-Key", TEST_API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{id} not received by the simulator");
    }
    let answered = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), answered, "distinct approval requests");
}

#[tokio::test]
async fn a_denial_seen_by_one_process_pauses_pushes_from_the_others() {
    let Some(azurite) = azurite() else { return };
    let (handlers, _sim, cert) =
        three_handlers(&azurite, &container("denial"), Duration::from_millis(200)).await;
    let client = reqwest::Client::builder()
        .timeout(support::CLIENT_TIMEOUT)
        .build()
        .unwrap();
    // Last four digits 0101: the simulator denies (docs/simulator.md, triggers).
    // The authy id the simulator issues for +14255550101 (it knows the ids it would issue:
    // docs/simulator.md), without a Register: in a debug handler the first Register waits for
    // the phone-number metadata, seconds on a loaded CI machine, and the test is not about it.
    let authy_id = "14255550101".to_owned();
    let (status, created) = call(
        &client,
        &handlers[0].base,
        &cert,
        "CreateApprovalRequest",
        json!({"authyId": authy_id, "correlationId": "journey-1"}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let (status, body) = call(
        &client,
        &handlers[1].base,
        &cert,
        "WaitForAuthyApproval",
        json!({
            "authyId": authy_id,
            "approvalRequestId": created["approvalRequestId"],
            "correlationId": "journey-1",
        }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "ApprovalDenied", "{body}");
    for handler in &handlers {
        let (status, body) = call(
            &client,
            &handler.base,
            &cert,
            "CreateApprovalRequest",
            json!({"authyId": authy_id, "correlationId": "journey-2"}),
        )
        .await;
        assert_eq!(status, 409, "{body}");
        support::assert_b2c_error(&body, "PushesPaused");
    }
}

/// The identity-based store end to end: `AzureWebJobsStorage__*` with a managed identity, as
/// in Azure. Azurite with `--oauth basic` (it checks the bearer token's issuer, audience and
/// lifetime, not its signature) needs https, so it gets a certificate from a CA made here,
/// which the store trusts ([`BlobSettings::extra_root_ca_pem`]). The token comes from a fake
/// App Service managed-identity endpoint served here (`IDENTITY_ENDPOINT`,
/// `IDENTITY_HEADER`: MS docs "Managed identities for App Service", REST protocol), which
/// checks the secret header and the resource asked for.
#[tokio::test]
async fn a_managed_identity_token_reaches_an_https_azurite() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let Ok(azurite_blob) = std::env::var("B2C_AUTHY_AZURITE_BLOB") else {
        support::skip_or_fail("B2C_AUTHY_AZURITE_BLOB (the azurite-blob binary) is not set; see docs/testing.md, \"The push-limit store against Azurite\"");
        return;
    };

    // A CA and a server certificate for 127.0.0.1.
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "b2c-authy test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "b2c-authy-azurite-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("cert.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), server_key.serialize_pem()).unwrap();

    // Azurite over https with OAuth, on a free port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut azurite = tokio::process::Command::new(&azurite_blob)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .arg("--location")
        .arg(dir.join("data"))
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .args([
            "--oauth",
            "basic",
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("azurite-blob starts");

    // The fake managed-identity endpoint: a JWT Azurite accepts (unsigned; issuer
    // sts.windows.net, audience storage), for the right secret header only.
    let calls = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = calls.clone();
    let token_endpoint = axum::Router::new().route(
        "/msi/token",
        axum::routing::get(
            move |headers: axum::http::HeaderMap,
                  axum::extract::RawQuery(query): axum::extract::RawQuery| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(query.unwrap_or_default());
                    if headers
                        .get("x-identity-header")
                        .and_then(|v| v.to_str().ok())
                        != Some("test-identity-secret")
                    {
                        return (
                            axum::http::StatusCode::UNAUTHORIZED,
                            "bad secret".to_string(),
                        );
                    }
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let b64 = |v: &Value| {
                        use base64::Engine as _;
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
                    };
                    let jwt = format!(
                        "{}.{}.c2lnbmF0dXJl",
                        b64(&json!({"alg": "RS256", "typ": "JWT"})),
                        b64(&json!({
                            "aud": "https://storage.azure.com",
                            "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
                            "nbf": now - 60,
                            "iat": now - 60,
                            "exp": now + 3600,
                            "oid": "11059fcc-5514-4800-b5f8-49808b9cfab6",
                            "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
                        }))
                    );
                    let body = json!({
                        "access_token": jwt,
                        "expires_on": (now + 3600).to_string(),
                        "resource": "https://storage.azure.com",
                        "token_type": "Bearer",
                    });
                    (axum::http::StatusCode::OK, body.to_string())
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let identity_endpoint = format!("http://{}/msi/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, token_endpoint).await });
    // The App Service managed-identity environment, as the platform sets it. Only this test
    // uses a managed identity, so no other test reads these.
    std::env::set_var("IDENTITY_ENDPOINT", &identity_endpoint);
    std::env::set_var("IDENTITY_HEADER", "test-identity-secret");

    // The settings as the config reads them, plus the test CA.
    let config = b2c_authy::config::Config::from_lookup(|name| match name {
        "AUTHY_API_KEY" => Some("k".into()),
        "CLIENT_CERT_MODE" => Some("disabled".into()),
        "AzureWebJobsStorage__blobServiceUri" => {
            Some(format!("https://127.0.0.1:{port}/devstoreaccount1"))
        }
        "AzureWebJobsStorage__credential" => Some("managedidentity".into()),
        "PUSH_LIMITS_CONTAINER" => Some("identity-based".into()),
        _ => None,
    })
    .unwrap();
    let StoreSettings::Blob(mut settings) = config.push_store else {
        panic!("the identity-based settings select Blob Storage")
    };
    settings.extra_root_ca_pem = Some(ca.pem().into_bytes());
    let settings = StoreSettings::Blob(settings);

    // Until Azurite listens.
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = PushStore::connect(&settings, Duration::from_secs(2))
        .await
        .expect("the store connects to the https Azurite with a managed identity");
    assert!(
        store.describe().contains("managed identity"),
        "{}",
        store.describe()
    );
    let etag = store
        .put("pushes/mi", b"{}".to_vec(), Condition::Absent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.get("pushes/mi").await.unwrap().unwrap().etag, etag);
    let calls = calls.lock().unwrap().clone();
    assert!(!calls.is_empty(), "the token endpoint was not asked");
    assert!(
        calls
            .iter()
            .all(|q| q.contains("resource=https%3A%2F%2Fstorage.azure.com")
                && q.contains("api-version=2019-08-01")),
        "{calls:?}"
    );

    // Without the right secret the endpoint refuses, and so does the store: at startup.
    std::env::set_var("IDENTITY_HEADER", "wrong");
    let e = PushStore::connect(&settings, Duration::from_secs(2))
        .await
        .expect_err("no token, no store");
    assert!(!e.to_string().contains("wrong"), "{e}");
    azurite.kill().await.ok();
    std::fs::remove_dir_all(&dir).ok();
}

/// A connection string with `SharedAccessSignature=` instead of a key: the SAS is used as
/// given. The SAS here is one the store would sign itself (src/push_limits/sas.rs); a wrong
/// signature is refused at connect time.
#[tokio::test]
async fn a_connection_string_with_a_sas_works_and_a_bad_sas_is_refused() {
    use base64::Engine as _;
    let Some(azurite) = azurite() else { return };
    let (endpoint, account, _) = parse_connection_string(&azurite).unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(b2c_authy::config::AZURITE_KEY)
        .unwrap();
    let sas = b2c_authy::push_limits::sas::AccountSas::for_push_limits(
        std::time::SystemTime::now(),
        true,
    )
    .to_query(&account, &key);
    let with_sas = format!("BlobEndpoint={endpoint};SharedAccessSignature={sas}");
    let name = container("sas");
    let store = blob_store(&with_sas, &name).await;
    assert!(store.describe().contains("shared access signature"));
    let etag = store
        .put("pushes/sas", b"{}".to_vec(), Condition::Absent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.get("pushes/sas").await.unwrap().unwrap().etag, etag);

    let forged = with_sas.replace("sig=", "sig=AAAA");
    let e = PushStore::connect(
        &blob_settings(&forged, &container("forged")),
        Duration::from_secs(2),
    )
    .await
    .expect_err("a forged SAS is refused");
    assert!(e.to_string().contains("403"), "{e}");
    assert!(!e.to_string().contains("sig="), "{e}");
}
