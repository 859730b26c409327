//! The built-in Authy simulator speaks like Authy where it matters to the handler: answered
//! requests keep their final status, unanswered ones expire, and odd inputs cannot break it.

use std::time::Duration;

use b2c_authy::authy::{AuthyClient, NewApprovalRequest};
use b2c_authy::domain::{ApprovalRequestId, AuthyId};
use secrecy::SecretString;
use serde_json::{json, Value};

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

// ---- Authy's request encodings, error bodies and answer shapes (issue 12). Sources of each
// ---- behaviour: docs/simulator.md, "What it reproduces of Authy".

const KEY: &str = "k";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Status and JSON body of a response.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `users/new` as authy-ruby sends it: a bracket form, key in the header.
async fn register_form(base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    answer(
        http()
            .post(format!("{base}/protected/json/users/new"))
            .header("X-Authy-API-Key", KEY)
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// GET a simulator path with the key in the header.
async fn get_json(base: &str, path: &str) -> (u16, Value) {
    answer(
        http()
            .get(format!("{base}{path}"))
            .header("X-Authy-API-Key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn users_new_accepts_every_encoding_the_client_libraries_send() {
    let base = simulator(Duration::from_millis(10)).await;
    let users_new = format!("{base}/protected/json/users/new");
    // authy-ruby: form brackets, key in the header, dashes in the cellphone.
    let (status, body) = register_form(
        &base,
        &[
            ("user[email]", "ann@example.com"),
            ("user[cellphone]", "202-555-0158"),
            ("user[country_code]", "1"),
        ],
    )
    .await;
    assert_eq!((status, &body["user"]["id"]), (200, &json!(12025550158u64)));
    assert_eq!(body["message"], "User created successfully.");
    assert_eq!(body["success"], true);
    // authy-python / authy-client: nested JSON, country code as a number; key in the query
    // string (node-authy's place for it).
    let (status, body) = answer(
        http()
            .post(format!("{users_new}?api_key={KEY}"))
            .json(&json!({"user": {"email": "bob@example.com", "cellphone": "(425) 555-0100", "country_code": 1},
                          "send_install_link_via_sms": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["user"]["id"]), (200, &json!(14255550100u64)));
    // Flat JSON, wrapped into `user` as Rails does; key as a JSON field.
    let (status, body) = answer(
        http()
            .post(&users_new)
            .json(&json!({"email": "cy@example.com", "cellphone": "7911 123456", "country_code": "44", "api_key": KEY}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &body["user"]["id"]),
        (200, &json!(447911123456u64))
    );
    // authy-php: every parameter in the query string of the POST, no body.
    let (status, body) = answer(
        http()
            .post(format!(
                "{users_new}?user%5Bemail%5D=di%40example.com&user%5Bcellphone%5D=312.345.6789&user%5Bcountry_code%5D=39&api_key={KEY}"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, &body["user"]["id"]),
        (200, &json!(393123456789u64))
    );
    // go-authy: the key as a form field.
    let (status, body) = answer(
        http()
            .post(&users_new)
            .form(&[
                ("api_key", KEY),
                ("user[email]", "ed@example.com"),
                ("user[cellphone]", "4255550100"),
                ("user[country_code]", "1"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["user"]["id"]), (200, &json!(14255550100u64)));
}

#[tokio::test]
async fn the_install_link_choice_is_recorded_as_sent() {
    let base = simulator(Duration::from_millis(10)).await;
    let user = |cellphone: &'static str, extra: Option<(&'static str, &'static str)>| {
        let mut form = vec![
            ("user[email]", "ann@example.com"),
            ("user[cellphone]", cellphone),
            ("user[country_code]", "1"),
        ];
        form.extend(extra);
        form
    };
    let cases = [
        (
            "4255550120",
            Some(("send_install_link_via_sms", "false")),
            json!("false"),
            false,
        ),
        (
            "4255550121",
            Some(("send_install_link_via_sms", "true")),
            json!("true"),
            true,
        ),
        // authy-php sends it inside `user`.
        (
            "4255550122",
            Some(("user[send_install_link_via_sms]", "0")),
            json!("0"),
            false,
        ),
        // Absent: Authy's default is to send it.
        ("4255550123", None, Value::Null, true),
    ];
    for (cellphone, extra, sent, sms) in cases {
        let (status, body) = register_form(&base, &user(cellphone, extra)).await;
        assert_eq!(status, 200, "{body}");
        let (status, recorded) = get_json(&base, &format!("/simulator/users/1{cellphone}")).await;
        assert_eq!(status, 200);
        assert_eq!(recorded["send_install_link_via_sms"], sent, "{cellphone}");
        assert_eq!(recorded["install_link_sms_sent"], sms, "{cellphone}");
        assert_eq!(recorded["email"], "ann@example.com");
    }
    // JSON booleans are kept as booleans.
    let (status, _) = answer(
        http()
            .post(format!("{base}/protected/json/users/new"))
            .header("X-Authy-API-Key", KEY)
            .json(&json!({"user": {"email": "a@example.com", "cellphone": "4255550124", "country_code": 1},
                          "send_install_link_via_sms": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (_, recorded) = get_json(&base, "/simulator/users/14255550124").await;
    assert_eq!(recorded["send_install_link_via_sms"], false);
    assert_eq!(recorded["install_link_sms_sent"], false);
    let (status, body) = get_json(&base, "/simulator/users/14255550199").await;
    assert_eq!((status, &body["error_code"]), (404, &json!("60026")));
}

#[tokio::test]
async fn an_invalid_cellphone_is_authys_60027_with_errors_per_field() {
    let base = simulator(Duration::from_millis(10)).await;
    for (cellphone, country_code) in [
        ("abc-1234", "1"),
        ("12", "1"),
        ("4255550100", "x"),
        ("", "1"),
    ] {
        let (status, body) = register_form(
            &base,
            &[
                ("user[email]", "ann@example.com"),
                ("user[cellphone]", cellphone),
                ("user[country_code]", country_code),
            ],
        )
        .await;
        // twilio/authy-ruby spec/authy/api_spec.rb "should return the error messages as a hash".
        assert_eq!(status, 400, "{cellphone}");
        assert_eq!(
            body,
            json!({
                "cellphone": "is invalid",
                "message": "User was not valid",
                "success": false,
                "errors": {"cellphone": "is invalid", "message": "User was not valid"},
                "error_code": "60027",
            }),
            "{cellphone}"
        );
    }
    // Not mailboxes: authy-client's status schema (`_user_email: is.email()`) would refuse
    // them later, so Authy must refuse them here.
    for email in [
        "not-an-email",
        "a@",
        "@example.com",
        "a@b",
        "a b@example.com",
    ] {
        let (status, body) = register_form(
            &base,
            &[
                ("user[email]", email),
                ("user[cellphone]", "4255550100"),
                ("user[country_code]", "1"),
            ],
        )
        .await;
        assert_eq!(
            (status, &body["error_code"]),
            (400, &json!("60027")),
            "{email}"
        );
        assert_eq!(body["errors"]["email"], "is invalid", "{email}");
    }
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_authys_60001_wherever_it_is_sent() {
    let base = simulator(Duration::from_millis(10)).await;
    let users_new = format!("{base}/protected/json/users/new");
    let form = [
        ("user[email]", "ann@example.com"),
        ("user[cellphone]", "4255550100"),
        ("user[country_code]", "1"),
    ];
    let attempts = [
        http().post(&users_new).form(&form),
        http().post(&users_new).header("X-Authy-API-Key", "wrong").form(&form),
        http().post(format!("{users_new}?api_key=wrong")).form(&form),
        http()
            .post(&users_new)
            .json(&json!({"api_key": "wrong", "user": {"email": "a@example.com", "cellphone": "4255550100", "country_code": 1}})),
        // The key is checked before the body is read as a request.
        http().post(&users_new).header("content-type", "text/plain").body("x"),
    ];
    for (i, attempt) in attempts.into_iter().enumerate() {
        let (status, body) = answer(attempt.send().await.unwrap()).await;
        assert_eq!(
            (status, body),
            (
                401,
                json!({"error_code": "60001", "message": "Invalid API key",
                       "errors": {"message": "Invalid API key"}, "success": false})
            ),
            "attempt {i}"
        );
    }
}

#[tokio::test]
async fn unknown_users_and_approval_requests_are_authys_404s() {
    let base = simulator(Duration::from_millis(10)).await;
    // 1635 cannot be "country code + national number": no enrolment ever gave it.
    let (status, body) = answer(
        http()
            .post(format!("{base}/onetouch/json/users/1635/approval_requests"))
            .header("X-Authy-API-Key", KEY)
            .form(&[("message", "Sign in")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"message": "User not found.", "success": false,
                   "errors": {"message": "User not found."}, "error_code": "60026"})
        )
    );
    let unknown = "c31a9c70-4e50-0132-2bd7-0a6d6a7e0c38";
    let (status, body) = get_json(
        &base,
        &format!("/onetouch/json/approval_requests/{unknown}"),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], "60049");
    assert_eq!(
        body["message"],
        format!("Approval request not found: {unknown}")
    );
    assert_eq!(body["errors"]["message"], body["message"]);
    assert_eq!(body["success"], false);
    // node-authy polls with the key in the query string only.
    let (status, body) = answer(
        http()
            .get(format!(
                "{base}/onetouch/json/approval_requests/{unknown}?api_key={KEY}"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error_code"]), (404, &json!("60049")));
}

/// Registers `cellphone` (country code 1) as `email`; returns the authy id.
async fn enrol(base: &str, email: &str, cellphone: &str) -> u64 {
    let (status, body) = register_form(
        base,
        &[
            ("user[email]", email),
            ("user[cellphone]", cellphone),
            ("user[country_code]", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["user"]["id"].as_u64().unwrap()
}

#[tokio::test]
async fn approval_request_details_come_as_json_or_as_form_brackets() {
    let base = simulator(Duration::from_millis(10)).await;
    let id = enrol(&base, "ann@example.com", "4255550100").await;
    let url = format!("{base}/onetouch/json/users/{id}/approval_requests");
    let expected = json!({
        "message": "Sign in",
        "details": {"Account": "ann@example.com", "Location": "Oslo"},
        "hidden_details": {"ip": "192.0.2.1"},
        "logos": [{"res": "default", "url": "https://example.com/a.png"},
                  {"res": "low", "url": "https://example.com/b.png"}],
        "seconds_to_expire": 120,
    });
    let as_json = http()
        .post(&url)
        .header("X-Authy-API-Key", KEY)
        .json(&expected);
    let as_form = http().post(&url).header("X-Authy-API-Key", KEY).form(&[
        ("message", "Sign in"),
        ("details[Account]", "ann@example.com"),
        ("details[Location]", "Oslo"),
        ("hidden_details[ip]", "192.0.2.1"),
        ("logos[][res]", "default"),
        ("logos[][url]", "https://example.com/a.png"),
        ("logos[][res]", "low"),
        ("logos[][url]", "https://example.com/b.png"),
        ("seconds_to_expire", "120"),
    ]);
    // authy-php: all of it in the query string of the POST.
    let as_query = http()
        .post(format!(
            "{url}?message=Sign+in&details%5BAccount%5D=ann%40example.com&details%5BLocation%5D=Oslo\
             &hidden_details%5Bip%5D=192.0.2.1&logos%5B%5D%5Bres%5D=default&logos%5B%5D%5Burl%5D=https%3A%2F%2Fexample.com%2Fa.png\
             &logos%5B%5D%5Bres%5D=low&logos%5B%5D%5Burl%5D=https%3A%2F%2Fexample.com%2Fb.png&seconds_to_expire=120&api_key={KEY}"
        ));
    for (name, request) in [("json", as_json), ("form", as_form), ("query", as_query)] {
        let (status, body) = answer(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["success"], true);
        let uuid = body["approval_request"]["uuid"].as_str().unwrap();
        let (_, sent) = get_json(&base, &format!("/simulator/approval_requests/{uuid}")).await;
        assert_eq!(sent, expected, "{name}");
    }
}

/// Pushes to `authy_id` with a JSON body; returns the uuid.
async fn push_json(base: &str, authy_id: u64, body: Value) -> String {
    let (status, answer) = answer(
        http()
            .post(format!(
                "{base}/onetouch/json/users/{authy_id}/approval_requests"
            ))
            .header("X-Authy-API-Key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["approval_request"]["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn seconds_to_expire_zero_never_expires_and_null_is_one_day() {
    let base = simulator(Duration::from_millis(10)).await;
    // 0103: never answered, so only its lifetime ends it.
    let id = enrol(&base, "ann@example.com", "4255550103").await;
    let never = push_json(&base, id, json!({"message": "m", "seconds_to_expire": 0})).await;
    let one_second = push_json(&base, id, json!({"message": "m", "seconds_to_expire": 1})).await;
    let null = push_json(
        &base,
        id,
        json!({"message": "m", "seconds_to_expire": null}),
    )
    .await;
    let absent = push_json(&base, id, json!({"message": "m"})).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let status_of = |uuid: String| {
        let base = base.clone();
        async move {
            get_json(&base, &format!("/onetouch/json/approval_requests/{uuid}"))
                .await
                .1
        }
    };
    let body = status_of(never).await;
    assert_eq!(body["approval_request"]["status"], "pending");
    assert_eq!(body["approval_request"]["seconds_to_expire"], 0);
    assert_eq!(body["approval_request"]["processed_at"], Value::Null);
    assert_eq!(
        status_of(one_second).await["approval_request"]["status"],
        "expired"
    );
    for uuid in [null, absent] {
        let body = status_of(uuid).await;
        assert_eq!(body["approval_request"]["status"], "pending");
        assert_eq!(body["approval_request"]["seconds_to_expire"], 86_400);
    }
}

fn is_object_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 24
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

#[tokio::test]
async fn the_status_answer_has_authys_shape_ids_email_and_processed_at() {
    let base = simulator(Duration::from_millis(1100)).await;
    let id = enrol(&base, "ann@example.com", "4255550100").await;
    let first = push_json(&base, id, json!({"message": "m"})).await;
    let second = push_json(&base, id, json!({"message": "m"})).await;
    // One of two UUIDs is shaped like Authy's own (not v4), and the handler's types and
    // client take both.
    let versions: Vec<usize> = [&first, &second]
        .iter()
        .map(|u| uuid::Uuid::parse_str(u).unwrap().get_version_num())
        .collect();
    assert!(
        versions.contains(&4) && versions.iter().any(|v| *v != 4),
        "{versions:?}"
    );
    for uuid in [&first, &second] {
        let parsed = ApprovalRequestId::parse(uuid).unwrap();
        assert_eq!(status(&base, &parsed).await, "pending");
    }
    let (_, pending) = get_json(&base, &format!("/onetouch/json/approval_requests/{first}")).await;
    let r = &pending["approval_request"];
    assert_eq!(r["processed_at"], Value::Null);
    assert_eq!(r["updated_at"], r["created_at"]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, done) = get_json(&base, &format!("/onetouch/json/approval_requests/{first}")).await;
    let r = &done["approval_request"];
    assert_eq!(r["status"], "approved");
    assert_eq!(r["_user_email"], "ann@example.com");
    assert_eq!(r["_authy_id"], id);
    assert_eq!(r["uuid"], first.as_str());
    for field in ["_id", "app_id", "user_id"] {
        assert!(is_object_id(&r[field]), "{field}: {}", r[field]);
    }
    let date = |v: &Value| humantime::parse_rfc3339(v.as_str().unwrap()).unwrap();
    let (created, processed) = (date(&r["created_at"]), date(&r["processed_at"]));
    assert!(
        processed > created,
        "processed_at is when it was answered: {r}"
    );
    assert_eq!(r["updated_at"], r["processed_at"]);
    // The user's ids are the same on every request; the request's own differ.
    let (_, other) = get_json(&base, &format!("/onetouch/json/approval_requests/{second}")).await;
    let o = &other["approval_request"];
    assert_eq!((&o["user_id"], &o["app_id"]), (&r["user_id"], &r["app_id"]));
    assert_ne!(o["_id"], r["_id"]);
}

/// End to end: the handler's `AUTHY_SEND_INSTALL_LINK_VIA_SMS` reaches the simulator on every
/// `Register`, and the simulator records whether Authy would text the install link (what a
/// user notices: an SMS or none). Default: sent.
#[tokio::test]
async fn the_handlers_install_link_setting_reaches_the_simulator() {
    use crate::support::{spawn_app_against, spawn_simulator, TEST_API_KEY};
    let authy = spawn_simulator(Duration::from_millis(10), TEST_API_KEY).await;
    for (setting, sms) in [(None, true), (Some("false"), false), (Some("true"), true)] {
        let settings: Vec<(&str, &str)> = setting
            .map(|v| ("AUTHY_SEND_INSTALL_LINK_VIA_SMS", v))
            .into_iter()
            .collect();
        let app = spawn_app_against(&authy, &settings).await;
        let (status, body) = app
            .call(
                "Register",
                json!({"email": "ann@example.com", "phoneNumber": "+1 425 555 0130"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let authy_id = body["authyId"].as_str().expect("authyId").to_owned();
        let recorded = crate::support::simulator_record(&authy, &format!("users/{authy_id}")).await;
        assert_eq!(
            recorded["install_link_sms_sent"], sms,
            "{setting:?}: {recorded}"
        );
    }
}

/// A bracket key nested past Rack's depth limit (100) is Authy's 400 / 60002, in the body or
/// the query string, and the simulator keeps answering: it once recursed once per bracket
/// and a 60 KB key overflowed the worker's stack, aborting the whole process.
#[tokio::test]
async fn bracket_keys_nested_past_racks_limit_are_60002_not_a_crash() {
    let base = simulator(Duration::from_millis(10)).await;
    let deep = format!("a{}=1", "[b]".repeat(20_000));
    let (status, body) = answer(
        http()
            .post(format!("{base}/protected/json/users/new"))
            .header("X-Authy-API-Key", KEY)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(deep.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error_code"]), (400, &json!("60002")));
    let (status, body) = answer(
        http()
            .post(format!(
                "{base}/protected/json/users/new?a{}=1",
                "[b]".repeat(200)
            ))
            .header("X-Authy-API-Key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error_code"]), (400, &json!("60002")));
    let (status, _) = register_form(
        &base,
        &[
            ("user[email]", "a@example.com"),
            ("user[cellphone]", "202-555-0158"),
            ("user[country_code]", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "the simulator still answers");
}

/// A path segment that is not UTF-8 is checked for the key first (401 60001), then is Authy's
/// 404 (60026 for an authy id, 60049 for an approval request), never axum's plain-text 400.
#[tokio::test]
async fn a_path_that_is_not_utf8_is_authys_404_after_the_key_check() {
    let base = simulator(Duration::from_millis(10)).await;
    let push = format!("{base}/onetouch/json/users/%FF/approval_requests");
    let (status, body) = answer(
        http()
            .post(&push)
            .header("X-Authy-API-Key", "wrong")
            .form(&[("message", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error_code"]), (401, &json!("60001")));
    let (status, body) = answer(
        http()
            .post(&push)
            .header("X-Authy-API-Key", KEY)
            .form(&[("message", "x")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["error_code"]), (404, &json!("60026")));
    let (status, body) = get_json(&base, "/onetouch/json/approval_requests/%FF").await;
    assert_eq!((status, &body["error_code"]), (404, &json!("60049")));
}
