//! Shared test helpers: start the Authy simulator and the handler on port 0, and a client
//! that behaves like B2C (JSON body, client certificate, B2C's 10 s timeout). Where the
//! simulator cannot serve (exact requests, faults), [`fake_authy`] fakes Authy.

use std::collections::HashMap;
use std::time::Duration;

use b2c_authy::app::Application;
use b2c_authy::authy::AuthyClient;
use b2c_authy::client_cert::SelfSignedClientCert;
use b2c_authy::config::Config;
use b2c_authy::simulator::{self, SimulatorConfig};
use secrecy::SecretString;
use serde_json::Value;

pub mod fake_authy;

/// The key the test simulator accepts.
pub const TEST_API_KEY: &str = "test-authy-key-5f1c9e";

/// B2C's REST timeout (`b2c_authy::config::B2C_REST_TIMEOUT_SECONDS`, 10 s since April
/// 2025): test clients give up after it, as B2C does, so a call that would time out at B2C
/// fails the test.
pub const CLIENT_TIMEOUT: Duration =
    Duration::from_secs(b2c_authy::config::B2C_REST_TIMEOUT_SECONDS);

/// A running handler.
#[derive(Clone)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client with B2C's 10 s timeout ([`CLIENT_TIMEOUT`]) that sends an accepted client certificate in
    /// `X-ARR-ClientCert` with every request, as App Service forwards B2C's.
    pub client: reqwest::Client,
    /// The accepted certificate, base64 DER (the header value).
    pub client_cert: String,
}

/// A self-signed client certificate made for the test
/// ([`b2c_authy::client_cert::SelfSignedClientCert`], as the demo and the benchmarks make
/// theirs): (`X-ARR-ClientCert` value, upper-case thumbprint).
pub fn client_cert(common_name: &str) -> (String, String) {
    let cert = SelfSignedClientCert::generate(common_name).expect("a test certificate");
    (cert.header_value(), cert.thumbprint().to_string())
}

/// Starts the simulator (answering after `approve_after`) and a handler pointed at it, with
/// `settings` added to the environment (e.g. `APPROVAL_WAIT_SECONDS`).
pub async fn spawn_app(approve_after: Duration, settings: &[(&str, &str)]) -> TestApp {
    let url = spawn_simulator(approve_after, TEST_API_KEY).await;
    spawn_app_against(&url, settings).await
}

/// Starts the built-in simulator on a loopback port, answering approval requests after
/// `approve_after` and accepting only `api_key`; returns its base URL.
pub async fn spawn_simulator(approve_after: Duration, api_key: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimulatorConfig {
        approve_after,
        api_key: Some(api_key.into()),
        ..SimulatorConfig::default()
    };
    format!("http://{}", simulator::spawn(listener, config).unwrap())
}

/// Starts a handler against an Authy API at `authy_url` (a simulator or a
/// [`fake_authy::FakeAuthy`]).
pub async fn spawn_app_against(authy_url: &str, settings: &[(&str, &str)]) -> TestApp {
    let (client_cert, thumbprint) = client_cert("b2c.test.example");
    let mut env: HashMap<String, String> = [
        ("AUTHY_API_URL", authy_url),
        ("AUTHY_API_KEY", TEST_API_KEY),
        ("CLIENT_CERT_THUMBPRINTS", thumbprint.as_str()),
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "0"),
        ("APPROVAL_POLL_INTERVAL_MS", "250"),
        // Tests send many pushes for one authy id: in effect no limits unless the test sets
        // them (tests/it/push_bombing.rs, tests/it/push_limits.rs).
        ("PUSH_LIMIT_BURST_COUNT", "100000"),
        ("PUSH_LIMIT_DAILY_COUNT", "100000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in settings {
        env.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid test config");
    let key = config
        .authy_api_key
        .clone()
        .unwrap_or_else(|| SecretString::from(""));
    let authy = AuthyClient::new(config.authy_api_url.clone(), key)
        .expect("an Authy client")
        .with_send_install_link_via_sms(config.send_install_link_via_sms);
    let push_limits = std::sync::Arc::new(
        b2c_authy::push_limits::PushLimits::connect(
            config.push_limits.clone(),
            &config.push_store,
            TEST_API_KEY.as_bytes(),
        )
        .await
        .expect("the push-limit store"),
    );
    let app = Application::build(&config, authy, push_limits)
        .await
        .expect("app builds");
    let base = format!("http://{}", app.address().unwrap());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-arr-clientcert", client_cert.parse().unwrap());
    TestApp {
        base,
        client: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .default_headers(headers)
            .build()
            .unwrap(),
        client_cert,
    }
}

impl TestApp {
    /// POSTs `body` as JSON to `/api/<function>`; returns status and parsed body.
    pub async fn call(&self, function: &str, body: Value) -> (u16, Value) {
        self.post_raw(function, "application/json", body.to_string().into_bytes())
            .await
    }

    /// POSTs raw bytes with a content type.
    pub async fn post_raw(
        &self,
        function: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/{function}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the handler answers within 10 s");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
        (status, json)
    }

    /// Registers `phone` for alice@example.com, as the phone page does; returns the authy id.
    pub async fn register(&self, phone: &str) -> String {
        let (status, body) = self
            .call(
                "Register",
                serde_json::json!({"email": "alice@example.com", "phoneNumber": phone}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["authyId"].as_str().expect("authyId").to_owned()
    }

    /// Register, then CreateApprovalRequest: the authy id and approval request id.
    pub async fn enrol_and_push(&self, phone: &str) -> (String, String) {
        let authy_id = self.register(phone).await;
        let (status, body) = self
            .call(
                "CreateApprovalRequest",
                serde_json::json!({"authyId": authy_id}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (
            authy_id,
            body["approvalRequestId"].as_str().unwrap().to_owned(),
        )
    }
}

/// What the simulator at `authy_url` recorded at one of its inspection paths
/// (`users/{authy_id}`, `approval_requests/{uuid}`; docs/simulator.md, "What tests can
/// inspect").
pub async fn simulator_record(authy_url: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{authy_url}/simulator/{path}"))
        .header("X-Authy-API-Key", TEST_API_KEY)
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON")
}

/// Asserts `body` is the B2C error body with `code`, and returns its userMessage.
pub fn assert_b2c_error(body: &Value, code: &str) -> String {
    assert_eq!(body["version"], "1.0.0", "{body}");
    assert_eq!(body["status"], 409, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["requestId"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    assert!(body["developerMessage"].is_string(), "{body}");
    let user_message = body["userMessage"]
        .as_str()
        .expect("userMessage")
        .to_owned();
    for internal in [
        "http",
        "127.0.0.1",
        "Authy is",
        "HTTP",
        TEST_API_KEY,
        "error_code",
        "<html",
    ] {
        assert!(
            !user_message.contains(internal),
            "userMessage leaks {internal:?}: {user_message}"
        );
    }
    user_message
}

/// How long the Functions host waits for its worker to answer `GET /`
/// (`HttpWorkerOptions.InitializationTimeout`).
pub const HOST_READINESS_TIMEOUT: Duration = Duration::from_secs(30);

/// The built `handler` binary, started the way the Functions host starts it: settings in the
/// environment, `FUNCTIONS_CUSTOMHANDLER_PORT`, ready when `GET /` answers.
pub struct HandlerProcess {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: tokio::process::Child,
    stdout: tokio::task::JoinHandle<String>,
    stderr: tokio::task::JoinHandle<String>,
}

impl HandlerProcess {
    /// Starts a simulator (answering after `approve_after`, accepting `api_key`) and the
    /// handler against it, with an accepted client certificate and `APPROVAL_WAIT_SECONDS` =
    /// `wait_seconds`, polling every 250 ms. Returns the handler and the certificate (base64
    /// DER, the `X-ARR-ClientCert` value).
    pub async fn with_simulator(
        approve_after: Duration,
        api_key: &str,
        wait_seconds: &str,
    ) -> (Self, String) {
        let sim = spawn_simulator(approve_after, api_key).await;
        let (cert, thumbprint) = client_cert("b2c.handler-process.example");
        let handler = Self::start(&[
            ("AUTHY_API_URL", &sim),
            ("AUTHY_API_KEY", api_key),
            ("CLIENT_CERT_THUMBPRINTS", &thumbprint),
            ("APPROVAL_WAIT_SECONDS", wait_seconds),
            ("APPROVAL_POLL_INTERVAL_MS", "250"),
            // Tests send many pushes for one authy id; the limits have tests of their own.
            ("PUSH_LIMIT_BURST_COUNT", "100000"),
            ("PUSH_LIMIT_DAILY_COUNT", "100000"),
        ])
        .await;
        (handler, cert)
    }

    /// Starts the handler with exactly `env` (plus a free port) and waits for it as the
    /// Functions host does: `GET /` every 25 ms for at most 30 s, any HTTP answer counting as
    /// ready (azure-functions-host, `Workers/Http/DefaultHttpWorkerService.cs`
    /// `IsWorkerReady`, `HttpWorkerOptions.InitializationTimeout`,
    /// `WorkerConstants.WorkerReadyCheckPollingIntervalMilliseconds`). Panics if it is not
    /// ready by then, or if its answer is not 200.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        use tokio::io::AsyncReadExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_handler"));
        command
            .env_clear()
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the handler binary starts");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let stdout = tokio::spawn(async move {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s).await;
            s
        });
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s).await;
            s
        });
        let base = format!("http://127.0.0.1:{port}");
        let started = std::time::Instant::now();
        let probe = reqwest::Client::new();
        loop {
            if let Ok(r) = probe.get(format!("{base}/")).send().await {
                assert_eq!(r.status(), 200, "the readiness probe's answer");
                break;
            }
            assert!(
                started.elapsed() < HOST_READINESS_TIMEOUT,
                "no answer to GET / within the host's 30 s: the host would give up"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self {
            base,
            child,
            stdout,
            stderr,
        }
    }

    /// Sends SIGTERM, as supervisors other than the Functions host do (a container runtime,
    /// systemd).
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGKILL, as the Functions host stops its worker (`Process.Kill()`).
    pub fn sigkill(&self) {
        self.signal("-KILL");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits at most `limit` for the exit; returns its status and the captured stdout and
    /// stderr.
    pub async fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, String, String) {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("the handler exits in time")
            .unwrap();
        (
            status,
            self.stdout.await.unwrap(),
            self.stderr.await.unwrap(),
        )
    }
}

/// An RFC 3339 timestamp `seconds` ago, as Authy writes `created_at`.
pub fn rfc3339_ago(seconds: u64) -> String {
    let when = std::time::SystemTime::now() - Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(when).to_string()
}

/// The repository's root folder (where Cargo.toml is).
pub fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// For a test whose tool or input is missing (xmllint, `../shared`, the Azure CLI, the client
/// libraries): skip with a message on a developer's machine, fail under `CI=true`, where
/// `.ci/run` provides all of them.
pub fn skip_or_fail(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}, and CI=true: .ci/run must provide it");
    }
    eprintln!("SKIPPED: {why}");
}
