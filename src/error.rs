//! The one error type of the API, [`ApiError`], whose variants *are* the B2C error contract.
//!
//! Azure AD B2C shows a REST technical profile's error to the user only when the API answers
//! with an HTTP 4xx status and a body of the form
//! `{"version": "1.0.0", "status": 409, "userMessage": "..."}` (MS docs
//! "restful-technical-profile", section "Returning validation error message"). Every failure of
//! every function therefore ends here: each variant fixes its `code`, its HTTP status and its
//! `userMessage`. `userMessage` is a text of the translators' table ([`crate::messages`]) chosen
//! per variant, in the invocation's language, filled with typed values only, so no exception
//! text, URL or key can ever reach a user; details go to `developerMessage`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::authy::AuthyError;
use crate::domain::{InvalidApprovalRequestId, InvalidAuthyId, InvalidEmail, InvalidPhoneNumber};
use crate::messages::{current_language, Language, Message};
use crate::push_limits::{Refusal, SignInCode};

tokio::task_local! {
    /// The invocation id of the request being served (the host's
    /// `X-Azure-Functions-InvocationId`, or a generated one), set by the invocation middleware
    /// so that every error body carries it as `requestId` without threading it through handlers.
    pub static INVOCATION_ID: String;
}

/// Version string B2C expects in the `version` field of an error body.
pub const B2C_ERROR_VERSION: &str = "1.0.0";

/// Every way a call can fail, as B2C will read it.
///
/// Business and validation failures answer HTTP 409 (B2C shows `userMessage` on the page);
/// protocol failures (malformed JSON, wrong content type, body over 64 KiB, wrong method,
/// unknown path) answer their natural 4xx with the same body. Nothing answers 5xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// A required claim is absent, `""` or `null`.
    MissingClaim {
        /// The JSON field name (the claim's `PartnerClaimType`).
        claim: &'static str,
    },
    /// `phoneNumber` is not a valid international number.
    InvalidPhoneNumber {
        /// Why the parser refused it (never shown to the user).
        reason: String,
    },
    /// `email` / `signInName` is not an email address.
    InvalidEmail,
    /// `authyId` is not 1–20 digits without a leading zero.
    InvalidAuthyId,
    /// `approvalRequestId` is not a canonical (8-4-4-4-12, hyphenated) UUID.
    InvalidApprovalRequestId,
    /// The wait budget ran out while the approval request was still pending (or the request
    /// was sent by this very submission: the page shows its code before the user approves).
    ApprovalPending {
        /// The code the push shows, quoted in `userMessage` when known.
        sign_in_code: Option<SignInCode>,
    },
    /// The user denied the push in the Authy app.
    ApprovalDenied {
        /// How long new pushes for this authy id are paused (`None`: the store failed and no
        /// pause could be recorded).
        pause: Option<Duration>,
    },
    /// The approval request outlived its `seconds_to_expire`; the journey's next
    /// `CreateApprovalRequest` sends a new push.
    ApprovalExpired,
    /// The authy id reached its burst or daily push limit; no push was sent.
    PushLimitReached {
        /// When a push is possible again.
        retry_after: Duration,
    },
    /// The authy id denied a push recently: new pushes are paused; no push was sent.
    PushesPaused {
        /// Until the pause ends.
        retry_after: Duration,
    },
    /// Another call of this journey is sending its push right now (B2C's retry of a call
    /// still in flight); no push was sent.
    PushRequestInProgress,
    /// The push-limit store is down and `PUSH_LIMITS_ON_STORE_FAILURE=closed`, or parallel
    /// updates kept conflicting for the whole store budget; no push was sent.
    PushLimitsUnavailable,
    /// Authy does not know this approval request (or this authy id).
    ApprovalRequestNotFound {
        /// Authy's `error_code` and message.
        detail: String,
    },
    /// The approval request belongs to a different authy id than the one in the call.
    ApprovalRequestMismatch,
    /// Authy does not know this authy id (the user was deleted at Authy).
    AuthyUserNotFound {
        /// Authy's `error_code` and message.
        detail: String,
    },
    /// Authy answered 429 (or 503 with `Retry-After`): too many requests.
    AuthyThrottled {
        /// What Authy said.
        detail: String,
    },
    /// Authy could not be reached or answered 5xx, HTML, garbage, or too late.
    AuthyUnavailable {
        /// What went wrong (status, timeout, connection error).
        detail: String,
    },
    /// Authy refused the request (`success: false` with an `error_code`).
    AuthyRejected {
        /// Authy's `error_code` and message.
        detail: String,
    },
    /// Authy refused our API key (HTTP 401, error 60001): a configuration fault.
    AuthyApiKeyRejected,
    /// The body is not JSON of the expected shape (400).
    MalformedRequest {
        /// The parser's message.
        detail: String,
    },
    /// The `Content-Type` is not `application/json` (415).
    UnsupportedMediaType,
    /// The body is larger than 64 KiB, the functions' limit (413).
    PayloadTooLarge,
    /// The path exists but not for this method (405).
    MethodNotAllowed,
    /// The request (its body, typically) did not arrive within the budget (408).
    RequestTimeout,
    /// No function at this path (404).
    NotFound,
    /// A bug: a handler panicked. Caught, logged, answered without a 5xx.
    Internal,
    /// The caller's client certificate is missing or fails a configured check (403).
    ClientCertificateRejected {
        /// The precise reason (never shown to the user).
        reason: String,
    },
}

/// One row of the contract: what B2C reads of a variant.
struct Contract<'a> {
    /// [`ApiError::code`].
    code: &'static str,
    /// [`ApiError::http_status`].
    status: StatusCode,
    /// [`ApiError::user_message_in`]: a text of the translators' table, filled with typed
    /// values only (a [`SignInCode`], a number of minutes).
    user_message: Message<'a>,
    /// Whether the answer goes out before the request body was read (refused on its headers
    /// or path alone), which makes the connection unusable for a next request.
    leaves_body_unread: bool,
}

impl ApiError {
    /// The contract, one row per variant: `code`, HTTP status (409 for everything B2C should
    /// show, the natural 4xx for protocol faults, never 5xx), `userMessage` (fixed, actionable,
    /// free of internals) and whether the body is left unread.
    fn contract(&self) -> Contract<'_> {
        use Message as M;
        use StatusCode as S;
        let (code, status, user_message, leaves_body_unread) = match self {
            Self::MissingClaim { .. } => {
                ("MissingClaim", S::CONFLICT, M::SomethingWentWrong, false)
            }
            Self::InvalidPhoneNumber { .. } => (
                "InvalidPhoneNumber",
                S::CONFLICT,
                M::InvalidPhoneNumber,
                false,
            ),
            Self::InvalidEmail => ("InvalidEmail", S::CONFLICT, M::InvalidEmail, false),
            Self::InvalidAuthyId => ("InvalidAuthyId", S::CONFLICT, M::SomethingWentWrong, false),
            Self::InvalidApprovalRequestId => (
                "InvalidApprovalRequestId",
                S::CONFLICT,
                M::SomethingWentWrong,
                false,
            ),
            Self::ApprovalPending { sign_in_code } => (
                "ApprovalPending",
                S::CONFLICT,
                sign_in_code
                    .as_ref()
                    .map_or(M::ApprovalPending, M::ApprovalPendingWithCode),
                false,
            ),
            Self::ApprovalDenied { pause } => (
                "ApprovalDenied",
                S::CONFLICT,
                pause.map_or(M::ApprovalDenied, M::ApprovalDeniedPaused),
                false,
            ),
            Self::ApprovalExpired => ("ApprovalExpired", S::CONFLICT, M::ApprovalExpired, false),
            Self::PushLimitReached { retry_after } => (
                "PushLimitReached",
                S::CONFLICT,
                M::PushLimitReached(*retry_after),
                false,
            ),
            Self::PushesPaused { retry_after } => (
                "PushesPaused",
                S::CONFLICT,
                M::PushesPaused(*retry_after),
                false,
            ),
            Self::PushRequestInProgress => (
                "PushRequestInProgress",
                S::CONFLICT,
                M::PushRequestInProgress,
                false,
            ),
            Self::PushLimitsUnavailable => (
                "PushLimitsUnavailable",
                S::CONFLICT,
                M::PushLimitsUnavailable,
                false,
            ),
            Self::ApprovalRequestNotFound { .. } => (
                "ApprovalRequestNotFound",
                S::CONFLICT,
                M::RequestNoLongerValid,
                false,
            ),
            Self::ApprovalRequestMismatch => (
                "ApprovalRequestMismatch",
                S::CONFLICT,
                M::RequestNoLongerValid,
                false,
            ),
            Self::AuthyUserNotFound { .. } => (
                "AuthyUserNotFound",
                S::CONFLICT,
                M::AuthyUserNotFound,
                false,
            ),
            Self::AuthyThrottled { .. } => {
                ("AuthyThrottled", S::CONFLICT, M::AuthyThrottled, false)
            }
            Self::AuthyUnavailable { .. } => {
                ("AuthyUnavailable", S::CONFLICT, M::AuthyUnavailable, false)
            }
            Self::AuthyRejected { .. } => ("AuthyRejected", S::CONFLICT, M::AuthyRejected, false),
            Self::AuthyApiKeyRejected => (
                "AuthyApiKeyRejected",
                S::CONFLICT,
                M::SomethingWentWrong,
                false,
            ),
            Self::MalformedRequest { .. } => (
                "MalformedRequest",
                S::BAD_REQUEST,
                M::SomethingWentWrong,
                false,
            ),
            Self::UnsupportedMediaType => (
                "UnsupportedMediaType",
                S::UNSUPPORTED_MEDIA_TYPE,
                M::SomethingWentWrong,
                true,
            ),
            Self::PayloadTooLarge => (
                "PayloadTooLarge",
                S::PAYLOAD_TOO_LARGE,
                M::SomethingWentWrong,
                true,
            ),
            Self::MethodNotAllowed => (
                "MethodNotAllowed",
                S::METHOD_NOT_ALLOWED,
                M::SomethingWentWrong,
                true,
            ),
            Self::RequestTimeout => (
                "RequestTimeout",
                S::REQUEST_TIMEOUT,
                M::SomethingWentWrong,
                true,
            ),
            Self::NotFound => ("NotFound", S::NOT_FOUND, M::SomethingWentWrong, true),
            Self::Internal => ("InternalError", S::CONFLICT, M::SomethingWentWrong, false),
            Self::ClientCertificateRejected { .. } => (
                "ClientCertificateRejected",
                S::FORBIDDEN,
                M::SomethingWentWrong,
                true,
            ),
        };
        Contract {
            code,
            status,
            user_message,
            leaves_body_unread,
        }
    }

    /// The stable, machine-readable `code` of the B2C error body.
    pub fn code(&self) -> &'static str {
        self.contract().code
    }

    /// The HTTP status of the answer: 409 for everything B2C should show, the natural 4xx
    /// for protocol faults. Never 5xx.
    pub fn http_status(&self) -> StatusCode {
        self.contract().status
    }

    /// The text B2C shows the user, in English: [`ApiError::user_message_in`].
    pub fn user_message(&self) -> Cow<'static, str> {
        self.user_message_in(Language::En)
    }

    /// The text B2C shows the user, in `language`: fixed per variant, actionable, free of
    /// internals; the only values ever put into it are typed (a [`SignInCode`], a number of
    /// minutes). `ApprovalPending`'s start with [`crate::messages::PENDING_MARKER`].
    pub fn user_message_in(&self, language: Language) -> Cow<'static, str> {
        self.contract().user_message.text(language).into()
    }

    /// Details for the policy's developer (B2C shows them only in Application Insights
    /// traces / development mode): Authy's `error_code` and message, parser errors.
    pub fn developer_message(&self) -> String {
        match self {
            Self::MissingClaim { claim } => format!("The claim '{claim}' is required."),
            Self::InvalidPhoneNumber { reason } => format!("phoneNumber is not valid: {reason}"),
            Self::InvalidEmail => "email/signInName is not an email address.".into(),
            Self::InvalidAuthyId => "authyId must be 1 to 20 digits without a leading zero.".into(),
            Self::InvalidApprovalRequestId => {
                "approvalRequestId must be a hyphenated UUID (8-4-4-4-12).".into()
            }
            Self::ApprovalPending { .. } => "The approval request is still pending.".into(),
            Self::ApprovalDenied { pause: Some(pause) } => format!(
                "The user denied the approval request; pushes for this authy id pause for {} s.",
                pause.as_secs()
            ),
            Self::ApprovalDenied { pause: None } => {
                "The user denied the approval request; the pause could not be recorded (push-limit store failed; see the handler's logs).".into()
            }
            Self::ApprovalExpired => "The approval request expired.".into(),
            Self::PushLimitReached { retry_after } => format!(
                "The authy id reached PUSH_LIMIT_BURST_COUNT or PUSH_LIMIT_DAILY_COUNT; next push possible in {} s.",
                retry_after.as_secs()
            ),
            Self::PushesPaused { retry_after } => format!(
                "Pushes for this authy id are paused after a denial (PUSH_PAUSE_AFTER_DENIAL_SECONDS) for {} s more.",
                retry_after.as_secs()
            ),
            Self::PushRequestInProgress => {
                "Another call of this journey (same correlationId) is sending its push.".into()
            }
            Self::PushLimitsUnavailable => {
                "The push-limit store failed or stayed contended (PUSH_LIMITS_ON_STORE_FAILURE=closed); see the handler's logs.".into()
            }
            Self::ApprovalRequestNotFound { detail } => {
                format!("Authy does not know this approval request: {detail}")
            }
            Self::ApprovalRequestMismatch => {
                "The approval request belongs to a different authy id.".into()
            }
            Self::AuthyUserNotFound { detail } => {
                format!("Authy does not know this authy id: {detail}")
            }
            Self::AuthyThrottled { detail } => format!("Authy throttled the call: {detail}"),
            Self::AuthyUnavailable { detail } => format!("Authy is unavailable: {detail}"),
            Self::AuthyRejected { detail } => format!("Authy rejected the call: {detail}"),
            Self::AuthyApiKeyRejected => {
                "Authy rejected the API key (60001): check AUTHY_API_KEY.".into()
            }
            Self::MalformedRequest { detail } => format!("The request body is not valid: {detail}"),
            Self::UnsupportedMediaType => "Content-Type must be application/json.".into(),
            Self::PayloadTooLarge => "The request body is larger than 64 KiB.".into(),
            Self::MethodNotAllowed => {
                "This path does not accept this method: the functions take POST, / takes GET."
                    .into()
            }
            Self::RequestTimeout => {
                "The request did not arrive completely within APPROVAL_WAIT_SECONDS.".into()
            }
            Self::NotFound => {
                "No function at this path: the functions answer POST /api/<function name>.".into()
            }
            Self::Internal => "Unexpected internal error; see the handler's logs.".into(),
            Self::ClientCertificateRejected { reason } => {
                format!("Client certificate rejected: {reason}")
            }
        }
    }

    /// The body B2C reads, with `requestId` set to `request_id` and `userMessage` in
    /// `language`.
    pub fn body(&self, request_id: &str, language: Language) -> B2cErrorBody {
        B2cErrorBody {
            version: B2C_ERROR_VERSION,
            status: 409,
            code: self.code(),
            user_message: self.user_message_in(language),
            developer_message: self.developer_message(),
            request_id: request_id.to_owned(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.developer_message())
    }
}

impl std::error::Error for ApiError {}

/// The JSON error body B2C reads: `status` is always 409 whatever the HTTP status (B2C
/// requires it), `userMessage` is shown to the user.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct B2cErrorBody {
    /// Always [`B2C_ERROR_VERSION`].
    pub version: &'static str,
    /// Always 409, as B2C requires.
    pub status: u16,
    /// [`ApiError::code`].
    pub code: &'static str,
    /// [`ApiError::user_message`].
    pub user_message: Cow<'static, str>,
    /// [`ApiError::developer_message`].
    pub developer_message: String,
    /// The invocation id, to find the call in the logs.
    pub request_id: String,
}

/// Marker put in the extensions of every error response, so the invocation log line can
/// name the outcome `code` without parsing the body.
#[derive(Debug, Clone, Copy)]
pub struct OutcomeCode(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = INVOCATION_ID
            .try_with(Clone::clone)
            .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
        let mut response = (
            self.http_status(),
            Json(self.body(&request_id, current_language())),
        )
            .into_response();
        response.extensions_mut().insert(OutcomeCode(self.code()));
        if self.contract().leaves_body_unread {
            // hyper then closes the connection; saying so keeps the caller (the Functions
            // host's connection pool) from sending its next request on a dead connection.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::LimitReached { retry_after } => Self::PushLimitReached { retry_after },
            Refusal::Paused { retry_after } => Self::PushesPaused { retry_after },
            Refusal::InProgress => Self::PushRequestInProgress,
            Refusal::Unavailable => Self::PushLimitsUnavailable,
        }
    }
}

impl From<InvalidPhoneNumber> for ApiError {
    fn from(error: InvalidPhoneNumber) -> Self {
        Self::InvalidPhoneNumber {
            reason: error.reason,
        }
    }
}

impl From<InvalidEmail> for ApiError {
    fn from(_: InvalidEmail) -> Self {
        Self::InvalidEmail
    }
}

impl From<InvalidAuthyId> for ApiError {
    fn from(_: InvalidAuthyId) -> Self {
        Self::InvalidAuthyId
    }
}

impl From<InvalidApprovalRequestId> for ApiError {
    fn from(_: InvalidApprovalRequestId) -> Self {
        Self::InvalidApprovalRequestId
    }
}

impl From<AuthyError> for ApiError {
    fn from(error: AuthyError) -> Self {
        let detail = error.to_string();
        match error {
            AuthyError::Throttled { .. } => Self::AuthyThrottled { detail },
            AuthyError::Timeout
            | AuthyError::Connection(_)
            | AuthyError::Unavailable { .. }
            | AuthyError::MalformedResponse { .. } => Self::AuthyUnavailable { detail },
            // Which resource was not found depends on the call: the status poll and
            // CreateApprovalRequest map it themselves; elsewhere it is a refusal.
            AuthyError::NotFound { .. } => Self::AuthyRejected { detail },
            AuthyError::InvalidApiKey => Self::AuthyApiKeyRejected,
            AuthyError::Rejected { .. } => Self::AuthyRejected { detail },
        }
    }
}
