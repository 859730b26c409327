//! `POST /api/Register`: enrols the user's phone with Authy and returns the authy id.
//!
//! Called from the sign-up journey's phone page as a validation technical profile. Authy's
//! `users/new` is idempotent (the same phone gets the same id back), so B2C's one retry after
//! a timeout is harmless here.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{correlation_id, email_claim, required, Claim, ClaimsJson, Deadline, FunctionsState};
use crate::domain::PhoneNumber;
use crate::error::ApiError;

/// The function's name: its folder, its `function.json` route and its URL, `/api/Register`.
pub const NAME: &str = "Register";

/// Input claims.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The user's email; preferred over `signInName`.
    pub email: Claim,
    /// Local accounts' sign-in name (an email address); used when `email` is missing.
    pub sign_in_name: Claim,
    /// International form with country code; spaces, dashes, dots, parentheses allowed.
    pub phone_number: Claim,
    /// B2C's correlation id, for logs.
    pub correlation_id: Claim,
    /// The user's language (`{Culture:RFC5646}`: `es`, `fr-CA`, …; optional, English by
    /// default): the language of `userMessage`.
    pub ui_locale: Claim,
}

/// Output claims.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// The user's Authy id, digits, as a string.
    pub authy_id: String,
}

/// The handler.
///
/// # Errors
/// `MissingClaim` (no email/signInName, no phoneNumber), `InvalidEmail`,
/// `InvalidPhoneNumber`, and the Authy errors (`AuthyRejected`, `AuthyUnavailable`, …).
pub async fn register(
    State(state): State<FunctionsState>,
    Extension(deadline): Extension<Deadline>,
    ClaimsJson(request): ClaimsJson<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    correlation_id(&request.correlation_id);
    let email = email_claim(&request.email, &request.sign_in_name)?
        .ok_or(ApiError::MissingClaim { claim: "email" })?;
    let phone = PhoneNumber::parse(required(&request.phone_number, "phoneNumber")?)?;
    tracing::info!(phone = ?phone, email = ?email, "enrolling user with Authy");
    let authy_id = state
        .authy
        .register_user(&email, &phone, deadline.remaining())
        .await?;
    Ok(Json(RegisterResponse {
        authy_id: authy_id.to_string(),
    }))
}
