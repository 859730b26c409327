//! A slow or failing Authy never turns into a B2C timeout or a 5xx: every upstream fault of
//! the status poll answers its 409 inside the budget, and the poll honours `Retry-After`
//! within the budget. Authy is played by a [`FakeAuthy`] (or a [`ResettingAuthy`]) so each
//! fault is exact (a reset, a body that drips, a header or not).

use std::time::{Duration, Instant};

use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use serde_json::json;

use crate::support::fake_authy::{
    dripping_body, FakeAuthy, Nth, ResettingAuthy, APPROVAL_REQUEST_STATUS,
};
use crate::support::{assert_b2c_error, spawn_app_against, TestApp};

const UUID: &str = "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38";
const BUDGET: Duration = Duration::from_secs(2);

/// A fake Authy that serves `answer(n)` (n = 0, 1, … per status poll) on Authy's status path
/// and nothing else.
async fn stub<F>(answer: F) -> FakeAuthy
where
    F: Fn(usize) -> Response + Clone + Send + Sync + 'static,
{
    FakeAuthy::serve(axum::Router::new().route(
        APPROVAL_REQUEST_STATUS,
        get(move |Extension(Nth(n)): Extension<Nth>| {
            let answer = answer.clone();
            async move { answer(n) }
        }),
    ))
    .await
}

/// Status polls `authy` received so far.
fn polls(authy: &FakeAuthy) -> usize {
    authy.count(Method::GET, APPROVAL_REQUEST_STATUS)
}

async fn app(url: &str) -> TestApp {
    spawn_app_against(url, &[("APPROVAL_WAIT_SECONDS", "2")]).await
}

/// Calls WaitForAuthyApproval for authy id 123 and asserts the 409 `code`, inside the budget.
async fn assert_wait_fails_with(app: &TestApp, code: &str) {
    let started = Instant::now();
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": "123", "approvalRequestId": UUID}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 409, "{body}");
    assert_b2c_error(&body, code);
    assert!(took < BUDGET, "answered after {took:?}, budget {BUDGET:?}");
}

/// How a stub answers the n-th status poll.
type Answer = fn(usize) -> Response;

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Approved, created `age_seconds` ago (`None`: no `created_at` at all).
fn approved_created(age_seconds: Option<u64>) -> Response {
    let mut request = json!({"status": "approved", "_authy_id": 123});
    if let Some(age) = age_seconds {
        request["created_at"] = json!(crate::support::rfc3339_ago(age));
    }
    json_answer(
        StatusCode::OK,
        json!({"approval_request": request, "success": true}),
    )
}

fn approved() -> Response {
    approved_created(Some(2))
}

#[tokio::test]
async fn only_a_fresh_approval_signs_in() {
    // Authy keeps an approved request approved for ever: an approvalRequestId older than its
    // lifetime (120 s by default, plus 60 s of clock skew) must not pass a later wait.
    let authy = stub(|_| approved_created(Some(170))).await;
    let (status, body) = app(&authy.url)
        .await
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": "123", "approvalRequestId": UUID}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for stale in [Some(190), None] {
        let authy = stub(move |_| approved_created(stale)).await;
        assert_wait_fails_with(&app(&authy.url).await, "ApprovalExpired").await;
    }
}

#[tokio::test]
async fn a_404_that_is_not_authy_means_a_wrong_url_not_an_unknown_user() {
    let authy = stub(|_| (StatusCode::NOT_FOUND, "<html>Not Found</html>").into_response()).await;
    assert_wait_fails_with(&app(&authy.url).await, "AuthyUnavailable").await;
    // Register against a URL with no Authy behind it (the stub serves no users/new).
    let app = app(&format!("{}/typo", authy.url)).await;
    let (status, body) = app
        .call(
            "Register",
            json!({"email": "a@example.com", "phoneNumber": "+1 425 555 0100"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_b2c_error(&body, "AuthyUnavailable");
    assert!(
        body["developerMessage"]
            .as_str()
            .unwrap()
            .contains("AUTHY_API_URL"),
        "{body}"
    );
    assert_eq!(
        authy.count(Method::POST, "/typo/protected/json/users/new"),
        1,
        "{:#?}",
        authy.requests()
    );
}

#[tokio::test]
async fn server_errors_html_and_garbage_are_authy_unavailable() {
    let cases: Vec<(&str, Answer)> = vec![
        ("500 JSON", |_| {
            json_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "Internal error", "success": false}),
            )
        }),
        ("502 HTML", |_| {
            (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response()
        }),
        ("503", |_| {
            json_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"message": "Service unavailable", "success": false}),
            )
        }),
        ("malformed JSON", |_| {
            (StatusCode::OK, r#"{"approval_request": {"status": "appr"#).into_response()
        }),
        ("empty 200", |_| StatusCode::OK.into_response()),
        ("unknown status", |_| {
            json_answer(
                StatusCode::OK,
                json!({"approval_request": {"status": "maybe", "_authy_id": 123}, "success": true}),
            )
        }),
    ];
    for (name, answer) in cases {
        let authy = stub(answer).await;
        let app = app(&authy.url).await;
        assert_wait_fails_with(&app, "AuthyUnavailable").await;
        // Transient: the idempotent GET was retried within the budget.
        assert!(polls(&authy) >= 2, "{name}: not retried");
    }
}

#[tokio::test]
async fn success_false_in_each_error_code_shape_is_authy_rejected() {
    let shapes = [
        json!({"message": "Invalid request", "success": false, "errors": {"message": "Invalid request"}, "error_code": "60002"}),
        json!({"message": "Invalid request", "success": false, "error_code": 60002}),
        json!({"message": "Invalid request", "success": false}),
        json!({"success": false, "errors": {"message": "x"}}),
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        for status in [StatusCode::OK, StatusCode::BAD_REQUEST] {
            let body = shape.clone();
            let authy = stub(move |_| json_answer(status, body.clone())).await;
            let app = app(&authy.url).await;
            assert_wait_fails_with(&app, "AuthyRejected").await;
            assert_eq!(
                polls(&authy),
                1,
                "shape {i}, {status}: a refusal is not retried"
            );
        }
    }
    let authy = stub(|_| {
        json_answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid API key", "success": false, "error_code": "60001"}),
        )
    })
    .await;
    assert_wait_fails_with(&app(&authy.url).await, "AuthyApiKeyRejected").await;
    let authy = stub(|_| {
        json_answer(
            StatusCode::NOT_FOUND,
            json!({"message": "Not found", "success": false}),
        )
    })
    .await;
    assert_wait_fails_with(&app(&authy.url).await, "ApprovalRequestNotFound").await;
}

#[tokio::test]
async fn a_hang_and_a_dripping_body_end_inside_the_budget() {
    let authy = stub(|_| {
        let body = dripping_body(b"{", 1, Duration::from_secs(60));
        (StatusCode::OK, body).into_response()
    })
    .await;
    assert_wait_fails_with(&app(&authy.url).await, "AuthyUnavailable").await;
    let authy = stub(|_| {
        // One byte every 300 ms: the whole answer would take minutes.
        let body = dripping_body(b"{", 1000, Duration::from_millis(300));
        (StatusCode::OK, body).into_response()
    })
    .await;
    assert_wait_fails_with(&app(&authy.url).await, "AuthyUnavailable").await;
}

#[tokio::test]
async fn a_reset_connection_is_retried_then_authy_unavailable() {
    let authy = ResettingAuthy::start().await;
    assert_wait_fails_with(&app(&authy.url).await, "AuthyUnavailable").await;
    assert!(authy.accepted() >= 2, "a reset is transient: retried");
}

#[tokio::test]
async fn throttling_with_and_without_retry_after() {
    let authy = stub(|_| {
        json_answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": "DoS protection", "success": false, "error_code": "60003"}),
        )
    })
    .await;
    assert_wait_fails_with(&app(&authy.url).await, "AuthyThrottled").await;

    // Retry-After beyond the budget: no point waiting, answer at once.
    let authy = stub(|_| {
        let mut r = json_answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"success": false, "error_code": "60003"}),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, "30".parse().unwrap());
        r
    })
    .await;
    let started = Instant::now();
    assert_wait_fails_with(&app(&authy.url).await, "AuthyThrottled").await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "waited for a Retry-After past the budget"
    );
    assert_eq!(polls(&authy), 1);
}

#[tokio::test]
async fn the_status_poll_honours_retry_after_within_the_budget() {
    // First poll: 429 with Retry-After: 1; then approved. The poll interval is 250 ms, so a
    // second poll before 1 s would ignore Authy's request.
    let authy = stub(move |n| {
        if n == 0 {
            let mut r = json_answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"success": false, "error_code": "60003"}),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, "1".parse().unwrap());
            r
        } else {
            approved()
        }
    })
    .await;
    let app = app(&authy.url).await;
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": "123", "approvalRequestId": UUID}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = authy.requests();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "polled again after {gap:?}, Retry-After was 1 s"
    );
}
