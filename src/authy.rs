//! The Authy client: the three calls of Authy's REST API this product needs.
//!
//! Shapes (Twilio docs "Authy API", "OneTouch API", "Authy Return and Error Codes"):
//! requests are form-encoded, the key travels in the `X-Authy-API-Key` header (never the query
//! string, though Authy accepts `?api_key=`), answers are JSON with `success` (a boolean, or
//! the string `"true"`/`"false"`) and, on failure, a *string* `error_code` (`"60001"` invalid
//! key, `"60003"` too many requests). Authy does not always label its JSON `application/json`,
//! and proxies in front of it answer HTML on 5xx, so the body is parsed whatever the
//! `Content-Type` says and classified by status first.
//!
//! One [`AuthyClient`] is built at startup and shared: it holds one `reqwest::Client`
//! (a connection pool, rustls). Every call takes the time left of the invocation's budget as
//! its timeout, so no Authy call can outlive the B2C call that caused it.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::domain::{ApprovalRequestId, AuthyId, Email, PhoneNumber};

/// Header that carries the Authy application API key (never the query string).
pub const API_KEY_HEADER: &str = "X-Authy-API-Key";

/// Default of `AUTHY_SEND_INSTALL_LINK_VIA_SMS`: Authy texts a new user a link to install the
/// Authy app. Authy's own default for `send_install_link_via_sms` (Twilio docs "Authy Users":
/// true unless turned off in the Twilio Console; npm `authy` README: "defaults to true"), kept
/// because a push needs the app on the phone and the enrolment page tells users the link comes
/// (policies/AuthyExtensions.xml, `phoneNumber`'s help text). docs/configuration.md explains.
/// Here rather than in [`crate::config`], which reads it, so this module needs nothing of it.
pub const DEFAULT_SEND_INSTALL_LINK_VIA_SMS: bool = true;

/// Largest Authy answer read, in bytes; anything larger is a malformed answer.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Most Authy calls in flight at once. Each needs a connection of its own, so without a
/// bound a burst (10,000 held waits polling every second on a busy machine) opens thousands
/// of connections to Authy: file descriptors, ~16 KiB of buffers each, a connection storm.
/// A call beyond it waits for a slot, inside its own timeout.
pub const MAX_IN_FLIGHT: usize = 128;

/// Why an Authy call failed. `Display` never contains the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthyError {
    /// No complete answer within the time left of the budget.
    #[error("no answer within the time left of the budget")]
    Timeout,
    /// DNS, connect, TLS or reset.
    #[error("connection failed: {0}")]
    Connection(String),
    /// HTTP 429 (error 60003, "DoS protection").
    #[error("HTTP {status}{}: {message}", retry_after_text(*retry_after))]
    Throttled {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header, when Authy sent one.
        retry_after: Option<Duration>,
        /// Authy's message, or the start of the body.
        message: String,
    },
    /// HTTP 5xx (JSON or an HTML error page).
    #[error("HTTP {status}: {message}")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header, when sent (503).
        retry_after: Option<Duration>,
        /// Authy's message, or the start of the body.
        message: String,
    },
    /// A 2xx answer that is not the JSON documented for the call.
    #[error("HTTP {status}: unexpected answer: {message}")]
    MalformedResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        message: String,
    },
    /// HTTP 404: unknown authy id or approval request.
    #[error("HTTP 404, error_code {error_code}: {message}")]
    NotFound {
        /// Authy's `error_code`.
        error_code: String,
        /// Authy's `message`.
        message: String,
    },
    /// HTTP 401 (error 60001): the API key is wrong.
    #[error("HTTP 401: invalid API key")]
    InvalidApiKey,
    /// Any other refusal: a 4xx, or `success: false`.
    #[error("HTTP {status}, error_code {error_code}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Authy's `error_code` (a string in Authy's JSON).
        error_code: String,
        /// Authy's `message`.
        message: String,
    },
}

impl AuthyError {
    /// Whether trying the same idempotent call again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connection(_)
                | Self::Throttled { .. }
                | Self::Unavailable { .. }
                | Self::MalformedResponse { .. }
        )
    }

    /// How long Authy asked us to wait (`Retry-After`, seconds or HTTP date).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } | Self::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| format!(", retry after {} s", d.as_secs()))
}

/// The status of an approval request (Authy's `approval_request.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    /// Not answered yet.
    Pending,
    /// The user approved in the Authy app.
    Approved,
    /// The user denied in the Authy app.
    Denied,
    /// `seconds_to_expire` passed without an answer.
    Expired,
}

impl ApprovalStatus {
    /// Authy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// What Authy says about one approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequestStatus {
    /// Its status.
    pub status: ApprovalStatus,
    /// The authy id it was sent to (`_authy_id`), when Authy says; callers must check it.
    pub authy_id: Option<AuthyId>,
    /// When it was created (`created_at`, RFC 3339), when Authy says.
    pub created_at: Option<std::time::SystemTime>,
}

/// The content of a new approval request (the push the user sees).
#[derive(Debug, Clone, Default)]
pub struct NewApprovalRequest {
    /// Title of the push (`message`), e.g. "Sign-in request".
    pub message: String,
    /// Shown to the user under the title (`details[Name]=value`).
    pub details: Vec<(String, String)>,
    /// Kept by Authy, not shown (`hidden_details[Name]=value`): correlation id, IP.
    pub hidden_details: Vec<(String, String)>,
    /// Lifetime of the request at Authy, in seconds (`seconds_to_expire`).
    pub seconds_to_expire: u64,
}

/// Client for Authy's REST API. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct AuthyClient {
    http: reqwest::Client,
    /// [`MAX_IN_FLIGHT`] slots, shared by the clones.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    /// e.g. `https://api.authy.com/`; injected so tests can point it at a mock server.
    base_url: Url,
    /// Sent as `send_install_link_via_sms` on every `users/new` call (see
    /// [`AuthyClient::with_send_install_link_via_sms`]).
    send_install_link_via_sms: bool,
}

impl std::fmt::Debug for AuthyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthyClient")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &"[REDACTED]")
            .field("send_install_link_via_sms", &self.send_install_link_via_sms)
            .finish()
    }
}

impl AuthyClient {
    /// A client for the Authy API at `base_url` (a trailing path is kept: `http://h/x` sends
    /// `http://h/x/protected/...`). The key is kept only as the client's default
    /// `X-Authy-API-Key` header, marked sensitive so it is never printed.
    ///
    /// # Errors
    /// When the TLS stack cannot be initialised, or the key is not a valid header value.
    pub fn new(base_url: Url, api_key: SecretString) -> Result<Self, String> {
        let mut key = HeaderValue::from_str(api_key.expose_secret())
            .map_err(|_| "AUTHY_API_KEY contains characters not allowed in a header".to_owned())?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(API_KEY_HEADER, key);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("b2c-authy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let base_url = if base_url.path().ends_with('/') {
            base_url
        } else {
            let mut u = base_url;
            u.set_path(&format!("{}/", u.path()));
            u
        };
        Ok(Self {
            http,
            base_url,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            send_install_link_via_sms: DEFAULT_SEND_INSTALL_LINK_VIA_SMS,
        })
    }

    /// The same client, telling Authy on every `users/new` call whether to text the user a
    /// link to install the Authy app (`send_install_link_via_sms=true|false`, a top-level
    /// form field as twilio/authy-python `authy/api/resources.py` `Users.create` sends it).
    /// Without this call the client sends
    /// [`DEFAULT_SEND_INSTALL_LINK_VIA_SMS`]:
    /// the field is always sent, so the Twilio Console's setting never decides silently.
    #[must_use]
    pub fn with_send_install_link_via_sms(mut self, send: bool) -> Self {
        self.send_install_link_via_sms = send;
        self
    }

    fn url(&self, path: &str) -> Result<Url, AuthyError> {
        self.base_url
            .join(path)
            .map_err(|e| AuthyError::Connection(format!("bad URL: {e}")))
    }

    /// Enrols a user: `POST /protected/json/users/new` with `user[email]`,
    /// `user[cellphone]`, `user[country_code]` and `send_install_link_via_sms` (`true` or
    /// `false`, see [`AuthyClient::with_send_install_link_via_sms`]). Idempotent at Authy: the same phone gets the
    /// same id back.
    ///
    /// # Errors
    /// Any [`AuthyError`]; `timeout` bounds the whole call.
    pub async fn register_user(
        &self,
        email: &Email,
        phone: &PhoneNumber,
        timeout: Duration,
    ) -> Result<AuthyId, AuthyError> {
        let form = [
            ("user[email]", email.as_str().to_owned()),
            ("user[cellphone]", phone.cellphone().to_owned()),
            ("user[country_code]", phone.country_code()),
            (
                "send_install_link_via_sms",
                self.send_install_link_via_sms.to_string(),
            ),
        ];
        let request = self
            .http
            .post(self.url("protected/json/users/new")?)
            .form(&form);
        let body = self.send(request, timeout).await?;
        let id = body
            .pointer("/user/id")
            .and_then(json_id)
            .ok_or_else(|| malformed("no user.id in the answer"))?;
        AuthyId::parse(&id).map_err(|_| malformed("user.id is not an authy id"))
    }

    /// Sends a push: `POST /onetouch/json/users/{authy_id}/approval_requests`.
    ///
    /// # Errors
    /// Any [`AuthyError`]; `timeout` bounds the whole call. Never retried: a retry could
    /// send the user a second push.
    pub async fn create_approval_request(
        &self,
        authy_id: &AuthyId,
        request: &NewApprovalRequest,
        timeout: Duration,
    ) -> Result<ApprovalRequestId, AuthyError> {
        let mut form = vec![
            ("message".to_owned(), request.message.clone()),
            (
                "seconds_to_expire".to_owned(),
                request.seconds_to_expire.to_string(),
            ),
        ];
        for (name, value) in &request.details {
            form.push((format!("details[{name}]"), value.clone()));
        }
        for (name, value) in &request.hidden_details {
            form.push((format!("hidden_details[{name}]"), value.clone()));
        }
        let path = format!("onetouch/json/users/{authy_id}/approval_requests");
        let body = self
            .send(self.http.post(self.url(&path)?).form(&form), timeout)
            .await?;
        let uuid = body
            .pointer("/approval_request/uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no approval_request.uuid in the answer"))?;
        ApprovalRequestId::parse(uuid).map_err(|_| malformed("approval_request.uuid is not a UUID"))
    }

    /// Reads an approval request: `GET /onetouch/json/approval_requests/{uuid}`.
    /// Idempotent, so callers may retry it.
    ///
    /// # Errors
    /// Any [`AuthyError`]; `timeout` bounds the whole call.
    pub async fn approval_request_status(
        &self,
        id: &ApprovalRequestId,
        timeout: Duration,
    ) -> Result<ApprovalRequestStatus, AuthyError> {
        let path = format!("onetouch/json/approval_requests/{id}");
        let body = self.send(self.http.get(self.url(&path)?), timeout).await?;
        let request = body
            .get("approval_request")
            .ok_or_else(|| malformed("no approval_request in the answer"))?;
        let status = request
            .get("status")
            .and_then(Value::as_str)
            .and_then(ApprovalStatus::parse)
            .ok_or_else(|| malformed("approval_request.status is missing or unknown"))?;
        let authy_id = request
            .get("_authy_id")
            .and_then(json_id)
            .and_then(|id| AuthyId::parse(&id).ok());
        let created_at = request
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
        Ok(ApprovalRequestStatus {
            status,
            authy_id,
            created_at,
        })
    }

    /// Sends `request` within `timeout`, reads at most [`MAX_RESPONSE_BYTES`] and classifies
    /// the answer. `Ok` only for a 2xx JSON object with `"success": true`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, AuthyError> {
        if timeout.is_zero() {
            return Err(AuthyError::Timeout);
        }
        let exchange = async {
            let _slot = self
                .in_flight
                .acquire()
                .await
                .map_err(|_| AuthyError::Connection("client closed".into()))?;
            let mut response = request.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            tracing::Span::current().record("authy_status", status);
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
                if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(AuthyError::MalformedResponse {
                        status,
                        message: "answer larger than 256 KiB".into(),
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, retry_after, bytes))
        };
        let (status, retry_after, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| AuthyError::Timeout)??;
        classify(status, retry_after, &bytes)
    }
}

/// Turns an HTTP answer into the JSON body or an [`AuthyError`].
fn classify(status: u16, retry_after: Option<Duration>, bytes: &[u8]) -> Result<Value, AuthyError> {
    let json: Option<Value> = serde_json::from_slice(bytes).ok().filter(Value::is_object);
    let message = match json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(Value::as_str)
    {
        Some(m) => m.to_owned(),
        None => body_excerpt(bytes),
    };
    let error_code = json
        .as_ref()
        .and_then(|j| j.get("error_code"))
        .and_then(json_id)
        .unwrap_or_else(|| "none".into());
    match status {
        200..=299 => {
            let Some(json) = json else {
                return Err(AuthyError::MalformedResponse {
                    status,
                    message: format!("not a JSON object: {}", body_excerpt(bytes)),
                });
            };
            match json.get("success").and_then(json_bool) {
                Some(true) => Ok(json),
                _ => Err(AuthyError::Rejected {
                    status,
                    error_code,
                    message,
                }),
            }
        }
        401 => Err(AuthyError::InvalidApiKey),
        // Authy's own 404 is its JSON error; anything else (an HTML page, an empty body, JSON
        // without Authy's error fields) means AUTHY_API_URL points somewhere that is not Authy.
        404 if json.as_ref().is_some_and(is_authy_error) => Err(AuthyError::NotFound {
            error_code,
            message,
        }),
        404 => Err(AuthyError::Unavailable {
            status,
            retry_after: None,
            message: format!("not an Authy answer (check AUTHY_API_URL): {message}"),
        }),
        429 => Err(AuthyError::Throttled {
            status,
            retry_after,
            message,
        }),
        500..=599 => Err(AuthyError::Unavailable {
            status,
            retry_after,
            message,
        }),
        _ => Err(AuthyError::Rejected {
            status,
            error_code,
            message,
        }),
    }
}

/// Whether a JSON object is one of Authy's error answers: `success` false, an `error_code`, or
/// an `errors` object. Authy sends all three (authy-ruby `spec/authy/api_spec.rb`, "user doesn't
/// exist": `{"message": "User not found.", "success": false, "errors": {"message": …},
/// "error_code": "60026"}`); twilio/authy-php `tests/Authy/ApiTest.php` records the 404 of an
/// unknown user as `{"errors": {"message": "User not found."}}` alone.
fn is_authy_error(json: &Value) -> bool {
    json.get("success").and_then(json_bool) == Some(false)
        || json.get("error_code").and_then(json_id).is_some()
        || json.get("errors").is_some_and(Value::is_object)
}

fn transport_error(error: reqwest::Error) -> AuthyError {
    if error.is_timeout() {
        return AuthyError::Timeout;
    }
    // reqwest's own message ("error sending request") hides the cause: add the source chain.
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    AuthyError::Connection(message)
}

fn malformed(message: &str) -> AuthyError {
    AuthyError::MalformedResponse {
        status: 200,
        message: message.to_owned(),
    }
}

/// An id Authy writes either as a JSON number or as a string of digits.
fn json_id(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A boolean Authy writes either as JSON `true`/`false` or as the string `"true"`/`"false"`
/// (lholden/authy-rs commit ced3c24 met `"success": "true"`). Nothing else is a boolean:
/// `"1"`, `"yes"`, `"True"`, `1` and `null` are `None`, so they never count as success.
fn json_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The first 120 characters of a body, one line, for `developerMessage`.
fn body_excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    if one_line.trim().is_empty() {
        "(empty body)".into()
    } else {
        one_line.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_may_be_the_string_true_and_nothing_else() {
        assert!(classify(200, None, br#"{"success":"true"}"#).is_ok());
        for not_true in [
            r#"{"success":"false"}"#,
            r#"{"success":"True"}"#,
            r#"{"success":"1"}"#,
            r#"{"success":"yes"}"#,
            r#"{"success":1}"#,
            r#"{"success":null}"#,
            r#"{"success":""}"#,
            r#"{}"#,
        ] {
            assert!(
                matches!(
                    classify(200, None, not_true.as_bytes()),
                    Err(AuthyError::Rejected { .. })
                ),
                "{not_true}"
            );
        }
        assert!(matches!(
            classify(404, None, br#"{"success":"false","error_code":"60026","message":"User not found."}"#),
            Err(AuthyError::NotFound { error_code, .. }) if error_code == "60026"
        ));
    }

    #[test]
    fn classifies_answers() {
        assert!(classify(200, None, br#"{"success":true}"#).is_ok());
        assert!(matches!(
            classify(200, None, br#"{"success":false,"error_code":"60002","message":"Invalid request"}"#),
            Err(AuthyError::Rejected { error_code, .. }) if error_code == "60002"
        ));
        assert!(matches!(
            classify(502, None, b"<html><body>Bad gateway</body></html>"),
            Err(AuthyError::Unavailable { status: 502, message, .. }) if message.starts_with("<html>")
        ));
        assert!(matches!(
            classify(200, None, b"{not json"),
            Err(AuthyError::MalformedResponse { .. })
        ));
        assert_eq!(
            classify(401, None, br#"{"error_code":"60001"}"#),
            Err(AuthyError::InvalidApiKey)
        );
        // A 404 is Authy's when it carries Authy's error fields (authy-php records
        // `{"errors": {...}}` alone); other JSON or HTML means a wrong AUTHY_API_URL.
        assert!(matches!(
            classify(404, None, br#"{"errors":{"message":"User not found."}}"#),
            Err(AuthyError::NotFound { .. })
        ));
        assert!(matches!(
            classify(404, None, br#"{"error_code":"60049","message":"Approval request not found"}"#),
            Err(AuthyError::NotFound { error_code, .. }) if error_code == "60049"
        ));
        for not_authy in [
            &br#"{"status":404,"title":"Not Found"}"#[..],
            b"<html>Not Found</html>",
            b"",
        ] {
            assert!(
                matches!(
                    classify(404, None, not_authy),
                    Err(AuthyError::Unavailable { status: 404, .. })
                ),
                "{}",
                String::from_utf8_lossy(not_authy)
            );
        }
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
