//! The API answers in the language B2C sends (`uiLocale`, `{Culture:RFC5646}`), over real HTTP
//! against the simulator: `userMessage` of a refusal, the pending message with its marker, and
//! the push's title and detail names; English for any other language or none; the
//! administrator's own `AUTHY_APPROVAL_MESSAGE` stays as given.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{assert_b2c_error, simulator_record, spawn_app_against, spawn_simulator};
use crate::support::{TestApp, TEST_API_KEY};
use b2c_authy::error::ApiError;
use b2c_authy::messages::{Language, Message, PENDING_MARKER};
use b2c_authy::push_limits::SignInCode;

/// `uiLocale` as B2C may send it, and the language it means.
const LOCALES: [(&str, Language); 9] = [
    ("es", Language::Es),
    ("es-ES", Language::Es),
    ("fr-CA", Language::Fr),
    ("DE", Language::De),
    ("ja-JP", Language::Ja),
    ("en-US", Language::En),
    ("it-IT", Language::En),
    ("", Language::En),
    ("zh-Hans", Language::En),
];

async fn app(settings: &[(&str, &str)]) -> (TestApp, String) {
    let url = spawn_simulator(Duration::from_secs(60), TEST_API_KEY).await;
    (spawn_app_against(&url, settings).await, url)
}

/// WaitForAuthyApproval without an approval request, in a journey: it sends the push and
/// answers pending with the code at once. (status, body, the push as the simulator got it).
async fn push_and_pending(
    app: &TestApp,
    url: &str,
    authy_id: &str,
    ui_locale: &str,
) -> (Value, Value) {
    let (status, body) = app
        .call(
            "WaitForAuthyApproval",
            json!({
                "authyId": authy_id,
                "correlationId": format!("journey-{ui_locale}"),
                "email": "alice@example.com",
                "ipAddress": "203.0.113.7",
                "applicationName": "Contoso",
                "uiLocale": ui_locale,
            }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, created) = app
        .call(
            "CreateApprovalRequest",
            json!({"authyId": authy_id, "correlationId": format!("journey-{ui_locale}")}),
        )
        .await;
    let id = created["approvalRequestId"].as_str().unwrap().to_owned();
    let push = simulator_record(url, &format!("approval_requests/{id}")).await;
    (body, push)
}

#[tokio::test]
async fn user_messages_and_the_push_follow_ui_locale() {
    let (app, url) = app(&[
        ("PUSH_LIMIT_BURST_COUNT", "20"),
        ("PUSH_LIMIT_DAILY_COUNT", "40"),
    ])
    .await;
    let authy_id = app.register("+14255550100").await;
    for (ui_locale, language) in LOCALES {
        // A refusal of an input claim, in every function.
        let (status, body) = app
            .call(
                "Register",
                json!({"email": "not an address", "phoneNumber": "+14255550100", "uiLocale": ui_locale}),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(
            assert_b2c_error(&body, "InvalidEmail"),
            ApiError::InvalidEmail.user_message_in(language),
            "{ui_locale}"
        );
        for function in ["CreateApprovalRequest", "WaitForAuthyApproval"] {
            let (_, body) = app
                .call(function, json!({"authyId": "0123", "uiLocale": ui_locale}))
                .await;
            assert_eq!(
                assert_b2c_error(&body, "InvalidAuthyId"),
                Message::SomethingWentWrong.text(language),
                "{function} {ui_locale}"
            );
        }
        // The pending message quotes the code, in the language, behind the marker.
        let (body, push) = push_and_pending(&app, &url, &authy_id, ui_locale).await;
        let shown = assert_b2c_error(&body, "ApprovalPending");
        let code = push["details"][Message::PushDetailSignInCode.text(language)]
            .as_str()
            .unwrap_or_else(|| panic!("{ui_locale}: {push}"))
            .to_owned();
        let expected = ApiError::ApprovalPending {
            sign_in_code: SignInCode::parse(&code),
        }
        .user_message_in(language);
        assert_eq!(shown, expected, "{ui_locale}");
        assert!(shown.starts_with(PENDING_MARKER), "{shown}");
        // The push: title and detail names in the language.
        assert_eq!(
            push["message"],
            Message::PushMessage.text(language),
            "{push}"
        );
        let details = &push["details"];
        assert_eq!(
            details[Message::PushDetailAccount.text(language)],
            "alice@example.com",
            "{push}"
        );
        assert_eq!(
            details[Message::PushDetailIpAddress.text(language)],
            "203.0.113.7",
            "{push}"
        );
        assert_eq!(
            details[Message::PushDetailApplication.text(language)],
            "Contoso",
            "{push}"
        );
    }
    // The languages do differ (a handler that ignored uiLocale would pass the loop above only if
    // every language read like English).
    let texts: std::collections::BTreeSet<String> = Language::ALL
        .iter()
        .map(|l| ApiError::InvalidEmail.user_message_in(*l).into_owned())
        .collect();
    assert_eq!(texts.len(), Language::ALL.len());
}

#[tokio::test]
async fn a_claim_of_the_wrong_type_is_refused_in_the_language_asked_for() {
    let (app, _) = app(&[]).await;
    let (status, body) = app
        .call(
            "CreateApprovalRequest",
            json!({"authyId": ["1"], "uiLocale": "fr"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        assert_b2c_error(&body, "MalformedRequest"),
        Message::SomethingWentWrong.text(Language::Fr)
    );
}

#[tokio::test]
async fn the_administrators_push_title_stays_as_given_in_every_language() {
    let (app, url) = app(&[("AUTHY_APPROVAL_MESSAGE", "Contoso sign-in")]).await;
    let authy_id = app.register("+14255550100").await;
    let (_, push) = push_and_pending(&app, &url, &authy_id, "ja").await;
    assert_eq!(push["message"], "Contoso sign-in", "{push}");
    assert!(push["details"]["認証コード"].is_string(), "{push}");
}
