//! The servers the harness runs besides the handler:
//! - `echo` (child process): the bare axum JSON echo, the floor of scenario 1;
//! - `forward` (child process): the echo plus one Authy `users/new` call per request with
//!   reqwest (no validation, no certificate check, no logging): the cost of the topology
//!   itself, a second floor for scenario 1;
//! - `simulator` (child process): the built-in Authy simulator, zero-latency for
//!   `users/new` (scenario 1) and for trigger `0103` ("never answered", scenario 2);
//! - [`GatedSimulator`] (in the harness process, on its own runtime thread): the built-in
//!   simulator behind a gate that keeps each approval request pending until a moment the
//!   harness draws at random and therefore knows (scenario 3).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use b2c_authy::simulator::{self, SimulatorConfig};
use serde_json::{json, Value};

use super::PORT_ENV;

/// Runs a child role until killed.
pub fn run(role: &str) -> ExitCode {
    let port: u16 = std::env::var(PORT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // The same runtime as the handler's `main`: multi-threaded, one worker per core.
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listener = bind(port).map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
        match role {
            "echo" => axum::serve(listener, echo_router())
                .await
                .map_err(|e| e.to_string()),
            "forward" => {
                let authy = std::env::var("B2C_BENCH_AUTHY_URL")
                    .map_err(|_| "B2C_BENCH_AUTHY_URL is not set".to_owned())?;
                axum::serve(listener, forward_router(&authy)?)
                    .await
                    .map_err(|e| e.to_string())
            }
            "simulator" => {
                let api_key = std::env::var("B2C_BENCH_API_KEY").ok();
                simulator::spawn(
                    listener,
                    SimulatorConfig {
                        api_key,
                        ..SimulatorConfig::default()
                    },
                )
                .map_err(|e| e.to_string())?;
                std::future::pending::<()>().await;
                Ok(())
            }
            other => Err(format!("unknown role {other}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{role}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `127.0.0.1:<port>` with a listen queue of 4096 (the kernel caps it at
/// `net.core.somaxconn`): the simulator stands for Authy, whose listen queue is not
/// tokio's default of 128.
pub fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(4096)
}

/// The topology floor: `POST /api/Register` parses the JSON body, sends Authy's
/// `users/new` form with reqwest (one pooled client, as the handler has) and answers
/// `{"authyId"}`.
fn forward_router(authy: &str) -> Result<Router, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-authy-api-key",
        std::env::var("B2C_BENCH_API_KEY")
            .unwrap_or_default()
            .parse()
            .map_err(|_| "bad API key".to_owned())?,
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())?;
    let url: Arc<str> = format!("{authy}/protected/json/users/new").into();
    Ok(Router::new()
        .route("/", get(|| async { Json(json!({"status": "ready"})) }))
        .route(
            "/api/Register",
            post(move |Json(body): Json<Value>| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let email = body["email"].as_str().unwrap_or("").to_owned();
                    let form = [
                        ("user[email]", email.as_str()),
                        ("user[cellphone]", "4255550100"),
                        ("user[country_code]", "1"),
                    ];
                    let answer: Option<Value> = match client.post(&*url).form(&form).send().await {
                        Ok(response) => response.json().await.ok(),
                        Err(_) => None,
                    };
                    match answer.as_ref().and_then(|v| v.pointer("/user/id")) {
                        Some(id) => Json(json!({"authyId": id.to_string()})).into_response(),
                        None => axum::http::StatusCode::BAD_GATEWAY.into_response(),
                    }
                }
            }),
        ))
}

/// The floor: `POST /api/Register` parses the JSON body and answers it back; `GET /`
/// answers a small JSON object. No layers, no logging, no certificate check.
fn echo_router() -> Router {
    Router::new()
        .route("/", get(|| async { Json(json!({"status": "ready"})) }))
        .route(
            "/api/Register",
            post(|Json(body): Json<Value>| async move { Json(body) }),
        )
}

/// When each gated approval request is approved: uuid → moment.
pub type Gates = Arc<Mutex<HashMap<String, Instant>>>;

/// The built-in simulator (approving at once) behind a gate: a status poll of an approval
/// request registered in [`Gates`] answers `pending` until its moment, then the simulator's
/// own `approved` answer. Runs on its own thread and runtime, away from the load generator.
pub struct GatedSimulator {
    /// Where it listens.
    pub address: SocketAddr,
    /// The approval moments; insert before the handler polls.
    pub gates: Gates,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GatedSimulator {
    /// Starts it with `api_key`.
    pub fn start(api_key: &str) -> Result<Self, String> {
        let gates: Gates = Arc::default();
        // Every field named today; the update keeps this compiling if fields are added.
        #[allow(clippy::needless_update)]
        let config = SimulatorConfig {
            approve_after: Duration::ZERO,
            approve_jitter: Duration::ZERO,
            api_key: Some(api_key.to_owned()),
            ..SimulatorConfig::default()
        };
        let app = simulator::router(config)
            .layer(axum::middleware::from_fn_with_state(gates.clone(), gate));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, address) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("gated-simulator".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("simulator runtime");
                runtime.block_on(async move {
                    let listener = match bind(0) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = bound.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = bound.send(listener.local_addr().map_err(|e| e.to_string()));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .map_err(|e| e.to_string())?;
        let address = address.recv().map_err(|e| e.to_string())??;
        Ok(Self {
            address,
            gates,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for GatedSimulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The handler holds idle keep-alive connections; do not wait for them.
        drop(self.thread.take());
    }
}

async fn gate(State(gates): State<Gates>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let pending = request
        .uri()
        .path()
        .strip_prefix("/onetouch/json/approval_requests/")
        .and_then(|uuid| gates.lock().ok()?.get(uuid).copied())
        .is_some_and(|approve_at| arrived < approve_at);
    let response = next.run(request).await;
    if !pending {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return parts.status.into_response();
    };
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(request) = value.get_mut("approval_request") {
        request["status"] = "pending".into();
        request["processed_at"] = Value::Null;
    }
    (parts.status, Json(value)).into_response()
}
