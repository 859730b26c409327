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
use backon::{ConstantBuilder, Retryable};
use serde::{Deserialize, Serialize};

use super::create_approval_request::send_push;
use super::{
    approval_request, claim, correlation_id, email_claim, required, ClaimsJson, Deadline,
    FunctionsState,
};
use crate::authy::{ApprovalStatus, AuthyError};
use crate::domain::{ApprovalRequestId, AuthyId};
use crate::error::ApiError;

/// Input claims.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitForAuthyApprovalRequest {
    /// Required: the user's authy id; the approval request must belong to it.
    #[serde(default, deserialize_with = "claim")]
    pub authy_id: Option<String>,
    /// The approval request to wait for; absent → create one first.
    #[serde(default, deserialize_with = "claim")]
    pub approval_request_id: Option<String>,
    /// Shown in the push when one is created here.
    #[serde(default, deserialize_with = "claim")]
    pub email: Option<String>,
    /// Used when `email` is missing.
    #[serde(default, deserialize_with = "claim")]
    pub sign_in_name: Option<String>,
    /// B2C's correlation id.
    #[serde(default, deserialize_with = "claim")]
    pub correlation_id: Option<String>,
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
/// deadline passes (`ApprovalPending`, or the last transient Authy error if the last poll
/// failed). Transient failures of the idempotent status GET are retried every poll interval,
/// or after Authy's `Retry-After` when longer; a `Retry-After` beyond the deadline ends the
/// wait at once.
async fn await_approval(
    state: &FunctionsState,
    authy_id: &AuthyId,
    id: &ApprovalRequestId,
    deadline: Deadline,
) -> Result<(), ApiError> {
    let interval = state.approvals.poll_interval;
    let freshness = state.approvals.ttl + CLOCK_SKEW;
    let mut last_failure: Option<AuthyError> = None;
    let polling = async {
        // Whether a poll of this call has been answered (pending, so far).
        let mut answered = false;
        loop {
            let status = (|| {
                state
                    .authy
                    .approval_request_status(id, deadline.remaining())
            })
            .retry(
                ConstantBuilder::default()
                    .with_delay(interval)
                    .without_max_times(),
            )
            .when(AuthyError::is_transient)
            .adjust(|error, delay| {
                let delay = delay?.max(error.retry_after().unwrap_or_default());
                (delay < deadline.remaining()).then_some(delay)
            })
            .notify(|error, _| last_failure = Some(error.clone()))
            .await
            .map_err(|e| match e {
                AuthyError::NotFound { .. } => ApiError::ApprovalRequestNotFound {
                    detail: e.to_string(),
                },
                // Authy answered "pending" and only the end of our own budget cut the next
                // poll short (on a busy instance a poll can still be queued then): the request
                // is pending as far as anyone knows, not a failure of Authy.
                AuthyError::Timeout
                    if answered && last_failure.is_none() && deadline.remaining().is_zero() =>
                {
                    ApiError::ApprovalPending
                }
                other => other.into(),
            })?;
            last_failure = None;
            answered = true;
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
                ApprovalStatus::Pending => tokio::time::sleep(interval).await,
            }
        }
    };
    // Bound to a variable so the polling future (which borrows `last_failure`) is dropped here.
    let finished = tokio::time::timeout_at(deadline.0, polling).await;
    match finished {
        Ok(outcome) => outcome,
        Err(_elapsed) => Err(last_failure.map_or(ApiError::ApprovalPending, ApiError::from)),
    }
}
