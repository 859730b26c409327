//! `POST /api/CreateApprovalRequest`: sends the push and returns its id at once.
//!
//! B2C keeps the returned `approvalRequestId` as a claim and passes it to every
//! `WaitForAuthyApproval` call, so waiting can span several B2C calls, each well inside
//! B2C's 10 s REST timeout ([`crate::config::B2C_REST_TIMEOUT_SECONDS`]).

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{
    approval_request, correlation_id, email_claim, required, Claim, ClaimsJson, Deadline,
    FunctionsState,
};
use crate::authy::AuthyError;
use crate::domain::{ApprovalRequestId, AuthyId};
use crate::error::ApiError;

/// The function's name: its folder, its `function.json` route and its URL, `/api/CreateApprovalRequest`.
pub const NAME: &str = "CreateApprovalRequest";

/// Input claims.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CreateApprovalRequestRequest {
    /// Required: 1–20 digits.
    pub authy_id: Claim,
    /// Shown to the user in the push details, when it is an email address.
    pub email: Claim,
    /// Used when `email` is missing.
    pub sign_in_name: Claim,
    /// B2C's correlation id: logs and Authy's `hidden_details`.
    pub correlation_id: Claim,
    /// The user's IP address (`{Context:IPAddress}`): Authy's `hidden_details`.
    pub ip_address: Claim,
}

/// Output claims.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateApprovalRequestResponse {
    /// The approval request's uuid.
    pub approval_request_id: String,
}

/// The handler.
///
/// # Errors
/// `MissingClaim`, `InvalidAuthyId`, `AuthyUserNotFound`, and the Authy errors.
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
    let ip_address = request.ip_address.as_deref().and_then(|ip| ip.parse().ok());
    let id = send_push(
        &state,
        &authy_id,
        approval_request(
            &state.approvals,
            email.as_ref(),
            correlation_id.as_ref(),
            ip_address,
        ),
        deadline,
    )
    .await?;
    Ok(Json(CreateApprovalRequestResponse {
        approval_request_id: id.to_string(),
    }))
}

/// Creates the approval request; an unknown authy id is `AuthyUserNotFound`.
pub(super) async fn send_push(
    state: &FunctionsState,
    authy_id: &AuthyId,
    request: crate::authy::NewApprovalRequest,
    deadline: Deadline,
) -> Result<ApprovalRequestId, ApiError> {
    let id = state
        .authy
        .create_approval_request(authy_id, &request, deadline.remaining())
        .await
        .map_err(|e| match e {
            AuthyError::NotFound { .. } => ApiError::AuthyUserNotFound {
                detail: e.to_string(),
            },
            other => other.into(),
        })?;
    tracing::info!(approval_request_id = %id, "approval request sent");
    Ok(id)
}
