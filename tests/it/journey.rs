//! End to end over real HTTP: the handler on port 0 against the built-in Authy simulator.
//!
//! The wait page tests ([`WaitPage`]) run the wait page as B2C would, from the rendered policy:
//! its validation technical profiles in order, their input and output claims by the policy's
//! names, `{Context:CorrelationId}` and `{Context:IPAddress}` resolved per journey.
//!
//! The whole-journey tests ([`run_journey`]) run a journey of the rendered policy step by step:
//! preconditions, pages ([`Page`]: a password page, an email page with its verification display
//! control and its claims transformation validation, pages whose validation technical profiles
//! call the API over HTTP), claims transformation technical profiles, directory reads (with their
//! `CopyClaim`) and writes against an emulated [`Directory`], and a B2C SSO session
//! ([`SsoSession`], emulating `DefaultSSOSessionProvider`) shared by the journeys of one browser.
//!
//! They show one push per session for the same authy id, a push again after the authy id was
//! cleared or changed, and the password reset's push before its new password. Mutations of
//! `policies/AuthyExtensions.xml` seen to fail them: the session precondition's value "True" →
//! "False", a skip on `isActiveAuthyMFASession` alone, the wait page with SM-AuthyMFA as its
//! session management, the new password step moved before the push.
//!
//! With the policy rendered with `AuthyPhoneRecovery=true` they run the lost-phone journey
//! `AuthyPhoneRecovery`: the authy id is replaced only after the email code and a push approved on
//! the new phone; a denied push writes nothing; without the account's mailbox, with the read-only
//! address changed, or with a wrong password nothing is enrolled, pushed or written; an account
//! without an email address (user name only) stops on the email page even with an address of
//! the attacker's in the form. Mutations seen to fail them: the write step moved before the wait
//! page, the address check (`Authy-AssertRecoveryEmailIsDirectoryEmail`) or the existence check
//! (`Authy-AssertAccountHasDirectoryEmail`) removed from the email page. Where MS docs leave
//! B2C's handling of an absent input claim open, the emulation does the worst for us.

use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::json;

use crate::support::fake_authy::{FakeAuthy, APPROVAL_REQUESTS, APPROVAL_REQUEST_STATUS};
use crate::support::{assert_b2c_error, spawn_app};

#[tokio::test]
async fn enrol_push_and_approval_after_two_seconds() {
    let app = spawn_app(Duration::from_secs(2), &[]).await;
    let (authy_id, approval_request_id) = app.enrol_and_push("+1 (425) 555-0100").await;
    assert_eq!(authy_id, "14255550100");

    let started = Instant::now();
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": authy_id, "approvalRequestId": approval_request_id, "correlationId": "c-1"}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"approvalRequestId": approval_request_id, "approvalStatus": "approved"})
    );
    assert!(
        took < Duration::from_secs(3),
        "approved after 2 s must answer within ~3 s, took {took:?}"
    );
}

#[tokio::test]
async fn pending_answers_approval_pending_strictly_inside_the_budget() {
    let app = spawn_app(Duration::from_secs(2), &[("APPROVAL_WAIT_SECONDS", "3")]).await;
    let (authy_id, id) = app.enrol_and_push("+1 425 555 0103").await;
    let started = Instant::now();
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": authy_id, "approvalRequestId": id}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 409);
    let message = assert_b2c_error(&body, "ApprovalPending");
    assert_eq!(
        message,
        "\u{23F3} Approve the request in the Authy app, then select Continue."
    );
    assert!(
        took < Duration::from_secs(3),
        "budget is 3 s, took {took:?}"
    );
    assert!(
        took > Duration::from_millis(2500),
        "gave up early: {took:?}"
    );
}

#[tokio::test]
async fn waiting_resumes_across_calls_with_the_same_approval_request() {
    // B2C's flow: a first call ends pending, the user selects Continue, the second call sees
    // the approval — and no second push is sent.
    let app = spawn_app(
        Duration::from_millis(1500),
        &[("APPROVAL_WAIT_SECONDS", "1")],
    )
    .await;
    let (authy_id, id) = app.enrol_and_push("+1 425 555 0100").await;
    let call = json!({"authyId": authy_id, "approvalRequestId": id});
    let (status, body) = app.call("WaitForAuthyApproval", call.clone()).await;
    assert_eq!(status, 409);
    assert_b2c_error(&body, "ApprovalPending");
    let (status, body) = app.call("WaitForAuthyApproval", call).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approvalRequestId"], id.as_str());
}

#[tokio::test]
async fn denied_and_expired_are_distinct_409s() {
    let app = spawn_app(
        Duration::from_millis(300),
        &[("APPROVAL_WAIT_SECONDS", "3")],
    )
    .await;
    for (phone, code) in [
        ("+1 425 555 0101", "ApprovalDenied"),
        ("+1 425 555 0102", "ApprovalExpired"),
    ] {
        let (authy_id, id) = app.enrol_and_push(phone).await;
        let (status, body) = app
            .call(
                "WaitForAuthyApproval",
                json!({"authyId": authy_id, "approvalRequestId": id}),
            )
            .await;
        assert_eq!(status, 409, "{phone}");
        assert_b2c_error(&body, code);
    }
}

#[tokio::test]
async fn an_approval_request_of_another_authy_id_is_refused() {
    let app = spawn_app(Duration::from_millis(100), &[]).await;
    let (_, id) = app.enrol_and_push("+1 425 555 0100").await;
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": "14255550199", "approvalRequestId": id}),
        )
        .await;
    assert_eq!(status, 409);
    assert_b2c_error(&body, "ApprovalRequestMismatch");
}

#[tokio::test]
async fn an_unknown_approval_request_is_not_found() {
    let app = spawn_app(Duration::from_millis(100), &[]).await;
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": "14255550100", "approvalRequestId": "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_b2c_error(&body, "ApprovalRequestNotFound");
}

#[tokio::test]
async fn without_an_approval_request_id_the_wait_sends_the_push_itself() {
    let app = spawn_app(Duration::from_millis(500), &[]).await;
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": "14255550100", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approvalStatus"], "approved");
    assert!(body["approvalRequestId"]
        .as_str()
        .is_some_and(|s| s.len() == 36));
}

#[tokio::test]
async fn upstream_faults_become_clear_409s_inside_the_budget() {
    let app = spawn_app(
        Duration::from_millis(100),
        &[("APPROVAL_WAIT_SECONDS", "2")],
    )
    .await;
    // Status-poll faults: the poll is retried within the budget, then the last fault answers.
    for (phone, code) in [
        ("+1 425 555 0104", "AuthyUnavailable"), // 500 HTML
        ("+1 425 555 0105", "AuthyThrottled"),   // 429 + Retry-After: 1
        ("+1 425 555 0106", "AuthyUnavailable"), // hangs: timeout
        ("+1 425 555 0107", "AuthyUnavailable"), // 503
        ("+1 425 555 0108", "AuthyUnavailable"), // truncated JSON
    ] {
        let (authy_id, id) = app.enrol_and_push(phone).await;
        let started = Instant::now();
        let (status, body) = app
            .call(
                "WaitForAuthyApproval",
                json!({"authyId": authy_id, "approvalRequestId": id}),
            )
            .await;
        assert_eq!(status, 409, "{phone}: {body}");
        assert_b2c_error(&body, code);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{phone}: {:?}",
            started.elapsed()
        );
    }
    // Faults while sending the push: never retried (a retry could send a second push).
    for (phone, code) in [
        ("+1 425 555 0110", "AuthyUnavailable"),
        ("+1 425 555 0111", "AuthyThrottled"),
        ("+1 425 555 0112", "AuthyUnavailable"),
    ] {
        let (status, body) = app
            .call(
                "Register",
                json!({"email": "bob@example.com", "phoneNumber": phone}),
            )
            .await;
        assert_eq!(status, 200);
        let started = Instant::now();
        let (status, body) = app
            .call("CreateApprovalRequest", json!({"authyId": body["authyId"]}))
            .await;
        assert_eq!(status, 409, "{phone}: {body}");
        assert_b2c_error(&body, code);
        assert!(started.elapsed() < Duration::from_secs(2), "{phone}");
    }
    let (status, body) = app
        .call(
            "Register",
            json!({"email": "bob@example.com", "phoneNumber": "+1 425 555 0113"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_b2c_error(&body, "AuthyRejected");
}

/// Calls a function the way a B2C REST technical profile does: the client gives up after
/// B2C's 10 s and tries once more, two tries in all (`B2C_REST_TIMEOUT_SECONDS`,
/// `B2C_REST_TRIES`; MS docs "api-connectors-overview", since April 2025). Returns the answer
/// and how many tries timed out.
async fn b2c_call(
    app: &crate::support::TestApp,
    function: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value, u32) {
    let mut timed_out = 0;
    for _ in 0..b2c_authy::config::B2C_REST_TRIES {
        let sent = app
            .client
            .post(format!("{}/api/{function}", app.base))
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                timed_out += 1;
                continue;
            }
            Err(e) => panic!("{function}: {e}"),
        };
        let status = response.status().as_u16();
        match response.json().await {
            Ok(json) => return (status, json, timed_out),
            Err(e) if e.is_timeout() => timed_out += 1,
            Err(e) => panic!("{function}: {e}"),
        }
    }
    panic!("{function}: B2C would have shown its timeout error: both tries took over 10 s");
}

/// Starts a simulator served through a [`FakeAuthy`] (to count the approval requests it
/// created, i.e. pushes sent), and a handler against it.
async fn spawn_app_counting_pushes(
    approve_after: Duration,
) -> (crate::support::TestApp, FakeAuthy) {
    spawn_app_counting_pushes_with(approve_after, &[]).await
}

/// [`spawn_app_counting_pushes`] with `settings` added to the handler's environment.
async fn spawn_app_counting_pushes_with(
    approve_after: Duration,
    settings: &[(&str, &str)],
) -> (crate::support::TestApp, FakeAuthy) {
    let simulator = b2c_authy::simulator::router(b2c_authy::simulator::SimulatorConfig {
        approve_after,
        api_key: Some(crate::support::TEST_API_KEY.into()),
        ..Default::default()
    });
    let authy = FakeAuthy::serve(simulator).await;
    (
        crate::support::spawn_app_against(&authy.url, settings).await,
        authy,
    )
}

/// Pushes `authy` received so far (`POST` on Authy's approval-requests route).
fn pushes(authy: &FakeAuthy) -> usize {
    authy.count(Method::POST, APPROVAL_REQUESTS)
}

#[tokio::test]
async fn a_b2c_client_never_times_out_and_never_causes_a_second_push() {
    // Default budget (7 s), B2C's client (10 s, one retry): every Authy behaviour of the
    // simulator, hangs included, gets its answer on the first try, for all three functions.
    let (app, authy) = spawn_app_counting_pushes(Duration::from_secs(1)).await;
    let mut journeys = tokio::task::JoinSet::new();
    for suffix in [
        "0100", "0101", "0102", "0103", "0104", "0105", "0106", "0107", "0108", "0110", "0111",
        "0112", "0113",
    ] {
        let app = app.clone();
        journeys.spawn(async move {
            let phone = format!("+1 425 555 {suffix}");
            let (status, body, timeouts) = b2c_call(
                &app,
                "Register",
                &json!({"email": "dave@example.com", "phoneNumber": phone}),
            )
            .await;
            assert_eq!(timeouts, 0, "{phone}: Register timed out at B2C");
            if status != 200 {
                assert_eq!(status, 409, "{phone}: {body}");
                return;
            }
            let authy_id = body["authyId"].as_str().unwrap().to_owned();
            let (status, body, timeouts) =
                b2c_call(&app, "CreateApprovalRequest", &json!({"authyId": authy_id})).await;
            assert_eq!(
                timeouts, 0,
                "{phone}: CreateApprovalRequest timed out at B2C"
            );
            if status != 200 {
                assert_eq!(status, 409, "{phone}: {body}");
                return;
            }
            let id = body["approvalRequestId"].as_str().unwrap().to_owned();
            let (status, body, timeouts) = b2c_call(
                &app,
                "WaitForAuthyApproval",
                &json!({"authyId": authy_id, "approvalRequestId": id}),
            )
            .await;
            assert_eq!(
                timeouts, 0,
                "{phone}: WaitForAuthyApproval timed out at B2C"
            );
            assert!(status == 200 || status == 409, "{phone}: {status}: {body}");
        });
    }
    while let Some(result) = journeys.join_next().await {
        result.expect("no journey failed");
    }
    // One push per CreateApprovalRequest that reached Authy: Register refused 0113, so twelve.
    assert_eq!(pushes(&authy), 12);

    // B2C abandons a WaitForAuthyApproval (here after 1 s, as if the network had stalled) and
    // retries it with the same claims: the retry resumes the same approval request and sends
    // no second push.
    let before = pushes(&authy);
    let (authy_id, id) = app.enrol_and_push("+1 425 555 0103").await;
    assert_eq!(pushes(&authy), before + 1);
    let claims = json!({"authyId": authy_id, "approvalRequestId": id});
    let abandoned = app
        .client
        .post(format!("{}/api/WaitForAuthyApproval", app.base))
        .timeout(Duration::from_secs(1))
        .json(&claims)
        .send()
        .await;
    assert!(
        abandoned.is_err_and(|e| e.is_timeout()),
        "the first try was abandoned"
    );
    let (status, body, timeouts) = b2c_call(&app, "WaitForAuthyApproval", &claims).await;
    assert_eq!(timeouts, 0);
    assert_eq!(status, 409, "{body}");
    assert_b2c_error(&body, "ApprovalPending");
    assert_eq!(
        pushes(&authy),
        before + 1,
        "a retried WaitForAuthyApproval sent a second push"
    );
}

#[tokio::test]
async fn paths_match_in_any_casing_and_keep_the_query_string() {
    let app = spawn_app(Duration::from_millis(100), &[]).await;
    let response = app
        .client
        .post(format!("{}/API/register?code=abc", app.base))
        .json(&json!({"signInName": "carol@example.com", "phoneNumber": "+44 20 7946 0958"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["authyId"], "442079460958");
    // The Functions host's routes also match with a trailing slash: so does the handler.
    let response = app
        .client
        .post(format!("{}/api/Register/?code=abc", app.base))
        .json(&json!({"signInName": "carol@example.com", "phoneNumber": "+44 20 7946 0958"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for not_a_function in ["/api/Register//", "/api/Registe/", "/api//Register"] {
        let response = app
            .client
            .post(format!("{}{not_a_function}", app.base))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{not_a_function}");
    }
}

#[tokio::test]
async fn readiness_probe_answers_name_and_version_only() {
    let app = spawn_app(Duration::from_millis(100), &[]).await;
    let response = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["name"], "b2c-authy");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(!body.to_string().contains(crate::support::TEST_API_KEY));
    assert!(!body.to_string().contains("127.0.0.1"));
}

#[tokio::test]
async fn the_invocation_id_is_echoed_as_request_id() {
    let app = spawn_app(Duration::from_millis(100), &[]).await;
    let response = app
        .client
        .post(format!("{}/api/Register", app.base))
        .header("X-Azure-Functions-InvocationId", "inv-123")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_b2c_error(&body, "MissingClaim");
    assert_eq!(body["requestId"], "inv-123");

    // The host appends its own invocation id to a caller's: the last value is the host's,
    // whether it arrives on a line of its own or, as .NET's HttpClient sends it, after a comma.
    for lines in [
        &["from-the-caller", "from-the-host"][..],
        &["from-the-caller, from-the-host"],
        &["a,b,c, from-the-host"],
    ] {
        let mut request = app.client.post(format!("{}/api/Register", app.base));
        for line in lines {
            request = request.header("X-Azure-Functions-InvocationId", *line);
        }
        let response = request.json(&json!({})).send().await.unwrap();
        assert_eq!(
            response.headers()["x-azure-functions-invocationid"],
            "from-the-host",
            "{lines:?}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["requestId"], "from-the-host", "{lines:?}");
    }
}

#[tokio::test]
async fn polling_stops_when_the_caller_disconnects() {
    // Through the simulator the polls are not observable, so count them on a fake Authy that
    // always answers pending.
    let authy = FakeAuthy::serve(axum::Router::new().route(
        APPROVAL_REQUEST_STATUS,
        axum::routing::get(|| async {
            axum::Json(json!({"approval_request": {"status": "pending", "_authy_id": 123}, "success": true}))
        }),
    ))
    .await;
    let polls = || authy.count(Method::GET, APPROVAL_REQUEST_STATUS);
    let app =
        crate::support::spawn_app_against(&authy.url, &[("APPROVAL_WAIT_SECONDS", "5")]).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(600))
        .build()
        .unwrap();
    let result = impatient
        .post(format!("{}/api/WaitForAuthyApproval", app.base))
        .header("X-ARR-ClientCert", &app.client_cert)
        .json(
            &json!({"authyId": "123", "approvalRequestId": "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38"}),
        )
        .send()
        .await;
    assert!(result.is_err(), "the client gave up first");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after_disconnect = polls();
    assert!(after_disconnect >= 2, "it was polling: {after_disconnect}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        polls(),
        after_disconnect,
        "polling went on after the disconnect"
    );
}

// ---------------------------------------------------------------------------------------------
// The wait page as B2C runs it, from the rendered policy

/// One REST validation technical profile of the wait page, read from the rendered policy.
#[derive(Debug)]
struct RestValidation {
    /// Its id, for messages.
    id: String,
    /// The function its `ServiceUrl` names.
    function: String,
    /// Its input claims: (JSON name, claim type, the value B2C always uses instead of the claim's).
    inputs: Vec<(String, String, Option<String>)>,
    /// Its output claims: (JSON name, claim type).
    outputs: Vec<(String, String)>,
    /// The claims its input claims transformations set first: (claim type, value)
    /// (`CreateStringClaim`, as `ResetApprovalStatus` sets `approvalStatus` to "pending").
    resets: Vec<(String, String)>,
}

/// A validation technical profile of the wait page.
#[derive(Debug)]
enum Validation {
    /// A call of the API.
    Rest(RestValidation),
    /// `Authy-AssertApproved`: the page passes only with `approvalStatus` exactly "approved".
    AssertApproved,
}

/// The wait page of `SignUpOrSignInWithAuthy` as the rendered sample policy defines it: its
/// validation technical profiles in order. Each Continue runs them as B2C does (MS docs
/// "validation-technical-profile"): in order, each one's output claims available to the next,
/// the first 4xx stopping the page and showing its `userMessage`.
#[derive(Debug)]
struct WaitPage {
    validations: Vec<Validation>,
}

/// What one Continue shows.
#[derive(Debug)]
enum Shown {
    /// The page was left: the journey goes on.
    Passed,
    /// A 409 of `function`: its `code` and the `userMessage` the page shows.
    Message {
        function: String,
        code: String,
        user_message: String,
    },
}

impl WaitPage {
    fn from_policy() -> Self {
        Self::from_files(
            &crate::policy_contract::sample(),
            "SelfAsserted-AuthyWaitForApproval",
        )
    }

    /// Self-asserted page `page_id` of the rendered policies `files`: its validation technical
    /// profiles (a wait page, or the phone page with its `Register`).
    fn from_files(files: &[crate::policy_contract::PolicyText], page_id: &str) -> Self {
        use b2c_authy::policy_check::{descendants, is_rest, merged, metadata};
        let docs = crate::policy_contract::parse(files);
        let page = merged(&docs, page_id);
        let ids: Vec<String> = page
            .iter()
            .flat_map(|d| descendants(*d, "ValidationTechnicalProfile"))
            .filter_map(|v| v.attribute("ReferenceId"))
            .map(str::to_owned)
            .collect();
        let transformation = |id: &str| {
            docs.iter()
                .flat_map(|(_, d)| descendants(d.root(), "ClaimsTransformation"))
                .find(|t| t.attribute("Id") == Some(id))
        };
        let validations = ids
            .iter()
            .map(|id| {
                let definitions = merged(&docs, id);
                if !definitions.iter().any(|d| is_rest(*d)) {
                    assert_eq!(id, "Authy-AssertApproved", "an unknown validation");
                    return Validation::AssertApproved;
                }
                let meta: std::collections::BTreeMap<_, _> =
                    definitions.iter().flat_map(|d| metadata(*d)).collect();
                let url = meta["ServiceUrl"].split('?').next().unwrap().to_owned();
                let claims = |element: &'static str| {
                    definitions
                        .iter()
                        .flat_map(move |d| descendants(*d, element))
                        .map(|c| {
                            let claim = c.attribute("ClaimTypeReferenceId").unwrap().to_owned();
                            let name = c.attribute("PartnerClaimType").unwrap_or(&claim).to_owned();
                            let fixed = (c.attribute("AlwaysUseDefaultValue") == Some("true"))
                                .then(|| c.attribute("DefaultValue").unwrap().to_owned());
                            (name, claim, fixed)
                        })
                        .collect::<Vec<_>>()
                };
                let resets = definitions
                    .iter()
                    .flat_map(|d| descendants(*d, "InputClaimsTransformation"))
                    .filter_map(|r| transformation(r.attribute("ReferenceId").unwrap()))
                    .map(|t| {
                        assert_eq!(
                            t.attribute("TransformationMethod"),
                            Some("CreateStringClaim")
                        );
                        let claim = descendants(t, "OutputClaim").next().unwrap();
                        let value = descendants(t, "InputParameter").next().unwrap();
                        (
                            claim.attribute("ClaimTypeReferenceId").unwrap().to_owned(),
                            value.attribute("Value").unwrap().to_owned(),
                        )
                    })
                    .collect();
                Validation::Rest(RestValidation {
                    id: id.clone(),
                    function: url.rsplit('/').next().unwrap().to_owned(),
                    inputs: claims("InputClaim"),
                    outputs: claims("OutputClaim")
                        .into_iter()
                        .map(|(name, claim, _)| (name, claim))
                        .collect(),
                    resets,
                })
            })
            .collect();
        Self { validations }
    }

    /// The functions the page calls, in order.
    fn functions(&self) -> Vec<&str> {
        self.validations
            .iter()
            .filter_map(|v| match v {
                Validation::Rest(rest) => Some(rest.function.as_str()),
                Validation::AssertApproved => None,
            })
            .collect()
    }

    /// One Continue of the journey whose claims are `claims` (claim type → JSON value), with
    /// B2C's correlation id and the user's IP address for the `{Context:...}` claim resolvers.
    async fn select_continue(
        &self,
        app: &crate::support::TestApp,
        journey: &Journey,
        claims: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Shown {
        for validation in &self.validations {
            let rest = match validation {
                Validation::AssertApproved => {
                    if claims.get("approvalStatus") == Some(&json!("approved")) {
                        continue;
                    }
                    panic!("the wait answered 200 without approvalStatus approved: {claims:?}");
                }
                Validation::Rest(rest) => rest,
            };
            for (claim, value) in &rest.resets {
                claims.insert(claim.clone(), json!(value));
            }
            let mut body = serde_json::Map::new();
            for (name, claim, fixed) in &rest.inputs {
                let value = match fixed.as_deref() {
                    Some("{Context:CorrelationId}") => Some(json!(journey.correlation_id)),
                    Some("{Context:IPAddress}") => Some(json!(journey.ip_address)),
                    Some("{Culture:RFC5646}") => Some(json!(journey.culture)),
                    Some(other) if other.starts_with('{') => {
                        panic!("{}: claim resolver {other} is not played here", rest.id)
                    }
                    Some(other) => Some(json!(other)),
                    None => claims.get(claim).cloned(),
                };
                if let Some(value) = value {
                    body.insert(name.clone(), value);
                }
            }
            let (status, answer, timeouts) = b2c_call(app, &rest.function, &body.into()).await;
            assert_eq!(timeouts, 0, "{}: B2C timed out", rest.id);
            if status != 200 {
                assert_eq!(status, 409, "{}: {answer}", rest.id);
                let user_message = assert_b2c_error(&answer, answer["code"].as_str().unwrap());
                return Shown::Message {
                    function: rest.function.clone(),
                    code: answer["code"].as_str().unwrap().to_owned(),
                    user_message,
                };
            }
            for (name, claim) in &rest.outputs {
                if let Some(value) = answer.get(name) {
                    claims.insert(claim.clone(), value.clone());
                }
            }
        }
        Shown::Passed
    }
}

/// One sign-in journey: what B2C's claim resolvers give.
struct Journey {
    correlation_id: String,
    ip_address: &'static str,
    /// What `{Culture:RFC5646}` gives: the page's language (B2C's pick among the policy's
    /// SupportedLanguages, from `ui_locales` or the browser's).
    culture: &'static str,
}

impl Journey {
    fn new() -> Self {
        Self {
            correlation_id: uuid::Uuid::new_v4().to_string(),
            ip_address: "203.0.113.7",
            culture: "en-US",
        }
    }

    /// A journey whose pages are in `culture`.
    fn in_culture(culture: &'static str) -> Self {
        Self {
            culture,
            ..Self::new()
        }
    }
}

/// Registers `phone` as the phone page would: the journey's claims with the authy id.
async fn enrolled(
    app: &crate::support::TestApp,
    phone: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let (status, body) = app
        .call(
            "Register",
            json!({"email": "erin@example.com", "phoneNumber": phone}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut claims = serde_json::Map::new();
    claims.insert("email".into(), json!("erin@example.com"));
    claims.insert("extension_authyId".into(), body["authyId"].clone());
    claims
}

/// Asserts that `shown` is the `code` 409 of `function`; returns its message.
fn message(shown: Shown, function: &str, code: &str) -> String {
    match shown {
        Shown::Message {
            function: f,
            code: c,
            user_message,
        } if f == function && c == code => user_message,
        other => panic!("expected {function} {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn the_wait_page_asks_for_the_push_then_waits_with_its_code() {
    let page = WaitPage::from_policy();
    assert_eq!(
        page.functions(),
        ["CreateApprovalRequest", "WaitForAuthyApproval"]
    );
    let (app, authy) = spawn_app_counting_pushes_with(
        Duration::from_millis(1500),
        &[("APPROVAL_WAIT_SECONDS", "3")],
    )
    .await;
    let journey = Journey::new();
    let mut claims = enrolled(&app, "+1 425 555 0100").await;

    // First Continue: the push goes out, and the page shows its code at once.
    let started = Instant::now();
    let shown = page.select_continue(&app, &journey, &mut claims).await;
    let pending = message(shown, "WaitForAuthyApproval", "ApprovalPending");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(pushes(&authy), 1);
    let code = claims["signInCode"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 2, "{code}");
    assert_eq!(
        pending,
        format!("\u{23F3} Approve the request in the Authy app only if it shows code {code}, then select Continue.")
    );
    assert_eq!(claims["newApprovalRequest"], json!(true));
    let first_request = claims["approvalRequestId"].clone();

    // Next Continue: the same approval request, no new push; it waits until approved.
    let shown = page.select_continue(&app, &journey, &mut claims).await;
    assert!(matches!(shown, Shown::Passed), "{shown:?}");
    assert_eq!(pushes(&authy), 1, "a Continue sent a second push");
    assert_eq!(claims["approvalRequestId"], first_request);
    assert_eq!(claims["signInCode"], json!(code));
    assert_eq!(claims["newApprovalRequest"], json!(false));
    assert_eq!(claims["approvalStatus"], json!("approved"));
}

#[tokio::test]
async fn the_wait_page_shows_the_apis_messages_in_the_page_language() {
    use b2c_authy::error::ApiError;
    use b2c_authy::messages::Language;
    use b2c_authy::push_limits::SignInCode;
    let page = WaitPage::from_policy();
    let (app, _authy) = spawn_app_counting_pushes_with(
        Duration::from_millis(1500),
        &[("APPROVAL_WAIT_SECONDS", "1")],
    )
    .await;
    // The page's culture as {Culture:RFC5646} gives it, region and all.
    for (culture, language) in [
        ("en-US", Language::En),
        ("es-ES", Language::Es),
        ("fr-CA", Language::Fr),
        ("de-DE", Language::De),
        ("ja-JP", Language::Ja),
        ("it-IT", Language::En),
    ] {
        let journey = Journey::in_culture(culture);
        let mut claims = enrolled(&app, "+1 425 555 0100").await;
        let shown = page.select_continue(&app, &journey, &mut claims).await;
        let pending = message(shown, "WaitForAuthyApproval", "ApprovalPending");
        let code = SignInCode::parse(claims["signInCode"].as_str().unwrap());
        let expected = ApiError::ApprovalPending { sign_in_code: code }
            .user_message_in(language)
            .into_owned();
        assert_eq!(pending, expected, "{culture}");
    }
}

#[tokio::test]
async fn after_an_expired_request_continue_sends_a_new_push() {
    let page = WaitPage::from_policy();
    let (app, authy) = spawn_app_counting_pushes_with(
        Duration::from_millis(300),
        &[("APPROVAL_WAIT_SECONDS", "2")],
    )
    .await;
    let journey = Journey::new();
    let mut claims = enrolled(&app, "+1 425 555 0102").await; // expires after the delay

    let shown = page.select_continue(&app, &journey, &mut claims).await;
    message(shown, "WaitForAuthyApproval", "ApprovalPending");
    let first_request = claims["approvalRequestId"].clone();
    let shown = page.select_continue(&app, &journey, &mut claims).await;
    let expired = message(shown, "WaitForAuthyApproval", "ApprovalExpired");
    assert!(expired.contains("Select Continue"), "{expired}");
    assert_eq!(pushes(&authy), 1);

    // The user selects Continue: a new push, a new request, its code shown at once.
    let shown = page.select_continue(&app, &journey, &mut claims).await;
    let pending = message(shown, "WaitForAuthyApproval", "ApprovalPending");
    assert_eq!(pushes(&authy), 2);
    assert_ne!(claims["approvalRequestId"], first_request);
    assert_eq!(claims["newApprovalRequest"], json!(true));
    assert!(
        pending.contains(&format!(
            "shows code {},",
            claims["signInCode"].as_str().unwrap()
        )),
        "{pending}"
    );
}

#[tokio::test]
async fn after_a_denial_the_page_shows_the_pause_and_sends_nothing() {
    let page = WaitPage::from_policy();
    let (app, authy) = spawn_app_counting_pushes_with(
        Duration::from_millis(300),
        &[("APPROVAL_WAIT_SECONDS", "2")],
    )
    .await;
    let journey = Journey::new();
    let mut claims = enrolled(&app, "+1 425 555 0101").await; // denied after the delay

    let shown = page.select_continue(&app, &journey, &mut claims).await;
    message(shown, "WaitForAuthyApproval", "ApprovalPending");
    let shown = page.select_continue(&app, &journey, &mut claims).await;
    let denied = message(shown, "WaitForAuthyApproval", "ApprovalDenied");
    assert!(denied.contains("change your password"), "{denied}");

    // Continue again, and a new journey too: CreateApprovalRequest refuses on the page.
    for journey in [journey, Journey::new()] {
        let shown = page.select_continue(&app, &journey, &mut claims).await;
        let paused = message(shown, "CreateApprovalRequest", "PushesPaused");
        assert!(paused.contains("paused"), "{paused}");
    }
    assert_eq!(pushes(&authy), 1, "a push was sent during the pause");
}

#[tokio::test]
async fn a_b2c_retry_of_create_approval_request_sends_no_second_push() {
    let page = WaitPage::from_policy();
    let Validation::Rest(create) = &page.validations[0] else {
        panic!("CreateApprovalRequest first");
    };
    let (app, authy) = spawn_app_counting_pushes_with(Duration::from_secs(60), &[]).await;
    let journey = Journey::new();
    let claims = enrolled(&app, "+1 425 555 0100").await;
    let body = json!({
        "authyId": claims["extension_authyId"],
        "email": "erin@example.com",
        "correlationId": journey.correlation_id,
        "ipAddress": journey.ip_address,
    });
    assert_eq!(create.function, "CreateApprovalRequest");
    let (status, first, _) = b2c_call(&app, &create.function, &body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["newApprovalRequest"], json!(true));
    // B2C retries the same call (its first try timed out): same request, same code, nothing sent.
    let (status, retry, _) = b2c_call(&app, &create.function, &body).await;
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["approvalRequestId"], first["approvalRequestId"]);
    assert_eq!(retry["signInCode"], first["signInCode"]);
    assert_eq!(retry["newApprovalRequest"], json!(false));
    assert_eq!(pushes(&authy), 1, "a retry sent a second push");
    // Another journey (another correlation id) is another push.
    let mut other = body.clone();
    other["correlationId"] = json!(Journey::new().correlation_id);
    let (status, another, _) = b2c_call(&app, &create.function, &other).await;
    assert_eq!(status, 200, "{another}");
    assert_ne!(another["approvalRequestId"], first["approvalRequestId"]);
    assert_eq!(pushes(&authy), 2);
}

// ---------------------------------------------------------------------------------------------
// Whole journeys as B2C runs them, from the rendered policy, in one SSO session

/// The browser's B2C SSO session, emulating `DefaultSSOSessionProvider` (MS docs
/// "custom-policy-reference-sso"): a technical profile whose session management technical
/// profile is one becomes a session participant when its journey completes, with that profile's
/// persisted claims; in a later journey of the session "claims that are part of the session
/// cookie are read into the claim bag" (with the profile's own output claims), and a
/// participant is not run again ("skips technical profile execution"): its session claims are
/// issued instead.
#[derive(Default)]
struct SsoSession {
    /// Participant technical profile → the claims the session keeps for it.
    participants: std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// The directory, as far as our journeys read and write it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Directory {
    /// objectId → extension_authyId.
    authy_ids: std::collections::BTreeMap<String, String>,
}

/// What a journey did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Did {
    /// A page was shown (self-asserted technical profile id).
    Page(String),
    /// A wait page was passed: the push for this authy id was approved.
    Approved(String),
    /// `extension_authyId` was written.
    WroteAuthyId(String),
    /// The new password was written (the pack's LocalAccountWritePasswordUsingObjectId).
    WrotePassword,
    /// A session participant was not run: its claims came from the SSO session.
    FromSession(String),
    /// The token was issued.
    SentClaims,
    /// The user could not leave page `page` (self-asserted technical profile id): it showed
    /// `shown`. The journey's last entry.
    Stuck { page: String, shown: String },
}

/// The user who runs the journeys: a local account, and what the person at the browser knows,
/// has and does.
struct User {
    object_id: String,
    /// `signInNames.emailAddress`: the address the account signs in with; empty for an account
    /// that has none and signs in by [`User::user_name`] only.
    email: String,
    /// `signInNames.userName`, for an account that signs in by user name.
    user_name: Option<String>,
    /// The account's password.
    password: String,
    /// The sign-in name and password they type on a password page.
    signs_in_with: (String, String),
    /// The mailboxes they can read.
    reads_mail_of: Vec<String>,
    /// An address they put into the read-only email field of a verification display control
    /// before Send code (a form field is still a form field), if any.
    tampers_email: Option<String>,
    /// What they type on the phone page.
    phone: String,
}

impl User {
    /// The claims the starter pack's sign-in page (or its email discovery page) gives.
    fn signed_in(&self, claims: &mut serde_json::Map<String, serde_json::Value>) {
        claims.insert("objectId".into(), json!(self.object_id));
        if !self.email.is_empty() {
            claims.insert("email".into(), json!(self.email));
        }
        claims.insert("signInName".into(), json!(self.signs_in_with.0));
        claims.insert(
            "authenticationSource".into(),
            json!("localAccountAuthentication"),
        );
    }
}

/// A B2C claim value as a precondition's `ClaimEquals` compares it: a boolean as .NET spells it.
fn precondition_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A claim's `DefaultValue` as a JSON value (booleans as booleans).
fn default_value(text: &str) -> serde_json::Value {
    match text {
        "true" => json!(true),
        "false" => json!(false),
        other => json!(other),
    }
}

/// The B2C tenant of a test: its rendered policies, the handler their REST technical profiles
/// call, and its directory.
struct Tenant<'a> {
    files: &'a [crate::policy_contract::PolicyText],
    app: &'a crate::support::TestApp,
    directory: Directory,
}

impl<'a> Tenant<'a> {
    /// A tenant with the policies `files`, calling `app`, with an empty directory.
    fn new(
        files: &'a [crate::policy_contract::PolicyText],
        app: &'a crate::support::TestApp,
    ) -> Self {
        Self {
            files,
            app,
            directory: Directory::default(),
        }
    }

    /// `user` enrolled earlier: the directory holds the authy id of their phone (returned).
    async fn enrol(&mut self, user: &User) -> String {
        let authy_id = self.app.register(&user.phone).await;
        self.directory
            .authy_ids
            .insert(user.object_id.clone(), authy_id.clone());
        authy_id
    }

    /// `user` enrolled earlier ([`Tenant::enrol`]), then signed in once with a push in a new SSO
    /// session: the authy id and that session.
    async fn signed_in_in_a_session(&mut self, user: &User) -> (String, SsoSession) {
        let authy_id = self.enrol(user).await;
        let mut session = SsoSession::default();
        self.run("SignUpOrSignInWithAuthy", user, &mut session)
            .await;
        (authy_id, session)
    }

    /// [`run_journey`] in this tenant.
    async fn run(&mut self, journey_id: &str, user: &User, session: &mut SsoSession) -> Vec<Did> {
        run_journey(
            self.files,
            journey_id,
            self.app,
            user,
            session,
            &mut self.directory,
        )
        .await
    }
}

/// Runs journey `journey_id` of the rendered policies `files` for `user`, in `session`, against
/// `directory` and the handler `app`, as B2C runs it: each step's preconditions, then its
/// technical profile (our layer's read from the policy; the starter pack's few emulated). Ends
/// at SendClaims, or at a page the user cannot leave ([`Did::Stuck`]).
async fn run_journey(
    files: &[crate::policy_contract::PolicyText],
    journey_id: &str,
    app: &crate::support::TestApp,
    user: &User,
    session: &mut SsoSession,
    directory: &mut Directory,
) -> Vec<Did> {
    use b2c_authy::policy_check::{child, children, descendants, merged, metadata, text};
    let docs = crate::policy_contract::parse(files);
    let journey = docs
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "UserJourney"))
        .find(|j| j.attribute("Id") == Some(journey_id))
        .unwrap_or_else(|| panic!("no journey {journey_id}"));
    let b2c_journey = Journey::new();
    let mut claims = serde_json::Map::new();
    for kept in session.participants.values() {
        claims.extend(kept.clone());
    }
    let mut did = Vec::new();
    // Session participants of this journey (technical profile, its session management
    // technical profile), kept at SendClaims.
    let mut joined: Vec<(String, String)> = Vec::new();
    let session_manager = |id: &str| {
        merged(&docs, id)
            .iter()
            .flat_map(|d| children(*d, "UseTechnicalProfileForSessionManagement"))
            .filter_map(|u| u.attribute("ReferenceId"))
            .last()
            .map(str::to_owned)
            .filter(|sm| {
                merged(&docs, sm).iter().any(|d| {
                    child(*d, "Protocol")
                        .and_then(|p| p.attribute("Handler"))
                        .is_some_and(|h| h.contains("DefaultSSOSessionProvider"))
                })
            })
    };
    // The claims a session management technical profile keeps or issues, from the bag / defaults.
    let session_claims = |sm: &str, claims: &serde_json::Map<String, serde_json::Value>| {
        let mut kept = serde_json::Map::new();
        for d in merged(&docs, sm) {
            for c in descendants(d, "PersistedClaim") {
                let id = c.attribute("ClaimTypeReferenceId").unwrap();
                if let Some(v) = claims.get(id) {
                    kept.insert(id.to_owned(), v.clone());
                }
            }
            for c in descendants(d, "OutputClaim") {
                if let Some(v) = c.attribute("DefaultValue") {
                    kept.insert(
                        c.attribute("ClaimTypeReferenceId").unwrap().to_owned(),
                        default_value(v),
                    );
                }
            }
        }
        kept
    };

    'steps: for step in descendants(journey, "OrchestrationStep") {
        for condition in descendants(step, "Precondition") {
            let values: Vec<String> = descendants(condition, "Value").map(text).collect();
            let holds = match condition.attribute("Type") {
                Some("ClaimsExist") => claims.contains_key(&values[0]),
                Some("ClaimEquals") => claims
                    .get(&values[0])
                    .is_some_and(|v| precondition_text(v) == values[1]),
                other => panic!("precondition {other:?}"),
            };
            if holds == (condition.attribute("ExecuteActionsIf") == Some("true")) {
                continue 'steps;
            }
        }
        let kind = step.attribute("Type").unwrap_or_default();
        if kind == "SendClaims" {
            for (tp, sm) in joined {
                let kept = session_claims(&sm, &claims);
                session.participants.insert(tp, kept);
            }
            did.push(Did::SentClaims);
            return did;
        }
        // The user picks the local account (never the Facebook button).
        let Some(tp) = descendants(step, "ClaimsExchange")
            .filter_map(|e| e.attribute("TechnicalProfileReferenceId"))
            .find(|id| *id != "Facebook-OAUTH")
        else {
            continue; // a claims provider selection: the next step runs the choice
        };
        if let Some(sm) = session_manager(tp) {
            if session.participants.contains_key(tp) {
                did.push(Did::FromSession(tp.to_owned()));
                claims.extend(session_claims(&sm, &claims));
                continue;
            }
            joined.push((tp.to_owned(), sm));
        }
        let definitions = merged(&docs, tp);
        let handler = definitions
            .iter()
            .filter_map(|d| child(*d, "Protocol").and_then(|p| p.attribute("Handler")))
            .next_back()
            .unwrap_or_default();
        match tp {
            // The starter pack's, emulated: the user verifies their email for a password reset.
            "LocalAccountDiscoveryUsingEmailAddress" => {
                did.push(Did::Page(tp.to_owned()));
                user.signed_in(&mut claims);
            }
            "AAD-UserReadUsingObjectId" => {}
            "LocalAccountWritePasswordUsingObjectId" => {
                did.push(Did::Page(tp.to_owned()));
                did.push(Did::WrotePassword);
            }
            // The starter pack's sign-in page (validated by its login-NonInteractive), and ours.
            _ if tp == "SelfAsserted-LocalAccountSignin-Email"
                || handler.contains("SelfAssertedAttributeProvider") =>
            {
                did.push(Did::Page(tp.to_owned()));
                let page = Page {
                    files,
                    docs: &docs,
                    id: tp,
                    definitions: &definitions,
                };
                let continued = page
                    .select_continue(app, &b2c_journey, user, &mut claims, &mut did)
                    .await;
                if let Err(shown) = continued {
                    did.push(Did::Stuck {
                        page: tp.to_owned(),
                        shown,
                    });
                    return did;
                }
            }
            _ if handler.contains("ClaimsTransformationProtocolProvider") => {
                if let Err(key) = run_claims_transformations(&docs, &definitions, &mut claims) {
                    panic!("{tp}: {key}");
                }
            }
            _ if tp.starts_with("AAD-") => {
                let operation = definitions
                    .iter()
                    .flat_map(|d| metadata(*d))
                    .find(|(k, _)| k == "Operation")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let object_id = claims["objectId"].as_str().unwrap().to_owned();
                match operation.as_str() {
                    "Read" => {
                        for c in definitions
                            .iter()
                            .flat_map(|d| descendants(*d, "OutputClaim"))
                        {
                            let claim = c.attribute("ClaimTypeReferenceId").unwrap();
                            let value = match claim {
                                "extension_authyId" => directory.authy_ids.get(&object_id),
                                "signInNames.emailAddress" => {
                                    Some(&user.email).filter(|e| !e.is_empty())
                                }
                                other => panic!("{tp} reads {other}"),
                            };
                            claims.remove(claim);
                            if let Some(value) = value {
                                claims.insert(claim.to_owned(), json!(value));
                            }
                        }
                        if let Err(key) =
                            run_claims_transformations(&docs, &definitions, &mut claims)
                        {
                            panic!("{tp}: {key}");
                        }
                    }
                    "Write" => {
                        let id = claims["extension_authyId"].as_str().unwrap().to_owned();
                        directory.authy_ids.insert(object_id, id.clone());
                        did.push(Did::WroteAuthyId(id));
                    }
                    other => panic!("{tp}: operation {other}"),
                }
            }
            other => panic!("{journey_id}: no emulation of technical profile {other}"),
        }
    }
    panic!("{journey_id} ended without SendClaims");
}

/// A self-asserted page of the rendered policies `files` (parsed: `docs`): technical profile
/// `id`, its merged `definitions` (none for the starter pack's sign-in page).
struct Page<'a, 'input> {
    files: &'a [crate::policy_contract::PolicyText],
    docs: &'a [b2c_authy::policy_check::Parsed<'input>],
    id: &'a str,
    definitions: &'a [roxmltree::Node<'a, 'input>],
}

impl Page<'_, '_> {
    /// The user fills the page in and selects Continue until it passes (then its output claims
    /// with `AlwaysUseDefaultValue` are set), or until it shows a message other than "approval
    /// pending": `Err` with that message. The page's kind comes from the policy: a password page
    /// (validated by the starter pack's `login-NonInteractive`, emulated), an email page (a
    /// verification display control, then claims transformation validations), or a page whose
    /// validations call the API ([`WaitPage`]: the phone page, a wait page). A passed wait page
    /// adds [`Did::Approved`] to `did`.
    async fn select_continue(
        &self,
        app: &crate::support::TestApp,
        journey: &Journey,
        user: &User,
        claims: &mut serde_json::Map<String, serde_json::Value>,
        did: &mut Vec<Did>,
    ) -> Result<(), String> {
        use b2c_authy::policy_check::{descendants, merged, metadata};
        let validations: Vec<&str> = if self.id == "SelfAsserted-LocalAccountSignin-Email" {
            vec!["login-NonInteractive"]
        } else {
            self.definitions
                .iter()
                .flat_map(|d| descendants(*d, "ValidationTechnicalProfile"))
                .filter_map(|v| v.attribute("ReferenceId"))
                .collect()
        };
        let display_control = self
            .definitions
            .iter()
            .flat_map(|d| descendants(*d, "DisplayClaim"))
            .find_map(|c| c.attribute("DisplayControlReferenceId"));
        if validations == ["login-NonInteractive"] {
            let (name, password) = &user.signs_in_with;
            let account_name = |n: &str| {
                (!user.email.is_empty() && n.eq_ignore_ascii_case(&user.email))
                    || user.user_name.as_deref() == Some(n)
            };
            if !(account_name(name) && *password == user.password) {
                return Err("Your password is incorrect.".into());
            }
            user.signed_in(claims);
        } else if let Some(control) = display_control {
            verify_email(self.docs, control, user, claims)?;
            let meta: std::collections::BTreeMap<_, _> =
                self.definitions.iter().flat_map(|d| metadata(*d)).collect();
            for validation in validations {
                run_claims_transformations(self.docs, &merged(self.docs, validation), claims)
                    .map_err(|key| meta[key].clone())?;
            }
        } else {
            self.call_the_api(app, journey, user, claims, did).await?;
        }
        for c in self
            .definitions
            .iter()
            .flat_map(|d| descendants(*d, "OutputClaim"))
        {
            if c.attribute("AlwaysUseDefaultValue") == Some("true") {
                claims.insert(
                    c.attribute("ClaimTypeReferenceId").unwrap().to_owned(),
                    default_value(c.attribute("DefaultValue").unwrap()),
                );
            }
        }
        Ok(())
    }

    /// The phone page or a wait page: the user types their phone (if the page asks for it) and
    /// selects Continue while it answers "approval pending" (at most 12 times).
    async fn call_the_api(
        &self,
        app: &crate::support::TestApp,
        journey: &Journey,
        user: &User,
        claims: &mut serde_json::Map<String, serde_json::Value>,
        did: &mut Vec<Did>,
    ) -> Result<(), String> {
        use b2c_authy::policy_check::descendants;
        let page = WaitPage::from_files(self.files, self.id);
        if self
            .definitions
            .iter()
            .flat_map(|d| descendants(*d, "OutputClaim"))
            .any(|c| c.attribute("ClaimTypeReferenceId") == Some("phoneNumber"))
        {
            claims.insert("phoneNumber".into(), json!(user.phone));
        }
        for _ in 0..12 {
            match page.select_continue(app, journey, claims).await {
                Shown::Passed => {
                    if page.functions().contains(&"WaitForAuthyApproval") {
                        let authy_id = claims["extension_authyId"].as_str().unwrap().to_owned();
                        did.push(Did::Approved(authy_id));
                    }
                    return Ok(());
                }
                Shown::Message { code, .. } if code == "ApprovalPending" => {}
                Shown::Message { user_message, .. } => return Err(user_message),
            }
        }
        panic!("{}: not passed after 12 Continues", self.id);
    }
}

/// The verification display control `control_id` of an email page (MS docs
/// "display-control-verification"), as `user` works it: Send code mails a code to the field's
/// value (pre-filled from its claim, unless they changed the form); Verify code passes only with
/// the mail of that address. `Err`: the page's message when the code was not verified.
fn verify_email(
    docs: &[b2c_authy::policy_check::Parsed],
    control_id: &str,
    user: &User,
    claims: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    use b2c_authy::policy_check::descendants;
    let control = docs
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "DisplayControl"))
        .find(|c| c.attribute("Id") == Some(control_id))
        .unwrap_or_else(|| panic!("no display control {control_id}"));
    assert_eq!(
        control.attribute("UserInterfaceControlType"),
        Some("VerificationControl")
    );
    let claim = descendants(control, "DisplayClaim")
        .find(|c| c.attribute("ControlClaimType").is_none())
        .and_then(|c| c.attribute("ClaimTypeReferenceId"))
        .unwrap();
    let address = user
        .tampers_email
        .clone()
        .or_else(|| {
            claims
                .get(claim)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if !user.reads_mail_of.contains(&address) {
        return Err("The verification code has not been entered.".into());
    }
    claims.insert(claim.to_owned(), json!(address));
    Ok(())
}

/// Runs a claims transformation technical profile (merged `definitions`) on `claims` as B2C
/// does: its required input claims checked, its output claims with `AlwaysUseDefaultValue` set,
/// then its output claims transformations in order. `Err`: the metadata key of the page message
/// of the assertion that failed.
fn run_claims_transformations(
    docs: &[b2c_authy::policy_check::Parsed],
    definitions: &[roxmltree::Node],
    claims: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), &'static str> {
    use b2c_authy::policy_check::descendants;
    for c in definitions
        .iter()
        .flat_map(|d| descendants(*d, "InputClaim"))
    {
        if c.attribute("Required") == Some("true") {
            let id = c.attribute("ClaimTypeReferenceId").unwrap();
            assert!(claims.contains_key(id), "required {id} missing");
        }
    }
    for c in definitions
        .iter()
        .flat_map(|d| descendants(*d, "OutputClaim"))
    {
        if c.attribute("AlwaysUseDefaultValue") == Some("true") {
            claims.insert(
                c.attribute("ClaimTypeReferenceId").unwrap().to_owned(),
                default_value(c.attribute("DefaultValue").unwrap()),
            );
        }
    }
    let references: Vec<&str> = definitions
        .iter()
        .flat_map(|d| descendants(*d, "OutputClaimsTransformation"))
        .filter_map(|r| r.attribute("ReferenceId"))
        .collect();
    for reference in references {
        apply_transformation(docs, reference, claims)?;
    }
    Ok(())
}

/// Applies claims transformation `id` of `docs` to `claims`, as B2C does, for the methods our
/// layer's technical profiles use (MS docs "general-transformations", "string-transformations",
/// "boolean-transformations"). Where MS docs do not say what B2C does with an absent input claim
/// (`CopyClaim`, `AssertStringClaimsAreEqual`), the emulation does the worst for us: the copy
/// sets nothing and the assertion passes, so a journey safe here does not rely on either.
/// `Err`: an assertion failed; the metadata key of the message its page shows.
fn apply_transformation(
    docs: &[b2c_authy::policy_check::Parsed],
    id: &str,
    claims: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<(), &'static str> {
    use b2c_authy::policy_check::descendants;
    let t = docs
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "ClaimsTransformation"))
        .find(|t| t.attribute("Id") == Some(id))
        .unwrap_or_else(|| panic!("no claims transformation {id}"));
    let claim = |element: &'static str, kind: &str| {
        descendants(t, element)
            .find(|c| c.attribute("TransformationClaimType") == Some(kind))
            .and_then(|c| c.attribute("ClaimTypeReferenceId"))
            .unwrap()
            .to_owned()
    };
    let parameter = |name: &str| {
        descendants(t, "InputParameter")
            .find(|p| p.attribute("Id") == Some(name))
            .and_then(|p| p.attribute("Value"))
            .unwrap()
            .to_owned()
    };
    match t.attribute("TransformationMethod").unwrap() {
        "CopyClaim" => {
            if let Some(value) = claims.get(&claim("InputClaim", "inputClaim")).cloned() {
                claims.insert(claim("OutputClaim", "outputClaim"), value);
            }
        }
        "DoesClaimExist" => {
            let exists = claims.contains_key(&claim("InputClaim", "inputClaim"));
            claims.insert(claim("OutputClaim", "outputClaim"), json!(exists));
        }
        "AssertBooleanClaimIsEqualToValue" => {
            let expected = parameter("valueToCompareTo") == "true";
            let value = claims.get(&claim("InputClaim", "inputClaim"));
            if value.and_then(serde_json::Value::as_bool) != Some(expected) {
                return Err("UserMessageIfClaimsTransformationBooleanValueIsNotEqual");
            }
        }
        "CompareClaims" => {
            assert_eq!(parameter("operator"), "EQUAL");
            let one = claims[&claim("InputClaim", "inputClaim1")]
                .as_str()
                .unwrap()
                .to_owned();
            let two = claims[&claim("InputClaim", "inputClaim2")]
                .as_str()
                .unwrap()
                .to_owned();
            let equal = if parameter("ignoreCase") == "true" {
                one.eq_ignore_ascii_case(&two)
            } else {
                one == two
            };
            claims.insert(claim("OutputClaim", "outputClaim"), json!(equal));
        }
        "AssertStringClaimsAreEqual" => {
            assert_eq!(parameter("stringComparison"), "ordinalIgnoreCase");
            let value = |kind: &str| {
                claims
                    .get(&claim("InputClaim", kind))
                    .and_then(|v| v.as_str())
                    .map(str::to_lowercase)
            };
            let (one, two) = (value("inputClaim1"), value("inputClaim2"));
            if one.is_some() && two.is_some() && one != two {
                return Err("UserMessageIfClaimsTransformationStringsAreNotEqual");
            }
        }
        other => panic!("{id}: no emulation of {other}"),
    }
    Ok(())
}

/// A handler against a push-counting simulator that approves after 300 ms, the wait answering
/// within 1 s.
async fn spawn_for_journeys() -> (crate::support::TestApp, FakeAuthy) {
    spawn_app_counting_pushes_with(
        Duration::from_millis(300),
        &[("APPROVAL_WAIT_SECONDS", "1")],
    )
    .await
}

/// Asserts that the journey `did` every one of `expected`, in that order (other entries between
/// them allowed).
fn assert_in_order(did: &[Did], expected: &[Did]) {
    let at: Vec<Option<usize>> = expected
        .iter()
        .map(|e| did.iter().position(|d| d == e))
        .collect();
    assert!(
        at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]),
        "expected {expected:?} in this order in {did:?}"
    );
}

/// Frank, who signs in with his password and types `phone` on a phone page.
fn user(phone: &str) -> User {
    User {
        object_id: "5b0d1a3c-9f2e-4c61-8d7a-2e4f6a8b0c1d".into(),
        email: "frank@example.com".into(),
        password: "hunter2 hunter2".into(),
        signs_in_with: ("frank@example.com".into(), "hunter2 hunter2".into()),
        reads_mail_of: vec!["frank@example.com".into()],
        tampers_email: None,
        user_name: None,
        phone: phone.to_owned(),
    }
}

#[tokio::test]
async fn a_second_application_in_the_sso_session_gets_no_second_push() {
    let files = crate::policy_contract::sample();
    let (app, authy) = spawn_for_journeys().await;
    let user = user("+1 425 555 0200");
    let mut tenant = Tenant::new(&files, &app);
    let authy_id = tenant.enrol(&user).await;
    let mut session = SsoSession::default();

    let first = tenant
        .run("SignUpOrSignInWithAuthy", &user, &mut session)
        .await;
    assert!(
        first.contains(&Did::Approved(authy_id.clone())),
        "{first:?}"
    );
    assert_eq!(pushes(&authy), 1);
    assert!(
        !first.iter().any(|d| matches!(d, Did::WroteAuthyId(_))),
        "{first:?}"
    );

    // The session keeps the approved authy id (SM-AuthyMFA's persisted claim).
    assert_eq!(
        session.participants["Authy-RememberApprovalInSession"]["authyMfaSessionAuthyId"],
        json!(authy_id)
    );
    // A second application, same browser: the session approved this authy id.
    let second = tenant
        .run("SignUpOrSignInWithAuthy", &user, &mut session)
        .await;
    assert_eq!(
        pushes(&authy),
        1,
        "a second push in the session: {second:?}"
    );
    assert!(
        !second.contains(&Did::Page("SelfAsserted-AuthyWaitForApproval".into())),
        "{second:?}"
    );
    assert!(
        !second.iter().any(|d| matches!(d, Did::Approved(_))),
        "{second:?}"
    );
    assert_eq!(second.last(), Some(&Did::SentClaims));

    // Another browser (no session): a push again.
    let third = tenant
        .run("SignUpOrSignInWithAuthy", &user, &mut SsoSession::default())
        .await;
    assert!(third.contains(&Did::Approved(authy_id)), "{third:?}");
    assert_eq!(pushes(&authy), 2);
}

#[tokio::test]
async fn after_the_authy_id_is_cleared_or_changed_the_session_skips_nothing() {
    let files = crate::policy_contract::sample();
    let (app, authy) = spawn_for_journeys().await;
    let mut user = user("+1 425 555 0201");
    let mut tenant = Tenant::new(&files, &app);
    let (old_id, mut session) = tenant.signed_in_in_a_session(&user).await;
    assert_eq!(pushes(&authy), 1);

    // deploy/clear-authy-id.sh (lost phone): the next journey, same session, enrols and pushes,
    // and writes the authy id only after the approval.
    tenant.directory.authy_ids.remove(&user.object_id);
    user.phone = "+1 425 555 0202".into();
    let enrolment = tenant
        .run("SignUpOrSignInWithAuthy", &user, &mut session)
        .await;
    let new_id = "14255550202".to_owned();
    assert_eq!(pushes(&authy), 2, "{enrolment:?}");
    assert_in_order(
        &enrolment,
        &[
            Did::Page("SelfAsserted-AuthyPhoneEnrollment".into()),
            Did::Approved(new_id.clone()),
            Did::WroteAuthyId(new_id.clone()),
        ],
    );
    assert_eq!(tenant.directory.authy_ids[&user.object_id], new_id);

    // The phone change (profile edit) in the same session: both pushes, always.
    user.phone = "+1 425 555 0203".into();
    let change = tenant
        .run("ProfileEditAuthyPhone", &user, &mut session)
        .await;
    assert_eq!(pushes(&authy), 4, "{change:?}");
    let changed_id = "14255550203".to_owned();
    assert!(
        change.contains(&Did::Approved(new_id.clone())),
        "{change:?}"
    );
    assert_in_order(
        &change,
        &[
            Did::Approved(changed_id.clone()),
            Did::WroteAuthyId(changed_id.clone()),
        ],
    );

    // A sign-in in the same session with the changed authy id: the session approved another one.
    let after_change = tenant
        .run("SignUpOrSignInWithAuthy", &user, &mut session)
        .await;
    assert!(
        after_change.contains(&Did::Approved(changed_id)),
        "{after_change:?}"
    );
    assert_eq!(pushes(&authy), 5);
    assert_ne!(old_id, new_id);
}

#[tokio::test]
async fn password_reset_pushes_even_in_a_session_and_sets_the_password_only_after_approval() {
    let files = crate::policy_contract::sample();
    let (app, authy) = spawn_for_journeys().await;
    let mut user = user("+1 425 555 0204");
    let mut tenant = Tenant::new(&files, &app);
    let (authy_id, mut session) = tenant.signed_in_in_a_session(&user).await;
    assert_eq!(pushes(&authy), 1);

    let reset = tenant
        .run("PasswordResetWithAuthy", &user, &mut session)
        .await;
    assert_eq!(
        pushes(&authy),
        2,
        "password reset in a session must push: {reset:?}"
    );
    assert_in_order(
        &reset,
        &[Did::Approved(authy_id.clone()), Did::WrotePassword],
    );

    // A user without an authy id enrols first: phone page, push on the new phone, authy id
    // written after its approval, then the password.
    tenant.directory.authy_ids.clear();
    user.phone = "+1 425 555 0205".into();
    let reset = tenant
        .run("PasswordResetWithAuthy", &user, &mut SsoSession::default())
        .await;
    let new_id = "14255550205".to_owned();
    assert_in_order(
        &reset,
        &[
            Did::Page("SelfAsserted-AuthyPhoneEnrollment".into()),
            Did::Approved(new_id.clone()),
            Did::WroteAuthyId(new_id),
            Did::WrotePassword,
        ],
    );
    assert_eq!(pushes(&authy), 3);
}

#[tokio::test]
async fn with_mfa_per_session_false_every_journey_pushes() {
    let files = crate::policy_contract::sample_with(&[("AuthyMfaPerSession", "false")]);
    let (app, authy) = spawn_for_journeys().await;
    let user = user("+1 425 555 0206");
    let mut tenant = Tenant::new(&files, &app);
    tenant.enrol(&user).await;
    let mut session = SsoSession::default();
    for journey in 1..=2 {
        tenant
            .run("SignUpOrSignInWithAuthy", &user, &mut session)
            .await;
        assert_eq!(pushes(&authy), journey);
    }
    assert!(session.participants.is_empty());
}

// The lost-phone journey (AuthyPhoneRecovery, rendered with AuthyPhoneRecovery=true)

/// The authy ids `authy` was asked to push to, in order.
fn pushed_to(authy: &FakeAuthy) -> Vec<String> {
    authy
        .requests()
        .iter()
        .filter(|r| r.method == Method::POST && r.path.ends_with("/approval_requests"))
        .filter_map(|r| r.path.split('/').rev().nth(1).map(str::to_owned))
        .collect()
}

/// Erin, enrolled in `tenant` with an old phone she has lost, now with `new_phone`: her
/// password, her mailbox. Also her old authy id.
async fn erin_with_lost_phone(tenant: &mut Tenant<'_>, new_phone: &str) -> (User, String) {
    let mut erin = User {
        object_id: uuid::Uuid::new_v4().to_string(),
        email: "Erin@Example.com".into(),
        password: "correct horse".into(),
        signs_in_with: ("erin@example.com".into(), "correct horse".into()),
        reads_mail_of: vec!["Erin@Example.com".into()],
        tampers_email: None,
        user_name: None,
        phone: "+1 425 555 0199".into(),
    };
    let old = tenant.enrol(&erin).await;
    erin.phone = new_phone.into();
    (erin, old)
}

/// Runs the lost-phone journey for `user` in a new browser (its pages use SM-Noop: no session
/// would skip anything).
async fn recover(tenant: &mut Tenant<'_>, user: &User) -> Vec<Did> {
    tenant
        .run("AuthyPhoneRecovery", user, &mut SsoSession::default())
        .await
}

/// The page a journey ended stuck at, and what it showed.
fn stuck_at(did: &[Did]) -> (&str, &str) {
    match did.last() {
        Some(Did::Stuck { page, shown }) => (page, shown),
        _ => panic!("the journey was not stuck at a page: {did:?}"),
    }
}

#[tokio::test]
async fn a_lost_phone_is_replaced_only_after_the_email_code_and_a_push_approved_on_the_new_phone() {
    let (app, authy) = spawn_app_counting_pushes_with(
        Duration::from_millis(1500),
        &[("APPROVAL_WAIT_SECONDS", "2")],
    )
    .await;
    let files = crate::policy_contract::recovery_sample();
    let mut tenant = Tenant::new(&files, &app);
    let (erin, old) = erin_with_lost_phone(&mut tenant, "+1 425 555 0100").await;

    let did = recover(&mut tenant, &erin).await;
    let new = tenant.directory.authy_ids[&erin.object_id].clone();
    assert_ne!(new, old, "the authy id was not replaced");
    let page = |id: &str| Did::Page(id.into());
    assert_eq!(
        did,
        [
            page("SelfAsserted-AuthyRecovery-LocalAccountSignin"),
            page("SelfAsserted-AuthyRecoveryEmail"),
            page("SelfAsserted-AuthyPhoneEnrollment"),
            page("SelfAsserted-AuthyRecoveryWaitForApproval"),
            Did::Approved(new.clone()),
            Did::WroteAuthyId(new.clone()),
            Did::SentClaims,
        ]
    );
    // The one push of the journey went to the new phone; the old one got none.
    assert_eq!(pushed_to(&authy), [new]);
}

#[tokio::test]
async fn a_push_denied_on_the_new_phone_writes_nothing_and_pauses_its_pushes() {
    let (app, authy) = spawn_app_counting_pushes_with(
        Duration::from_millis(300),
        &[("APPROVAL_WAIT_SECONDS", "2")],
    )
    .await;
    let files = crate::policy_contract::recovery_sample();
    let mut tenant = Tenant::new(&files, &app);
    // +1 425 555 0101: the simulator denies its pushes.
    let (erin, _) = erin_with_lost_phone(&mut tenant, "+1 425 555 0101").await;
    let before = tenant.directory.clone();

    let did = recover(&mut tenant, &erin).await;
    let (page, shown) = stuck_at(&did);
    assert_eq!(page, "SelfAsserted-AuthyRecoveryWaitForApproval", "{did:?}");
    assert!(shown.contains("change your password"), "{shown}");
    assert_eq!(
        tenant.directory, before,
        "a denied push changed the directory"
    );
    // The pause after a denial holds for the new authy id: another try sends nothing.
    let pushes_before = pushes(&authy);
    let did = recover(&mut tenant, &erin).await;
    let (_, shown) = stuck_at(&did);
    assert!(shown.contains("paused"), "{shown}");
    assert_eq!(
        pushes(&authy),
        pushes_before,
        "a push went out during the pause"
    );
    assert_eq!(tenant.directory, before);
}

#[tokio::test]
async fn without_the_accounts_mail_or_password_nothing_is_enrolled_or_written() {
    let (app, authy) = spawn_app_counting_pushes(Duration::from_millis(300)).await;
    let files = crate::policy_contract::recovery_sample();
    let mut tenant = Tenant::new(&files, &app);
    let (erin, _) = erin_with_lost_phone(&mut tenant, "+1 425 555 0100").await;
    let before = tenant.directory.clone();
    let registered = || {
        authy
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/users/new"))
            .count()
    };
    let registered_before = registered();

    // The password alone (an attacker who cannot read Erin's mail).
    let attacker = User {
        reads_mail_of: vec!["mallory@example.net".into()],
        ..erin
    };
    let did = recover(&mut tenant, &attacker).await;
    let (page, shown) = stuck_at(&did);
    assert_eq!(page, "SelfAsserted-AuthyRecoveryEmail", "{did:?}");
    assert!(shown.contains("code has not been entered"), "{shown}");
    // The read-only field changed to the attacker's own address: the code arrives and verifies,
    // but Continue finds that the verified address is not the account's.
    let attacker = User {
        tampers_email: Some("mallory@example.net".into()),
        ..attacker
    };
    let did = recover(&mut tenant, &attacker).await;
    let (page, shown) = stuck_at(&did);
    assert_eq!(page, "SelfAsserted-AuthyRecoveryEmail", "{did:?}");
    assert!(
        shown.contains("could not verify the email address"),
        "{shown}"
    );
    // The mail alone, with a wrong password.
    let guesser = User {
        signs_in_with: ("erin@example.com".into(), "Tr0ub4dor&3".into()),
        tampers_email: None,
        reads_mail_of: vec!["Erin@Example.com".into()],
        ..attacker
    };
    let did = recover(&mut tenant, &guesser).await;
    assert_eq!(
        stuck_at(&did),
        (
            "SelfAsserted-AuthyRecovery-LocalAccountSignin",
            "Your password is incorrect."
        )
    );

    assert_eq!(tenant.directory, before, "the directory changed");
    assert_eq!(registered(), registered_before, "a phone was enrolled");
    assert_eq!(pushes(&authy), 0, "a push was sent");
}

#[tokio::test]
async fn an_account_without_an_email_address_cannot_replace_its_phone() {
    let (app, authy) = spawn_app_counting_pushes(Duration::from_millis(300)).await;
    let files = crate::policy_contract::recovery_sample();
    let mut tenant = Tenant::new(&files, &app);
    // Ursula signs in by user name only: no signInNames.emailAddress in the directory. Whoever
    // runs the journey has her password and, on the phone page, a new phone.
    let object_id = uuid::Uuid::new_v4().to_string();
    let ursula = |reads_mail_of: &[&str], tampers_email: Option<&str>, phone: &str| User {
        object_id: object_id.clone(),
        email: String::new(),
        user_name: Some("ursula".into()),
        password: "correct horse".into(),
        signs_in_with: ("ursula".into(), "correct horse".into()),
        reads_mail_of: reads_mail_of.iter().map(|m| (*m).to_owned()).collect(),
        tampers_email: tampers_email.map(str::to_owned),
        phone: phone.into(),
    };
    tenant.enrol(&ursula(&[], None, "+1 425 555 0199")).await;
    let before = tenant.directory.clone();
    let pushes_before = pushes(&authy);

    // The email page has no address to send a code to.
    let did = recover(&mut tenant, &ursula(&[], None, "+1 425 555 0100")).await;
    assert_eq!(
        stuck_at(&did).0,
        "SelfAsserted-AuthyRecoveryEmail",
        "{did:?}"
    );
    // Nor with an address of their own put into the read-only field: the code arrives and
    // verifies, and Continue is refused for the account's missing address, before the address
    // comparison (whose handling of an absent claim MS docs leave open; emulated as passing).
    let mallory = "mallory@example.net";
    let did = recover(
        &mut tenant,
        &ursula(&[mallory], Some(mallory), "+1 425 555 0100"),
    )
    .await;
    let (page, shown) = stuck_at(&did);
    assert_eq!(page, "SelfAsserted-AuthyRecoveryEmail", "{did:?}");
    assert!(shown.contains("no email address"), "{shown}");

    assert_eq!(tenant.directory, before, "the directory changed");
    assert_eq!(pushes(&authy), pushes_before, "a push was sent");
}
