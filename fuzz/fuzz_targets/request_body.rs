//! Fuzzes a function's request body the way the handler reads it.
//!
//! Each input is one body, sent with `Content-Type: application/json` through the handler's
//! own extractor, `ClaimsJson<T>` (a JSON object first, then the request struct with the
//! `Claim` type), for each of the three request types. A body that passes is then
//! validated as the handlers do before any Authy call: email (or signInName), phone number,
//! authy id, approval request id, correlation id, IP address.
//!
//! Checked on every input, beyond "no panic":
//! - a rejection is `MalformedRequest` with HTTP 400 (the content type is JSON and the body
//!   is small), and exactly when the body is not a JSON object or a claim has the wrong type;
//! - every claim that comes out is trimmed and non-empty (absent, `""` and `null` are `None`);
//! - every value the domain parsers accept is safe: an authy id is 1–20 ASCII digits without a
//!   leading zero, an approval request id prints as a 36-character lower-case UUID that parses
//!   back to itself, a phone's Authy parts are digits, and masking never panics;
//! - every error is a 4xx with a B2C body whose `userMessage` is non-empty.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::Request;
use b2c_authy::domain::{ApprovalRequestId, AuthyId, CorrelationId, Email, PhoneNumber};
use b2c_authy::error::ApiError;
use b2c_authy::functions::create_approval_request::CreateApprovalRequestRequest;
use b2c_authy::functions::register::RegisterRequest;
use b2c_authy::functions::wait_for_authy_approval::WaitForAuthyApprovalRequest;
use b2c_authy::functions::ClaimsJson;
use b2c_authy::messages::Language;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// The body through `ClaimsJson<T>`, as the router hands it to a handler.
fn extract<T: DeserializeOwned>(data: &[u8]) -> Result<T, ApiError> {
    let request = Request::builder()
        .method("POST")
        .uri("/api/Function")
        .header("content-type", "application/json")
        .body(Body::from(data.to_vec()))
        .expect("request");
    runtime()
        .block_on(ClaimsJson::<T>::from_request(request, &()))
        .map(|ClaimsJson(value)| value)
}

fn check_error(error: &ApiError) {
    let status = error.http_status();
    assert!(status.is_client_error(), "{error:?} answers {status}");
    for language in Language::ALL {
        let body = error.body("fuzz", language);
        assert_eq!(body.status, 409);
        assert!(!body.code.is_empty() && !body.user_message.is_empty());
    }
}

fn check_claim(claim: &Option<String>) {
    if let Some(value) = claim {
        assert!(!value.is_empty(), "an empty claim must be None");
        assert_eq!(value, value.trim(), "claims are trimmed");
    }
}

/// The outcome of `ClaimsJson` must match the contract: 400 exactly when the body is not an
/// object or a known claim has the wrong type. Unknown fields only need to be JSON: they are
/// never built, so their numbers and nesting depth do not matter.
fn check_rejection<T>(data: &[u8], outcome: &Result<T, ApiError>, claims: &[&str]) {
    let object = serde_json::from_slice::<BTreeMap<String, Box<RawValue>>>(data).ok();
    let well_typed = object.as_ref().is_some_and(|object| {
        claims.iter().all(|name| {
            match object
                .get(*name)
                .map(|raw| serde_json::from_str::<Value>(raw.get()))
            {
                None | Some(Ok(Value::Null | Value::String(_))) => true,
                Some(Ok(Value::Number(n))) => n.is_i64() || n.is_u64(),
                Some(_) => false,
            }
        })
    });
    match outcome {
        Ok(_) => assert!(
            well_typed,
            "accepted a body that is not an object of claims"
        ),
        Err(error) => {
            check_error(error);
            assert!(
                matches!(error, ApiError::MalformedRequest { .. }),
                "a JSON body can only be malformed, got {error:?}"
            );
            assert!(!well_typed, "refused a well-typed object: {error:?}");
        }
    }
}

fn check_email(email: &Option<String>, sign_in_name: &Option<String>) {
    if let Some(raw) = email.as_ref().or(sign_in_name.as_ref()) {
        match Email::parse(raw) {
            Ok(email) => {
                assert_eq!(email.as_str(), raw);
                let _ = email.masked();
            }
            Err(error) => {
                let error = ApiError::from(error);
                assert_eq!(error, ApiError::InvalidEmail);
                check_error(&error);
            }
        }
    }
}

fn check_authy_id(raw: &Option<String>) {
    if let Some(raw) = raw {
        match AuthyId::parse(raw) {
            Ok(id) => {
                let digits = id.as_str();
                assert!((1..=AuthyId::MAX_DIGITS).contains(&digits.len()));
                assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'));
            }
            Err(error) => {
                let error = ApiError::from(error);
                assert_eq!(error, ApiError::InvalidAuthyId);
                check_error(&error);
            }
        }
    }
}

fn check_approval_request_id(raw: &Option<String>) {
    if let Some(raw) = raw {
        match ApprovalRequestId::parse(raw) {
            Ok(id) => {
                let text = id.to_string();
                assert_eq!(text.len(), 36);
                assert!(text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-'));
                assert_eq!(text, raw.to_ascii_lowercase());
                assert_eq!(ApprovalRequestId::parse(&text), Ok(id));
            }
            Err(error) => {
                let error = ApiError::from(error);
                assert_eq!(error, ApiError::InvalidApprovalRequestId);
                check_error(&error);
            }
        }
    }
}

fn check_phone(raw: &Option<String>) {
    if let Some(raw) = raw {
        match PhoneNumber::parse(raw) {
            Ok(phone) => {
                assert!(raw.starts_with('+'));
                let country_code = phone.country_code();
                assert!(
                    !country_code.is_empty() && country_code.bytes().all(|b| b.is_ascii_digit())
                );
                assert!(!phone.cellphone().is_empty());
                assert!(phone.cellphone().bytes().all(|b| b.is_ascii_digit()));
                let _ = phone.masked();
            }
            Err(error) => {
                let error = ApiError::from(error);
                assert!(matches!(error, ApiError::InvalidPhoneNumber { .. }));
                check_error(&error);
            }
        }
    }
}

fn check_correlation_id(raw: &Option<String>) {
    if let Some(id) = raw.as_deref().and_then(CorrelationId::parse) {
        assert!(id.as_str().len() <= CorrelationId::MAX_LEN);
    }
}

fuzz_target!(|data: &[u8]| {
    let register = extract::<RegisterRequest>(data);
    check_rejection(
        data,
        &register,
        &["email", "signInName", "phoneNumber", "correlationId"],
    );
    if let Ok(request) = register {
        for claim in [
            &request.email,
            &request.sign_in_name,
            &request.phone_number,
            &request.correlation_id,
        ] {
            check_claim(claim);
        }
        check_email(&request.email, &request.sign_in_name);
        check_phone(&request.phone_number);
        check_correlation_id(&request.correlation_id);
    }

    let create = extract::<CreateApprovalRequestRequest>(data);
    check_rejection(
        data,
        &create,
        &[
            "authyId",
            "email",
            "signInName",
            "correlationId",
            "ipAddress",
        ],
    );
    if let Ok(request) = create {
        for claim in [
            &request.authy_id,
            &request.email,
            &request.sign_in_name,
            &request.correlation_id,
            &request.ip_address,
        ] {
            check_claim(claim);
        }
        check_authy_id(&request.authy_id);
        check_email(&request.email, &request.sign_in_name);
        check_correlation_id(&request.correlation_id);
        if let Some(ip) = request.ip_address.as_deref() {
            let _ = ip.parse::<std::net::IpAddr>();
        }
    }

    let wait = extract::<WaitForAuthyApprovalRequest>(data);
    check_rejection(
        data,
        &wait,
        &[
            "authyId",
            "approvalRequestId",
            "email",
            "signInName",
            "correlationId",
        ],
    );
    if let Ok(request) = wait {
        for claim in [
            &request.authy_id,
            &request.approval_request_id,
            &request.email,
            &request.sign_in_name,
            &request.correlation_id,
        ] {
            check_claim(claim);
        }
        check_authy_id(&request.authy_id);
        check_approval_request_id(&request.approval_request_id);
        check_email(&request.email, &request.sign_in_name);
        check_correlation_id(&request.correlation_id);
    }
});
