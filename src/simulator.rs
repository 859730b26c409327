//! The built-in Authy simulator: a real HTTP server on loopback that speaks the subset of
//! Authy's API this product uses, with Authy's documented JSON shapes, so the whole journey
//! runs and is tested without a Twilio account.
//!
//! Behaviour is chosen by the **last four digits of the phone number** (and so of the authy
//! id, which the simulator derives from the phone: country code followed by the national
//! number, e.g. `+1 425 555 0101` → `14255550101`). See [`TRIGGERS`]; any other number is
//! approved after [`SimulatorConfig::approve_after`].
//!
//! It is never enabled silently: only `handler simulator`, `handler demo` or
//! `AUTHY_SIMULATOR=embedded` start it, each logs a warning, and it refuses to start in Azure
//! (`WEBSITE_INSTANCE_ID` set).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{FromRequest, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::authy::API_KEY_HEADER;
use crate::domain::ApprovalRequestId;

/// What the simulator does for a phone number / authy id, by its last four digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Approved after the configured delay (every number not in [`TRIGGERS`]).
    Approve,
    /// Denied after the configured delay.
    Deny,
    /// Expired after the configured delay.
    Expire,
    /// Stays pending until `seconds_to_expire`, then expired.
    NeverAnswer,
    /// Status polls answer 500 with an HTML page.
    StatusServerError,
    /// Status polls answer 429 (error 60003) with `Retry-After: 1`.
    StatusThrottled,
    /// Status polls never answer (the connection stays open for 60 s).
    StatusHang,
    /// Status polls answer 503 with Authy's JSON error.
    StatusUnavailable,
    /// Status polls answer 200 with a truncated JSON body.
    StatusMalformed,
    /// Creating an approval request answers 500 with an HTML page.
    CreateServerError,
    /// Creating an approval request answers 429 (error 60003).
    CreateThrottled,
    /// Creating an approval request never answers.
    CreateHang,
    /// Enrolling answers 400 `success: false` (error 60002, "Invalid request").
    RegisterRejected,
}

/// The trigger table: last four digits → behaviour, with a one-line description (printed by
/// `handler demo` and kept in docs/simulator.md).
pub const TRIGGERS: &[(&str, Behaviour, &str)] = &[
    ("0101", Behaviour::Deny, "denied after the delay"),
    ("0102", Behaviour::Expire, "expired after the delay"),
    (
        "0103",
        Behaviour::NeverAnswer,
        "never answered (pending until it expires)",
    ),
    (
        "0104",
        Behaviour::StatusServerError,
        "status poll answers 500 with an HTML page",
    ),
    (
        "0105",
        Behaviour::StatusThrottled,
        "status poll answers 429 with Retry-After: 1",
    ),
    ("0106", Behaviour::StatusHang, "status poll hangs"),
    (
        "0107",
        Behaviour::StatusUnavailable,
        "status poll answers 503",
    ),
    (
        "0108",
        Behaviour::StatusMalformed,
        "status poll answers truncated JSON",
    ),
    (
        "0110",
        Behaviour::CreateServerError,
        "sending the push answers 500 with an HTML page",
    ),
    (
        "0111",
        Behaviour::CreateThrottled,
        "sending the push answers 429",
    ),
    ("0112", Behaviour::CreateHang, "sending the push hangs"),
    (
        "0113",
        Behaviour::RegisterRejected,
        "enrolling answers 400 success:false",
    ),
];

/// Longest `seconds_to_expire` kept (Authy's default lifetime, one day).
const MAX_TTL_SECONDS: u64 = 86_400;

/// How long a hanging answer is held before the simulator gives up on it.
const HANG: Duration = Duration::from_secs(60);

impl Behaviour {
    /// The behaviour for an authy id or phone number (its last four digits).
    pub fn of(digits: &str) -> Self {
        let last4 = &digits[digits.len().saturating_sub(4)..];
        TRIGGERS
            .iter()
            .find(|(suffix, _, _)| *suffix == last4)
            .map_or(Self::Approve, |(_, behaviour, _)| *behaviour)
    }
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Delay after which an approval request is answered (approved, denied or expired,
    /// per [`Behaviour`]).
    pub approve_after: Duration,
    /// A random extra delay, uniform in `0..=approve_jitter`, added per approval request
    /// (benchmarks use it to approve "at a random moment").
    pub approve_jitter: Duration,
    /// The API key it accepts; `None` accepts any non-empty key.
    pub api_key: Option<String>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            approve_after: Duration::from_secs(2),
            approve_jitter: Duration::ZERO,
            api_key: None,
        }
    }
}

#[derive(Debug)]
struct StoredRequest {
    authy_id: u64,
    created: Instant,
    created_at: SystemTime,
    answer_after: Duration,
    ttl: Duration,
    behaviour: Behaviour,
}

#[derive(Debug)]
struct SimulatorState {
    config: SimulatorConfig,
    requests: Mutex<HashMap<ApprovalRequestId, StoredRequest>>,
}

/// Requests kept before expired ones are swept.
const SWEEP_ABOVE: usize = 50_000;

/// Builds the simulator's router (Authy's paths).
pub fn router(config: SimulatorConfig) -> Router {
    let state = Arc::new(SimulatorState {
        config,
        requests: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/protected/json/users/new", post(register_user))
        .route(
            "/onetouch/json/users/{authy_id}/approval_requests",
            post(create_approval_request),
        )
        .route(
            "/onetouch/json/approval_requests/{uuid}",
            get(approval_request_status),
        )
        // Not an Authy JSON error: a path Authy does not have answers like any web server.
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
        .with_state(state)
}

/// Serves the simulator on `listener` in a background task; returns its address.
///
/// # Errors
/// When the listener has no local address.
pub fn spawn(listener: TcpListener, config: SimulatorConfig) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    tracing::warn!(%addr, "Authy simulator listening: approval requests are simulated, no push reaches a phone");
    let app = router(config);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "Authy simulator stopped");
        }
    });
    Ok(addr)
}

/// Authy's error body: `{"message", "success": false, "errors": {"message"}, "error_code"}`.
fn authy_error(status: StatusCode, error_code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "message": message,
            "success": false,
            "errors": { "message": message },
            "error_code": error_code,
        })),
    )
        .into_response()
}

fn html_error(status: StatusCode) -> Response {
    let body =
        format!("<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>");
    (status, [("content-type", "text/html")], body).into_response()
}

fn throttled() -> Response {
    let mut response = authy_error(StatusCode::TOO_MANY_REQUESTS, "60003", "DoS protection");
    response
        .headers_mut()
        .insert("retry-after", axum::http::HeaderValue::from_static("1"));
    response
}

async fn hang() -> Response {
    tokio::time::sleep(HANG).await;
    StatusCode::GATEWAY_TIMEOUT.into_response()
}

/// Whether the key header is present (and matches, when one is configured); Authy answers
/// 401 with error 60001 otherwise ([`invalid_api_key`]).
fn key_is_valid(state: &SimulatorState, headers: &HeaderMap) -> bool {
    let given = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match &state.config.api_key {
        Some(key) => given == key,
        None => !given.is_empty(),
    }
}

fn invalid_api_key() -> Response {
    authy_error(StatusCode::UNAUTHORIZED, "60001", "Invalid API key")
}

fn digits(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
}

/// Authy's authentication: the key header is valid, or the request is refused with 401 /
/// 60001 before anything else.
struct ValidApiKey;

impl FromRequestParts<Arc<SimulatorState>> for ValidApiKey {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<SimulatorState>,
    ) -> Result<Self, Self::Rejection> {
        if key_is_valid(state, &parts.headers) {
            Ok(Self)
        } else {
            Err(invalid_api_key())
        }
    }
}

/// A form-encoded Authy request body; anything else is 400 / 60002.
struct AuthyForm(HashMap<String, String>);

impl FromRequest<Arc<SimulatorState>> for AuthyForm {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &Arc<SimulatorState>,
    ) -> Result<Self, Self::Rejection> {
        Form::<HashMap<String, String>>::from_request(request, state)
            .await
            .map(|Form(form)| Self(form))
            .map_err(|_| authy_error(StatusCode::BAD_REQUEST, "60002", "Invalid request"))
    }
}

async fn register_user(_key: ValidApiKey, AuthyForm(form): AuthyForm) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let (email, cellphone, country_code) = (
        field("user[email]"),
        field("user[cellphone]"),
        field("user[country_code]"),
    );
    if !email.contains('@') {
        return authy_error(StatusCode::BAD_REQUEST, "60027", "User was not valid");
    }
    if !digits(cellphone, 14) || !digits(country_code, 3) {
        return authy_error(StatusCode::BAD_REQUEST, "60033", "Invalid phone number");
    }
    if Behaviour::of(cellphone) == Behaviour::RegisterRejected {
        return authy_error(StatusCode::BAD_REQUEST, "60002", "Invalid request");
    }
    let Ok(id) = format!("{country_code}{cellphone}").parse::<u64>() else {
        return authy_error(StatusCode::BAD_REQUEST, "60033", "Invalid phone number");
    };
    Json(json!({
        "message": "User created successfully.",
        "user": { "id": id },
        "success": true,
    }))
    .into_response()
}

async fn create_approval_request(
    State(state): State<Arc<SimulatorState>>,
    _key: ValidApiKey,
    Path(authy_id): Path<String>,
    AuthyForm(form): AuthyForm,
) -> Response {
    let Some(id) = authy_id
        .parse::<u64>()
        .ok()
        .filter(|_| digits(&authy_id, 20))
    else {
        return authy_error(StatusCode::NOT_FOUND, "60000", "User not found");
    };
    if form.get("message").is_none_or(|m| m.is_empty()) {
        return authy_error(
            StatusCode::BAD_REQUEST,
            "60004",
            "Invalid parameter: message",
        );
    }
    let behaviour = Behaviour::of(&authy_id);
    match behaviour {
        Behaviour::CreateServerError => return html_error(StatusCode::INTERNAL_SERVER_ERROR),
        Behaviour::CreateThrottled => return throttled(),
        Behaviour::CreateHang => return hang().await,
        _ => {}
    }
    let ttl = form
        .get("seconds_to_expire")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(MAX_TTL_SECONDS)
        .min(MAX_TTL_SECONDS);
    let jitter = state.config.approve_jitter.as_micros() as u64;
    let answer_after = state.config.approve_after
        + Duration::from_micros(if jitter == 0 {
            0
        } else {
            fastrand::u64(0..=jitter)
        });
    // A v4 UUID always parses; the domain type has no constructor of its own for this, so
    // that production code can only ever hold ids that came from Authy or from B2C.
    let Ok(uuid) = ApprovalRequestId::parse(&uuid::Uuid::new_v4().to_string()) else {
        return authy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "60000",
            "could not name the approval request",
        );
    };
    let stored = StoredRequest {
        authy_id: id,
        created: Instant::now(),
        created_at: SystemTime::now(),
        answer_after,
        ttl: Duration::from_secs(ttl),
        behaviour,
    };
    if let Ok(mut requests) = state.requests.lock() {
        if requests.len() >= SWEEP_ABOVE {
            requests.retain(|_, r| r.created.elapsed() < r.ttl + Duration::from_secs(60));
        }
        requests.insert(uuid, stored);
    }
    Json(json!({ "approval_request": { "uuid": uuid.to_string() }, "success": true }))
        .into_response()
}

async fn approval_request_status(
    State(state): State<Arc<SimulatorState>>,
    _key: ValidApiKey,
    Path(uuid): Path<String>,
) -> Response {
    let found = ApprovalRequestId::parse(&uuid).ok().and_then(|id| {
        let requests = state.requests.lock().ok()?;
        let r = requests.get(&id)?;
        Some((
            r.authy_id,
            r.created.elapsed(),
            r.created_at,
            r.answer_after,
            r.ttl,
            r.behaviour,
        ))
    });
    let Some((authy_id, elapsed, created_at, answer_after, ttl, behaviour)) = found else {
        return authy_error(StatusCode::NOT_FOUND, "60000", "Approval request not found");
    };
    let status = match behaviour {
        Behaviour::StatusServerError => return html_error(StatusCode::INTERNAL_SERVER_ERROR),
        Behaviour::StatusThrottled => return throttled(),
        Behaviour::StatusHang => return hang().await,
        Behaviour::StatusUnavailable => {
            return authy_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "60000",
                "Service unavailable",
            )
        }
        Behaviour::StatusMalformed => {
            return (
                StatusCode::OK,
                [("content-type", "application/json")],
                r#"{"approval_request":{"status":"#,
            )
                .into_response()
        }
        // Until answered, a request is pending, then expired after its lifetime; once
        // answered, its status is final (Authy never expires an approved request).
        Behaviour::NeverAnswer if elapsed < ttl => "pending",
        _ if elapsed < answer_after.min(ttl) => "pending",
        _ if answer_after >= ttl || behaviour == Behaviour::NeverAnswer => "expired",
        Behaviour::Deny => "denied",
        Behaviour::Expire => "expired",
        _ => "approved",
    };
    let created = humantime::format_rfc3339_seconds(created_at).to_string();
    let body: Value = json!({
        "approval_request": {
            "_app_name": "Simulator",
            "_app_serial_id": 1,
            "_authy_id": authy_id,
            "_id": uuid.replace('-', ""),
            "_user_email": "",
            "app_id": "simulator",
            "created_at": created,
            "notified": false,
            "processed_at": if status == "pending" { Value::Null } else { Value::String(created.clone()) },
            "seconds_to_expire": ttl.as_secs(),
            "status": status,
            "updated_at": created,
            "user_id": authy_id.to_string(),
            "uuid": uuid,
        },
        "success": true,
    });
    Json(body).into_response()
}
