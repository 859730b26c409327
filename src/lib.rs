//! # b2c-authy
//!
//! An Azure Functions **custom handler** that lets Azure AD B2C custom policies use Twilio
//! Authy push approvals as a second factor.
//!
//! Layout, in the order a request travels:
//! - `main.rs` — the `handler` binary: command line, logging, configuration, start.
//! - [`app`] — router, layers (invocation id, deadline, log line, panic guard, body limit),
//!   the server entry [`app::run`] and [`app::Application`].
//! - [`client_cert`] — the layer in front of the functions that validates B2C's client
//!   certificate from `X-ARR-ClientCert`, fail-closed.
//! - [`functions`] — one module per function (`Register`, `CreateApprovalRequest`,
//!   `WaitForAuthyApproval`): request claims, response claims, handler.
//! - [`domain`] — parsed values: [`domain::PhoneNumber`], [`domain::Email`],
//!   [`domain::AuthyId`], [`domain::ApprovalRequestId`], [`domain::CorrelationId`].
//! - [`push_limits`] — per-authy-id push limits, the pause after a denial and one push per
//!   journey, in a store shared by every instance (the app's storage account).
//! - [`authy`] — the Authy REST client.
//! - [`error`] — [`error::ApiError`], the B2C error contract.
//! - [`messages`] — the texts users see (`userMessage`, the push), per language, from the
//!   translators' table `src/messages.toml`.
//! - [`config`] — settings from the environment, validated at startup.
//! - `simulator` — the built-in Authy simulator (demo, `func start`, tests); only with the
//!   `simulator` cargo feature (default), which the Azure package leaves out.
//! - [`policies`] — renders the B2C custom policies in `policies/` per environment (used by
//!   the `render-policies` binary and the policy contract test); not on the request path.
//! - [`policy_check`] — the offline check of rendered policies against the admin's own Base,
//!   Localization and Extensions, by inheritance chain (`render-policies --check-against`, and
//!   the policy contract test); imports nothing of the crate; not on the request path.
//! - [`logging`] — JSON logs, WARN+ to stderr.
//! - `dev` — what `main` needs for `handler demo`, `handler simulator` and
//!   `AUTHY_SIMULATOR=embedded` (the `simulator` feature only); not on the request path.

pub mod app;
pub mod authy;
pub mod client_cert;
pub mod config;
#[cfg(feature = "simulator")]
pub mod dev;
pub mod domain;
pub mod error;
pub mod functions;
pub mod logging;
pub mod messages;
pub mod policies;
pub mod policy_check;
pub mod push_limits;
#[cfg(feature = "simulator")]
pub mod simulator;
