//! `POST /api/WaitForAuthyApproval`: waits, inside one bounded budget, for the user to answer
//! the push.
//!
//! B2C abandons a REST call after 10 s and retries it once (MS docs "api-connectors-overview",
//! since April 2025: [`crate::config::B2C_REST_TIMEOUT_SECONDS`]), so this call never blocks
//! for the approval request's whole lifetime: it polls Authy until a final status or until the budget
//! (`APPROVAL_WAIT_SECONDS`, default 7 s) runs out, then answers `ApprovalPending` (409) and
//! B2C's page lets the user select Continue, which calls again with the same
//! `approvalRequestId`.
//!
//! Without `approvalRequestId` the call first creates an approval request (the classic
//! single-call policy). A pending answer then loses that request: the next call sends a new
//! push. Policies should call `CreateApprovalRequest` first and pass its id.
//!
//! If B2C disconnects, the server drops this handler's future, and polling stops with it.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::create_approval_request::send_push;
use super::{
    approval_request, correlation_id, email_claim, required, Claim, ClaimsJson, Deadline,
    FunctionsState,
};
use crate::authy::{ApprovalStatus, AuthyError};
use crate::domain::{ApprovalRequestId, AuthyId};
use crate::error::ApiError;

/// The function's name: its folder, its `function.json` route and its URL, `/api/WaitForAuthyApproval`.
pub const NAME: &str = "WaitForAuthyApproval";

/// Input claims.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WaitForAuthyApprovalRequest {
    /// Required: the user's authy id; the approval request must belong to it.
    pub authy_id: Claim,
    /// The approval request to wait for; absent → create one first.
    pub approval_request_id: Claim,
    /// Shown in the push when one is created here.
    pub email: Claim,
    /// Used when `email` is missing.
    pub sign_in_name: Claim,
    /// B2C's correlation id.
    pub correlation_id: Claim,
}

/// Output claims: only ever sent when the user approved.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WaitForAuthyApprovalResponse {
    /// The approval request that was approved.
    pub approval_request_id: String,
    /// Always `approved`.
    pub approval_status: String,
}

/// The handler.
///
/// # Errors
/// `ApprovalPending` (budget ran out), `ApprovalDenied`, `ApprovalExpired`,
/// `ApprovalRequestNotFound`, `ApprovalRequestMismatch` (the request belongs to another
/// authy id), `MissingClaim`, `InvalidAuthyId`, `InvalidApprovalRequestId`, Authy errors.
pub async fn wait_for_authy_approval(
    State(state): State<FunctionsState>,
    Extension(deadline): Extension<Deadline>,
    ClaimsJson(request): ClaimsJson<WaitForAuthyApprovalRequest>,
) -> Result<Json<WaitForAuthyApprovalResponse>, ApiError> {
    let correlation_id = correlation_id(&request.correlation_id);
    let authy_id = AuthyId::parse(required(&request.authy_id, "authyId")?)?;
    let id = match request.approval_request_id.as_deref() {
        Some(id) => ApprovalRequestId::parse(id)?,
        None => {
            let email = email_claim(&request.email, &request.sign_in_name)
                .ok()
                .flatten();
            let push = approval_request(
                &state.approvals,
                email.as_ref(),
                correlation_id.as_ref(),
                None,
            );
            send_push(&state, &authy_id, push, deadline).await?
        }
    };
    await_approval(&state, &authy_id, &id, deadline).await?;
    tracing::info!(approval_request_id = %id, "approval request approved");
    Ok(Json(WaitForAuthyApprovalResponse {
        approval_request_id: id.to_string(),
        approval_status: ApprovalStatus::Approved.as_str().to_owned(),
    }))
}

/// Allowance for the difference between Authy's clock and ours.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Whether an approval request created at `created_at` may still sign a user in: Authy keeps
/// an approved request approved for ever, so without this an old `approvalRequestId` would
/// pass every later wait. Fresh means created less than its lifetime (plus clock skew) ago;
/// no creation time at all is not fresh (fail closed).
fn is_fresh(created_at: Option<SystemTime>, freshness: Duration) -> bool {
    created_at.is_some_and(|created| {
        SystemTime::now()
            .duration_since(created)
            .map_or(true, |age| age <= freshness)
    })
}

/// Polls the approval request until it is approved (`Ok`), final otherwise (`Err`), or the
/// deadline passes.
///
/// One loop: poll (the poll's own timeout is the time left), then sleep the poll interval — or
/// Authy's `Retry-After`, when longer, after a transient failure of the idempotent status GET —
/// and poll again. When no further poll fits in the budget the call ends: `ApprovalPending`
/// while Authy's last word was "pending" (held until the deadline, so each call waits its whole
/// budget), otherwise the last transient Authy error, at once. A poll that only the end of the
/// budget cut short after Authy had said "pending" is pending as far as anyone knows, not a
/// failure of Authy.
async fn await_approval(
    state: &FunctionsState,
    authy_id: &AuthyId,
    id: &ApprovalRequestId,
    deadline: Deadline,
) -> Result<(), ApiError> {
    let interval = state.approvals.poll_interval;
    let freshness = state.approvals.ttl + CLOCK_SKEW;
    // Authy answered "pending" and no poll has failed since.
    let mut said_pending = false;
    loop {
        let failure = match state
            .authy
            .approval_request_status(id, deadline.remaining())
            .await
        {
            Ok(status) => {
                if status.authy_id.as_ref() != Some(authy_id) {
                    return Err(ApiError::ApprovalRequestMismatch);
                }
                match status.status {
                    ApprovalStatus::Approved if !is_fresh(status.created_at, freshness) => {
                        return Err(ApiError::ApprovalExpired)
                    }
                    ApprovalStatus::Approved => return Ok(()),
                    ApprovalStatus::Denied => return Err(ApiError::ApprovalDenied),
                    ApprovalStatus::Expired => return Err(ApiError::ApprovalExpired),
                    ApprovalStatus::Pending => said_pending = true,
                }
                None
            }
            Err(e @ AuthyError::NotFound { .. }) => {
                return Err(ApiError::ApprovalRequestNotFound {
                    detail: e.to_string(),
                })
            }
            Err(e) if !e.is_transient() => return Err(e.into()),
            Err(e) => Some(e),
        };
        let remaining = deadline.remaining();
        match failure {
            Some(AuthyError::Timeout) if said_pending && remaining.is_zero() => {
                return Err(ApiError::ApprovalPending)
            }
            Some(e) => {
                let pause = interval.max(e.retry_after().unwrap_or_default());
                if pause >= remaining {
                    return Err(e.into());
                }
                said_pending = false;
                tokio::time::sleep(pause).await;
            }
            None if interval >= remaining => {
                tokio::time::sleep(remaining).await;
                return Err(ApiError::ApprovalPending);
            }
            None => tokio::time::sleep(interval).await,
        }
    }
}
