//! Property tests (proptest) of what users and B2C rely on, over generated inputs rather than a
//! fixed table:
//!
//! 1. Phone numbers: every valid number, typed with any mix of spaces, dashes, dots and
//!    parentheses (and, for the UK, the trunk 0 after +44), parses, and its `country_code()` +
//!    `cellphone()` are exactly its E.164 digits, which is what Authy enrols; the log form shows
//!    only the last four digits. Arbitrary strings never panic the parser, and anything that
//!    does not start with `+` or holds a letter is refused with `InvalidPhoneNumber`.
//! 2. Errors: every `ApiError` variant, built with arbitrary details, yields the body B2C reads
//!    (`version` 1.0.0, `status` 409, a non-empty `code` and `userMessage`), a 4xx, the same
//!    status and body through `IntoResponse`, and, in every language of the messages table, a
//!    `userMessage` that never carries the detail (internals go to `developerMessage` only), no
//!    placeholder left unfilled, and the pending marker exactly when the code is
//!    `ApprovalPending`. Every code is unique and documented in
//!    docs/api.md.
//! 3. Arbitrary bodies (JSON values of any shape, biased towards the real claim names, and raw
//!    bytes) POSTed over real HTTP to the three functions never get a 5xx or an
//!    `InternalError` (a caught panic): always a success with the output claims, or the B2C
//!    error body with the status its code implies; a body that is not a JSON object is always
//!    `400 MalformedRequest`.

use std::time::Duration;

use crate::support::{assert_b2c_error, spawn_app, TestApp};
use axum::response::IntoResponse;
use b2c_authy::domain::{InvalidPhoneNumber, PhoneNumber};
use b2c_authy::error::ApiError;
use b2c_authy::functions::FUNCTION_NAMES;
use b2c_authy::messages::{Language, PENDING_MARKER};
use b2c_authy::push_limits::SignInCode;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value};

// ------------------------------------------------------------------ 1. phone numbers

/// Valid numbers: (country calling code, national significant number), from
/// libphonenumber's example numbers (fixed and mobile) and docs/api.md's.
const VALID_NUMBERS: &[(&str, &str)] = &[
    ("1", "4255550100"),
    ("1", "2015550123"),
    ("44", "2079460958"),
    ("44", "7400123456"),
    ("39", "0612345678"), // Italy keeps the leading 0
    ("39", "3123456789"),
    ("33", "612345678"),
    ("33", "123456789"),
    ("49", "15123456789"),
    ("49", "30123456"),
    ("34", "612345678"),
    ("61", "412345678"),
    ("81", "9012345678"),
    ("91", "8123456789"),
    ("55", "11961234567"),
    ("86", "13123456789"),
    ("27", "711234567"),
    ("41", "781234567"),
    ("31", "612345678"),
    ("46", "701234567"),
    ("234", "8021234567"),
    ("65", "81234567"),
    ("7", "9123456789"),
];

/// How a user might type a number: the E.164 digits to expect and the typed text.
#[derive(Debug, Clone)]
struct TypedNumber {
    e164_digits: String,
    national: String,
    typed: String,
}

/// A valid number with random separators between digits (none, space, dash, dot), at most one
/// group of national digits in parentheses, and for the UK optionally the trunk 0. The country
/// code may run straight into the national digits (`+1425-555-0100`, `+14(2)55550100`).
fn typed_number() -> impl Strategy<Value = TypedNumber> {
    (
        prop::sample::select(VALID_NUMBERS),
        prop::collection::vec(prop::sample::select(&["", "", " ", "-", "."][..]), 20),
        prop::sample::select(&["", " ", "-", "."][..]),
        any::<bool>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(
            |((cc, national), separators, after_cc, parenthesise, start, length, trunk_zero)| {
                let digits: Vec<char> = if trunk_zero && cc == "44" {
                    std::iter::once('0').chain(national.chars()).collect()
                } else {
                    national.chars().collect()
                };
                // The parenthesised group: digits[open..close], at most 4 digits.
                let open = start.index(digits.len());
                let close = open + 1 + length.index(4.min(digits.len() - open));
                let mut typed = format!("+{cc}{after_cc}");
                for (i, digit) in digits.iter().enumerate() {
                    if i > 0 {
                        typed.push_str(separators[i % separators.len()]);
                    }
                    if parenthesise && i == open {
                        typed.push('(');
                    }
                    typed.push(*digit);
                    if parenthesise && i + 1 == close {
                        typed.push(')');
                    }
                }
                TypedNumber {
                    e164_digits: format!("{cc}{national}"),
                    national: national.to_owned(),
                    typed,
                }
            },
        )
}

fn assert_refused(input: &str) -> Result<(), TestCaseError> {
    match PhoneNumber::parse(input) {
        Err(InvalidPhoneNumber { .. }) => Ok(()),
        other => Err(TestCaseError::fail(format!(
            "{input:?} must be refused with InvalidPhoneNumber, got {other:?}"
        ))),
    }
}

proptest! {
    #[test]
    fn valid_numbers_parse_however_they_are_typed(number in typed_number()) {
        let phone = PhoneNumber::parse(&number.typed)
            .map_err(|e| TestCaseError::fail(format!("{:?} refused: {e}", number.typed)))?;
        prop_assert_eq!(
            format!("{}{}", phone.country_code(), phone.cellphone()),
            number.e164_digits.clone(),
            "typed {:?}", number.typed
        );
        prop_assert!(phone.cellphone().bytes().all(|b| b.is_ascii_digit()));
        // Logs never see the whole number.
        let masked = format!("{phone:?}");
        prop_assert!(masked.ends_with(&number.national[number.national.len() - 4..]));
        prop_assert!(!masked.contains(&number.national), "{} leaks {}", masked, number.national);
    }

    #[test]
    fn arbitrary_strings_never_panic_and_only_plus_digits_and_separators_parse(
        input in prop_oneof![
            any::<String>(),
            "[+]?[0-9 ().+-]{0,24}",
            "\\+[0-9]{1,3}[ 0-9a-zA-Z()./#?%-]{0,20}",
            "\\PC{0,6}\\+[0-9 ]{6,16}\\PC{0,6}",
        ]
    ) {
        match PhoneNumber::parse(&input) {
            Ok(phone) => {
                prop_assert!(input.starts_with('+'), "{:?} accepted without +", input);
                prop_assert!(
                    input[1..].chars().all(|c| c.is_ascii_digit() || " -.()".contains(c)),
                    "{:?} accepted with other characters", input
                );
                prop_assert!(!phone.country_code().is_empty());
                prop_assert!(phone.cellphone().bytes().all(|b| b.is_ascii_digit()));
                let digits: String = input.chars().filter(char::is_ascii_digit).collect();
                prop_assert!(
                    digits.ends_with(phone.cellphone()),
                    "{:?}: cellphone {} is not the number's tail", input, phone.cellphone()
                );
            }
            Err(e) => prop_assert!(matches!(e, InvalidPhoneNumber { .. }), "{e:?}"),
        }
        if !input.starts_with('+') || input.chars().any(char::is_alphabetic) {
            assert_refused(&input)?;
        }
    }

    #[test]
    fn a_letter_anywhere_is_refused(
        number in typed_number(),
        letter in prop_oneof![prop::char::range('a', 'z'), prop::char::range('A', 'Z'), any::<char>()]
            .prop_filter("a letter", |c| c.is_alphabetic()),
        at in any::<prop::sample::Index>(),
    ) {
        let mut typed: Vec<char> = number.typed.chars().collect();
        typed.insert(1 + at.index(typed.len()), letter);
        assert_refused(&typed.into_iter().collect::<String>())?;
    }

    #[test]
    fn a_number_not_starting_with_plus_is_refused(
        number in typed_number(),
        prefix in any::<char>().prop_filter("not +", |c| *c != '+'),
        drop_plus in any::<bool>(),
    ) {
        let typed = if drop_plus {
            number.typed[1..].to_owned()
        } else {
            format!("{prefix}{}", number.typed)
        };
        assert_refused(&typed)?;
    }
}

// ------------------------------------------------------------------- 2. error bodies

/// Marks every generated detail, so "the detail is not in userMessage" cannot pass or fail by
/// coincidence (an arbitrary detail such as "e" is inside most messages).
const SENTINEL: &str = "\u{1F6A9}internal-detail\u{1F6A9}";

/// Claim names a `MissingClaim` can carry (`&'static str`).
const CLAIMS: &[&str] = &[
    "email",
    "phoneNumber",
    "authyId",
    "approvalRequestId",
    "signInName",
];

/// Number of `ApiError` variants built by [`api_error`].
const VARIANTS: usize = 27;

/// Every variant, with `detail` wherever it carries a string.
fn api_error(index: usize, detail: String, claim: &'static str) -> ApiError {
    match index {
        0 => ApiError::MissingClaim { claim },
        1 => ApiError::InvalidPhoneNumber { reason: detail },
        2 => ApiError::InvalidEmail,
        3 => ApiError::InvalidAuthyId,
        4 => ApiError::InvalidApprovalRequestId,
        5 => ApiError::ApprovalPending {
            sign_in_code: SignInCode::parse("47"),
        },
        6 => ApiError::ApprovalDenied {
            pause: Some(Duration::from_secs(900)),
        },
        7 => ApiError::ApprovalExpired,
        8 => ApiError::ApprovalRequestNotFound { detail },
        9 => ApiError::ApprovalRequestMismatch,
        10 => ApiError::AuthyUserNotFound { detail },
        11 => ApiError::AuthyThrottled { detail },
        12 => ApiError::AuthyUnavailable { detail },
        13 => ApiError::AuthyRejected { detail },
        14 => ApiError::AuthyApiKeyRejected,
        15 => ApiError::MalformedRequest { detail },
        16 => ApiError::UnsupportedMediaType,
        17 => ApiError::PayloadTooLarge,
        18 => ApiError::MethodNotAllowed,
        19 => ApiError::NotFound,
        20 => ApiError::Internal,
        21 => ApiError::ClientCertificateRejected { reason: detail },
        22 => ApiError::RequestTimeout,
        23 => ApiError::PushLimitReached {
            retry_after: Duration::from_secs(61),
        },
        24 => ApiError::PushesPaused {
            retry_after: Duration::from_secs(1),
        },
        25 => ApiError::PushRequestInProgress,
        26 => ApiError::PushLimitsUnavailable,
        _ => unreachable!("only {VARIANTS} variants"),
    }
}

/// Whether the variant carries `detail` (then `developerMessage` must show it). Written as an
/// exhaustive match: a new `ApiError` variant does not compile here until it is added to
/// [`api_error`] too.
fn carries_detail(error: &ApiError) -> bool {
    match error {
        ApiError::InvalidPhoneNumber { .. }
        | ApiError::ApprovalRequestNotFound { .. }
        | ApiError::AuthyUserNotFound { .. }
        | ApiError::AuthyThrottled { .. }
        | ApiError::AuthyUnavailable { .. }
        | ApiError::AuthyRejected { .. }
        | ApiError::MalformedRequest { .. }
        | ApiError::ClientCertificateRejected { .. } => true,
        ApiError::MissingClaim { .. }
        | ApiError::InvalidEmail
        | ApiError::InvalidAuthyId
        | ApiError::InvalidApprovalRequestId
        | ApiError::ApprovalPending { .. }
        | ApiError::ApprovalDenied { .. }
        | ApiError::ApprovalExpired
        | ApiError::PushLimitReached { .. }
        | ApiError::PushesPaused { .. }
        | ApiError::PushRequestInProgress
        | ApiError::PushLimitsUnavailable
        | ApiError::ApprovalRequestMismatch
        | ApiError::AuthyApiKeyRejected
        | ApiError::UnsupportedMediaType
        | ApiError::PayloadTooLarge
        | ApiError::MethodNotAllowed
        | ApiError::RequestTimeout
        | ApiError::NotFound
        | ApiError::Internal => false,
    }
}

/// Details as they occur: anything, URLs, HTML pages, key-like strings, Authy error codes.
fn detail() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            any::<String>(),
            "https?://[a-z.]{1,20}(:[0-9]{2,5})?/[a-z/]{0,20}",
            "<html><body>[ -~]{0,40}</body></html>",
            "[A-Za-z0-9]{32}",
            "HTTP [45][0-9]{2}, error_code 600[0-9]{2}: [ -~]{0,30}",
        ],
        any::<String>(),
    )
        .prop_map(|(before, after)| format!("{before}{SENTINEL}{after}"))
}

fn body_json(response: axum::response::Response) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

proptest! {
    #[test]
    fn every_error_is_a_valid_b2c_body_without_internals_in_user_message(
        index in 0..VARIANTS,
        detail in detail(),
        claim in prop::sample::select(CLAIMS),
        request_id in "[!-~]{1,64}",
        language in prop::sample::select(&Language::ALL[..]),
    ) {
        let error = api_error(index, detail.clone(), claim);
        let status = error.http_status();
        prop_assert!(status.is_client_error(), "{error:?}: HTTP {status}");
        let body = serde_json::to_value(error.body(&request_id, language)).unwrap();
        prop_assert_eq!(&body["version"], "1.0.0");
        prop_assert_eq!(&body["status"], 409);
        prop_assert_eq!(&body["requestId"], request_id.as_str());
        let code = body["code"].as_str().unwrap_or_default();
        let user_message = body["userMessage"].as_str().unwrap_or_default();
        prop_assert!(!code.is_empty() && !user_message.trim().is_empty(), "{body}");
        prop_assert!(!user_message.contains(&detail) && !user_message.contains(SENTINEL), "{body}");
        // Every placeholder filled, with the typed value only.
        prop_assert!(!user_message.contains(['{', '}']), "{body}");
        if let ApiError::MissingClaim { claim } = &error {
            prop_assert!(!user_message.contains(claim), "{body}");
        }
        prop_assert_eq!(
            user_message.starts_with(PENDING_MARKER),
            code == "ApprovalPending",
            "{}", body
        );
        prop_assert_eq!(user_message.contains(PENDING_MARKER.trim()), code == "ApprovalPending");
        let developer_message = body["developerMessage"].as_str().unwrap_or_default();
        prop_assert!(!developer_message.is_empty());
        if carries_detail(&error) {
            prop_assert!(developer_message.contains(&detail), "{body}");
        }
        if let ApiError::MissingClaim { claim } = error {
            prop_assert!(developer_message.contains(claim), "{body}");
        }
        // What the handler actually sends outside an invocation: same status, same body (with a
        // generated requestId), in English.
        let response = error.clone().into_response();
        prop_assert_eq!(response.status(), status);
        let mut sent = body_json(response);
        prop_assert!(sent["requestId"].as_str().is_some_and(|id| !id.is_empty()));
        sent["requestId"] = Value::from(request_id.as_str());
        let english = serde_json::to_value(error.body(&request_id, Language::En)).unwrap();
        prop_assert_eq!(sent, english);
    }
}

#[test]
fn every_code_is_unique_and_documented_in_the_api_reference() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let mut codes: Vec<&str> = (0..VARIANTS)
        .map(|i| api_error(i, String::new(), "email").code())
        .collect();
    for code in &codes {
        assert!(
            readme.contains(&format!("`{code}`")),
            "code {code} is not documented in docs/api.md"
        );
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(
        codes.len(),
        VARIANTS,
        "two variants share a code: {codes:?}"
    );
}

// ------------------------------------------------------- 3. arbitrary bodies over HTTP

/// Over-HTTP cases per property: each is a real request, so few.
const HTTP_CASES: u32 = 64;

/// The claim names the three functions read.
const CLAIM_NAMES: [&str; 8] = [
    "uiLocale",
    "email",
    "signInName",
    "phoneNumber",
    "correlationId",
    "authyId",
    "approvalRequestId",
    "ipAddress",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&CLAIM_NAMES[..]).prop_map(str::to_owned),
        "[a-zA-Z_]{1,12}",
        any::<String>(),
    ]
}

/// Any JSON value: scalars of every type, arrays and objects nested up to 4 levels.
fn json_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    scalar.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A claim's value: mostly plausible strings (valid and invalid phones, emails, authy ids,
/// UUIDs, padded or path-like text), sometimes missing, an integer, or any JSON value (then
/// usually the wrong type).
fn claim_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => Just(Value::from("")),
        2 => typed_number().prop_map(|n| Value::from(n.typed)),
        1 => "\\+[0-9]{1,3}[ ()0-9.-]{4,16}".prop_map(Value::from),
        2 => "[a-z]{1,8}@[a-z]{1,8}\\.(com|org)".prop_map(Value::from),
        2 => prop::sample::select(VALID_NUMBERS).prop_map(|(cc, n)| Value::from(format!("{cc}{n}"))),
        1 => "[1-9][0-9]{0,21}".prop_map(Value::from),
        1 => "[ \t]?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}[ \t]?"
            .prop_map(Value::from),
        1 => "[./%?#0-9 ]{0,12}".prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => json_value(),
    ]
}

/// A value that suits the claim `name`, so that many bodies get past validation and reach
/// the simulator.
fn plausible(name: &str) -> BoxedStrategy<Value> {
    let text: BoxedStrategy<String> = match name {
        "email" | "signInName" => "[a-z]{1,8}@[a-z]{1,8}\\.(com|org)".boxed(),
        "phoneNumber" => typed_number().prop_map(|n| n.typed).boxed(),
        "authyId" => prop::sample::select(VALID_NUMBERS)
            .prop_map(|(cc, n)| format!("{cc}{n}"))
            .boxed(),
        "uiLocale" => "(en|es|fr|de|ja|ES|Fr|it|zh)(-[A-Za-z]{2})?".boxed(),
        "approvalRequestId" | "correlationId" => {
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".boxed()
        }
        _ => "[0-9]{1,3}(\\.[0-9]{1,3}){3}".boxed(),
    };
    text.prop_map(Value::from).boxed()
}

/// Mostly objects with some of the claims (plausible or not) and a few unknown fields,
/// sometimes any JSON value.
fn body() -> impl Strategy<Value = Value> {
    let claims: Vec<_> = CLAIM_NAMES
        .iter()
        .map(|name| prop::option::of(prop_oneof![2 => plausible(name), 1 => claim_value()]))
        .collect();
    let object = (
        claims,
        prop::collection::btree_map(key(), json_value(), 0..3),
    )
        .prop_map(|(claims, unknown)| {
            let mut object: Map<String, Value> = unknown.into_iter().collect();
            for (name, value) in CLAIM_NAMES.iter().zip(claims) {
                if let Some(value) = value {
                    object.insert((*name).to_owned(), value);
                }
            }
            Value::Object(object)
        });
    prop_oneof![6 => object, 1 => json_value()]
}

/// The status each code must be answered with (docs/api.md, "Errors").
fn status_of(code: &str) -> u16 {
    match code {
        "MalformedRequest" => 400,
        "PayloadTooLarge" => 413,
        "UnsupportedMediaType" => 415,
        "MethodNotAllowed" => 405,
        "RequestTimeout" => 408,
        "NotFound" => 404,
        "ClientCertificateRejected" => 403,
        _ => 409,
    }
}

/// The answer to one arbitrary body: a success with the function's output claims, or the B2C
/// error body with a code other than `InternalError` and the status that code implies.
fn check_answer(
    function: &str,
    is_object: bool,
    status: u16,
    json: &Value,
) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{function}: HTTP {status} {json}");
    if status == 200 {
        prop_assert!(
            is_object,
            "{function}: 200 for a body that is not an object: {json}"
        );
        let ok = match function {
            "Register" => json["authyId"]
                .as_str()
                .is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit())),
            "CreateApprovalRequest" => json["approvalRequestId"]
                .as_str()
                .is_some_and(|id| id.len() == 36),
            _ => {
                json["approvalStatus"] == "approved"
                    && json["approvalRequestId"]
                        .as_str()
                        .is_some_and(|id| id.len() == 36)
            }
        };
        prop_assert!(ok, "{function}: 200 without its output claims: {json}");
        return Ok(());
    }
    let code = json["code"].as_str().unwrap_or_default().to_owned();
    prop_assert!(
        code != "InternalError",
        "{function}: a handler panicked: {json}"
    );
    prop_assert_eq!(status, status_of(&code), "{}: {}", function, json);
    if !is_object {
        prop_assert_eq!(code.as_str(), "MalformedRequest", "{}: {}", function, json);
    }
    let shape = std::panic::catch_unwind(|| assert_b2c_error(json, &code));
    prop_assert!(shape.is_ok(), "{function}: not the B2C error body: {json}");
    Ok(())
}

fn http_app(runtime: &tokio::runtime::Runtime) -> TestApp {
    // Approvals answer after 50 ms and a call lasts at most 2 s, so a body that happens to
    // pass validation (and reaches the simulator) answers quickly too.
    runtime.block_on(spawn_app(
        Duration::from_millis(50),
        &[("APPROVAL_WAIT_SECONDS", "2")],
    ))
}

#[test]
fn arbitrary_json_bodies_never_get_a_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = http_app(&runtime);
    proptest!(ProptestConfig::with_cases(HTTP_CASES), |(
        function in prop::sample::select(&FUNCTION_NAMES[..]),
        body in body(),
    )| {
        let (status, json) =
            runtime.block_on(app.post_raw(function, "application/json", body.to_string().into_bytes()));
        check_answer(function, body.is_object(), status, &json)?;
    });
}

#[test]
fn arbitrary_bytes_never_get_a_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = http_app(&runtime);
    proptest!(ProptestConfig::with_cases(HTTP_CASES / 2), |(
        function in prop::sample::select(&FUNCTION_NAMES[..]),
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            "\\{[\"a-zA-Z0-9:,\\[\\]{} .\\\\-]{0,60}\\}?".prop_map(String::into_bytes),
        ],
    )| {
        let is_object = serde_json::from_slice::<Map<String, Value>>(&bytes).is_ok();
        let (status, json) = runtime.block_on(app.post_raw(function, "application/json", bytes));
        check_answer(function, is_object, status, &json)?;
    });
}
