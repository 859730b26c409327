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
//! single-call policy), within the push limits and once per journey like
//! `CreateApprovalRequest`: a later call of the same journey waits for the same request.
//!
//! **A denial pauses pushes.** When Authy says `denied`, new pushes for the authy id pause
//! for `PUSH_PAUSE_AFTER_DENIAL_SECONDS` on every instance ([`crate::push_limits`]), and a
//! WARN line "possible push bombing" names the invocation, the correlation id, the masked
//! user, the authy id and the IP address B2C saw — a line a SOC can alert on (README
//! "Push bombing"). When Authy says `expired`, the journey's next `CreateApprovalRequest`
//! sends a new push.
//!
//! If B2C disconnects, the server drops this handler's future, and polling stops with it.

use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{
    application_name, correlation_id, email_claim, finish_detached, push_within_limits,
    record_denial, required, BoolClaim, Claim, ClaimsJson, Deadline, Denial, FunctionsState,
    PushContext,
};
use crate::authy::{ApprovalStatus, AuthyError};
use crate::domain::{ApprovalRequestId, AuthyId};
use crate::error::ApiError;
use crate::push_limits::SignInCode;

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
    /// The code `CreateApprovalRequest` returned: quoted in the pending `userMessage`. Ignored
    /// unless two digits.
    pub sign_in_code: Claim,
    /// `CreateApprovalRequest`'s `newApprovalRequest`: `true` → answer `ApprovalPending` at
    /// once, without waiting, so that the page shows the code before the user approves.
    pub new_approval_request: BoolClaim,
    /// Shown in the push when one is created here; masked in the denial's WARN line.
    pub email: Claim,
    /// Used when `email` is missing.
    pub sign_in_name: Claim,
    /// B2C's correlation id: the journey.
    pub correlation_id: Claim,
    /// The user's IP address (`{Context:IPAddress}`): in the denial's WARN line, and in the
    /// push when one is created here.
    pub ip_address: Claim,
    /// Shown in the push when one is created here.
    pub application_name: Claim,
    /// The user's language (`{Culture:RFC5646}`: `es`, `fr-CA`, …; optional, English by
    /// default): the language of `userMessage`, and of the push's title and detail names.
    pub ui_locale: Claim,
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
/// `ApprovalPending` (budget ran out, or the request was sent by this submission),
/// `ApprovalDenied` (pushes now paused), `ApprovalExpired`, `ApprovalRequestNotFound`,
/// `ApprovalRequestMismatch` (the request belongs to another authy id), `MissingClaim`,
/// `InvalidAuthyId`, `InvalidApprovalRequestId`, the limits' refusals when a push is created
/// here, Authy errors.
pub async fn wait_for_authy_approval(
    State(state): State<FunctionsState>,
    Extension(deadline): Extension<Deadline>,
    ClaimsJson(request): ClaimsJson<WaitForAuthyApprovalRequest>,
) -> Result<Json<WaitForAuthyApprovalResponse>, ApiError> {
    let correlation_id = correlation_id(&request.correlation_id);
    let authy_id = AuthyId::parse(required(&request.authy_id, "authyId")?)?;
    let email = email_claim(&request.email, &request.sign_in_name)
        .ok()
        .flatten();
    let ip_address: Option<std::net::IpAddr> =
        request.ip_address.as_deref().and_then(|ip| ip.parse().ok());
    let (id, sign_in_code, just_sent) = match request.approval_request_id.as_deref() {
        Some(id) => (
            ApprovalRequestId::parse(id)?,
            request.sign_in_code.as_deref().and_then(SignInCode::parse),
            request.new_approval_request.0 == Some(true),
        ),
        None => {
            let context = PushContext {
                email: email.as_ref(),
                correlation_id: correlation_id.as_ref(),
                ip_address,
                application_name: application_name(&request.application_name),
                sign_in_code: None,
                language: super::language(&request.ui_locale),
            };
            let (id, code, sent) = push_within_limits(&state, &authy_id, context, deadline).await?;
            // Without a journey the next call could not find this request again: wait now.
            (id, Some(code), sent && correlation_id.is_some())
        }
    };
    if just_sent {
        return Err(ApiError::ApprovalPending { sign_in_code });
    }
    match await_approval(&state, &authy_id, &id, deadline).await {
        Ok(()) => {}
        Err(ApiError::ApprovalPending { .. }) => {
            return Err(ApiError::ApprovalPending { sign_in_code })
        }
        Err(ApiError::ApprovalDenied { .. }) => {
            let who = Denial {
                authy_id: authy_id.clone(),
                journey: correlation_id.clone(),
                approval_request_id: id,
                user: email.as_ref().map(crate::domain::Email::masked),
                ip_address,
                seen_by: NAME,
            };
            return Err(ApiError::ApprovalDenied {
                pause: record_denial(&state, who, deadline).await,
            });
        }
        Err(ApiError::ApprovalExpired) => {
            let limits = state.push_limits.clone();
            let (owner, journey) = (authy_id.clone(), correlation_id.clone());
            let forget = async move { limits.record_expiry(&owner, journey.as_ref(), &id).await };
            finish_detached(forget, deadline).await;
            return Err(ApiError::ApprovalExpired);
        }
        Err(other) => return Err(other),
    }
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
                    ApprovalStatus::Denied => return Err(ApiError::ApprovalDenied { pause: None }),
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
                return Err(ApiError::ApprovalPending { sign_in_code: None })
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
                return Err(ApiError::ApprovalPending { sign_in_code: None });
            }
            None => tokio::time::sleep(interval).await,
        }
    }
}
