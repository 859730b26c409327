//! The Authy client against a mock Authy (mockito): exact paths, the key header (never the
//! query string), form fields, and every error shape.


use std::time::Duration;

use b2c_authy::authy::{ApprovalStatus, AuthyClient, AuthyError, NewApprovalRequest};
use b2c_authy::domain::{ApprovalRequestId, AuthyId, Email, PhoneNumber};
use mockito::Matcher;
use secrecy::SecretString;
use serde_json::json;

const KEY: &str = "mock-key-123";
const UUID: &str = "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38";
const T: Duration = Duration::from_secs(2);

fn client(server: &mockito::Server) -> AuthyClient {
    AuthyClient::new(server.url().parse().unwrap(), SecretString::from(KEY)).unwrap()
}

#[tokio::test]
async fn register_user_sends_the_form_with_the_key_header_only() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/protected/json/users/new")
        .match_header("x-authy-api-key", KEY)
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_query(Matcher::Missing)
        .match_body(Matcher::AllOf(vec![
            Matcher::UrlEncoded("user[email]".into(), "alice@example.com".into()),
            Matcher::UrlEncoded("user[cellphone]".into(), "0612345678".into()),
            Matcher::UrlEncoded("user[country_code]".into(), "39".into()),
        ]))
        .with_header("content-type", "text/html") // Authy's content type is not trusted
        .with_body(r#"{"message":"User created successfully.","user":{"id":1234},"success":true}"#)
        .create_async()
        .await;
    let id = client(&server)
        .register_user(
            &Email::parse("alice@example.com").unwrap(),
            &PhoneNumber::parse("+39 06 1234 5678").unwrap(),
            T,
        )
        .await
        .unwrap();
    assert_eq!(id.as_str(), "1234");
    mock.assert_async().await;
}

#[tokio::test]
async fn create_approval_request_sends_message_details_and_expiry() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("POST", "/onetouch/json/users/1234/approval_requests")
        .match_header("x-authy-api-key", KEY)
        .match_query(Matcher::Missing)
        .match_body(Matcher::AllOf(vec![
            Matcher::UrlEncoded("message".into(), "Sign-in request".into()),
            Matcher::UrlEncoded("seconds_to_expire".into(), "120".into()),
            Matcher::UrlEncoded("details[Account]".into(), "alice@example.com".into()),
            Matcher::UrlEncoded("hidden_details[correlation_id]".into(), "corr-1".into()),
        ]))
        .with_body(format!(
            r#"{{"approval_request":{{"uuid":"{UUID}"}},"success":true}}"#
        ))
        .create_async()
        .await;
    let request = NewApprovalRequest {
        message: "Sign-in request".into(),
        details: vec![("Account".into(), "alice@example.com".into())],
        hidden_details: vec![("correlation_id".into(), "corr-1".into())],
        seconds_to_expire: 120,
    };
    let id = client(&server)
        .create_approval_request(&AuthyId::parse("1234").unwrap(), &request, T)
        .await
        .unwrap();
    assert_eq!(id.to_string(), UUID);
    mock.assert_async().await;
}

#[tokio::test]
async fn approval_request_status_reads_status_and_owner() {
    let mut server = mockito::Server::new_async().await;
    let mock = server
        .mock("GET", format!("/onetouch/json/approval_requests/{UUID}").as_str())
        .match_header("x-authy-api-key", KEY)
        .match_query(Matcher::Missing)
        .with_body(
            json!({"approval_request": {"status": "denied", "_authy_id": 1234, "uuid": UUID}, "success": true})
                .to_string(),
        )
        .create_async()
        .await;
    let status = client(&server)
        .approval_request_status(&ApprovalRequestId::parse(UUID).unwrap(), T)
        .await
        .unwrap();
    assert_eq!(status.status, ApprovalStatus::Denied);
    assert_eq!(status.authy_id, Some(AuthyId::parse("1234").unwrap()));
    mock.assert_async().await;
}

/// Answers the status GET with `status`, `headers` and `body`, and returns the error.
async fn status_error(status: usize, headers: &[(&str, &str)], body: &str) -> AuthyError {
    let mut server = mockito::Server::new_async().await;
    let mut mock = server
        .mock(
            "GET",
            format!("/onetouch/json/approval_requests/{UUID}").as_str(),
        )
        .with_status(status)
        .with_body(body);
    for (name, value) in headers {
        mock = mock.with_header(*name, value);
    }
    mock.create_async().await;
    client(&server)
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
    let mut server = mockito::Server::new_async().await;
    server
        .mock(
            "GET",
            format!("/onetouch/json/approval_requests/{UUID}").as_str(),
        )
        .with_chunked_body(|w| {
            std::thread::sleep(Duration::from_millis(1500));
            w.write_all(b"{}")
        })
        .create_async()
        .await;
    let started = std::time::Instant::now();
    let error = client(&server)
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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            drop(stream); // accept and close without answering
        }
    });
    let client = AuthyClient::new(url.parse().unwrap(), SecretString::from(KEY)).unwrap();
    let error = client
        .approval_request_status(&ApprovalRequestId::parse(UUID).unwrap(), T)
        .await
        .unwrap_err();
    assert!(matches!(error, AuthyError::Connection(_)), "{error:?}");
    assert!(!error.to_string().contains(KEY));
}

#[tokio::test]
async fn the_api_key_never_shows_in_debug_output() {
    let server = mockito::Server::new_async().await;
    assert!(!format!("{:?}", client(&server)).contains(KEY));
}

#[tokio::test]
async fn the_whole_journey_runs_against_a_mock_authy() {
    let mut server = mockito::Server::new_async().await;
    server
        .mock("POST", "/protected/json/users/new")
        .match_header("x-authy-api-key", crate::support::TEST_API_KEY)
        .match_body(Matcher::UrlEncoded(
            "user[cellphone]".into(),
            "4255550100".into(),
        ))
        .with_body(r#"{"user":{"id":777},"success":true}"#)
        .create_async()
        .await;
    server
        .mock("POST", "/onetouch/json/users/777/approval_requests")
        .match_body(Matcher::UrlEncoded("seconds_to_expire".into(), "90".into()))
        .with_body(format!(
            r#"{{"approval_request":{{"uuid":"{UUID}"}},"success":true}}"#
        ))
        .expect(1)
        .create_async()
        .await;
    server
        .mock(
            "GET",
            format!("/onetouch/json/approval_requests/{UUID}").as_str(),
        )
        .with_body(
            json!({"approval_request": {"status": "approved", "_authy_id": 777, "created_at": crate::support::rfc3339_ago(5)}, "success": true})
                .to_string(),
        )
        .create_async()
        .await;
    let app =
        crate::support::spawn_app_against(&server.url(), &[("AUTHY_APPROVAL_TTL_SECONDS", "90")]).await;
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
}
