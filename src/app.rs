//! The HTTP application: the router, its layers, and the server entry point.
//!
//! Request path: [`run`] (canonical-casing rewrite of the path, then the router) →
//! [`invocation`] middleware (invocation id, deadline, one log line) → panic guard → body
//! limit → the function's handler in [`crate::functions`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::authy::AuthyClient;
use crate::client_cert::{require_client_certificate, ClientCertPolicy};
use crate::config::{AuthyBackend, Config};
use crate::domain::PhoneNumber;
use crate::error::{ApiError, OutcomeCode, INVOCATION_ID};
use crate::functions::{
    create_approval_request::create_approval_request, register::register,
    wait_for_authy_approval::wait_for_authy_approval, ApprovalSettings, Deadline, FunctionsState,
    FUNCTION_NAMES,
};
use crate::simulator::{self, SimulatorConfig};

/// Largest request body accepted, in bytes (64 KiB); larger bodies get `PayloadTooLarge`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Kept free at the end of each invocation's budget, for writing the answer, so the caller
/// has it strictly inside `APPROVAL_WAIT_SECONDS`.
pub const RESPONSE_MARGIN: Duration = Duration::from_millis(100);

/// Header by which the Functions host names each invocation.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// Builds the router: `GET /` (the host's readiness probe) and `POST /api/<Function>`
/// behind the client-certificate layer. Every answer that is not a success is an
/// [`ApiError`] in the B2C shape.
///
/// `budget` is the time one invocation may take (`APPROVAL_WAIT_SECONDS`).
pub fn app(state: FunctionsState, budget: Duration, client_cert: Arc<ClientCertPolicy>) -> Router {
    let functions = Router::new()
        .route("/api/Register", post(register))
        .route("/api/CreateApprovalRequest", post(create_approval_request))
        .route("/api/WaitForAuthyApproval", post(wait_for_authy_approval))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Before anything reads the body; not on `GET /`, which the host needs for readiness.
        .route_layer(middleware::from_fn_with_state(
            client_cert,
            require_client_certificate,
        ))
        .with_state(state);
    Router::new()
        .route("/", get(status))
        .merge(functions)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked; answered InternalError");
                ApiError::Internal.into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(budget, invocation))
}

/// `GET /`: the host's readiness probe. Name and version only, no configuration.
async fn status() -> Json<serde_json::Value> {
    Json(json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "status": "ready",
    }))
}

/// Rewrites `/api/register` (any casing) to the canonical `/api/Register`: the Functions
/// host forwards the caller's path in the caller's casing, and its routes are
/// case-insensitive. The query string (`code=...`) is kept.
pub fn canonical_path(mut request: Request) -> Request {
    let path = request.uri().path();
    let canonical = FUNCTION_NAMES.iter().find(|name| {
        path.len() == 5 + name.len()
            && path[..5].eq_ignore_ascii_case("/api/")
            && path[5..].eq_ignore_ascii_case(name)
    });
    if let Some(name) = canonical {
        let path_and_query = match request.uri().query() {
            Some(q) => format!("/api/{name}?{q}"),
            None => format!("/api/{name}"),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The invocation's name for logs: the function, `status` for `GET /`, else `unknown`.
fn function_name(path: &str) -> &'static str {
    if path == "/" {
        return "status";
    }
    path.strip_prefix("/api/")
        .and_then(|name| FUNCTION_NAMES.iter().find(|n| **n == name))
        .copied()
        .unwrap_or("unknown")
}

/// The host's invocation id when it is a plausible one (printable ASCII, at most 128
/// characters), else a new UUID.
fn invocation_id(request: &Request) -> String {
    request
        .headers()
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Logs `invocation cancelled` if the caller disconnects before the answer (the server then
/// drops the handler's future, which stops polling Authy).
struct CancelGuard {
    armed: bool,
    span: tracing::Span,
    started: Instant,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            let _entered = self.span.enter();
            tracing::info!(
                outcome = "Cancelled",
                duration_ms = self.started.elapsed().as_millis() as u64,
                "invocation cancelled: the caller disconnected"
            );
        }
    }
}

/// Per-invocation middleware: sets the invocation id (for `requestId` in error bodies), the
/// deadline, a log span, and writes one log line per invocation with function, outcome code,
/// HTTP status, duration, Authy status, invocation id and B2C correlation id.
async fn invocation(State(budget): State<Duration>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = invocation_id(&request);
    let function = function_name(request.uri().path());
    request
        .extensions_mut()
        .insert(Deadline(started + budget.saturating_sub(RESPONSE_MARGIN)));
    let span = tracing::info_span!(
        "invocation",
        function,
        invocation_id = %id,
        correlation_id = tracing::field::Empty,
        authy_status = tracing::field::Empty,
    );
    let mut guard = CancelGuard {
        armed: true,
        span: span.clone(),
        started,
    };
    let mut response = INVOCATION_ID
        .scope(id.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    guard.armed = false;
    let outcome = response.extensions().get::<OutcomeCode>().map_or(
        if response.status().is_success() {
            "Ok"
        } else {
            "Error"
        },
        |c| c.0,
    );
    let duration_ms = started.elapsed().as_millis() as u64;
    let _entered = span.enter();
    let http_status = response.status().as_u16();
    if function == "status" {
        tracing::debug!(outcome, http_status, duration_ms, "invocation finished");
    } else {
        tracing::info!(outcome, http_status, duration_ms, "invocation finished");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(INVOCATION_ID_HEADER, value);
    }
    response
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight invocations
/// finish (each is bounded by its budget) and returns.
///
/// # Errors
/// I/O errors of the listener.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = tower::util::MapRequestLayer::new(canonical_path).layer(router);
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(service),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A started application: bound listener, router, and the embedded simulator if any.
/// Tests build one on port 0 and read [`Application::address`].
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// Where the Authy API (real or simulated) is.
    authy_api_url: url::Url,
}

impl Application {
    /// Binds `127.0.0.1:<config.port>`, starts the embedded simulator when configured, and
    /// builds the one Authy client.
    ///
    /// # Errors
    /// Binding failures, and a client that cannot be built.
    pub async fn build(config: &Config) -> Result<Self, String> {
        let (api_url, api_key) = match config.authy_backend {
            AuthyBackend::Remote => (
                config.authy_api_url.clone(),
                config
                    .authy_api_key
                    .clone()
                    .unwrap_or_else(|| SecretString::from("")),
            ),
            AuthyBackend::EmbeddedSimulator => {
                let key = uuid::Uuid::new_v4().simple().to_string();
                let listener = TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .map_err(|e| format!("cannot bind the Authy simulator: {e}"))?;
                let sim_config = SimulatorConfig {
                    api_key: Some(key.clone()),
                    ..SimulatorConfig::default()
                };
                let addr = simulator::spawn(listener, sim_config)
                    .map_err(|e| format!("cannot start the Authy simulator: {e}"))?;
                let url = url::Url::parse(&format!("http://{addr}/"))
                    .map_err(|e| format!("simulator URL: {e}"))?;
                (url, SecretString::from(key))
            }
        };
        let authy = AuthyClient::new(api_url.clone(), api_key)?;
        PhoneNumber::preload_metadata();
        let state = FunctionsState {
            authy,
            approvals: Arc::new(ApprovalSettings {
                message: config.approval_message.clone(),
                ttl: config.approval_ttl,
                poll_interval: config.poll_interval,
            }),
        };
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", config.port))?;
        Ok(Self {
            listener,
            router: app(state, config.approval_wait, config.client_cert.clone()),
            authy_api_url: api_url,
        })
    }

    /// The address the handler listens on.
    ///
    /// # Errors
    /// When the OS cannot tell.
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The Authy base URL in use (the simulator's, when embedded).
    pub fn authy_api_url(&self) -> &url::Url {
        &self.authy_api_url
    }

    /// Serves until `shutdown` completes.
    ///
    /// # Errors
    /// I/O errors of the listener.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        run(self.listener, self.router, shutdown).await
    }
}
