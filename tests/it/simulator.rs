//! The built-in Authy simulator speaks like Authy where it matters to the handler: answered
//! requests keep their final status, unanswered ones expire, and odd inputs cannot break it.

use std::time::Duration;

use b2c_authy::authy::{AuthyClient, NewApprovalRequest};
use b2c_authy::domain::{ApprovalRequestId, AuthyId};
use secrecy::SecretString;
use serde_json::Value;

/// Timeout of each simulator call.
const T: Duration = Duration::from_secs(2);

async fn simulator(approve_after: Duration) -> String {
    crate::support::spawn_simulator(approve_after, "k").await
}

/// The project's own Authy client, pointed at the simulator.
fn authy(base: &str) -> AuthyClient {
    AuthyClient::new(base.parse().unwrap(), SecretString::from("k")).unwrap()
}

async fn push(base: &str, authy_id: &str, seconds_to_expire: u64) -> ApprovalRequestId {
    let request = NewApprovalRequest {
        message: "Sign-in request".into(),
        seconds_to_expire,
        ..Default::default()
    };
    authy(base)
        .create_approval_request(&AuthyId::parse(authy_id).unwrap(), &request, T)
        .await
        .unwrap()
}

async fn status(base: &str, id: &ApprovalRequestId) -> &'static str {
    authy(base)
        .approval_request_status(id, T)
        .await
        .unwrap()
        .status
        .as_str()
}

#[tokio::test]
async fn answered_requests_stay_final_and_unanswered_ones_expire() {
    let base = simulator(Duration::from_millis(200)).await;
    let approved = push(&base, "14255550100", 1).await;
    let denied = push(&base, "14255550101", 1).await;
    let never = push(&base, "14255550103", 1).await;
    assert_eq!(status(&base, &approved).await, "pending");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        status(&base, &approved).await,
        "approved",
        "Authy never expires an approved request"
    );
    assert_eq!(status(&base, &denied).await, "denied");
    assert_eq!(status(&base, &never).await, "expired");
}

#[tokio::test]
async fn a_huge_seconds_to_expire_is_capped_not_a_crash() {
    let base = simulator(Duration::from_millis(10)).await;
    let id = push(&base, "14255550100", u64::MAX).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(status(&base, &id).await, "approved");
}

#[tokio::test]
async fn a_wrong_key_is_authys_60001() {
    let base = simulator(Duration::from_millis(10)).await;
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/onetouch/json/approval_requests/c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38"
        ))
        .header("X-Authy-API-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], "60001");
    assert_eq!(body["success"], false);
}
