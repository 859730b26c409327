//! `POST /api/CreateApprovalRequest`: sends the push — within the push limits — and returns
//! its id and sign-in code at once.
//!
//! B2C keeps the returned `approvalRequestId` as a claim and passes it to every
//! `WaitForAuthyApproval` call, so waiting can span several B2C calls, each well inside
//! B2C's 10 s REST timeout ([`crate::config::B2C_REST_TIMEOUT_SECONDS`]).
//!
//! **One journey, one push.** The call is idempotent per journey (B2C's `correlationId` and
//! the `authyId`): while the journey's approval request lives, a repeated call — B2C's retry
//! after a timeout, a retry after the host killed a call in flight, or the wait page's next
//! Continue — returns the same `approvalRequestId` and `signInCode`, sends nothing and counts
//! nothing (`newApprovalRequest: false`). After that request expired, the next call sends a
//! new push, subject to the limits ([`crate::push_limits`]).

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{
    application_name, correlation_id, email_claim, push_within_limits, required, Claim, ClaimsJson,
    Deadline, FunctionsState, PushContext,
};
use crate::domain::AuthyId;
use crate::error::ApiError;

/// The function's name: its folder, its `function.json` route and its URL, `/api/CreateApprovalRequest`.
pub const NAME: &str = "CreateApprovalRequest";

/// Input claims.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CreateApprovalRequestRequest {
    /// Required: 1–20 digits.
    pub authy_id: Claim,
    /// Shown to the user in the push details (`Account`), when it is an email address.
    pub email: Claim,
    /// Used when `email` is missing.
    pub sign_in_name: Claim,
    /// B2C's correlation id (`{Context:CorrelationId}`): the journey, for one push per
    /// journey; logs; Authy's `hidden_details`. Without it every call sends a new push.
    pub correlation_id: Claim,
    /// The user's IP address (`{Context:IPAddress}`): shown in the push details (`IP address`).
    pub ip_address: Claim,
    /// The application's name, when the policy sends one: shown in the push details
    /// (`Application`), cut to 64 characters.
    pub application_name: Claim,
    /// The user's language (`{Culture:RFC5646}`: `es`, `fr-CA`, …; optional, English by
    /// default): the language of `userMessage`, and of the push's title and detail names.
    pub ui_locale: Claim,
}

/// Output claims.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateApprovalRequestResponse {
    /// The approval request's uuid.
    pub approval_request_id: String,
    /// The two-digit code the push shows (`Sign-in code`), for the wait page.
    pub sign_in_code: String,
    /// `true` when this call sent the push; `false` when it returned this journey's live
    /// approval request again.
    pub new_approval_request: bool,
}

/// The handler.
///
/// # Errors
/// `MissingClaim`, `InvalidAuthyId`, the limits' `PushLimitReached`, `PushesPaused`,
/// `PushRequestInProgress`, `PushLimitsUnavailable`, `AuthyUserNotFound`, and the Authy errors.
pub async fn create_approval_request(
    State(state): State<FunctionsState>,
    Extension(deadline): Extension<Deadline>,
    ClaimsJson(request): ClaimsJson<CreateApprovalRequestRequest>,
) -> Result<Json<CreateApprovalRequestResponse>, ApiError> {
    let correlation_id = correlation_id(&request.correlation_id);
    let authy_id = AuthyId::parse(required(&request.authy_id, "authyId")?)?;
    let email = email_claim(&request.email, &request.sign_in_name)
        .ok()
        .flatten();
    let context = PushContext {
        email: email.as_ref(),
        correlation_id: correlation_id.as_ref(),
        ip_address: request.ip_address.as_deref().and_then(|ip| ip.parse().ok()),
        application_name: application_name(&request.application_name),
        sign_in_code: None,
        language: super::language(&request.ui_locale),
    };
    let (id, code, sent) = push_within_limits(&state, &authy_id, context, deadline).await?;
    Ok(Json(CreateApprovalRequestResponse {
        approval_request_id: id.to_string(),
        sign_in_code: code.as_str().to_owned(),
        new_approval_request: sent,
    }))
}
