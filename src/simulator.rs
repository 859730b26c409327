//! The built-in Authy simulator: a real HTTP server on loopback that speaks the subset of
//! Authy's API this product uses, with Authy's documented JSON shapes, so the whole journey
//! runs and is tested without a Twilio account.
//!
//! Behaviour is chosen by the **last four digits of the phone number** (and so of the authy
//! id, which the simulator derives from the phone: country code followed by the national
//! number, e.g. `+1 425 555 0101` → `14255550101`). See [`TRIGGERS`]; any other number is
//! approved after [`SimulatorConfig::approve_after`].
//!
//! It takes requests in every encoding Authy takes and Twilio's client libraries send (form
//! with bracket keys, JSON, the query string of a POST; the key in the header, the query or
//! the body: `AuthyRequest`), answers Authy's error bodies (60001, 60026, 60027, 60049)
//! and status answers with Authy's fields, and records what it was sent under
//! `/simulator/...` for tests. docs/simulator.md lists each behaviour with its source.
//!
//! It is never enabled silently: only `handler simulator`, `handler demo` or
//! `AUTHY_SIMULATOR=embedded` start it, each logs a warning, and it refuses to start in Azure
//! (`WEBSITE_INSTANCE_ID` set).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::authy::API_KEY_HEADER;
use crate::domain::{ApprovalRequestId, Email, PhoneNumber};

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

/// `seconds_to_expire` when the caller sends none (absent, `null` or empty) and the longest
/// one kept: "Defaults to 86400 (one day); 0 will never expire"
/// (<https://www.twilio.com/docs/api/authy/rest/push-authentications>, parameters table).
/// authy-python sends `"seconds_to_expire": null` when its caller gives none
/// (twilio/authy-python `authy/api/resources.py`, `OneTouch.send_request`).
const DEFAULT_TTL_SECONDS: u64 = 86_400;

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
    /// `None`: `seconds_to_expire` was 0, the request never expires.
    ttl: Option<Duration>,
    behaviour: Behaviour,
    /// What the caller sent, as the simulator parsed it (`message`, `details`,
    /// `hidden_details`, `logos`, `seconds_to_expire`), for [`inspect_approval_request`].
    sent: Value,
}

/// A user enrolled through `users/new` during this run.
#[derive(Debug, Clone)]
struct RegisteredUser {
    email: String,
    /// `send_install_link_via_sms` exactly as sent (`null` when absent).
    send_install_link_via_sms: Value,
    /// Whether Authy would have texted the install link: the field's value, `true` when
    /// absent (Twilio's Users docs, <https://www.twilio.com/docs/authy/api/users>, as quoted
    /// in issue 12; authy-ruby and authy-php also send `true` unless told otherwise).
    install_link_sms_sent: bool,
}

#[derive(Debug)]
struct SimulatorState {
    config: SimulatorConfig,
    requests: Mutex<HashMap<ApprovalRequestId, StoredRequest>>,
    users: Mutex<HashMap<u64, RegisteredUser>>,
    /// This simulator's Authy application id (24 hex digits, like Authy's `app_id`).
    app_id: String,
    /// Approval requests created so far; even ones get an Authy-style UUID, odd ones a v4.
    created: AtomicU64,
}

/// Requests kept before expired ones are swept.
const SWEEP_ABOVE: usize = 50_000;

/// Largest request body read (Authy's bodies are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// Builds the simulator's router (Authy's paths, plus `/simulator/...` to inspect what it
/// recorded).
pub fn router(config: SimulatorConfig) -> Router {
    // The simulator validates phones with libphonenumber's metadata, which loads on first use
    // (about 2 s in a debug build): load it now, not inside the first `users/new`, whose
    // caller's deadline it would eat.
    PhoneNumber::preload_metadata();
    let state = Arc::new(SimulatorState {
        config,
        requests: Mutex::new(HashMap::new()),
        users: Mutex::new(HashMap::new()),
        app_id: object_id(unix_seconds(SystemTime::now()), fastrand::u64(..)),
        created: AtomicU64::new(0),
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
        .route("/simulator/users/{authy_id}", get(inspect_user))
        .route(
            "/simulator/approval_requests/{uuid}",
            get(inspect_approval_request),
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

/// Authy's error body: `{"message", "success": false, "errors": {"message"}, "error_code"}`
/// (twilio/authy-ruby `spec/authy/api_spec.rb`: 60001 "Invalid API key", 60026 "User not
/// found.").
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

fn invalid_api_key() -> Response {
    authy_error(StatusCode::UNAUTHORIZED, "60001", "Invalid API key")
}

fn invalid_request() -> Response {
    authy_error(StatusCode::BAD_REQUEST, "60002", "Invalid request")
}

fn digits(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
}

/// An authenticated Authy request's parameters, merged as Rails merges them (Authy is a
/// Rails application): the query string first, then the body over it. The body is a form
/// (`application/x-www-form-urlencoded`, or no content type) with Rails' bracket keys
/// (`user[email]`, `details[Key]`, `logos[][res]`), or a JSON object (`{"user": {...}}`).
/// Every client library sends one of these: authy-ruby a bracket form, authy-python and
/// authy-client (npm) JSON, node-authy (npm `authy`) a form with `api_key` in the query,
/// authy-php everything in the query string of the POST.
///
/// The API key is taken from the `X-Authy-API-Key` header, else the `api_key` parameter
/// (query or body); the Twilio docs show `?api_key={KEY}`
/// (<https://www.twilio.com/docs/api/authy/rest/push-authentications>). A missing or wrong
/// key is 401 / 60001 before anything else; a body that is neither a form nor a JSON object
/// is then 400 / 60002.
struct AuthyRequest {
    params: Map<String, Value>,
    /// The body was JSON (Rails' params wrapper applies, see [`register_user`]).
    json: bool,
}

impl FromRequest<Arc<SimulatorState>> for AuthyRequest {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &Arc<SimulatorState>,
    ) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let mut params = Map::new();
        let query_ok = parts
            .uri
            .query()
            .is_none_or(|query| merge_form(&mut params, query.as_bytes()));
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let json = content_type
            .as_deref()
            .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
        let body_ok = match axum::body::to_bytes(body, MAX_BODY).await {
            Err(_) => false,
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => true,
            Ok(bytes) if json => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(object)) => {
                    params.extend(object);
                    true
                }
                _ => false,
            },
            Ok(bytes) => match content_type.as_deref() {
                None | Some("application/x-www-form-urlencoded") => merge_form(&mut params, &bytes),
                Some(_) => false,
            },
        };
        let header_key = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        let param_key = params.get("api_key").and_then(scalar);
        let given = header_key
            .map(str::to_owned)
            .or(param_key)
            .unwrap_or_default();
        let valid = match &state.config.api_key {
            Some(key) => given == *key,
            None => !given.is_empty(),
        };
        if !valid {
            return Err(invalid_api_key());
        }
        if !(body_ok && query_ok) {
            return Err(invalid_request());
        }
        params.remove("api_key");
        Ok(Self { params, json })
    }
}

/// A path segment as text; one that is not UTF-8 (`%FF`) is empty, so that it is Authy's
/// 404 for an unknown user or approval request, after the API key check, not axum's
/// plain-text 400 before it.
fn path_text(segment: Result<Path<String>, PathRejection>) -> String {
    segment.map(|Path(text)| text).unwrap_or_default()
}

/// A scalar parameter as text (`"1"`, `1` and `true` alike); `None` for null, absent,
/// objects and arrays.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Deepest bracket nesting taken (`a[b][c]` is 3): Rack 2's default `param_depth_limit`
/// (rack/rack `lib/rack/utils.rb`, `QueryParser.make_default(65536, 100)`), past which Rack
/// raises a `RangeError` and Rails answers 400. It also bounds [`insert_bracketed`]'s recursion: a 60 KB
/// `a[b][b]...` key nests 20 000 deep and overflowed the worker's stack, aborting the
/// process (the handler's too, with `AUTHY_SIMULATOR=embedded`).
const MAX_PARAM_DEPTH: usize = 100;

/// Adds a form-encoded string's pairs to `params`, with Rails' bracket keys nested.
/// `false` (and that pair skipped) when a key nests deeper than [`MAX_PARAM_DEPTH`].
fn merge_form(params: &mut Map<String, Value>, form: &[u8]) -> bool {
    let mut ok = true;
    for (key, value) in url::form_urlencoded::parse(form) {
        let segments = bracket_segments(&key);
        if segments.len() > MAX_PARAM_DEPTH {
            ok = false;
            continue;
        }
        insert_bracketed(params, &segments, Value::String(value.into_owned()));
    }
    ok
}

/// `user[email]` → `["user", "email"]`, `logos[][res]` → `["logos", "", "res"]`; a key
/// whose brackets do not close is one plain name.
fn bracket_segments(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else {
        return vec![key.to_owned()];
    };
    let mut segments = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return vec![key.to_owned()];
        };
        segments.push(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    if rest.is_empty() && !segments[0].is_empty() {
        segments
    } else {
        vec![key.to_owned()]
    }
}

/// Inserts `value` at `segments` as Rails' `Rack::Utils.parse_nested_query` does: a named
/// segment is an object key; an empty one (`[]`) appends to an array, and `logos[][res]`
/// then `logos[][url]` fill the same element until a key repeats.
fn insert_bracketed(target: &mut Map<String, Value>, segments: &[String], value: Value) {
    let Some((name, rest)) = segments.split_first() else {
        return;
    };
    let Some((next, after)) = rest.split_first() else {
        target.insert(name.clone(), value);
        return;
    };
    if next.is_empty() {
        let slot = target
            .entry(name.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let Value::Array(items) = slot else { return };
        match after.first() {
            None => items.push(value),
            Some(key) => {
                let reuse = matches!(items.last(), Some(Value::Object(o)) if !o.contains_key(key));
                if !reuse {
                    items.push(Value::Object(Map::new()));
                }
                if let Some(Value::Object(object)) = items.last_mut() {
                    insert_bracketed(object, after, value);
                }
            }
        }
    } else {
        let slot = target
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        if let Value::Object(object) = slot {
            insert_bracketed(object, rest, value);
        }
    }
}

/// A boolean parameter: `true`/`"true"`/`"1"` or `false`/`"false"`/`"0"`; anything else
/// is `None`.
fn boolean(value: &Value) -> Option<bool> {
    match scalar(value)?.as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Seconds since the epoch, saturated into `u32` (an ObjectId's timestamp).
fn unix_seconds(t: SystemTime) -> u32 {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A 24-hex-digit id like Authy's `_id`, `app_id` and `user_id` (MongoDB ObjectIds: four
/// bytes of seconds, eight more; e.g. `56ad18731170706b7f00e352` in ruimarinho/authy-client
/// `test/mocks/get-approval-request-mock.js`).
fn object_id(seconds: u32, rest: u64) -> String {
    format!("{seconds:08x}{rest:016x}")
}

/// The `user_id` of an authy id: the same for every request of that user.
fn user_object_id(authy_id: u64) -> String {
    object_id(0x52e7_1d98, authy_id)
}

/// A UUID shaped like Authy's own approval request ids, which are not v4: time-ordered
/// first groups, version nibble 0 and a non-RFC variant, e.g.
/// `fd285c30-97f8-0135-cfa7-1241e5695bb0` (twilio/authy-php `tests/Authy/ApiTest.php`) and
/// `90c2adc0-b184-0133-7bff-0e67b818e6fb` (ruimarinho/authy-client `test/client_test.js`).
fn authy_style_uuid(now: SystemTime) -> uuid::Uuid {
    // 100 ns ticks since 1582-10-15, as a v1 UUID counts them.
    let ticks = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_nanos() / 100) as u64)
        .wrapping_add(0x01B2_1DD2_1381_4000);
    let random = fastrand::u64(..).to_be_bytes();
    uuid::Uuid::from_fields(
        ticks as u32,
        (ticks >> 32) as u16,
        0x0100 | ((ticks >> 48) & 0xff) as u16,
        &random,
    )
}

/// `_user_email` for an id this run did not enrol (see [`known_authy_id`]).
fn placeholder_email(authy_id: u64) -> String {
    format!("user{authy_id}@simulator.example.com")
}

/// Whether the simulator knows `authy_id`: enrolled during this run, or an id it would
/// issue — country code followed by a valid national number — so that enrolments survive
/// a restart of `handler simulator`. Anything else is Authy's 404 / 60026.
fn known_authy_id(state: &SimulatorState, authy_id: u64) -> bool {
    if state
        .users
        .lock()
        .is_ok_and(|users| users.contains_key(&authy_id))
    {
        return true;
    }
    let id = authy_id.to_string();
    PhoneNumber::parse(&format!("+{id}"))
        .is_ok_and(|phone| format!("{}{}", phone.country_code(), phone.cellphone()) == id)
}

/// `users/new`. Reads `user[email]`, `user[cellphone]`, `user[country_code]` (form or
/// JSON; a flat JSON object without `user` is wrapped as Rails' `ParamsWrapper` does) and
/// `send_install_link_via_sms` (top level as authy-ruby and authy-python send it, or inside
/// `user` as twilio/authy-php `lib/Authy/AuthyApi.php` does).
///
/// `cellphone` may carry "dashes, periods, spaces or nothing" (Twilio's Users docs,
/// <https://www.twilio.com/docs/authy/api/users>, as quoted in issue 12) and parentheses, and is validated with
/// `country_code` by libphonenumber ([`PhoneNumber`]); the email as the handler checks it
/// ([`Email`]: a mailbox at a DNS name, so not `a@`, which authy-client's `is.email()` would
/// then refuse in `_user_email`). An invalid phone or email is 400 /
/// 60027 "User was not valid" with the field's `"is invalid"` at the top level and in
/// `errors` (twilio/authy-ruby `spec/authy/api_spec.rb`, "should return the error messages
/// as a hash"). The answer is `{"message": "User created successfully.", "user": {"id"},
/// "success": true}` (ruimarinho/authy-client `test/mocks/register-user-mock.js`).
async fn register_user(
    State(state): State<Arc<SimulatorState>>,
    AuthyRequest { params, json }: AuthyRequest,
) -> Response {
    let user = match params.get("user") {
        Some(Value::Object(user)) => user.clone(),
        None if json => params.clone(),
        _ => Map::new(),
    };
    let field = |name: &str| user.get(name).and_then(scalar).unwrap_or_default();
    let (email, cellphone, country_code) =
        (field("email"), field("cellphone"), field("country_code"));
    let phone = Some(&cellphone)
        .filter(|c| {
            c.chars().any(|ch| ch.is_ascii_digit())
                && c.chars()
                    .all(|ch| ch.is_ascii_digit() || matches!(ch, ' ' | '-' | '.' | '(' | ')'))
        })
        .filter(|_| digits(&country_code, 3))
        .and_then(|c| PhoneNumber::parse(&format!("+{country_code} {c}")).ok())
        .filter(|p| p.country_code() == country_code.trim_start_matches('0'));
    let mut invalid = Map::new();
    if Email::parse(&email).is_err() {
        invalid.insert("email".into(), "is invalid".into());
    }
    if phone.is_none() {
        invalid.insert("cellphone".into(), "is invalid".into());
    }
    let Some(phone) = phone.filter(|_| invalid.is_empty()) else {
        let mut body = invalid.clone();
        invalid.insert("message".into(), "User was not valid".into());
        body.insert("message".into(), "User was not valid".into());
        body.insert("success".into(), false.into());
        body.insert("errors".into(), Value::Object(invalid));
        body.insert("error_code".into(), "60027".into());
        return (StatusCode::BAD_REQUEST, Json(Value::Object(body))).into_response();
    };
    if Behaviour::of(phone.cellphone()) == Behaviour::RegisterRejected {
        return invalid_request();
    }
    let Ok(id) = format!("{}{}", phone.country_code(), phone.cellphone()).parse::<u64>() else {
        return invalid_request();
    };
    let install_link = params
        .get("send_install_link_via_sms")
        .or_else(|| user.get("send_install_link_via_sms"))
        .cloned()
        .unwrap_or(Value::Null);
    let registered = RegisteredUser {
        email,
        install_link_sms_sent: boolean(&install_link).unwrap_or(true),
        send_install_link_via_sms: install_link,
    };
    if let Ok(mut users) = state.users.lock() {
        users.insert(id, registered);
    }
    Json(json!({
        "message": "User created successfully.",
        "user": { "id": id },
        "success": true,
    }))
    .into_response()
}

/// `users/{authy_id}/approval_requests`. An authy id the simulator does not know
/// ([`known_authy_id`]) is 404 / 60026 "User not found." (twilio/authy-php
/// `tests/Authy/ApiTest.php`, `testRequestOneTouchApprovalWithInvalidUser`; the full body
/// as twilio/authy-ruby `spec/authy/api_spec.rb` records it for other endpoints). `details`, `hidden_details` and `logos` come as JSON or as
/// form brackets (`details[Key]=...`, `logos[][res]=...`); `seconds_to_expire` absent,
/// `null` or empty is one day, `0` never expires, larger values are capped at one day
/// ([`DEFAULT_TTL_SECONDS`]). The answer is `{"approval_request": {"uuid"}, "success":
/// true}` (ruimarinho/authy-client `test/mocks/create-approval-request-mock.js`).
async fn create_approval_request(
    State(state): State<Arc<SimulatorState>>,
    authy_id: Result<Path<String>, PathRejection>,
    AuthyRequest { params, .. }: AuthyRequest,
) -> Response {
    let authy_id = path_text(authy_id);
    let Some(id) = authy_id
        .parse::<u64>()
        .ok()
        .filter(|_| digits(&authy_id, 20))
        .filter(|id| known_authy_id(&state, *id))
    else {
        return authy_error(StatusCode::NOT_FOUND, "60026", "User not found.");
    };
    let message = params.get("message").and_then(scalar).unwrap_or_default();
    if message.is_empty() {
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
    let seconds_to_expire = params
        .get("seconds_to_expire")
        .and_then(scalar)
        .filter(|s| !s.is_empty())
        .map_or(Some(DEFAULT_TTL_SECONDS), |s| s.parse::<u64>().ok());
    let ttl = match seconds_to_expire {
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds.min(DEFAULT_TTL_SECONDS))),
        None => {
            return authy_error(
                StatusCode::BAD_REQUEST,
                "60004",
                "Invalid parameter: seconds_to_expire",
            )
        }
    };
    let jitter = state.config.approve_jitter.as_micros() as u64;
    let answer_after = state.config.approve_after
        + Duration::from_micros(if jitter == 0 {
            0
        } else {
            fastrand::u64(0..=jitter)
        });
    let created_at = SystemTime::now();
    let fresh = if state.created.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
        authy_style_uuid(created_at)
    } else {
        uuid::Uuid::new_v4()
    };
    // Any hyphenated UUID parses; the domain type has no constructor of its own for this, so
    // that production code can only ever hold ids that came from Authy or from B2C.
    let Ok(uuid) = ApprovalRequestId::parse(&fresh.hyphenated().to_string()) else {
        return authy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "60000",
            "could not name the approval request",
        );
    };
    let sent = json!({
        "message": message,
        "details": params.get("details").cloned().unwrap_or(Value::Null),
        "hidden_details": params.get("hidden_details").cloned().unwrap_or(Value::Null),
        "logos": params.get("logos").cloned().unwrap_or(Value::Null),
        "seconds_to_expire": ttl.map_or(0, |t| t.as_secs()),
    });
    let stored = StoredRequest {
        authy_id: id,
        created: Instant::now(),
        created_at,
        answer_after,
        ttl,
        behaviour,
        sent,
    };
    if let Ok(mut requests) = state.requests.lock() {
        if requests.len() >= SWEEP_ABOVE {
            // Never-expiring requests are kept a day, like the longest expiring ones.
            let keep = Duration::from_secs(DEFAULT_TTL_SECONDS + 60);
            requests.retain(|_, r| {
                r.created.elapsed() < r.ttl.unwrap_or(keep) + Duration::from_secs(60)
            });
        }
        requests.insert(uuid, stored);
    }
    Json(json!({ "approval_request": { "uuid": uuid.to_string() }, "success": true }))
        .into_response()
}

/// Where a request stands `elapsed` after its creation: its status and, once final, how
/// long after creation it was processed (answered or expired).
fn status_at(
    behaviour: Behaviour,
    elapsed: Duration,
    answer_after: Duration,
    ttl: Option<Duration>,
) -> (&'static str, Option<Duration>) {
    // Expires unanswered: never answered, or its lifetime ends before the answer comes.
    let expires_at = match (behaviour, ttl) {
        (Behaviour::NeverAnswer, ttl) => Some(ttl),
        (_, Some(ttl)) if answer_after >= ttl => Some(Some(ttl)),
        _ => None,
    };
    match expires_at {
        Some(Some(ttl)) if elapsed >= ttl => ("expired", Some(ttl)),
        Some(_) => ("pending", None),
        // Once answered, its status is final (Authy never expires an approved request).
        None if elapsed < answer_after => ("pending", None),
        None => (
            match behaviour {
                Behaviour::Deny => "denied",
                Behaviour::Expire => "expired",
                _ => "approved",
            },
            Some(answer_after),
        ),
    }
}

/// `approval_requests/{uuid}`. Unknown (or malformed) ids are 404 / 60049 "Approval request
/// not found: <uuid>" (twilio/authy-php `tests/Authy/ApiTest.php`,
/// `testCheckOneTouchApprovalWithInvalidUuid`; the code from Twilio's "Authy Return and
/// Error Codes"). The answer carries every field
/// ruimarinho/authy-client's `getApprovalRequest` schema requires (`src/client.js`; values
/// as in `test/mocks/get-approval-request-mock.js`): 24-hex `_id`, `app_id` and `user_id`,
/// the enrolled email in `_user_email`, `processed_at` `null` while pending and the moment
/// of the answer (or of expiry) after, `updated_at` likewise, dates in RFC 3339 UTC.
async fn approval_request_status(
    State(state): State<Arc<SimulatorState>>,
    uuid: Result<Path<String>, PathRejection>,
    _request: AuthyRequest,
) -> Response {
    let uuid = path_text(uuid);
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
        return authy_error(
            StatusCode::NOT_FOUND,
            "60049",
            &format!("Approval request not found: {uuid}"),
        );
    };
    match behaviour {
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
        _ => {}
    }
    let (status, processed_after) = status_at(behaviour, elapsed, answer_after, ttl);
    let rfc3339 = |t: SystemTime| Value::String(humantime::format_rfc3339_seconds(t).to_string());
    let processed_at = processed_after.map(|after| rfc3339(created_at + after));
    let email = state
        .users
        .lock()
        .ok()
        .and_then(|users| users.get(&authy_id).map(|u| u.email.clone()))
        .unwrap_or_else(|| placeholder_email(authy_id));
    let body: Value = json!({
        "approval_request": {
            "_app_name": "Simulator",
            "_app_serial_id": 1,
            "_authy_id": authy_id,
            "_id": object_id(unix_seconds(created_at), u64::from_str_radix(&uuid.replace('-', "")[16..], 16).unwrap_or(0)),
            "_user_email": email,
            "app_id": state.app_id,
            "created_at": rfc3339(created_at),
            "notified": false,
            "processed_at": processed_at.clone().unwrap_or(Value::Null),
            "seconds_to_expire": ttl.map_or(0, |t| t.as_secs()),
            "status": status,
            "updated_at": processed_at.unwrap_or_else(|| rfc3339(created_at)),
            "user_id": user_object_id(authy_id),
            "uuid": uuid,
        },
        "success": true,
    });
    Json(body).into_response()
}

/// `GET /simulator/users/{authy_id}` (not an Authy path; same API key): what `users/new`
/// recorded for a user enrolled during this run — `{"authy_id", "email",
/// "send_install_link_via_sms" (as sent, `null` when absent), "install_link_sms_sent"}` —
/// or 404 / 60026.
async fn inspect_user(
    State(state): State<Arc<SimulatorState>>,
    authy_id: Result<Path<String>, PathRejection>,
    _request: AuthyRequest,
) -> Response {
    let authy_id = path_text(authy_id);
    let user = authy_id.parse::<u64>().ok().and_then(|id| {
        let users = state.users.lock().ok()?;
        users.get(&id).cloned().map(|u| (id, u))
    });
    match user {
        Some((id, u)) => Json(json!({
            "authy_id": id,
            "email": u.email,
            "send_install_link_via_sms": u.send_install_link_via_sms,
            "install_link_sms_sent": u.install_link_sms_sent,
        }))
        .into_response(),
        None => authy_error(StatusCode::NOT_FOUND, "60026", "User not found."),
    }
}

/// `GET /simulator/approval_requests/{uuid}` (not an Authy path; same API key): what the
/// approval request was created with — `{"message", "details", "hidden_details", "logos",
/// "seconds_to_expire"}` as parsed (form brackets nested) — or 404 / 60049.
async fn inspect_approval_request(
    State(state): State<Arc<SimulatorState>>,
    uuid: Result<Path<String>, PathRejection>,
    _request: AuthyRequest,
) -> Response {
    let uuid = path_text(uuid);
    let sent = ApprovalRequestId::parse(&uuid).ok().and_then(|id| {
        let requests = state.requests.lock().ok()?;
        requests.get(&id).map(|r| r.sent.clone())
    });
    match sent {
        Some(sent) => Json(sent).into_response(),
        None => authy_error(
            StatusCode::NOT_FOUND,
            "60049",
            &format!("Approval request not found: {uuid}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> Value {
        let mut params = Map::new();
        assert!(merge_form(&mut params, s.as_bytes()));
        Value::Object(params)
    }

    #[test]
    fn bracket_nesting_past_racks_limit_is_refused_not_a_stack_overflow() {
        let key = |depth: usize| format!("a{}=1", "[b]".repeat(depth - 1));
        let mut params = Map::new();
        assert!(merge_form(&mut params, key(MAX_PARAM_DEPTH).as_bytes()));
        let mut params = Map::new();
        assert!(!merge_form(&mut params, key(20_000).as_bytes()));
        assert!(params.is_empty());
    }

    #[test]
    fn bracket_keys_nest_as_rack_nests_them() {
        assert_eq!(
            form("user[email]=a%40b.c&user[country_code]=1&details[A+b]=x&logos[][res]=default&logos[][url]=u1&logos[][res]=low&tags[]=1&tags[]=2"),
            json!({
                "user": {"email": "a@b.c", "country_code": "1"},
                "details": {"A b": "x"},
                "logos": [{"res": "default", "url": "u1"}, {"res": "low"}],
                "tags": ["1", "2"],
            })
        );
        // Unclosed or nameless brackets are plain names; a later scalar replaces a nest.
        assert_eq!(
            form("a[b=1&[x]=2&c[d]=3&c=4"),
            json!({"a[b": "1", "[x]": "2", "c": "4"})
        );
    }

    #[test]
    fn a_request_is_final_once_answered_and_zero_ttl_never_expires() {
        let s = Duration::from_secs;
        let approve = Behaviour::Approve;
        assert_eq!(
            status_at(approve, s(1), s(2), Some(s(10))),
            ("pending", None)
        );
        assert_eq!(
            status_at(approve, s(3), s(2), Some(s(10))),
            ("approved", Some(s(2)))
        );
        assert_eq!(
            status_at(approve, s(20), s(2), Some(s(10))),
            ("approved", Some(s(2)))
        );
        assert_eq!(
            status_at(approve, s(10), s(12), Some(s(10))),
            ("expired", Some(s(10)))
        );
        let never = Behaviour::NeverAnswer;
        assert_eq!(status_at(never, s(99_999), s(2), None), ("pending", None));
        assert_eq!(
            status_at(never, s(5), s(2), Some(s(5))),
            ("expired", Some(s(5)))
        );
        assert_eq!(
            status_at(Behaviour::Deny, s(3), s(2), None),
            ("denied", Some(s(2)))
        );
    }

    #[test]
    fn authy_style_uuids_are_not_v4_and_parse_as_approval_request_ids() {
        let id = authy_style_uuid(SystemTime::now());
        assert_eq!(id.get_version_num(), 0);
        assert!(ApprovalRequestId::parse(&id.hyphenated().to_string()).is_ok());
        assert_eq!(
            object_id(0x56ad_1873, 0x1170_706b_7f00_e352),
            "56ad18731170706b7f00e352"
        );
    }
}
