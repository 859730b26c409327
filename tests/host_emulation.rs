//! Runs the built `handler` binary the way the Azure Functions host does: a port in
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, readiness by `GET /`, the caller's path forwarded as is
//! (`/api/register?code=...`) with `X-Azure-Functions-InvocationId`. Captures the logs of a
//! full journey and checks what they contain — and what they must never contain.

mod common;

use std::time::Duration;

use common::HandlerProcess;
use serde_json::{json, Value};

const KEY: &str = "host-emulation-secret-key-9d2a";

#[tokio::test]
async fn the_host_starts_probes_forwards_and_stops_the_handler() {
    let (handler, cert) =
        HandlerProcess::with_simulator(Duration::from_millis(500), KEY, "2").await;
    let client = reqwest::Client::builder()
        .timeout(common::CLIENT_TIMEOUT)
        .build()
        .unwrap();
    let base = handler.base.clone();

    // The journey, as forwarded by the host: caller's casing, query string, invocation id.
    let post = |path: &str, invocation: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .header("X-Azure-Functions-InvocationId", invocation)
            .header("X-ARR-ClientCert", &cert)
            .json(&body)
            .send()
    };
    let r = post(
        "/api/register?code=x",
        "inv-register",
        json!({"email": "alice@example.com", "phoneNumber": "+1 425 555 0100", "correlationId": "corr-host-1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let authy_id = r.json::<Value>().await.unwrap()["authyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(
        "/API/CreateApprovalRequest?code=x",
        "inv-create",
        json!({"authyId": authy_id, "email": "alice@example.com", "correlationId": "corr-host-1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["approvalRequestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(
        "/api/waitforauthyapproval?code=x",
        "inv-wait",
        json!({"authyId": authy_id, "approvalRequestId": id, "correlationId": "corr-host-1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(
        "/api/Register?code=x",
        "inv-bad",
        json!({"email": "bob@example.com", "phoneNumber": "+1 425"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["requestId"], "inv-bad");

    // SIGTERM (scale-in, redeploy): graceful exit 0.
    handler.sigterm();
    let (status, stdout, stderr) = handler.wait(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
    check_logs(&stdout, &stderr);
    assert!(
        !format!("{stdout}{stderr}").contains(&cert[..40]),
        "the certificate was logged"
    );
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|_| panic!("not one JSON object per line: {l:?}"))
        })
        .collect()
}

fn check_logs(stdout: &str, stderr: &str) {
    let all = format!("{stdout}{stderr}");
    assert!(!all.contains('\u{1b}'), "ANSI escape in logs");
    for secret in [
        KEY,
        "alice@example.com",
        "bob@example.com",
        "4255550100",
        "425 555 0100",
    ] {
        assert!(!all.contains(secret), "logs contain {secret:?}");
    }
    assert!(
        all.contains("+1******0100"),
        "masked phone expected in the Register log"
    );
    assert!(all.contains("a***@example.com"), "masked email expected");

    let out = parse_lines(stdout);
    let err = parse_lines(stderr);
    assert!(out
        .iter()
        .all(|l| l["level"] == "INFO" || l["level"] == "DEBUG" || l["level"] == "TRACE"));
    assert!(err
        .iter()
        .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"));

    let finished: Vec<&Value> = out
        .iter()
        .filter(|l| l["message"] == "invocation finished")
        .collect();
    let line = |invocation: &str| {
        *finished
            .iter()
            .find(|l| l["span"]["invocation_id"] == invocation)
            .unwrap_or_else(|| panic!("no invocation line for {invocation}: {stdout}"))
    };
    for (invocation, function, outcome) in [
        ("inv-register", "Register", "Ok"),
        ("inv-create", "CreateApprovalRequest", "Ok"),
        ("inv-wait", "WaitForAuthyApproval", "Ok"),
        ("inv-bad", "Register", "InvalidPhoneNumber"),
    ] {
        let l = line(invocation);
        assert_eq!(l["span"]["function"], function, "{l}");
        assert_eq!(l["outcome"], outcome, "{l}");
        assert!(l["duration_ms"].is_u64(), "{l}");
    }
    for invocation in ["inv-register", "inv-create", "inv-wait"] {
        let l = line(invocation);
        assert_eq!(l["span"]["correlation_id"], "corr-host-1", "{l}");
        assert_eq!(l["span"]["authy_status"], 200, "{l}");
    }
}
