//! The Authy client against a fake Authy ([`FakeAuthy`]): exact paths, the key header (never
//! the query string), form fields (the install-link field included), and every error shape.

use std::time::Duration;

use axum::body::Body;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use b2c_authy::authy::{ApprovalStatus, AuthyClient, AuthyError, NewApprovalRequest};
use b2c_authy::domain::{ApprovalRequestId, AuthyId, Email, PhoneNumber};
use secrecy::SecretString;
use serde_json::json;

use crate::support::fake_authy::{
    dripping_body, FakeAuthy, Recorded, ResettingAuthy, APPROVAL_REQUESTS, APPROVAL_REQUEST_STATUS,
    USERS_NEW,
};

const KEY: &str = "mock-key-123";
const UUID: &str = "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38";
const T: Duration = Duration::from_secs(2);

fn client(authy: &FakeAuthy) -> AuthyClient {
    AuthyClient::new(authy.url.parse().unwrap(), SecretString::from(KEY)).unwrap()
}

/// An answer with `status`, `headers` and `body`, and no other header (no content type unless
/// given).
fn answer(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(body.into()).unwrap()
}

/// The only request `authy` received; fails if it received none or more.
fn only_request(authy: &FakeAuthy) -> Recorded {
    let requests = authy.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    requests.into_iter().next().unwrap()
}

/// Asserts `request` carries the API key in `X-Authy-API-Key`, and nowhere in its URL (no
/// query string at all).
fn assert_key_in_header_only(request: &Recorded) {
    assert_eq!(request.header("x-authy-api-key"), Some(KEY), "{request:#?}");
    assert_eq!(request.query, None, "{request:#?}");
    assert!(!request.path.contains(KEY), "{request:#?}");
}

/// `pairs` as owned (name, value) pairs, to compare with [`Recorded::form`].
fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn register_user_sends_the_form_with_the_key_header_only() {
    let authy = FakeAuthy::serve(Router::new().route(
        USERS_NEW,
        post(|| async {
            // Authy's content type is not trusted.
            answer(
                200,
                &[("content-type", "text/html")],
                r#"{"message":"User created successfully.","user":{"id":1234},"success":true}"#,
            )
        }),
    ))
    .await;
    let id = client(&authy)
        .register_user(
            &Email::parse("alice@example.com").unwrap(),
            &PhoneNumber::parse("+39 06 1234 5678").unwrap(),
            T,
        )
        .await
        .unwrap();
    assert_eq!(id.as_str(), "1234");
    let sent = only_request(&authy);
    assert_eq!(sent.method, Method::POST);
    assert_eq!(sent.path, "/protected/json/users/new");
    assert_key_in_header_only(&sent);
    assert_eq!(
        sent.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        sent.form(),
        pairs(&[
            ("user[email]", "alice@example.com"),
            ("user[cellphone]", "0612345678"),
            ("user[country_code]", "39"),
            ("send_install_link_via_sms", "true"),
        ])
    );
}

/// `users/new` answered as Authy does; the tests read what was sent.
fn users_new_authy() -> Router {
    Router::new().route(
        USERS_NEW,
        post(|| async { answer(200, &[], r#"{"user":{"id":1234},"success":true}"#) }),
    )
}

/// The `send_install_link_via_sms` values of every `users/new` request `authy` received.
fn install_link_fields(authy: &FakeAuthy) -> Vec<String> {
    authy
        .requests()
        .iter()
        .filter(|r| r.path == USERS_NEW)
        .flat_map(|r| r.form())
        .filter(|(name, _)| name == "send_install_link_via_sms")
        .map(|(_, value)| value)
        .collect()
}

#[tokio::test]
async fn the_install_link_field_is_always_sent_as_configured() {
    // The client: Authy's default (true) unless told otherwise.
    for (client_setting, sent) in [(None, "true"), (Some(false), "false"), (Some(true), "true")] {
        let authy = FakeAuthy::serve(users_new_authy()).await;
        let client = match client_setting {
            None => client(&authy),
            Some(send) => client(&authy).with_send_install_link_via_sms(send),
        };
        client
            .register_user(
                &Email::parse("alice@example.com").unwrap(),
                &PhoneNumber::parse("+1 425 555 0100").unwrap(),
                T,
            )
            .await
            .unwrap();
        assert_eq!(install_link_fields(&authy), [sent], "{client_setting:?}");
    }
    // The handler: AUTHY_SEND_INSTALL_LINK_VIA_SMS reaches Register's call.
    for (setting, sent) in [
        (None, "true"),
        (Some("false"), "false"),
        (Some("TRUE"), "true"),
    ] {
        let authy = FakeAuthy::serve(users_new_authy()).await;
        let settings: Vec<(&str, &str)> = setting
            .map(|v| ("AUTHY_SEND_INSTALL_LINK_VIA_SMS", v))
            .into_iter()
            .collect();
        let app = crate::support::spawn_app_against(&authy.url, &settings).await;
        let (status, body) = app
            .call(
                "Register",
                json!({"email": "alice@example.com", "phoneNumber": "+1 425 555 0100"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(install_link_fields(&authy), [sent], "{setting:?}");
    }
}

/// The phone page promises the install-link SMS exactly when the handler sends it by default.
#[test]
fn the_enrolment_page_matches_the_install_link_default() {
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/AuthyExtensions.xml"
    ))
    .unwrap();
    let start = policy.find(r#"<ClaimType Id="phoneNumber">"#).unwrap();
    let claim = &policy[start..];
    let claim = &claim[..claim.find("</ClaimType>").unwrap()];
    let help = claim
        .split("<UserHelpText>")
        .nth(1)
        .and_then(|rest| rest.split("</UserHelpText>").next())
        .expect("phoneNumber has a UserHelpText");
    assert_eq!(
        help.contains("a link to install the Authy app"),
        b2c_authy::authy::DEFAULT_SEND_INSTALL_LINK_VIA_SMS,
        "phoneNumber's help text {help:?} vs AUTHY_SEND_INSTALL_LINK_VIA_SMS's default"
    );
}

#[tokio::test]
async fn create_approval_request_sends_message_details_and_expiry() {
    let authy = FakeAuthy::serve(Router::new().route(
        APPROVAL_REQUESTS,
        post(|| async {
            answer(
                200,
                &[],
                format!(r#"{{"approval_request":{{"uuid":"{UUID}"}},"success":true}}"#),
            )
        }),
    ))
    .await;
    let request = NewApprovalRequest {
        message: "Sign-in request".into(),
        details: vec![("Account".into(), "alice@example.com".into())],
        hidden_details: vec![("correlation_id".into(), "corr-1".into())],
        seconds_to_expire: 120,
    };
    let id = client(&authy)
        .create_approval_request(&AuthyId::parse("1234").unwrap(), &request, T)
        .await
        .unwrap();
    assert_eq!(id.to_string(), UUID);
    let sent = only_request(&authy);
    assert_eq!(sent.method, Method::POST);
    assert_eq!(sent.path, "/onetouch/json/users/1234/approval_requests");
    assert_key_in_header_only(&sent);
    assert_eq!(
        sent.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let mut form = sent.form();
    form.sort();
    assert_eq!(
        form,
        pairs(&[
            ("details[Account]", "alice@example.com"),
            ("hidden_details[correlation_id]", "corr-1"),
            ("message", "Sign-in request"),
            ("seconds_to_expire", "120"),
        ])
    );
}

#[tokio::test]
async fn approval_request_status_reads_status_and_owner() {
    let authy = FakeAuthy::serve(Router::new().route(
        APPROVAL_REQUEST_STATUS,
        get(|| async {
            answer(
                200,
                &[],
                json!({"approval_request": {"status": "denied", "_authy_id": 1234, "uuid": UUID}, "success": true})
                    .to_string(),
            )
        }),
    ))
    .await;
    let status = client(&authy)
        .approval_request_status(&ApprovalRequestId::parse(UUID).unwrap(), T)
        .await
        .unwrap();
    assert_eq!(status.status, ApprovalStatus::Denied);
    assert_eq!(status.authy_id, Some(AuthyId::parse("1234").unwrap()));
    let sent = only_request(&authy);
    assert_eq!(sent.method, Method::GET);
    assert_eq!(
        sent.path,
        format!("/onetouch/json/approval_requests/{UUID}")
    );
    assert_key_in_header_only(&sent);
}

/// Answers the status GET with `status`, `headers` and `body`, and returns the error.
async fn status_error(status: u16, headers: &[(&str, &str)], body: &str) -> AuthyError {
    let headers: Vec<(String, String)> = pairs(headers);
    let body = body.to_owned();
    let authy = FakeAuthy::serve(Router::new().route(
        APPROVAL_REQUEST_STATUS,
        get(move || async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            answer(status, &headers, body)
        }),
    ))
    .await;
    client(&authy)
        .approval_request_status(&ApprovalRequestId::parse(UUID).unwrap(), T)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn each_error_shape_is_classified() {
    assert!(matches!(
        status_error(
            500,
            &[("content-type", "text/html")],
            "<html><body>Internal error</body></html>"
        )
        .await,
        AuthyError::Unavailable { status: 500, .. }
    ));
    assert!(matches!(
        status_error(502, &[], "<html>Bad Gateway</html>").await,
        AuthyError::Unavailable { status: 502, .. }
    ));
    assert_eq!(
        status_error(
            429,
            &[("retry-after", "2")],
            r#"{"message":"DoS protection","success":false,"error_code":"60003"}"#
        )
        .await
        .retry_after(),
        Some(Duration::from_secs(2))
    );
    assert!(matches!(
        status_error(429, &[], "").await,
        AuthyError::Throttled {
            retry_after: None,
            ..
        }
    ));
    assert!(matches!(
        status_error(
            503,
            &[],
            r#"{"message":"Service unavailable","success":false}"#
        )
        .await,
        AuthyError::Unavailable { status: 503, .. }
    ));
    assert_eq!(
        status_error(
            401,
            &[],
            r#"{"message":"Invalid API key","success":false,"error_code":"60001"}"#
        )
        .await,
        AuthyError::InvalidApiKey
    );
    assert!(matches!(
        status_error(
            404,
            &[],
            r#"{"message":"Not found","success":false,"error_code":"60000"}"#
        )
        .await,
        AuthyError::NotFound { .. }
    ));
    match status_error(
        200,
        &[],
        r#"{"message":"Invalid request","success":false,"error_code":"60002"}"#,
    )
    .await
    {
        AuthyError::Rejected {
            error_code,
            message,
            ..
        } => {
            assert_eq!(error_code, "60002");
            assert_eq!(message, "Invalid request");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        status_error(200, &[], r#"{"approval_request":{"status":"#).await,
        AuthyError::MalformedResponse { .. }
    ));
    assert!(matches!(
        status_error(
            200,
            &[],
            r#"{"approval_request":{"status":"maybe"},"success":true}"#
        )
        .await,
        AuthyError::MalformedResponse { .. }
    ));
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_bounded_by_the_time_left() {
    let authy = FakeAuthy::serve(Router::new().route(
        APPROVAL_REQUEST_STATUS,
        get(|| async {
            // Headers at once, the body after 1.5 s.
            answer(
                200,
                &[],
                dripping_body(b"{}", 1, Duration::from_millis(1500)),
            )
        }),
    ))
    .await;
    let started = std::time::Instant::now();
    let error = client(&authy)
        .approval_request_status(
            &ApprovalRequestId::parse(UUID).unwrap(),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert_eq!(error, AuthyError::Timeout);
    assert!(started.elapsed() < Duration::from_millis(800));
}

#[tokio::test]
async fn a_reset_connection_is_a_connection_error() {
    let authy = ResettingAuthy::start().await;
    let client = AuthyClient::new(authy.url.parse().unwrap(), SecretString::from(KEY)).unwrap();
    let error = client
        .approval_request_status(&ApprovalRequestId::parse(UUID).unwrap(), T)
        .await
        .unwrap_err();
    assert!(matches!(error, AuthyError::Connection(_)), "{error:?}");
    assert!(!error.to_string().contains(KEY));
}

#[tokio::test]
async fn the_api_key_never_shows_in_debug_output() {
    let authy = FakeAuthy::serve(Router::new()).await;
    assert!(!format!("{:?}", client(&authy)).contains(KEY));
}

#[tokio::test]
async fn the_whole_journey_runs_against_a_mock_authy() {
    let authy = FakeAuthy::serve(
        Router::new()
            .route(
                USERS_NEW,
                post(|| async { answer(200, &[], r#"{"user":{"id":777},"success":true}"#) }),
            )
            .route(
                APPROVAL_REQUESTS,
                post(|| async {
                    answer(
                        200,
                        &[],
                        format!(r#"{{"approval_request":{{"uuid":"{UUID}"}},"success":true}}"#),
                    )
                }),
            )
            .route(
                APPROVAL_REQUEST_STATUS,
                get(|| async {
                    answer(
                        200,
                        &[],
                        json!({"approval_request": {"status": "approved", "_authy_id": 777, "created_at": crate::support::rfc3339_ago(5)}, "success": true})
                            .to_string(),
                    )
                }),
            ),
    )
    .await;
    let app =
        crate::support::spawn_app_against(&authy.url, &[("AUTHY_APPROVAL_TTL_SECONDS", "90")])
            .await;
    let (authy_id, id) = app.enrol_and_push("+1 425 555 0100").await;
    assert_eq!((authy_id.as_str(), id.as_str()), ("777", UUID));
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({"authyId": "777", "approvalRequestId": UUID}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approvalStatus"], "approved");

    let requests = authy.requests();
    // Every call through the handler: parameters only in a form body, the key only in its
    // header (never in a query string, the path or the body), which Authy also accepts as
    // `?api_key=` (Twilio docs) but a URL ends up in proxy logs.
    for request in &requests {
        assert_eq!(request.query, None, "{request:#?}");
        assert_eq!(
            request.header("x-authy-api-key"),
            Some(crate::support::TEST_API_KEY),
            "{request:#?}"
        );
        assert!(
            !request.path.contains(crate::support::TEST_API_KEY),
            "{request:#?}"
        );
        assert!(
            !String::from_utf8_lossy(&request.body).contains(crate::support::TEST_API_KEY),
            "{request:#?}"
        );
        assert!(
            !request.form().iter().any(|(name, _)| name == "api_key"),
            "{request:#?}"
        );
        if request.method == Method::POST {
            assert_eq!(
                request.header("content-type"),
                Some("application/x-www-form-urlencoded"),
                "{request:#?}"
            );
        } else {
            assert!(request.body.is_empty(), "{request:#?}");
        }
    }
    let register: Vec<_> = requests
        .iter()
        .filter(|r| r.method == Method::POST && r.path == "/protected/json/users/new")
        .collect();
    assert_eq!(register.len(), 1, "{requests:#?}");
    assert_eq!(
        register[0].header("x-authy-api-key"),
        Some(crate::support::TEST_API_KEY)
    );
    assert!(register[0]
        .form()
        .contains(&("user[cellphone]".into(), "4255550100".into())));
    assert!(register[0]
        .form()
        .contains(&("send_install_link_via_sms".into(), "true".into())));
    let pushes: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.method == Method::POST && r.path == "/onetouch/json/users/777/approval_requests"
        })
        .collect();
    assert_eq!(pushes.len(), 1, "one push: {requests:#?}");
    assert!(pushes[0]
        .form()
        .contains(&("seconds_to_expire".into(), "90".into())));
    assert!(
        authy.count(Method::GET, APPROVAL_REQUEST_STATUS) >= 1,
        "{requests:#?}"
    );
}
