//! Every malformed call answers a 4xx with the B2C error body: never a 5xx, never a panic.
//! Phone numbers are parsed as B2C users type them.

use std::time::Duration;

use crate::support::{assert_b2c_error, spawn_app, TestApp};
use serde_json::json;

async fn app() -> TestApp {
    spawn_app(Duration::from_millis(50), &[("APPROVAL_WAIT_SECONDS", "2")]).await
}

#[tokio::test]
async fn bad_bodies_answer_4xx_in_the_b2c_shape() {
    let app = app().await;
    let uuid = "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38";
    let huge = format!(r#"{{"authyId":"1","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "Register",
            "application/json",
            b"".to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "application/json",
            b"{".to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "application/json",
            b"[]".to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "application/json",
            b"\"x\"".to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "application/json",
            b"{\"email\":\"\xff\xfe\"}".to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "text/plain",
            b"{}".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "Register",
            "application/json",
            huge.into_bytes(),
            413,
            "PayloadTooLarge",
        ),
        (
            "Register",
            "application/json",
            br#"{"phoneNumber":true}"#.to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "application/json",
            br#"{"phoneNumber":{"a":1}}"#.to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "application/json",
            br#"{"phoneNumber":1.5}"#.to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "Register",
            "application/json",
            br#"{}"#.to_vec(),
            409,
            "MissingClaim",
        ),
        (
            "Register",
            "application/json",
            br#"{"email":null,"signInName":"","phoneNumber":"+14255550100"}"#.to_vec(),
            409,
            "MissingClaim",
        ),
        (
            "Register",
            "application/json",
            br#"{"email":"a@example.com","phoneNumber":null}"#.to_vec(),
            409,
            "MissingClaim",
        ),
        (
            "Register",
            "application/json",
            br#"{"email":"not-an-email","phoneNumber":"+14255550100"}"#.to_vec(),
            409,
            "InvalidEmail",
        ),
        (
            "Register",
            "application/json",
            "{\"email\":\"a@example.com\",\"phoneNumber\":\"+١٤٢٥٥٥٥٠١٠٠\"}"
                .as_bytes()
                .to_vec(),
            409,
            "InvalidPhoneNumber",
        ),
        (
            "CreateApprovalRequest",
            "application/json",
            br#"{"authyId":null}"#.to_vec(),
            409,
            "MissingClaim",
        ),
        (
            "CreateApprovalRequest",
            "application/json",
            br#"{"authyId":"../1"}"#.to_vec(),
            409,
            "InvalidAuthyId",
        ),
        (
            "CreateApprovalRequest",
            "application/json",
            br#"{"authyId":"1?a=b"}"#.to_vec(),
            409,
            "InvalidAuthyId",
        ),
        (
            "CreateApprovalRequest",
            "application/json",
            br#"{"authyId":"1%2F2"}"#.to_vec(),
            409,
            "InvalidAuthyId",
        ),
        (
            "CreateApprovalRequest",
            "application/json",
            br#"{"authyId":"0012"}"#.to_vec(),
            409,
            "InvalidAuthyId",
        ),
        (
            "CreateApprovalRequest",
            "application/json",
            "{\"authyId\":\"١٢٣\"}".as_bytes().to_vec(),
            409,
            "InvalidAuthyId",
        ),
        (
            "CreateApprovalRequest",
            "application/json",
            br#"{"authyId":-5}"#.to_vec(),
            409,
            "InvalidAuthyId",
        ),
        (
            "WaitForAuthyApproval",
            "application/json",
            br#"{"approvalRequestId":"x"}"#.to_vec(),
            409,
            "MissingClaim",
        ),
        (
            "WaitForAuthyApproval",
            "application/json",
            br#"{"authyId":"1","approvalRequestId":"../../protected/json/users/new"}"#.to_vec(),
            409,
            "InvalidApprovalRequestId",
        ),
        (
            "WaitForAuthyApproval",
            "application/json",
            format!(r#"{{"authyId":"1","approvalRequestId":"{uuid}?x=1"}}"#).into_bytes(),
            409,
            "InvalidApprovalRequestId",
        ),
        (
            "WaitForAuthyApproval",
            "application/json",
            format!(r#"{{"authyId":"1","approvalRequestId":"{{{uuid}}}"}}"#).into_bytes(),
            409,
            "InvalidApprovalRequestId",
        ),
        (
            "WaitForAuthyApproval",
            "application/json",
            br#"{"authyId":"1","approvalRequestId":["a"]}"#.to_vec(),
            400,
            "MalformedRequest",
        ),
        (
            "NoSuchFunction",
            "application/json",
            b"{}".to_vec(),
            404,
            "NotFound",
        ),
    ];
    for (function, content_type, body, status, code) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(80)
            .collect::<String>();
        let (got, json) = app.post_raw(function, content_type, body).await;
        assert_eq!(got, status, "{function} {shown}: {json}");
        assert_b2c_error(&json, code);
    }
}

#[tokio::test]
async fn wrong_method_is_405_in_the_b2c_shape() {
    let app = app().await;
    for function in ["Register", "CreateApprovalRequest", "WaitForAuthyApproval"] {
        let response = app
            .client
            .get(format!("{}/api/{function}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
        assert_b2c_error(&response.json().await.unwrap(), "MethodNotAllowed");
    }
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_numbers_count_as_ids() {
    let app = app().await;
    let (status, body) = app
        .call(
            "Register",
            json!({"email": "a@example.com", "phoneNumber": "+1 425 555 0100", "objectId": "x", "extra": [1, 2]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call("CreateApprovalRequest", json!({"authyId": 14255550100u64}))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn phone_numbers_as_users_type_them() {
    let app = app().await;
    let accepted = [
        ("+1 (425) 555-0100", "14255550100"),
        ("+44 20 7946 0958", "442079460958"),
        ("+39 06 1234 5678", "390612345678"), // Italy keeps the leading 0
        ("+4407911123456", "447911123456"),   // trunk 0 after +44 dropped
        ("+1.425.555.0100", "14255550100"),
    ];
    for (phone, authy_id) in accepted {
        let (status, body) = app
            .call(
                "Register",
                json!({"signInName": "a@example.com", "phoneNumber": phone}),
            )
            .await;
        assert_eq!(status, 200, "{phone}: {body}");
        assert_eq!(body["authyId"], authy_id, "{phone}");
    }
    for phone in [
        "abc+15551234567",
        "+15551234567\n",
        "+12",
        "425 555 0100",
        "+1 425 555 0100 x12",
        "++14255550100",
    ] {
        let (status, body) = app
            .call(
                "Register",
                json!({"email": "a@example.com", "phoneNumber": phone}),
            )
            .await;
        assert_eq!(status, 409, "{phone:?}: {body}");
        let message = assert_b2c_error(&body, "InvalidPhoneNumber");
        assert!(message.contains("country code"), "{message}");
    }
}

#[tokio::test]
async fn a_claim_of_the_wrong_type_is_named_in_the_developer_message() {
    let app = app().await;
    for (function, body, claim) in [
        (
            "Register",
            r#"{"email":"a@example.com","phoneNumber":true}"#,
            "phoneNumber",
        ),
        ("WaitForAuthyApproval", r#"{"authyId":1e400}"#, "authyId"),
        (
            "CreateApprovalRequest",
            r#"{"x":1e400,"authyId":[1]}"#,
            "authyId",
        ),
    ] {
        let (status, json) = app
            .post_raw(function, "application/json", body.as_bytes().to_vec())
            .await;
        assert_eq!(status, 400, "{body}: {json}");
        assert_b2c_error(&json, "MalformedRequest");
        let message = json["developerMessage"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("claim '{claim}'")),
            "{body}: {message}"
        );
    }
}
