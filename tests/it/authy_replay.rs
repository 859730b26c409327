//! Recorded Authy answers through the handler: each row of [`RECORDED`] is one answer as
//! Authy's own client libraries and Twilio's docs record it (status, headers, body, and its
//! source in a comment), served by a [`FakeAuthy`] over real HTTP to a handler that calls one
//! function, and the function must answer the `code` docs/api.md documents for it.
//!
//! What is not here: timing faults (hangs, dripping bodies, resets, `Retry-After` within the
//! budget) are in `upstream_faults.rs`; the exact requests the client sends and the error
//! classes of the client alone are in `authy_client.rs`.
//!
//! Sources, all read at their default branch:
//! - ruimarinho/authy-client (npm `authy-client`) `test/mocks/get-approval-request-mock.js`
//!   (`succeed`: `_authy_id` a string, `created_at` from `Date.toISOString()`, so with
//!   milliseconds) and `test/client_test.js` (Authy's v1-style UUIDs such as
//!   `90c2adc0-b184-0133-7bff-0e67b818e6fb`);
//! - twilio/authy-ruby `spec/authy/api_spec.rb` ("User was not valid" 60027, "User not found."
//!   60026) and `spec/authy/onetouch_spec.rb` (create and status answers);
//! - twilio/authy-php `tests/Authy/ApiTest.php` (`fd285c30-97f8-0135-cfa7-1241e5695bb0`, the
//!   unknown user's 404 `{"errors": {"message": "User not found."}}`, "Approval request not
//!   found: …");
//! - Twilio docs "Authy Users" (the `users/new` answer), "Authy Return and Error Codes" (401
//!   60001, 429 60003, 404 60026 and 60049, 503);
//! - lholden/authy-rs commit ced3c24 (`"success": "true"` as a string).
//!
//! A recorded `created_at` is replaced by one 2 s old in the same format (with or without
//! milliseconds), since the handler accepts an approval only while it is fresh.

use std::time::{Duration, SystemTime};

use axum::http::Method;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

use crate::support::fake_authy::FakeAuthy;
use crate::support::{assert_b2c_error, spawn_app_against};

/// The authy id of authy-client's mock (`_authy_id: '1635'`), the one the handler asks about.
const AUTHY_ID: &str = "1635";
/// An approval request id in Authy's v1 style (authy-client `test/client_test.js`).
const V1_UUID: &str = "90c2adc0-b184-0133-7bff-0e67b818e6fb";

/// Which function is called, and so which Authy call the recorded answer answers.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// `Register` → `POST /protected/json/users/new`.
    Register,
    /// `CreateApprovalRequest` → `POST /onetouch/json/users/{id}/approval_requests`.
    Push,
    /// `WaitForAuthyApproval` → `GET /onetouch/json/approval_requests/{uuid}`.
    Wait,
}

/// What the function must answer: HTTP 200 with this output claim and value, or a 409 `code`.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// HTTP 200 whose body has `claim` = `value`.
    Ok(&'static str, &'static str),
    /// The B2C error body with this `code` (docs/api.md, "Errors").
    Code(&'static str),
}

/// One recorded answer: the call it answers, status, headers, body, and the expected outcome.
/// `{created_at}` / `{created_at_ms}` in a body become a fresh RFC 3339 time without / with
/// milliseconds.
#[derive(Clone, Copy)]
struct Row {
    call: Call,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    expect: Expect,
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json; charset=utf-8")];
const HTML: &[(&str, &str)] = &[("content-type", "text/html")];

/// The recorded answers, each with its source.
const RECORDED: &[Row] = &[
    // --- Register (users/new) ---
    // Twilio docs "Authy Users", the answer of "Create an Authy User".
    Row {
        call: Call::Register,
        status: 200,
        headers: JSON,
        body: r#"{"message":"User created successfully.","user":{"id":123},"success":true}"#,
        expect: Expect::Ok("authyId", "123"),
    },
    // The same with the id as a string and `success` as the string "true" (authy-rs ced3c24).
    Row {
        call: Call::Register,
        status: 200,
        headers: JSON,
        body: r#"{"message":"User created successfully.","user":{"id":"123"},"success":"true"}"#,
        expect: Expect::Ok("authyId", "123"),
    },
    // authy-ruby spec/authy/api_spec.rb, "should return the error messages as a hash" (its mock
    // answers with status 400); the same body with status 200, which the handler must not take
    // for a success either (`success` is false).
    Row {
        call: Call::Register,
        status: 400,
        headers: JSON,
        body: r#"{"cellphone":"is invalid","message":"User was not valid","success":false,"errors":{"cellphone":"is invalid","message":"User was not valid"},"error_code":"60027"}"#,
        expect: Expect::Code("AuthyRejected"),
    },
    Row {
        call: Call::Register,
        status: 200,
        headers: JSON,
        body: r#"{"cellphone":"is invalid","message":"User was not valid","success":false,"errors":{"cellphone":"is invalid","message":"User was not valid"},"error_code":"60027"}"#,
        expect: Expect::Code("AuthyRejected"),
    },
    // Twilio docs "Authy Return and Error Codes": 401, 60001 "Invalid API key".
    Row {
        call: Call::Register,
        status: 401,
        headers: JSON,
        body: r#"{"message":"Invalid API key","success":false,"errors":{"message":"Invalid API key"},"error_code":"60001"}"#,
        expect: Expect::Code("AuthyApiKeyRejected"),
    },
    // A string "yes" is not a boolean: never success.
    Row {
        call: Call::Register,
        status: 200,
        headers: JSON,
        body: r#"{"user":{"id":123},"success":"yes"}"#,
        expect: Expect::Code("AuthyRejected"),
    },
    // --- CreateApprovalRequest (approval_requests) ---
    // authy-php tests/Authy/ApiTest.php, testRequestOneTouchApprovalWithValidUser: a v1 UUID.
    Row {
        call: Call::Push,
        status: 200,
        headers: JSON,
        body: r#"{ "approval_request": { "uuid":"fd285c30-97f8-0135-cfa7-1241e5695bb0" }, "success": true }"#,
        expect: Expect::Ok("approvalRequestId", "fd285c30-97f8-0135-cfa7-1241e5695bb0"),
    },
    // authy-ruby spec/authy/onetouch_spec.rb, "creates a new approval_request for user".
    Row {
        call: Call::Push,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"uuid":"550e8400-e29b-41d4-a716-446655440000"},"success":true}"#,
        expect: Expect::Ok("approvalRequestId", "550e8400-e29b-41d4-a716-446655440000"),
    },
    // authy-ruby spec/authy/api_spec.rb, "user doesn't exist": 404 60026.
    Row {
        call: Call::Push,
        status: 404,
        headers: JSON,
        body: r#"{"message":"User not found.","success":false,"errors":{"message":"User not found."},"error_code":"60026"}"#,
        expect: Expect::Code("AuthyUserNotFound"),
    },
    // authy-php tests/Authy/ApiTest.php, testRequestOneTouchApprovalWithInvalidUser.
    Row {
        call: Call::Push,
        status: 404,
        headers: JSON,
        body: r#"{"errors": {"message": "User not found."}}"#,
        expect: Expect::Code("AuthyUserNotFound"),
    },
    // Twilio docs "Authy Return and Error Codes": 429, 60003; a Retry-After beyond the budget.
    Row {
        call: Call::Push,
        status: 429,
        headers: &[("content-type", "application/json"), ("retry-after", "30")],
        body: r#"{"message":"DoS protection","success":false,"errors":{"message":"DoS protection"},"error_code":"60003"}"#,
        expect: Expect::Code("AuthyThrottled"),
    },
    // A proxy's HTML 503 in front of Authy (Twilio's codes table: 503 "multiple possible reasons").
    Row {
        call: Call::Push,
        status: 503,
        headers: HTML,
        body: "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
        expect: Expect::Code("AuthyUnavailable"),
    },
    // --- WaitForAuthyApproval (approval_requests/{uuid}) ---
    // authy-client test/mocks/get-approval-request-mock.js `succeed` with status approved,
    // denied, expired: `_authy_id` a string, dates with milliseconds, 24-hex ids.
    Row {
        call: Call::Wait,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"_app_name":"Test","_app_serial_id":29225,"_authy_id":"1635","_id":"56ad18731170706b7f00e352","_user_email":"foo@bar.com","app_id":"56aaaed561709030f4003b30","created_at":"{created_at_ms}","notified":false,"processed_at":"{created_at_ms}","status":"approved","updated_at":"{created_at_ms}","user_id":"52e71d989d29c9d3dc001951","uuid":"90c2adc0-b184-0133-7bff-0e67b818e6fb"},"success":true}"#,
        expect: Expect::Ok("approvalStatus", "approved"),
    },
    Row {
        call: Call::Wait,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"_app_name":"Test","_app_serial_id":29225,"_authy_id":"1635","_id":"56ad18731170706b7f00e352","_user_email":"foo@bar.com","app_id":"56aaaed561709030f4003b30","created_at":"{created_at_ms}","notified":false,"processed_at":"{created_at_ms}","status":"denied","updated_at":"{created_at_ms}","user_id":"52e71d989d29c9d3dc001951","uuid":"90c2adc0-b184-0133-7bff-0e67b818e6fb"},"success":true}"#,
        expect: Expect::Code("ApprovalDenied"),
    },
    Row {
        call: Call::Wait,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"_app_name":"Test","_app_serial_id":29225,"_authy_id":"1635","_id":"56ad18731170706b7f00e352","_user_email":"foo@bar.com","app_id":"56aaaed561709030f4003b30","created_at":"{created_at_ms}","notified":false,"processed_at":"{created_at_ms}","status":"expired","updated_at":"{created_at_ms}","user_id":"52e71d989d29c9d3dc001951","uuid":"90c2adc0-b184-0133-7bff-0e67b818e6fb"},"success":true}"#,
        expect: Expect::Code("ApprovalExpired"),
    },
    // authy-client's `succeed` with `ttl: -1` (pending: `processed_at` null).
    Row {
        call: Call::Wait,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"_app_name":"Test","_app_serial_id":29225,"_authy_id":"1635","_id":"56ad18731170706b7f00e352","_user_email":"foo@bar.com","app_id":"56aaaed561709030f4003b30","created_at":"{created_at_ms}","notified":false,"processed_at":null,"status":"pending","updated_at":"{created_at_ms}","user_id":"52e71d989d29c9d3dc001951","uuid":"90c2adc0-b184-0133-7bff-0e67b818e6fb"},"success":true}"#,
        expect: Expect::Code("ApprovalPending"),
    },
    // authy-ruby spec/authy/onetouch_spec.rb, ".approval_request_status": an abbreviated answer
    // without `_authy_id`. Real Authy always says whose request it is (authy-client's schema in
    // src/client.js requires `_authy_id`); the handler fails closed when it does not.
    Row {
        call: Call::Wait,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"status":"pending"},"success":true}"#,
        expect: Expect::Code("ApprovalRequestMismatch"),
    },
    // authy-client's approved answer with `_authy_id` a JSON number and dates without
    // milliseconds, labelled text/html.
    Row {
        call: Call::Wait,
        status: 200,
        headers: HTML,
        body: r#"{"approval_request":{"_authy_id":1635,"created_at":"{created_at}","processed_at":"{created_at}","status":"approved","updated_at":"{created_at}","uuid":"90c2adc0-b184-0133-7bff-0e67b818e6fb"},"success":true}"#,
        expect: Expect::Ok("approvalStatus", "approved"),
    },
    // The same with `"success": "true"` as a string (authy-rs ced3c24).
    Row {
        call: Call::Wait,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"_authy_id":"1635","created_at":"{created_at}","status":"approved"},"success":"true"}"#,
        expect: Expect::Ok("approvalStatus", "approved"),
    },
    // An approved request of another authy id.
    Row {
        call: Call::Wait,
        status: 200,
        headers: JSON,
        body: r#"{"approval_request":{"_authy_id":"1636","created_at":"{created_at_ms}","status":"approved"},"success":true}"#,
        expect: Expect::Code("ApprovalRequestMismatch"),
    },
    // authy-php tests/Authy/ApiTest.php, testCheckOneTouchApprovalWithInvalidUuid (its message,
    // without the fixture's trailing comma), with the error code 60049 of Twilio's codes table.
    Row {
        call: Call::Wait,
        status: 404,
        headers: JSON,
        body: r#"{"message":"Approval request not found: 90c2adc0-b184-0133-7bff-0e67b818e6fb","success":false,"errors":{"message":"Approval request not found: 90c2adc0-b184-0133-7bff-0e67b818e6fb"},"error_code":"60049"}"#,
        expect: Expect::Code("ApprovalRequestNotFound"),
    },
    // Twilio docs "Authy Return and Error Codes": 429 60003, Retry-After beyond the budget.
    Row {
        call: Call::Wait,
        status: 429,
        headers: &[("content-type", "application/json"), ("retry-after", "30")],
        body: r#"{"message":"DoS protection","success":false,"errors":{"message":"DoS protection"},"error_code":"60003"}"#,
        expect: Expect::Code("AuthyThrottled"),
    },
    // A proxy's HTML 502 and 503 in front of Authy.
    Row {
        call: Call::Wait,
        status: 502,
        headers: HTML,
        body: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
        expect: Expect::Code("AuthyUnavailable"),
    },
    Row {
        call: Call::Wait,
        status: 503,
        headers: HTML,
        body: "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
        expect: Expect::Code("AuthyUnavailable"),
    },
    // Twilio docs "Authy Return and Error Codes": 401, 60001.
    Row {
        call: Call::Wait,
        status: 401,
        headers: JSON,
        body: r#"{"message":"Invalid API key","success":false,"errors":{"message":"Invalid API key"},"error_code":"60001"}"#,
        expect: Expect::Code("AuthyApiKeyRejected"),
    },
];

/// `body` with its `{created_at}` / `{created_at_ms}` replaced by a time 2 s ago.
fn with_fresh_dates(body: &str) -> String {
    let when = SystemTime::now() - Duration::from_secs(2);
    body.replace(
        "{created_at_ms}",
        &humantime::format_rfc3339_millis(when).to_string(),
    )
    .replace(
        "{created_at}",
        &humantime::format_rfc3339_seconds(when).to_string(),
    )
}

/// A fake Authy answering every request with `status`, `headers` and `body`.
async fn replaying(status: u16, headers: &'static [(&str, &str)], body: String) -> FakeAuthy {
    FakeAuthy::serve(Router::new().fallback(move || {
        let body = body.clone();
        async move {
            let mut response = Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            response.body(axum::body::Body::from(body)).unwrap()
        }
    }))
    .await
}

/// Calls the row's function on a handler against a fake Authy replaying the row's answer;
/// returns the function's status and body and the (method, path) of each Authy request.
async fn replay(row: &Row) -> (u16, Value, Vec<(Method, String)>) {
    let authy = replaying(row.status, row.headers, with_fresh_dates(row.body)).await;
    let app = spawn_app_against(&authy.url, &[("APPROVAL_WAIT_SECONDS", "2")]).await;
    let (function, input) = match row.call {
        Call::Register => (
            "Register",
            json!({"email": "foo@bar.com", "phoneNumber": "+1 425 555 0100"}),
        ),
        Call::Push => ("CreateApprovalRequest", json!({"authyId": AUTHY_ID})),
        Call::Wait => (
            "WaitForAuthyApproval",
            json!({"authyId": AUTHY_ID, "approvalRequestId": V1_UUID}),
        ),
    };
    let (status, body) = app.call(function, input).await;
    let sent = authy
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    (status, body, sent)
}

/// Whether the function's answer is the row's expected one; `Err` says how it differs.
fn check(row: &Row, status: u16, body: &Value) -> Result<(), String> {
    match row.expect {
        Expect::Ok(claim, value) if status == 200 && body[claim] == value => Ok(()),
        Expect::Code(code) if status == 409 && body["code"] == code => {
            assert_b2c_error(body, code);
            Ok(())
        }
        _ => Err(format!("expected {:?}, got {status} {body}", row.expect)),
    }
}

#[tokio::test]
async fn every_recorded_answer_maps_to_its_documented_code() {
    // One row after the other, each within a 2 s budget (the first call of a handler may take
    // over 1 s on a busy machine); the pending and 5xx rows each use the whole budget.
    // The phone number metadata loads on first use, slowly in a debug build: not inside the
    // first Register's budget.
    b2c_authy::domain::PhoneNumber::parse("+1 425 555 0100").unwrap();
    let mut failures = Vec::new();
    for row in RECORDED {
        let (status, body, sent) = replay(row).await;
        let (method, path) = match row.call {
            Call::Register => (Method::POST, "/protected/json/users/new".to_owned()),
            Call::Push => (
                Method::POST,
                format!("/onetouch/json/users/{AUTHY_ID}/approval_requests"),
            ),
            Call::Wait => (
                Method::GET,
                format!("/onetouch/json/approval_requests/{V1_UUID}"),
            ),
        };
        assert!(
            !sent.is_empty(),
            "no Authy call for {:?}: {status} {body}",
            row.body
        );
        assert!(
            sent.iter().all(|s| *s == (method.clone(), path.clone())),
            "{sent:?}"
        );
        if let Err(e) = check(row, status, &body) {
            failures.push(format!("{:?} {} {}: {e}", row.call, row.status, row.body));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The table's check can fail: a row whose expectation is wrong is reported.
#[tokio::test]
async fn the_replay_check_can_fail() {
    let approved = RECORDED
        .iter()
        .find(|r| matches!(r.expect, Expect::Ok("approvalStatus", _)))
        .unwrap();
    let row = Row {
        expect: Expect::Code("ApprovalDenied"),
        ..*approved
    };
    let (status, body, _) = replay(&row).await;
    assert!(check(&row, status, &body).is_err(), "{status} {body}");
}
