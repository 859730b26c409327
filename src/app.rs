//! The HTTP application: the router, its layers, and the server entry point.
//!
//! Request path: [`run`] (hyper connection, canonical-casing rewrite of the path) →
//! [`invocation`] middleware (invocation id, deadline, one log line) → panic guard →
//! client-certificate gate (every request but `GET /` and `HEAD /`) → routing → the
//! functions' router ([`crate::functions::router`]: body limit, then the function's handler).
//!
//! The app receives its Authy client ready-made ([`Application::build`]); it never starts a
//! simulator itself.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::authy::AuthyClient;
use crate::client_cert::{require_client_certificate, ClientCertPolicy};
use crate::config::Config;
use crate::domain::PhoneNumber;
use crate::error::{ApiError, OutcomeCode, INVOCATION_ID};
use crate::functions::{self, ApprovalSettings, Deadline, FunctionsState, FUNCTION_NAMES};
use crate::messages::{Language, LANGUAGE};
use crate::push_limits::PushLimits;

/// Kept free at the end of each invocation's budget, for writing the answer, so the caller
/// has it strictly inside `APPROVAL_WAIT_SECONDS`.
pub const RESPONSE_MARGIN: Duration = Duration::from_millis(100);

/// Header by which the Functions host names each invocation.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// Length of the listen queue (the kernel caps it at `net.core.somaxconn`). tokio's
/// `TcpListener::bind` asks for 128: a burst of connections that outruns the accept loop
/// beyond that has its SYNs dropped, and the caller retries after 1 s, then 3 s.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `127.0.0.1:<port>` with a listen queue of [`LISTEN_BACKLOG`].
///
/// # Errors
/// Socket, bind and listen failures.
pub fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(LISTEN_BACKLOG)
}

/// Builds the router: `GET /` (the host's readiness probe) and `POST /api/<Function>`
/// behind the client-certificate layer. Every answer that is not a success is an
/// [`ApiError`] in the B2C shape.
///
/// `budget` is the time one invocation may take (`APPROVAL_WAIT_SECONDS`).
pub fn app(state: FunctionsState, budget: Duration, client_cert: Arc<ClientCertPolicy>) -> Router {
    let routes = Router::new()
        .route("/", get(status))
        .merge(functions::router(state))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    // The routes sit behind a router of their own, as its fallback, so that the layers below
    // run before routing decides anything (404, 405 with its `Allow` header) and before any
    // body is read: a caller without an accepted certificate learns nothing about the routes.
    // (`Router::layer` alone wraps each route, after the method is matched.)
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn_with_state(
            client_cert,
            client_certificate_gate,
        ))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked; answered InternalError");
                ApiError::Internal.into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(budget, invocation))
}

/// [`require_client_certificate`] on every request but `GET /` and `HEAD /`, with which the
/// host probes for readiness without a certificate. Any other method on `/` needs a
/// certificate too, so that a caller without one never learns which methods exist (405).
async fn client_certificate_gate(
    State(policy): State<Arc<ClientCertPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let probe = matches!(*request.method(), Method::GET | Method::HEAD);
    if probe && request.uri().path() == "/" {
        return next.run(request).await;
    }
    require_client_certificate(State(policy), request, next).await
}

/// `GET /`: the host's readiness probe. Name and version only, no configuration.
async fn status() -> Json<serde_json::Value> {
    Json(json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "status": "ready",
    }))
}

/// Rewrites `/api/register` and `/api/register/` (any casing, one trailing slash) to the
/// canonical `/api/Register`: the Functions host forwards the caller's path as the caller
/// wrote it, and its routes match case-insensitively and with a trailing slash (ASP.NET
/// Core routing). The query string (`code=...`) is kept.
pub fn canonical_path(mut request: Request) -> Request {
    let path = request.uri().path();
    let canonical = path
        .get(..5)
        .filter(|prefix| prefix.eq_ignore_ascii_case("/api/"))
        .and_then(|_| path.get(5..))
        .map(|name| name.strip_suffix('/').unwrap_or(name))
        .and_then(|name| FUNCTION_NAMES.iter().find(|f| f.eq_ignore_ascii_case(name)));
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

/// The invocation's name for logs: the function, `status` for `GET /` and `HEAD /` (the
/// host's probe), else `unknown`.
fn function_name(method: &Method, path: &str) -> &'static str {
    if path == "/" {
        let probe = matches!(*method, Method::GET | Method::HEAD);
        return if probe { "status" } else { "unknown" };
    }
    path.strip_prefix("/api/")
        .and_then(|name| FUNCTION_NAMES.iter().find(|n| **n == name))
        .copied()
        .unwrap_or("unknown")
}

/// The host's invocation id when it is a plausible one (printable ASCII, at most 128
/// characters), else a new UUID.
///
/// The host *appends* its `X-Azure-Functions-InvocationId` to the caller's headers
/// (azure-functions-host, `Workers/Http/DefaultHttpWorkerService.cs`, `AddHeaders`), and
/// .NET's `HttpClient` writes the values of one request header on one comma-separated line
/// (reported in dotnet/runtime#63808). So a caller that sent one too arrives as `caller, host`
/// (or, from another client, as two lines): the host's id, the one its logs carry, is the part
/// after the last comma of the last line.
fn invocation_id(request: &Request) -> String {
    request
        .headers()
        .get_all(INVOCATION_ID_HEADER)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
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
/// invocation's language (English until the body's `uiLocale` is read), the deadline, a log
/// span, and writes one log line per invocation with function, outcome code, HTTP status,
/// duration, Authy status, invocation id and B2C correlation id.
async fn invocation(State(budget): State<Duration>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = invocation_id(&request);
    let function = function_name(request.method(), request.uri().path());
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
    // The functions end by their deadline on their own; this also bounds what happens before
    // them, such as a client that sends its body slowly or never.
    let hard_deadline = started + budget;
    // English until the functions' body extractor reads `uiLocale`.
    let mut response = LANGUAGE
        .scope(
            Cell::new(Language::default()),
            INVOCATION_ID.scope(id.clone(), async move {
                match tokio::time::timeout_at(hard_deadline, next.run(request)).await {
                    Ok(response) => response,
                    Err(_elapsed) => ApiError::RequestTimeout.into_response(),
                }
            }),
        )
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

/// Longest time a client may take to send a request's headers; hyper closes the connection
/// after it. Bounds connections that never finish a request (slowloris), which would
/// otherwise also hold up a graceful shutdown.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight invocations finish: each ends inside its budget, so after `grace` (the budget
/// plus a margin) any connection still open is closed and the function returns.
///
/// Connections are served by hyper's HTTP/1 builder directly (not `axum::serve`) for its
/// header-read timeout.
///
/// # Errors
/// Never at present; `io::Result` keeps the door open for listener errors that are fatal.
pub async fn run(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let request = canonical_path(request.map(axum::body::Body::new));
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("connections still open after the shutdown grace period: closing them");
        }
    }
    Ok(())
}

/// A started application: the bound listener and the router. Tests build one on port 0 and
/// read [`Application::address`].
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// How long shutdown waits for in-flight invocations: the budget plus a second.
    grace: Duration,
}

impl Application {
    /// Binds `127.0.0.1:<config.port>` (listen queue [`LISTEN_BACKLOG`]) and starts loading
    /// the phone-number metadata on a thread of its own. `authy` is the one Authy client, ready:
    /// the caller (`main`) decides whether it talks to Authy or to a simulator. `push_limits`
    /// holds its store, ready (the storage account, or memory for the demo).
    ///
    /// # Errors
    /// Binding failures, and a thread that cannot be started.
    pub async fn build(
        config: &Config,
        authy: AuthyClient,
        push_limits: Arc<PushLimits>,
    ) -> Result<Self, String> {
        let state = FunctionsState {
            authy,
            push_limits,
            approvals: Arc::new(ApprovalSettings {
                message: config.approval_message.clone(),
                ttl: config.approval_ttl,
                poll_interval: config.poll_interval,
            }),
        };
        let listener = bind_loopback(config.port)
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", config.port))?;
        // Loading the phone-number metadata compiles its patterns: ~120 ms of CPU. It runs
        // beside the server, not before it, so the host's readiness probe (`GET /`) is
        // answered at once; a Register arriving meanwhile waits for the load to finish.
        std::thread::Builder::new()
            .name("phone-metadata".into())
            .spawn(PhoneNumber::preload_metadata)
            .map_err(|e| format!("cannot start loading the phone-number metadata: {e}"))?;
        Ok(Self {
            listener,
            router: app(state, config.approval_wait, config.client_cert.clone()),
            grace: config.approval_wait + Duration::from_secs(1),
        })
    }

    /// The address the handler listens on.
    ///
    /// # Errors
    /// When the OS cannot tell.
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    ///
    /// # Errors
    /// I/O errors of the listener.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        run(self.listener, self.router, shutdown, self.grace).await
    }
}
