//! One module per Azure Function, each with its request type (the claims B2C sends), its
//! response type (the output claims B2C reads) and its handler.
//!
//! Request types follow B2C's REST technical profile with `SendClaimsIn=Body`: a flat JSON
//! object whose field names are the claims' `PartnerClaimType`s. Unknown fields are ignored;
//! every field may be absent, `""` or `null` (B2C sends `DefaultValue=""` claims) and then
//! counts as missing ([`Claim`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::de::value::MapDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::Instrument;

use crate::authy::{AuthyClient, AuthyError, NewApprovalRequest};
use crate::domain::{ApprovalRequestId, AuthyId, CorrelationId, Email};
use crate::error::ApiError;
use crate::messages::{Language, Message};
use crate::push_limits::{PushDecision, PushLimits, PushTicket, SignInCode};

pub mod create_approval_request;
pub mod register;
pub mod wait_for_authy_approval;

/// The function names, as in their folders, `function.json` routes and URLs (`/api/<name>`):
/// each module's `NAME`, in request order.
pub const FUNCTION_NAMES: [&str; 3] = [
    register::NAME,
    create_approval_request::NAME,
    wait_for_authy_approval::NAME,
];

/// Largest request body accepted, in bytes (64 KiB); larger bodies get `PayloadTooLarge`,
/// at once when `Content-Length` says so ([`ClaimsJson`]).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The three functions at `POST /api/<name>`, each with the [`MAX_BODY_BYTES`] limit. The
/// invocation's [`Deadline`] must be in the request's extensions (the app's invocation
/// layer puts it there).
pub fn router(state: FunctionsState) -> Router {
    let path = |name: &str| format!("/api/{name}");
    Router::new()
        .route(&path(register::NAME), post(register::register))
        .route(
            &path(create_approval_request::NAME),
            post(create_approval_request::create_approval_request),
        )
        .route(
            &path(wait_for_authy_approval::NAME),
            post(wait_for_authy_approval::wait_for_authy_approval),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// What the functions share: built once at startup.
#[derive(Clone, Debug)]
pub struct FunctionsState {
    /// The one Authy client (one connection pool).
    pub authy: AuthyClient,
    /// Approval request and polling settings.
    pub approvals: Arc<ApprovalSettings>,
    /// Per-authy-id push limits and one push per journey.
    pub push_limits: Arc<PushLimits>,
}

/// How approval requests are created and awaited.
#[derive(Clone, Debug)]
pub struct ApprovalSettings {
    /// Push title set by the administrator (`AUTHY_APPROVAL_MESSAGE`), sent as given in every
    /// language; `None`: the table's `push_message` in the user's language.
    pub message: Option<String>,
    /// `seconds_to_expire` of each approval request.
    pub ttl: Duration,
    /// Pause between two status polls.
    pub poll_interval: Duration,
}

/// The instant by which the invocation must have answered: arrival + `APPROVAL_WAIT_SECONDS`,
/// less a small margin for writing the answer. Put into the request's extensions by the
/// invocation middleware.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// Time left until the deadline (zero when passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// `axum::Json`, but the body must be a JSON *object* (serde would otherwise build a struct
/// from an array) and every rejection is an [`ApiError`] in the B2C shape.
///
/// The body is read as an object of raw JSON values first, and `T` is built from that
/// object's entries: an unknown field is checked for JSON syntax only, never converted, so
/// whatever it holds (a number beyond `f64` such as `1e400`, nesting deeper than
/// serde_json's recursion limit) it is ignored. A field given twice counts with its last value.
///
/// Once the body is an object, its `uiLocale` claim sets the invocation's language
/// ([`crate::messages::LANGUAGE`]): every error of the call from then on — a claim of the wrong
/// type included — answers its `userMessage` in that language.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimsJson<T>(pub T);

impl<S, T> FromRequest<S> for ClaimsJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Refuse a declared oversize body at once instead of waiting for it to arrive.
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let object =
            match axum::Json::<BTreeMap<String, Box<RawValue>>>::from_request(req, state).await {
                Ok(axum::Json(object)) => object,
                Err(rejection) => {
                    return Err(match rejection.status() {
                        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
                        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                        _ => ApiError::MalformedRequest {
                            detail: rejection.body_text(),
                        },
                    })
                }
            };
        // The language of every answer from here on, even one refusing another claim.
        let ui_locale = object
            .get(UI_LOCALE_CLAIM)
            .and_then(|raw| serde_json::from_str::<Claim>(raw.get()).ok());
        crate::messages::set_current_language(language(
            ui_locale.as_ref().unwrap_or(&Claim::default()),
        ));
        let entries = MapDeserializer::<_, serde_json::Error>::new(
            object.iter().map(|(name, value)| (name.as_str(), &**value)),
        );
        // The error names the claim: the position serde_json reports is within that claim's
        // value, not the body.
        serde_path_to_error::deserialize(entries)
            .map(Self)
            .map_err(|e| ApiError::MalformedRequest {
                detail: format!("claim '{}': {}", e.path(), e.inner()),
            })
    }
}

/// One input claim of a request body: `Some` for a string (trimmed; `""` is missing) or an
/// integer (B2C sends `int`/`long` claims as JSON numbers, kept as their digits), `None` when
/// absent or `null`. A boolean, fraction, array or object is not a claim: deserializing fails,
/// and [`ClaimsJson`] answers `MalformedRequest`. Derefs to the `Option<String>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claim(Option<String>);

impl std::ops::Deref for Claim {
    type Target = Option<String>;

    fn deref(&self) -> &Option<String> {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for Claim {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        claim(deserializer).map(Self)
    }
}

/// Deserializes one claim (see [`Claim`]).
///
/// # Errors
/// For booleans, fractions, arrays and objects.
fn claim<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct ClaimVisitor;
    impl<'de> Visitor<'de> for ClaimVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string claim, an integer or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            Ok((!v.is_empty()).then(|| v.to_owned()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    deserializer.deserialize_option(ClaimVisitor)
}

/// A boolean input claim: B2C sends a `boolean` claim as JSON `true`/`false`; the strings
/// `"true"`/`"false"` (any case) are accepted too. `None` when absent, `null` or `""`;
/// anything else makes [`ClaimsJson`] answer `MalformedRequest`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BoolClaim(pub Option<bool>);

impl<'de> serde::Deserialize<'de> for BoolClaim {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoolVisitor;
        impl<'de> Visitor<'de> for BoolVisitor {
            type Value = Option<bool>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a boolean claim (true or false) or null")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "" => Ok(None),
                    "true" => Ok(Some(true)),
                    "false" => Ok(Some(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
        }
        deserializer.deserialize_option(BoolVisitor).map(Self)
    }
}

/// Longest `applicationName` shown in a push, in characters; longer names are cut.
pub const MAX_APPLICATION_NAME_CHARS: usize = 64;

/// The `applicationName` claim as shown in a push: control characters dropped, at most
/// [`MAX_APPLICATION_NAME_CHARS`] characters; `None` when nothing is left.
fn application_name(raw: &Option<String>) -> Option<String> {
    let name: String = raw
        .as_deref()?
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(MAX_APPLICATION_NAME_CHARS)
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The Unicode bidirectional formatting characters (UAX #9, "Explicit Directional
/// Embeddings/Overrides/Isolates" and the implicit marks): dropped from text shown in a push,
/// where they could make it read as something else (an override reversing the rest).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_name_drops_control_and_bidi_characters_and_is_cut() {
        let shown = |raw: &str| application_name(&Some(raw.to_owned()));
        assert_eq!(
            shown("Contoso\u{202E}lanoisseforp").as_deref(),
            Some("Contosolanoisseforp")
        );
        assert_eq!(
            shown("A\u{2066}B\u{2069}\nC\u{200F}").as_deref(),
            Some("ABC")
        );
        assert_eq!(shown("\u{202E}\u{0007} "), None);
        assert_eq!(
            shown(&"x".repeat(100)).map(|s| s.chars().count()),
            Some(MAX_APPLICATION_NAME_CHARS)
        );
    }
}

/// The input claim every function reads for the user's language (B2C's `{Culture:RFC5646}`).
pub const UI_LOCALE_CLAIM: &str = "uiLocale";

/// The language of a `uiLocale` claim ([`Language::from_ui_locale`]).
pub fn language(ui_locale: &Claim) -> Language {
    Language::from_ui_locale(ui_locale.as_deref())
}

/// A required claim, or [`ApiError::MissingClaim`].
fn required<'a>(value: &'a Option<String>, claim: &'static str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or(ApiError::MissingClaim { claim })
}

/// The user's email: `email` when present, else `signInName` (local accounts carry the
/// address there). `Ok(None)` when both are missing.
fn email_claim(
    email: &Option<String>,
    sign_in_name: &Option<String>,
) -> Result<Option<Email>, ApiError> {
    email
        .as_ref()
        .or(sign_in_name.as_ref())
        .map(|s| Email::parse(s).map_err(ApiError::from))
        .transpose()
}

/// Records B2C's correlation id on the invocation's log span; returns it for Authy's
/// `hidden_details`.
fn correlation_id(raw: &Option<String>) -> Option<CorrelationId> {
    let id = raw.as_deref().and_then(CorrelationId::parse);
    if let Some(id) = &id {
        tracing::Span::current().record("correlation_id", id.as_str());
    }
    id
}

/// What one push shows and carries, besides the title from the settings.
#[derive(Debug, Default)]
struct PushContext<'a> {
    /// The account, shown as `Account`.
    email: Option<&'a Email>,
    /// B2C's correlation id, hidden (for support).
    correlation_id: Option<&'a CorrelationId>,
    /// The IP address B2C saw (`{Context:IPAddress}`), shown as `IP address`.
    ip_address: Option<std::net::IpAddr>,
    /// The application's name, when the policy sends one, shown as `Application`.
    application_name: Option<String>,
    /// The code to compare, shown first as `Sign-in code`.
    sign_in_code: Option<&'a SignInCode>,
    /// The user's language (`uiLocale`): the title (unless set) and the detail names.
    language: Language,
}

/// The push for one sign-in: title from settings (else the table's, in the user's language);
/// visible details the user can judge it by (the code to compare, the account, the IP address
/// B2C saw, the application), named in the user's language; B2C's correlation id hidden for
/// support. Detail names stay within Authy's 20 characters (Twilio docs "OneTouch API: create
/// approval request", `details`), counted as UTF-8 bytes in every language by
/// [`crate::messages::Table::parse`].
fn approval_request(settings: &ApprovalSettings, context: PushContext<'_>) -> NewApprovalRequest {
    let language = context.language;
    let name = |message: Message<'_>| message.text(language);
    let mut request = NewApprovalRequest {
        message: settings
            .message
            .clone()
            .unwrap_or_else(|| name(Message::PushMessage)),
        seconds_to_expire: settings.ttl.as_secs(),
        ..Default::default()
    };
    if let Some(code) = context.sign_in_code {
        request.details.push((
            name(Message::PushDetailSignInCode),
            code.as_str().to_owned(),
        ));
    }
    if let Some(email) = context.email {
        request
            .details
            .push((name(Message::PushDetailAccount), email.as_str().to_owned()));
    }
    if let Some(ip) = context.ip_address {
        request
            .details
            .push((name(Message::PushDetailIpAddress), ip.to_string()));
    }
    if let Some(app) = context.application_name {
        request
            .details
            .push((name(Message::PushDetailApplication), app));
    }
    if let Some(id) = context.correlation_id {
        request
            .hidden_details
            .push(("correlation_id".into(), id.as_str().to_owned()));
    }
    request
}

/// Sends the push for `ticket` (the limits allowed it): records the sent approval request
/// for the journey, or releases the journey's claim when Authy failed.
async fn send_counted_push(
    state: &FunctionsState,
    authy_id: &AuthyId,
    ticket: PushTicket,
    mut context: PushContext<'_>,
    deadline: Deadline,
) -> Result<(ApprovalRequestId, SignInCode), ApiError> {
    let code = ticket.sign_in_code.clone();
    context.sign_in_code = Some(&code);
    let push = approval_request(&state.approvals, context);
    let limits = state.push_limits.clone();
    let owner = authy_id.clone();
    match send_push(state, authy_id, push, deadline).await {
        Ok(id) => {
            let ttl = state.approvals.ttl;
            finish_detached(
                async move { limits.sent(&owner, ticket, &id, ttl).await },
                deadline,
            )
            .await;
            Ok((id, code))
        }
        Err(e) => {
            finish_detached(async move { limits.failed(ticket).await }, deadline).await;
            Err(e)
        }
    }
}

/// Creates the approval request; an unknown authy id is `AuthyUserNotFound`.
async fn send_push(
    state: &FunctionsState,
    authy_id: &AuthyId,
    request: NewApprovalRequest,
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

/// Runs `work` to completion on a task of its own — a store write that must not be lost when
/// the invocation ends first (the invocation layer cuts the handler at its budget; B2C may
/// disconnect) — and waits for it until `deadline`. `None` when the deadline came first (the
/// task goes on) or the task panicked.
pub(super) async fn finish_detached<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
    deadline: Deadline,
) -> Option<T> {
    let task = tokio::spawn(work.instrument(tracing::Span::current()));
    tokio::time::timeout_at(deadline.0, task).await.ok()?.ok()
}

/// Who denied what, for the pause and the WARN line.
pub(super) struct Denial {
    pub authy_id: AuthyId,
    pub journey: Option<CorrelationId>,
    pub approval_request_id: ApprovalRequestId,
    /// The masked email / sign-in name.
    pub user: Option<String>,
    pub ip_address: Option<std::net::IpAddr>,
    /// The function that saw the denial.
    pub seen_by: &'static str,
}

/// Pauses pushes for the authy id and logs the denial at WARN — the line a SOC alerts on
/// (`message` starts with "possible push bombing"; the invocation id and correlation id are
/// on the invocation's span). The pause is written on a task of its own, so that it is
/// recorded even when the invocation's budget ends first; the answer then assumes it will be
/// (`Some(PUSH_PAUSE_AFTER_DENIAL_SECONDS)`). `None` when the store failed (logged at ERROR:
/// the pause is lost).
///
/// A denial found while a pause is on already (the same one, seen again by each
/// `CreateApprovalRequest` during its pause) leaves the pause as it is and is logged at INFO,
/// so that one denial is one WARN line.
pub(super) async fn record_denial(
    state: &FunctionsState,
    denial: Denial,
    deadline: Deadline,
) -> Option<Duration> {
    let limits = state.push_limits.clone();
    let configured = limits.settings().pause_after_denial;
    let pause = finish_detached(
        async move {
            let pause = match limits
                .record_denial(
                    &denial.authy_id,
                    denial.journey.as_ref(),
                    &denial.approval_request_id,
                )
                .await
            {
                Ok(recorded) if !recorded.new => {
                    // This denial (or another) paused pushes already: no second alert line.
                    tracing::info!(
                        approval_request_id = %denial.approval_request_id,
                        pause_seconds = recorded.pause.as_secs(),
                        seen_by = denial.seen_by,
                        "denied approval request seen again: pushes for this authy id are paused already"
                    );
                    return Some(recorded.pause);
                }
                Ok(recorded) => Some(recorded.pause),
                Err(e) => {
                    tracing::error!("push pause after a denial NOT recorded: {e}");
                    None
                }
            };
            tracing::warn!(
                event = "approval_request_denied",
                approval_request_id = %denial.approval_request_id,
                authy_id = %denial.authy_id,
                user = denial.user.as_deref().unwrap_or("unknown"),
                ip_address = %denial.ip_address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                pause_seconds = pause.map_or(0, |p| p.as_secs()),
                seen_by = denial.seen_by,
                "possible push bombing: the user denied an approval request; new pushes for this authy id are paused"
            );
            pause
        },
        deadline,
    )
    .await;
    pause.unwrap_or(Some(configured))
}

/// Longest time for the check of the authy id's recent pushes before a new one (store read and
/// Authy's statuses), in milliseconds; on a timeout or an error the push goes ahead (the limits
/// still hold).
const LAST_PUSH_CHECK_MS: u64 = 1500;

/// Whether the user denied any of the authy id's recent pushes, which nobody may have waited
/// for (an attacker runs journeys in parallel and waits for none of them): then the pause is
/// recorded now (WARN line) and `Some(pause)` returned. Authy is asked about each push at
/// once; errors and timeouts count as "not denied".
async fn last_push_denied(
    state: &FunctionsState,
    authy_id: &AuthyId,
    context: &PushContext<'_>,
    deadline: Deadline,
) -> Option<Option<Duration>> {
    let recent = state.push_limits.recent_pushes(authy_id).await;
    let timeout = deadline
        .remaining()
        .min(Duration::from_millis(LAST_PUSH_CHECK_MS));
    let mut checks = tokio::task::JoinSet::new();
    for id in recent {
        let authy = state.authy.clone();
        checks.spawn(
            async move { (id, authy.approval_request_status(&id, timeout).await) }
                .instrument(tracing::Span::current()),
        );
    }
    let mut denied = None;
    while let Some(done) = checks.join_next().await {
        match done {
            Ok((id, Ok(status))) => {
                if status.status == crate::authy::ApprovalStatus::Denied
                    && status.authy_id.as_ref() == Some(authy_id)
                {
                    denied = Some(id);
                    break;
                }
            }
            Ok((id, Err(e))) => {
                tracing::warn!(approval_request_id = %id, "status of a recent push not known: {e}");
            }
            Err(_) => {}
        }
    }
    let denial = Denial {
        authy_id: authy_id.clone(),
        journey: None,
        approval_request_id: denied?,
        user: context.email.map(Email::masked),
        ip_address: context.ip_address,
        seen_by: create_approval_request::NAME,
    };
    Some(record_denial(state, denial, deadline).await)
}

/// A push for `authy_id` in this journey, within the limits: this journey's live approval
/// request again (`false`: nothing sent), or a new one (`true`). A denial of any of the authy
/// id's recent pushes that nobody waited for is found here first (Authy's status of it) and pauses
/// pushes like any denial.
///
/// # Errors
/// The limits' refusals ([`ApiError::PushLimitReached`], …) and Authy's errors.
async fn push_within_limits(
    state: &FunctionsState,
    authy_id: &AuthyId,
    context: PushContext<'_>,
    deadline: Deadline,
) -> Result<(ApprovalRequestId, SignInCode, bool), ApiError> {
    // The check gets at most LAST_PUSH_CHECK_MS of the budget in all (store read + Authy).
    let check_budget = deadline
        .remaining()
        .min(Duration::from_millis(LAST_PUSH_CHECK_MS));
    let check = last_push_denied(state, authy_id, &context, deadline);
    if let Ok(Some(pause)) = tokio::time::timeout(check_budget, check).await {
        return Err(match pause {
            Some(retry_after) => ApiError::PushesPaused { retry_after },
            None => ApiError::ApprovalDenied { pause: None },
        });
    }
    // begin_push bounds itself by PUSH_LIMITS_STORE_TIMEOUT_MS; the invocation's deadline
    // may come first when the budget is nearly spent.
    let decision = tokio::time::timeout_at(
        deadline.0,
        state
            .push_limits
            .begin_push(authy_id, context.correlation_id),
    )
    .await
    .map_err(|_| ApiError::PushLimitsUnavailable)??;
    match decision {
        PushDecision::Reuse {
            approval_request_id,
            sign_in_code,
        } => {
            tracing::info!(%approval_request_id, "approval request of this journey reused: no push sent");
            Ok((approval_request_id, sign_in_code, false))
        }
        PushDecision::Send(ticket) => {
            let (id, code) = send_counted_push(state, authy_id, ticket, context, deadline).await?;
            Ok((id, code, true))
        }
    }
}
