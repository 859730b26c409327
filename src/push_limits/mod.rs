//! Push limits: the defence against push bombing (MFA fatigue).
//!
//! An attacker who has a user's password can start sign-in after sign-in; every journey
//! would send a push until the tired user taps Approve. Before any push is sent,
//! [`PushLimits::begin_push`] checks, for the authy id:
//! - the **burst** limit (default 3 pushes in 10 minutes) and the **daily** limit (default 10
//!   in 24 hours) — [`PushLimitSettings`];
//! - the **pause after a denial** (default 15 minutes), set by [`PushLimits::record_denial`]
//!   when `WaitForAuthyApproval` sees `denied`;
//! - the **journey**: B2C retries a REST call once, and the Functions host kills a handler
//!   with calls in flight; within one approval request's lifetime a journey (B2C's
//!   correlation id) gets its approval request again instead of a second push
//!   ([`PushDecision::Reuse`]), without counting against the limits.
//!
//! The state lives in a [`store::PushStore`]: the Function App's storage account in Azure,
//! so the limits hold across every instance the host scales out to. Each update is a read
//! and a conditional write (`If-Match` / `If-None-Match: *`) retried on conflict, so N
//! parallel requests can never get more than the limit between them.
//!
//! What is stored: per authy id, the times of its recent pushes and the end of a pause; per
//! journey, its approval request id, sign-in code and expiry. Documents are named by an
//! HMAC-SHA256 of the authy id (and correlation id) keyed with a secret of the app (the
//! Authy API key), so the store holds nothing personal and names nothing a reader could
//! link to a user. Times are Unix milliseconds.

pub mod blob;
pub mod sas;
pub mod store;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::domain::{ApprovalRequestId, AuthyId, CorrelationId};
use store::{Condition, Conflict, Etag, PushStore, StoreError};

/// At most `count` pushes within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Pushes allowed in the window (≥ 1).
    pub count: u32,
    /// The sliding window.
    pub window: Duration,
}

/// What to do when the store cannot answer within [`PushLimitSettings::store_timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStoreFailure {
    /// Send the push anyway and log an ERROR line for the call: sign-in keeps working, the
    /// limits are off while the store is down (the default; README "Push bombing").
    Open,
    /// Refuse the push (409 `PushLimitsUnavailable`): nobody can sign in while the store is
    /// down.
    Closed,
}

/// The limits, as configured (`PUSH_LIMIT_*`, [`crate::config`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushLimitSettings {
    /// Default 3 in 600 s.
    pub burst: Limit,
    /// Default 10 in 86,400 s.
    pub daily: Limit,
    /// New pushes for an authy id pause this long after it denied one (default 900 s).
    pub pause_after_denial: Duration,
    /// Budget of all store calls of one check (default 2 s); well inside B2C's 10 s.
    pub store_timeout: Duration,
    /// Default [`OnStoreFailure::Open`].
    pub on_store_failure: OnStoreFailure,
}

impl Default for PushLimitSettings {
    fn default() -> Self {
        Self {
            burst: Limit {
                count: 3,
                window: Duration::from_secs(600),
            },
            daily: Limit {
                count: 10,
                window: Duration::from_secs(86_400),
            },
            pause_after_denial: Duration::from_secs(900),
            store_timeout: Duration::from_secs(2),
            on_store_failure: OnStoreFailure::Open,
        }
    }
}

/// Why no push is sent. Each is its own 409 in the B2C contract ([`crate::error::ApiError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The burst or daily limit is reached; a push is possible again after `retry_after`.
    LimitReached {
        /// Until the oldest push in the full window leaves it (rounded up to seconds).
        retry_after: Duration,
    },
    /// The authy id denied a push recently; pushes resume after `retry_after`.
    Paused {
        /// Until the pause ends (rounded up to seconds).
        retry_after: Duration,
    },
    /// Another call of this journey is sending its push right now (B2C's retry of a call
    /// still in flight): select Continue again in a moment.
    InProgress,
    /// The store is down and [`OnStoreFailure::Closed`] is configured, or parallel
    /// updates kept conflicting for the whole store budget.
    Unavailable,
}

/// A two-digit code, `00`–`99`, drawn from the operating system's CSPRNG; shown in the
/// push's details and on the wait page, for the user to compare. Not a secret and not
/// number matching: Authy's app cannot ask the user to type it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignInCode(String);

impl SignInCode {
    /// Draws a new code.
    pub fn draw() -> Self {
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut byte = [0u8; 1];
            // The OS CSPRNG does not fail on Linux once booted; should it, fall back to a
            // uniformly drawn value from uuid's (also OS-backed) generator.
            let b = match ring::rand::SecureRandom::fill(&rng, &mut byte) {
                Ok(()) => byte[0],
                Err(_) => uuid::Uuid::new_v4().as_bytes()[0],
            };
            // Rejection sampling: 200 is the largest multiple of 100 ≤ 256.
            if b < 200 {
                return Self(format!("{:02}", b % 100));
            }
        }
    }

    /// The two digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Exactly two ASCII digits (a code read back from the store, or the `signInCode` claim);
    /// `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| Self(s.to_owned()))
    }
}

/// What [`PushLimits::record_denial`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenialRecorded {
    /// The pause left.
    pub pause: Duration,
    /// `true`: this denial started the pause; `false`: a pause was on already (the same
    /// denial seen again, or another one during the pause), and it was left as it was.
    pub new: bool,
}

/// What [`PushLimits::begin_push`] decided.
#[derive(Debug)]
pub enum PushDecision {
    /// This journey's approval request is still live: answer it again, send nothing.
    Reuse {
        /// The approval request sent earlier in this journey.
        approval_request_id: ApprovalRequestId,
        /// Its code.
        sign_in_code: SignInCode,
    },
    /// Send a new push with this code, then report [`PushLimits::sent`] or
    /// [`PushLimits::failed`]. Counted against the limits already.
    Send(PushTicket),
}

/// A push that may be sent: counted, and (with a correlation id) this journey's claim on
/// sending it.
#[derive(Debug)]
pub struct PushTicket {
    /// The code to put in the push's details.
    pub sign_in_code: SignInCode,
    /// The journey document and the version our claim wrote.
    journey: Option<(String, Etag)>,
}

/// The limits and their store; one per process, shared by the functions.
#[derive(Debug)]
pub struct PushLimits {
    settings: PushLimitSettings,
    store: PushStore,
    key: hmac::Key,
    /// When the store last answered a call of this process (Unix ms; 0: never): a check
    /// that fails while the store answers others is load, not an outage.
    last_answer_ms: AtomicU64,
}

/// A journey whose claim is older than this is taken over: the call that wrote it died
/// (SIGKILL by the host) — longer than any call lives (B2C's 10 s).
const STALE_CLAIM: Duration = Duration::from_secs(15);

/// Per authy id: push times and the end of a pause; Unix ms.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PushHistory {
    #[serde(default)]
    sent: Vec<u64>,
    #[serde(default, rename = "pausedUntil")]
    paused_until: u64,
}

/// One approval request sent to an authy id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LastPush {
    approval_request_id: String,
    expires_at: u64,
}

/// The approval requests recently sent to an authy id (newest first, at most
/// [`MAX_RECENT_PUSHES`]), each until the pause after a denial has passed since it expired: a
/// document of its own (`last/<hmac>`), so that recording them never contends with the
/// counting of parallel pushes on the history. All of them, not only the last: an attacker's
/// parallel journeys send several pushes at once, and the user may deny any of them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RecentPushes {
    #[serde(default)]
    pushes: Vec<LastPush>,
}

/// Most pushes kept in [`RecentPushes`]: more than the burst limit's default lets through
/// within a pause.
const MAX_RECENT_PUSHES: usize = 10;

impl RecentPushes {
    /// Reads the document; a document of the former single-push shape counts as one push,
    /// one that does not parse as none.
    fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<Self>(body) {
            Ok(recent) if !recent.pushes.is_empty() => recent,
            _ => serde_json::from_slice::<LastPush>(body)
                .map(|last| Self { pushes: vec![last] })
                .unwrap_or_default(),
        }
    }
}

/// Per journey: being sent (claimed at), or sent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
enum JourneyState {
    Sending {
        at: u64,
    },
    #[serde(rename_all = "camelCase")]
    Sent {
        approval_request_id: String,
        code: String,
        expires_at: u64,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds rounded up to whole seconds (what the user is told).
fn ceil_secs(ms: u64) -> Duration {
    Duration::from_secs(ms.div_ceil(1000))
}

/// The outcome of one read-decide-write round.
enum Round<T> {
    Done(T),
    Retry,
}

impl PushLimits {
    /// Limits over `store`; `secret` keys the HMAC that names the documents (the Authy API
    /// key: every instance has the same one; rotating it starts the limits afresh).
    pub fn new(settings: PushLimitSettings, store: PushStore, secret: &[u8]) -> Self {
        Self {
            settings,
            store,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            last_answer_ms: AtomicU64::new(0),
        }
    }

    /// Notes that the store answered (any answer but an error).
    fn answered<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_ok() {
            self.last_answer_ms.fetch_max(now_ms(), Ordering::Relaxed);
        }
        result
    }

    async fn get(&self, key: &str) -> Result<Option<store::Versioned>, StoreError> {
        self.answered(self.store.get(key).await)
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<Result<Etag, Conflict>, StoreError> {
        self.answered(self.store.put(key, body, condition).await)
    }

    async fn delete(&self, key: &str, etag: &Etag) -> Result<(), StoreError> {
        self.answered(self.store.delete(key, etag).await)
    }

    /// Whether the store answered a call of this process within the last two store budgets
    /// (this check's own first answers may be a whole budget old): it is up, and a check that failed or ran out of time meanwhile met load (a burst), not an
    /// outage.
    fn store_answering(&self) -> bool {
        now_ms().saturating_sub(self.last_answer_ms.load(Ordering::Relaxed))
            < ms(self.settings.store_timeout).saturating_mul(2)
    }

    /// The limits over the store `store` selects (see [`PushStore::connect`]): what the
    /// handler builds at startup. `secret` as in [`PushLimits::new`].
    ///
    /// # Errors
    /// The storage account cannot be reached or refuses the credentials (no secret in the
    /// message).
    pub async fn connect(
        settings: PushLimitSettings,
        store: &store::StoreSettings,
        secret: &[u8],
    ) -> Result<Self, StoreError> {
        let store = PushStore::connect(store, settings.store_timeout).await?;
        Ok(Self::new(settings, store, secret))
    }

    /// The settings in force.
    pub fn settings(&self) -> &PushLimitSettings {
        &self.settings
    }

    /// The store, for the startup log line.
    pub fn store(&self) -> &PushStore {
        &self.store
    }

    fn name(&self, kind: &str, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(kind.as_bytes());
        for part in parts {
            ctx.update(b"\0");
            ctx.update(part.as_bytes());
        }
        let tag = ctx.sign();
        let hex: String = tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{kind}/{hex}")
    }

    fn history_key(&self, authy_id: &AuthyId) -> String {
        self.name("pushes", &[authy_id.as_str()])
    }

    fn last_key(&self, authy_id: &AuthyId) -> String {
        self.name("last", &[authy_id.as_str()])
    }

    /// Adds `last` to the authy id's recent pushes, dropping those past their relevance
    /// (expiry + pause) and keeping the newest [`MAX_RECENT_PUSHES`].
    async fn write_last(&self, key: &str, last: &LastPush) -> Result<(), StoreError> {
        let pause = ms(self.settings.pause_after_denial);
        let mut attempt = 0u32;
        loop {
            let (mut recent, condition) = match self.get(key).await? {
                None => (RecentPushes::default(), Condition::Absent),
                Some(doc) => (RecentPushes::parse(&doc.body), Condition::Matches(doc.etag)),
            };
            let now = now_ms();
            recent.pushes.retain(|p| {
                p.expires_at.saturating_add(pause) > now
                    && p.approval_request_id != last.approval_request_id
            });
            recent.pushes.push(last.clone());
            recent
                .pushes
                .sort_by_key(|p| std::cmp::Reverse(p.expires_at));
            recent.pushes.truncate(MAX_RECENT_PUSHES);
            let body = serde_json::to_vec(&recent).map_err(|e| StoreError(e.to_string()))?;
            match self.put(key, body, condition).await? {
                Ok(_) => return Ok(()),
                Err(Conflict) => {
                    attempt += 1;
                    backoff(attempt).await;
                }
            }
        }
    }

    fn journey_key(&self, authy_id: &AuthyId, journey: &CorrelationId) -> String {
        self.name("journeys", &[journey.as_str(), authy_id.as_str()])
    }

    /// Decides whether a push may be sent for `authy_id` in `journey` (B2C's correlation id;
    /// `None`: no idempotency, every call is a new push).
    ///
    /// In order: a pause after a denial refuses; a live approval request of the same
    /// journey is reused (not counted); a claim by another call of the journey younger
    /// than 15 s refuses with [`Refusal::InProgress`]; otherwise the push is counted
    /// against both limits, atomically, and may be sent.
    ///
    /// All store calls share [`PushLimitSettings::store_timeout`]. When the store fails,
    /// [`OnStoreFailure`] decides (an ERROR line either way). When the budget ends while the
    /// store *is* answering but parallel calls for the same authy id keep winning the race,
    /// the push is refused ([`Refusal::Unavailable`], a WARN line) whatever
    /// [`OnStoreFailure`] says: contention is what a push-bombing burst causes, and failing
    /// open on it would switch the limits off for exactly that burst.
    ///
    /// # Errors
    /// [`Refusal`].
    pub async fn begin_push(
        &self,
        authy_id: &AuthyId,
        journey: Option<&CorrelationId>,
    ) -> Result<PushDecision, Refusal> {
        let contended = AtomicBool::new(false);
        let work = self.begin_push_at(authy_id, journey, now_ms, &contended);
        match tokio::time::timeout(self.settings.store_timeout, work).await {
            Ok(Ok(decision)) => decision,
            _ if contended.load(Ordering::Relaxed) => {
                tracing::warn!(
                    store = %self.store.describe(),
                    "push refused: parallel calls for the same authy id kept conflicting within the store budget ({} ms)",
                    self.settings.store_timeout.as_millis()
                );
                Err(Refusal::Unavailable)
            }
            // The store answers other calls: this one met load (an attacker's burst slows the
            // store, or throttles the one blob of the authy id), and failing open here would
            // switch the limits off for exactly that burst.
            _ if self.store_answering() => {
                tracing::warn!(
                    store = %self.store.describe(),
                    "push refused: the store is answering but this check did not complete within the store budget ({} ms)",
                    self.settings.store_timeout.as_millis()
                );
                Err(Refusal::Unavailable)
            }
            Ok(Err(e)) => self.store_failed(&e.to_string()),
            Err(_) => self.store_failed(&format!(
                "no answer within {} ms",
                self.settings.store_timeout.as_millis()
            )),
        }
    }

    fn store_failed(&self, what: &str) -> Result<PushDecision, Refusal> {
        match self.settings.on_store_failure {
            OnStoreFailure::Open => {
                tracing::error!(
                    store = %self.store.describe(),
                    "push limits NOT applied (PUSH_LIMITS_ON_STORE_FAILURE=open): {what}"
                );
                Ok(PushDecision::Send(PushTicket {
                    sign_in_code: SignInCode::draw(),
                    journey: None,
                }))
            }
            OnStoreFailure::Closed => {
                tracing::error!(
                    store = %self.store.describe(),
                    "push refused (PUSH_LIMITS_ON_STORE_FAILURE=closed): {what}"
                );
                Err(Refusal::Unavailable)
            }
        }
    }

    async fn begin_push_at(
        &self,
        authy_id: &AuthyId,
        journey: Option<&CorrelationId>,
        now: fn() -> u64,
        contended: &AtomicBool,
    ) -> Result<Result<PushDecision, Refusal>, StoreError> {
        let history_key = self.history_key(authy_id);
        let Some(journey) = journey else {
            let code = SignInCode::draw();
            return Ok(self
                .count_push(&history_key, now, contended)
                .await?
                .map(|()| {
                    PushDecision::Send(PushTicket {
                        sign_in_code: code,
                        journey: None,
                    })
                }));
        };
        let journey_key = self.journey_key(authy_id, journey);
        let mut attempt = 0u32;
        loop {
            // The pause first: it refuses even this journey's live approval request.
            if let Some(retry_after) = self.paused(&history_key, now()).await? {
                return Ok(Err(Refusal::Paused { retry_after }));
            }
            let current = self.get(&journey_key).await?;
            let condition = match &current {
                None => Condition::Absent,
                Some(doc) => {
                    let at = now();
                    match serde_json::from_slice::<JourneyState>(&doc.body) {
                        Ok(JourneyState::Sent {
                            approval_request_id,
                            code,
                            expires_at,
                        }) if at < expires_at => {
                            if let (Ok(id), Some(code)) = (
                                ApprovalRequestId::parse(&approval_request_id),
                                SignInCode::parse(&code),
                            ) {
                                return Ok(Ok(PushDecision::Reuse {
                                    approval_request_id: id,
                                    sign_in_code: code,
                                }));
                            }
                        }
                        Ok(JourneyState::Sending { at: claimed })
                            if at.saturating_sub(claimed) < ms(STALE_CLAIM) =>
                        {
                            return Ok(Err(Refusal::InProgress));
                        }
                        // Expired, stale, or unreadable: take it over.
                        _ => {}
                    }
                    Condition::Matches(doc.etag.clone())
                }
            };
            let claim = serde_json::to_vec(&JourneyState::Sending { at: now() })
                .map_err(|e| StoreError(e.to_string()))?;
            match self.put(&journey_key, claim, condition).await? {
                Err(Conflict) => {
                    contended.store(true, Ordering::Relaxed);
                    attempt += 1;
                    backoff(attempt).await;
                    continue;
                }
                Ok(etag) => match self.count_push(&history_key, now, contended).await? {
                    Ok(()) => {
                        return Ok(Ok(PushDecision::Send(PushTicket {
                            sign_in_code: SignInCode::draw(),
                            journey: Some((journey_key, etag)),
                        })))
                    }
                    Err(refusal) => {
                        // The refusal stands even if the claim cannot be released: a store
                        // error here must not turn it into a push sent without the limits
                        // (OnStoreFailure::Open). The claim then goes stale in 15 s.
                        if let Err(e) = self.delete(&journey_key, &etag).await {
                            tracing::warn!("journey claim not released after a refusal: {e}");
                        }
                        return Ok(Err(refusal));
                    }
                },
            }
        }
    }

    /// The time left of a pause after a denial, if any.
    async fn paused(&self, history_key: &str, now: u64) -> Result<Option<Duration>, StoreError> {
        let history = match self.get(history_key).await? {
            Some(doc) => read_history(&doc.body),
            None => PushHistory::default(),
        };
        Ok((history.paused_until > now).then(|| ceil_secs(history.paused_until - now)))
    }

    /// Counts one push against both limits, atomically; refuses when either is reached or a
    /// pause is on.
    async fn count_push(
        &self,
        history_key: &str,
        now: fn() -> u64,
        contended: &AtomicBool,
    ) -> Result<Result<(), Refusal>, StoreError> {
        let settings = &self.settings;
        self.update_history(
            history_key,
            |history, at| {
                if history.paused_until > at {
                    return Err(Refusal::Paused {
                        retry_after: ceil_secs(history.paused_until - at),
                    });
                }
                for limit in [settings.burst, settings.daily] {
                    let since = at.saturating_sub(ms(limit.window));
                    let in_window: Vec<u64> = history
                        .sent
                        .iter()
                        .copied()
                        .filter(|t| *t > since)
                        .collect();
                    if in_window.len() >= limit.count as usize {
                        // Free again when enough of the oldest pushes have left the window.
                        let mut sorted = in_window;
                        sorted.sort_unstable();
                        let oldest_that_must_leave = sorted[sorted.len() - limit.count as usize];
                        let free_at = oldest_that_must_leave + ms(limit.window);
                        return Err(Refusal::LimitReached {
                            retry_after: ceil_secs(free_at.saturating_sub(at))
                                .max(Duration::from_secs(1)),
                        });
                    }
                }
                history.sent.push(at);
                Ok(())
            },
            now,
            contended,
        )
        .await
    }

    /// Read, change, write back conditionally; again on conflict until the store budget
    /// (the caller's timeout) ends, setting `contended`. `change` returns `Err` to write
    /// nothing.
    async fn update_history<T>(
        &self,
        history_key: &str,
        change: impl Fn(&mut PushHistory, u64) -> Result<T, Refusal>,
        now: fn() -> u64,
        contended: &AtomicBool,
    ) -> Result<Result<T, Refusal>, StoreError> {
        let keep = ms(self.settings.burst.window.max(self.settings.daily.window));
        let mut attempt = 0u32;
        loop {
            let round = {
                let current = self.get(history_key).await?;
                let at = now();
                let (mut history, condition) = match &current {
                    Some(doc) => (
                        read_history(&doc.body),
                        Condition::Matches(doc.etag.clone()),
                    ),
                    None => (PushHistory::default(), Condition::Absent),
                };
                // Forget what no limit looks at any more: the document stays small.
                history.sent.retain(|t| *t > at.saturating_sub(keep));
                match change(&mut history, at) {
                    Err(refusal) => Round::Done(Err(refusal)),
                    Ok(value) => {
                        let body =
                            serde_json::to_vec(&history).map_err(|e| StoreError(e.to_string()))?;
                        match self.put(history_key, body, condition).await? {
                            Ok(_) => Round::Done(Ok(value)),
                            Err(Conflict) => Round::Retry,
                        }
                    }
                }
            };
            match round {
                Round::Done(result) => return Ok(result),
                Round::Retry => {
                    contended.store(true, Ordering::Relaxed);
                    attempt += 1;
                    backoff(attempt).await;
                }
            }
        }
    }

    /// Records that `approval_request_id` was sent to `authy_id`: among the authy id's recent pushes
    /// ([`Self::recent_pushes`]) and as this journey's request (so a retry reuses it). A store
    /// failure is logged, not returned: the push is out either way.
    pub async fn sent(
        &self,
        authy_id: &AuthyId,
        ticket: PushTicket,
        approval_request_id: &ApprovalRequestId,
        lifetime: Duration,
    ) {
        let expires_at = now_ms().saturating_add(ms(lifetime));
        let last = LastPush {
            approval_request_id: approval_request_id.to_string(),
            expires_at,
        };
        let last_key = self.last_key(authy_id);
        let write = self.write_last(&last_key, &last);
        match tokio::time::timeout(self.settings.store_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(%approval_request_id, "last push not recorded: {e}"),
            Err(_) => {
                tracing::error!(%approval_request_id, "last push not recorded: store timeout")
            }
        }
        let Some((key, etag)) = ticket.journey else {
            return;
        };
        let state = JourneyState::Sent {
            approval_request_id: approval_request_id.to_string(),
            code: ticket.sign_in_code.as_str().to_owned(),
            expires_at,
        };
        let write = async {
            let body = serde_json::to_vec(&state).map_err(|e| StoreError(e.to_string()))?;
            self.put(&key, body, Condition::Matches(etag)).await
        };
        match tokio::time::timeout(self.settings.store_timeout, write).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(Conflict))) => tracing::warn!(
                %approval_request_id,
                "another call of this journey took over its approval request"
            ),
            Ok(Err(e)) => tracing::error!(%approval_request_id, "journey not recorded: {e}"),
            Err(_) => tracing::error!(%approval_request_id, "journey not recorded: store timeout"),
        }
    }

    /// The approval requests recently sent to `authy_id`, newest first, each while it lives
    /// and for [`PushLimitSettings::pause_after_denial`] after (a denial seen later still
    /// pauses; the pause then runs from when it is seen): before a new push the functions
    /// ask Authy whether the user denied any of them, so that a denial pauses pushes even
    /// when nobody waited for the answer (an attacker abandons each journey after its push,
    /// or waits for the denied request to expire). Empty also when the store fails (logged;
    /// the push decision then follows [`OnStoreFailure`]).
    pub async fn recent_pushes(&self, authy_id: &AuthyId) -> Vec<ApprovalRequestId> {
        let key = self.last_key(authy_id);
        let read = self.get(&key);
        let doc = match tokio::time::timeout(self.settings.store_timeout, read).await {
            Ok(Ok(Some(doc))) => doc,
            Ok(Ok(None)) => return Vec::new(),
            Ok(Err(e)) => {
                tracing::warn!("recent pushes not read: {e}");
                return Vec::new();
            }
            Err(_) => {
                tracing::warn!("recent pushes not read: store timeout");
                return Vec::new();
            }
        };
        let now = now_ms();
        let pause = ms(self.settings.pause_after_denial);
        RecentPushes::parse(&doc.body)
            .pushes
            .iter()
            .filter(|p| p.expires_at.saturating_add(pause) > now)
            .filter_map(|p| ApprovalRequestId::parse(&p.approval_request_id).ok())
            .collect()
    }

    /// The newest of [`Self::recent_pushes`].
    pub async fn last_push(&self, authy_id: &AuthyId) -> Option<ApprovalRequestId> {
        self.recent_pushes(authy_id).await.into_iter().next()
    }

    /// The push could not be sent: release this journey's claim, so the next call may try
    /// again at once. The push stays counted (Authy may have sent it before failing).
    pub async fn failed(&self, ticket: PushTicket) {
        let Some((key, etag)) = ticket.journey else {
            return;
        };
        let delete = self.delete(&key, &etag);
        match tokio::time::timeout(self.settings.store_timeout, delete).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("journey claim not released: {e}"),
            Err(_) => tracing::warn!("journey claim not released: store timeout"),
        }
    }

    /// The user denied a push: pauses new pushes for `authy_id` for
    /// [`PushLimitSettings::pause_after_denial`] on every instance, and ends the journey's
    /// approval request so that after the pause the journey sends a new one. A pause already
    /// on is kept as it is, not extended: the same denial is seen again by every
    /// `CreateApprovalRequest` during the pause (it asks Authy about the recent pushes), and
    /// the user's own attempts must not keep pushing the end of their pause away. Returns
    /// the pause left and whether this call started it, or the store error (the caller logs
    /// it: the pause is then lost).
    ///
    /// # Errors
    /// [`StoreError`], including a timeout.
    pub async fn record_denial(
        &self,
        authy_id: &AuthyId,
        journey: Option<&CorrelationId>,
        approval_request_id: &ApprovalRequestId,
    ) -> Result<DenialRecorded, StoreError> {
        let pause = self.settings.pause_after_denial;
        let work = async {
            let key = self.history_key(authy_id);
            let set = self
                .update_history(
                    &key,
                    |history, at| {
                        if history.paused_until > at {
                            return Ok(DenialRecorded {
                                pause: ceil_secs(history.paused_until - at),
                                new: false,
                            });
                        }
                        history.paused_until = at + ms(pause);
                        Ok(DenialRecorded { pause, new: true })
                    },
                    now_ms,
                    &AtomicBool::new(false),
                )
                .await?;
            let Ok(recorded) = set else {
                unreachable!("the change never refuses")
            };
            if let Some(journey) = journey {
                self.end_journey(authy_id, journey, approval_request_id)
                    .await?;
            }
            Ok(recorded)
        };
        tokio::time::timeout(self.settings.store_timeout, work)
            .await
            .unwrap_or_else(|_| Err(StoreError("no answer within the store budget".into())))
    }

    /// The approval request expired: the journey's next `CreateApprovalRequest` sends a new
    /// push (subject to the limits). Store failures are logged: the request then stays
    /// reused until our record of its lifetime ends.
    pub async fn record_expiry(
        &self,
        authy_id: &AuthyId,
        journey: Option<&CorrelationId>,
        approval_request_id: &ApprovalRequestId,
    ) {
        let Some(journey) = journey else { return };
        let work = self.end_journey(authy_id, journey, approval_request_id);
        match tokio::time::timeout(self.settings.store_timeout, work).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("expired approval request not forgotten: {e}"),
            Err(_) => tracing::warn!("expired approval request not forgotten: store timeout"),
        }
    }

    /// Deletes the journey's document if it still names `approval_request_id`.
    async fn end_journey(
        &self,
        authy_id: &AuthyId,
        journey: &CorrelationId,
        approval_request_id: &ApprovalRequestId,
    ) -> Result<(), StoreError> {
        let key = self.journey_key(authy_id, journey);
        if let Some(doc) = self.get(&key).await? {
            if let Ok(JourneyState::Sent {
                approval_request_id: id,
                ..
            }) = serde_json::from_slice(&doc.body)
            {
                if id == approval_request_id.to_string() {
                    self.delete(&key, &doc.etag).await?;
                }
            }
        }
        Ok(())
    }
}

/// A history that does not parse is treated as empty but keeps its place (the next write
/// replaces it): never a panic, never a lock-out by a corrupt document.
fn read_history(body: &[u8]) -> PushHistory {
    serde_json::from_slice(body).unwrap_or_default()
}

/// Pause before the next round after a lost race: 5–25 ms, more with each attempt (up to
/// 200 ms), jittered so that parallel losers do not collide again in step.
async fn backoff(attempt: u32) {
    let base = 5u64.saturating_mul(1 << attempt.min(5)).min(200);
    let jitter = fastrand::u64(0..=base);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::MemoryStore;

    fn limits(settings: PushLimitSettings) -> PushLimits {
        PushLimits::new(
            settings,
            PushStore::Memory(MemoryStore::default()),
            b"secret",
        )
    }

    fn authy_id(s: &str) -> AuthyId {
        AuthyId::parse(s).unwrap()
    }

    fn id(n: u8) -> ApprovalRequestId {
        ApprovalRequestId::parse(&format!("{n:08x}-aaaa-4aaa-8aaa-aaaaaaaaaaaa")).unwrap()
    }

    async fn send(
        limits: &PushLimits,
        who: &AuthyId,
        journey: Option<&CorrelationId>,
    ) -> Result<PushDecision, Refusal> {
        limits.begin_push(who, journey).await
    }

    #[tokio::test]
    async fn burst_limit_then_refusal_with_retry_after() {
        let limits = limits(PushLimitSettings::default());
        let who = authy_id("123");
        for _ in 0..3 {
            assert!(matches!(
                send(&limits, &who, None).await,
                Ok(PushDecision::Send(_))
            ));
        }
        match send(&limits, &who, None).await {
            Err(Refusal::LimitReached { retry_after }) => {
                assert!(
                    retry_after > Duration::from_secs(590)
                        && retry_after <= Duration::from_secs(600)
                );
            }
            other => panic!("{other:?}"),
        }
        // Another user is not affected.
        assert!(matches!(
            send(&limits, &authy_id("124"), None).await,
            Ok(PushDecision::Send(_))
        ));
    }

    #[tokio::test]
    async fn daily_limit_counts_across_bursts() {
        let limits = limits(PushLimitSettings {
            burst: Limit {
                count: 2,
                window: Duration::from_millis(50),
            },
            daily: Limit {
                count: 3,
                window: Duration::from_secs(3600),
            },
            ..Default::default()
        });
        let who = authy_id("7");
        for _ in 0..2 {
            assert!(send(&limits, &who, None).await.is_ok());
        }
        assert!(matches!(
            send(&limits, &who, None).await,
            Err(Refusal::LimitReached { .. })
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(send(&limits, &who, None).await.is_ok());
        assert!(matches!(
            send(&limits, &who, None).await,
            Err(Refusal::LimitReached { .. })
        ));
    }

    #[tokio::test]
    async fn journey_reuses_its_approval_request_without_counting() {
        let limits = limits(PushLimitSettings {
            burst: Limit {
                count: 1,
                window: Duration::from_secs(600),
            },
            ..Default::default()
        });
        let who = authy_id("9");
        let journey = CorrelationId::parse("11111111-2222-3333-4444-555555555555").unwrap();
        let Ok(PushDecision::Send(ticket)) = send(&limits, &who, Some(&journey)).await else {
            panic!()
        };
        let code = ticket.sign_in_code.clone();
        // A retry while the first call is still sending.
        assert!(matches!(
            send(&limits, &who, Some(&journey)).await,
            Err(Refusal::InProgress)
        ));
        limits
            .sent(&who, ticket, &id(1), Duration::from_secs(120))
            .await;
        assert_eq!(limits.last_push(&who).await, Some(id(1)));
        for _ in 0..3 {
            match send(&limits, &who, Some(&journey)).await {
                Ok(PushDecision::Reuse {
                    approval_request_id,
                    sign_in_code,
                }) => {
                    assert_eq!(approval_request_id, id(1));
                    assert_eq!(sign_in_code, code);
                }
                other => panic!("{other:?}"),
            }
        }
        // Expired: the journey may ask again, but the burst limit (1) is spent.
        limits.record_expiry(&who, Some(&journey), &id(1)).await;
        assert!(matches!(
            send(&limits, &who, Some(&journey)).await,
            Err(Refusal::LimitReached { .. })
        ));
        // The refused claim was released: not InProgress.
        assert!(matches!(
            send(&limits, &who, Some(&journey)).await,
            Err(Refusal::LimitReached { .. })
        ));
    }

    /// An attacker who never waits for the push and starts the next journey only after the
    /// denied request expired must still find it: the last push is kept for the pause after
    /// its expiry (before, it was forgotten at expiry and the denial paused nothing).
    #[tokio::test]
    async fn last_push_outlives_its_expiry_by_the_pause() {
        let limits = limits(PushLimitSettings {
            pause_after_denial: Duration::from_millis(300),
            ..Default::default()
        });
        let who = authy_id("15");
        let Ok(PushDecision::Send(ticket)) = send(&limits, &who, None).await else {
            panic!()
        };
        limits
            .sent(&who, ticket, &id(3), Duration::from_millis(20))
            .await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(limits.last_push(&who).await, Some(id(3)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(limits.last_push(&who).await, None);
    }

    /// Parallel journeys send several pushes; the user may deny any of them, not only the
    /// last one recorded, so every recent push is kept for the check (only the last was).
    #[tokio::test]
    async fn every_recent_push_is_kept_not_only_the_last() {
        let limits = limits(PushLimitSettings::default());
        let who = authy_id("16");
        for n in 4..7 {
            let Ok(PushDecision::Send(ticket)) = send(&limits, &who, None).await else {
                panic!()
            };
            limits
                .sent(
                    &who,
                    ticket,
                    &id(n),
                    Duration::from_secs(120 + u64::from(n)),
                )
                .await;
        }
        assert_eq!(limits.recent_pushes(&who).await, vec![id(6), id(5), id(4)]);
        // The former single-push document still reads as one push.
        let key = limits.last_key(&who);
        let old = format!(
            r#"{{"approvalRequestId":"{}","expiresAt":{}}}"#,
            id(7),
            now_ms() + 60_000
        );
        let doc = limits.store.get(&key).await.unwrap().unwrap();
        limits
            .store
            .put(&key, old.into_bytes(), Condition::Matches(doc.etag))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(limits.recent_pushes(&who).await, vec![id(7)]);
    }

    /// The same denial seen again during its pause (every CreateApprovalRequest asks Authy
    /// about the recent pushes) neither extends the pause nor counts as a new denial: before,
    /// each attempt pushed the pause's end away and logged another WARN line.
    #[tokio::test]
    async fn a_denial_seen_again_keeps_the_pause_as_it_was() {
        let limits = limits(PushLimitSettings {
            pause_after_denial: Duration::from_secs(10),
            ..Default::default()
        });
        let who = authy_id("17");
        let first = limits.record_denial(&who, None, &id(8)).await.unwrap();
        assert!(first.new);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = limits.record_denial(&who, None, &id(8)).await.unwrap();
        assert!(!again.new, "{again:?}");
        assert!(again.pause <= Duration::from_secs(9), "{again:?}");
        match send(&limits, &who, None).await {
            Err(Refusal::Paused { retry_after }) => {
                assert!(retry_after <= Duration::from_secs(9), "{retry_after:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn failed_push_releases_the_journey() {
        let limits = limits(PushLimitSettings::default());
        let who = authy_id("10");
        let journey = CorrelationId::parse("j-1").unwrap();
        let Ok(PushDecision::Send(ticket)) = send(&limits, &who, Some(&journey)).await else {
            panic!()
        };
        limits.failed(ticket).await;
        assert!(matches!(
            send(&limits, &who, Some(&journey)).await,
            Ok(PushDecision::Send(_))
        ));
    }

    #[tokio::test]
    async fn denial_pauses_every_journey_and_ends_its_own() {
        let limits = limits(PushLimitSettings {
            pause_after_denial: Duration::from_millis(100),
            ..Default::default()
        });
        let who = authy_id("11");
        let journey = CorrelationId::parse("j-2").unwrap();
        let Ok(PushDecision::Send(ticket)) = send(&limits, &who, Some(&journey)).await else {
            panic!()
        };
        limits
            .sent(&who, ticket, &id(2), Duration::from_secs(120))
            .await;
        let recorded = limits
            .record_denial(&who, Some(&journey), &id(2))
            .await
            .unwrap();
        assert_eq!(
            recorded,
            DenialRecorded {
                pause: Duration::from_millis(100),
                new: true
            }
        );
        assert!(matches!(
            send(&limits, &who, Some(&journey)).await,
            Err(Refusal::Paused { .. })
        ));
        assert!(matches!(
            send(&limits, &who, None).await,
            Err(Refusal::Paused { .. })
        ));
        tokio::time::sleep(Duration::from_millis(150)).await;
        // After the pause the journey gets a new push, not the denied request again.
        assert!(matches!(
            send(&limits, &who, Some(&journey)).await,
            Ok(PushDecision::Send(_))
        ));
    }

    #[tokio::test]
    async fn parallel_requests_never_exceed_the_burst() {
        let limits = std::sync::Arc::new(limits(PushLimitSettings::default()));
        let who = authy_id("12");
        let mut tasks = Vec::new();
        for n in 0..20 {
            let limits = limits.clone();
            let who = who.clone();
            tasks.push(tokio::spawn(async move {
                let journey = CorrelationId::parse(&format!("journey-{n}")).unwrap();
                matches!(
                    limits.begin_push(&who, Some(&journey)).await,
                    Ok(PushDecision::Send(_))
                )
            }));
        }
        let mut sent = 0;
        for task in tasks {
            sent += usize::from(task.await.unwrap());
        }
        assert_eq!(sent, 3);
    }

    /// A burst of parallel calls for one authy id makes every write lose the race; when that
    /// outlasts the store budget the push is refused, not sent without the limits, even with
    /// `OnStoreFailure::Open` (else the attacker's burst would switch the limits off).
    #[tokio::test]
    async fn contention_past_the_budget_refuses_even_when_failing_open() {
        let limits = PushLimits::new(
            PushLimitSettings {
                store_timeout: Duration::from_millis(100),
                on_store_failure: OnStoreFailure::Open,
                ..Default::default()
            },
            PushStore::Faulty(MemoryStore::default(), store::Fault::ConflictingWrites),
            b"secret",
        );
        let journey = CorrelationId::parse("j-contended").unwrap();
        for journey in [None, Some(&journey)] {
            assert!(matches!(
                limits.begin_push(&authy_id("13"), journey).await,
                Err(Refusal::Unavailable)
            ));
        }
    }

    /// A refusal stays a refusal when releasing the journey's claim fails: the store error
    /// must not reach `OnStoreFailure::Open` and send the push after all.
    #[tokio::test]
    async fn a_refusal_survives_a_failed_release_of_the_claim() {
        let limits = PushLimits::new(
            PushLimitSettings {
                burst: Limit {
                    count: 1,
                    window: Duration::from_secs(600),
                },
                on_store_failure: OnStoreFailure::Open,
                ..Default::default()
            },
            PushStore::Faulty(MemoryStore::default(), store::Fault::FailingDeletes),
            b"secret",
        );
        let who = authy_id("14");
        let first = CorrelationId::parse("j-first").unwrap();
        let second = CorrelationId::parse("j-second").unwrap();
        assert!(matches!(
            limits.begin_push(&who, Some(&first)).await,
            Ok(PushDecision::Send(_))
        ));
        assert!(matches!(
            limits.begin_push(&who, Some(&second)).await,
            Err(Refusal::LimitReached { .. })
        ));
    }

    /// A check that runs out of time while the store is answering (here its reads; under a
    /// burst, the other calls) is refused, not sent without the limits: before, 30 parallel
    /// calls through three instances with a burst of 8 sent 9 pushes against a loaded Azurite,
    /// the 9th through `OnStoreFailure::Open`.
    #[tokio::test]
    async fn a_slow_check_while_the_store_answers_refuses_even_when_failing_open() {
        let limits = PushLimits::new(
            PushLimitSettings {
                store_timeout: Duration::from_millis(100),
                on_store_failure: OnStoreFailure::Open,
                ..Default::default()
            },
            PushStore::Faulty(MemoryStore::default(), store::Fault::HangingWrites),
            b"secret",
        );
        let journey = CorrelationId::parse("j-slow").unwrap();
        for journey in [None, Some(&journey)] {
            assert!(matches!(
                limits.begin_push(&authy_id("18"), journey).await,
                Err(Refusal::Unavailable)
            ));
        }
    }

    #[test]
    fn codes_are_two_digits() {
        for _ in 0..200 {
            let code = SignInCode::draw();
            assert!(SignInCode::parse(code.as_str()).is_some(), "{code:?}");
        }
    }

    #[test]
    fn document_names_are_keyed_hashes() {
        let a = limits(PushLimitSettings::default());
        let b = PushLimits::new(
            PushLimitSettings::default(),
            PushStore::Memory(MemoryStore::default()),
            b"other",
        );
        let who = authy_id("123456");
        assert_ne!(a.history_key(&who), b.history_key(&who));
        assert!(!a.history_key(&who).contains("123456"));
        assert_eq!(a.history_key(&who).len(), "pushes/".len() + 32);
    }
}
