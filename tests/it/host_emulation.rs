//! Runs the built `handler` binary behind an emulation of the Azure Functions host, built from
//! the host's source (Azure/azure-functions-host, `src/WebJobs.Script/Workers/Http/` and
//! `Extensions/HttpRequestExtensions.cs`; custom handler with `enableForwardingHttpRequest`):
//!
//! - start: a port in `FUNCTIONS_CUSTOMHANDLER_PORT`, then `GET /` every 25 ms for at most
//!   30 s, any HTTP answer counting as ready ([`HandlerProcess::start`]);
//! - forward: the caller's method, path (its casing, a trailing slash) and query string, all
//!   its headers, **plus** the host's own `X-Azure-Functions-InvocationId` and
//!   `X-Azure-Functions-HostVersion` appended (`DefaultHttpWorkerService.AddHeaders`); the body
//!   (with `Content-Type` and `Content-Length`) only when the caller's `Content-Length` is
//!   above 0 (`HttpRequestExtensions.ToHttpRequestMessage`): a chunked request reaches the
//!   worker with no body and fails as the host's own 500;
//! - stop: `Process.Kill()`, SIGKILL (`Workers/ProcessManagement/WorkerProcess.cs`).
//!
//! A full journey goes through it; the captured logs are checked for what they contain — and
//! what they must never contain.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use crate::support::HandlerProcess;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

const KEY: &str = "host-emulation-secret-key-9d2a";

/// The response header in which the emulated host tells the test which invocation id it gave.
const HOST_INVOCATION: &str = "x-test-host-invocation-id";

/// Starts the emulated host in front of the handler at `worker`; returns its base URL.
async fn emulate_host(worker: String) -> String {
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((reqwest::Client::new(), worker));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// One invocation, forwarded as the host forwards it.
async fn forward(
    State((client, worker)): State<(reqwest::Client, String)>,
    request: Request,
) -> Response {
    let invocation_id = uuid::Uuid::new_v4().to_string();
    let host_error = |status: StatusCode| {
        let mut response = status.into_response();
        response
            .headers_mut()
            .insert(HOST_INVOCATION, invocation_id.parse().unwrap());
        response
    };
    let (parts, body) = request.into_parts();
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        // Copied as a header with no content behind it: the host's HTTP client fails.
        return host_error(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut outgoing = client.request(parts.method.clone(), format!("{worker}{path_and_query}"));
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &parts.headers {
        // Content headers travel with the content only; the host's client sets its own Host.
        let content_header = [header::CONTENT_TYPE, header::CONTENT_LENGTH].contains(name);
        if *name != header::HOST && !content_header {
            headers.append(name.clone(), value.clone());
        }
    }
    append_as_dotnet_does(&mut headers, "x-azure-functions-hostversion", "4.1037.0.0");
    append_as_dotnet_does(
        &mut headers,
        "x-azure-functions-invocationid",
        &invocation_id,
    );
    if content_length > 0 {
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return host_error(StatusCode::INTERNAL_SERVER_ERROR);
        };
        if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        outgoing = outgoing.body(bytes);
    }
    let Ok(answer) = outgoing.headers(headers).send().await else {
        // The worker is gone (killed, restarting): the host answers for it.
        return host_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = response.body(Body::from(body)).unwrap();
    response
        .headers_mut()
        .insert(HOST_INVOCATION, invocation_id.parse().unwrap());
    response
}

/// `HttpRequestHeaders.Add` of a value to a header the request already has: .NET's
/// `HttpClient` then sends all its values as one comma-separated line (dotnet/runtime#63808).
fn append_as_dotnet_does(
    headers: &mut reqwest::header::HeaderMap,
    name: &'static str,
    value: &str,
) {
    let name = HeaderName::from_static(name);
    let mut values: Vec<String> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    values.push(value.to_owned());
    headers.insert(name, values.join(", ").parse().unwrap());
}

#[tokio::test]
async fn the_host_starts_forwards_to_and_kills_the_handler() {
    let (handler, cert) =
        HandlerProcess::with_simulator(Duration::from_millis(500), KEY, "7").await;
    let host = emulate_host(handler.base.clone()).await;
    let client = reqwest::Client::builder()
        .timeout(crate::support::CLIENT_TIMEOUT)
        .build()
        .unwrap();

    // The journey as B2C sends it to the host: its casing, a trailing slash, the function key
    // in the query string. `invocations` maps a label to the id the host gave that call.
    let mut invocations: Vec<(&str, String)> = Vec::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{host}{path}"))
            .header("X-ARR-ClientCert", &cert)
            .json(&body)
    };
    let host_id = |r: &reqwest::Response| r.headers()[HOST_INVOCATION].to_str().unwrap().to_owned();
    let r = post(
        "/api/register/?code=x",
        json!({"email": "alice@example.com", "phoneNumber": "+1 425 555 0100", "correlationId": "corr-host-1"}),
    )
    .send()
    .await
    .unwrap();
    let status = r.status();
    let register_id = host_id(&r);
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    invocations.push(("register", register_id));
    let authy_id = body["authyId"].as_str().unwrap().to_owned();
    let r = post(
        "/API/CreateApprovalRequest?code=x",
        json!({"authyId": authy_id, "email": "alice@example.com", "correlationId": "corr-host-1"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    invocations.push(("create", host_id(&r)));
    let id = r.json::<Value>().await.unwrap()["approvalRequestId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(
        "/api/waitforauthyapproval?code=x",
        json!({"authyId": authy_id, "approvalRequestId": id, "correlationId": "corr-host-1"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    invocations.push(("wait", host_id(&r)));

    // A caller that sends its own invocation id: the host appends its own, and the error
    // body and the logs carry the host's.
    let r = post(
        "/api/Register?code=x",
        json!({"email": "bob@example.com", "phoneNumber": "+1 425"}),
    )
    .header("X-Azure-Functions-InvocationId", "forged-by-the-caller")
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 409);
    let bad = host_id(&r);
    assert_eq!(r.headers()["x-azure-functions-invocationid"], bad.as_str());
    assert_eq!(r.json::<Value>().await.unwrap()["requestId"], bad.as_str());
    invocations.push(("bad", bad));

    // `Content-Length: 0`: the host forwards no body and no Content-Type, and the handler
    // answers in the B2C shape.
    let r = client
        .post(format!("{host}/api/Register"))
        .header("X-ARR-ClientCert", &cert)
        .header("Content-Type", "application/json")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    crate::support::assert_b2c_error(&r.json().await.unwrap(), "UnsupportedMediaType");

    // The host stops its worker with SIGKILL: no drain, no last log line, but every line
    // written so far is complete.
    handler.sigkill();
    let (status, stdout, stderr) = handler.wait(Duration::from_secs(10)).await;
    assert_eq!(status.signal(), Some(9), "exit status {status:?}");
    check_logs(&stdout, &stderr, &invocations);
    assert!(
        !format!("{stdout}{stderr}").contains(&cert[..40]),
        "the certificate was logged"
    );
    assert!(!stdout.contains("forged-by-the-caller"));
    // The worker is gone: the host answers for it, not in B2C's error shape.
    let r = post("/api/Register?code=x", json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|_| panic!("not one JSON object per line: {l:?}"))
        })
        .collect()
}

fn check_logs(stdout: &str, stderr: &str, invocations: &[(&str, String)]) {
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
    let line = |label: &str| {
        let (_, invocation) = invocations
            .iter()
            .find(|(l, _)| *l == label)
            .expect("a labelled invocation");
        *finished
            .iter()
            .find(|l| l["span"]["invocation_id"] == invocation.as_str())
            .unwrap_or_else(|| panic!("no invocation line for {label} ({invocation}): {stdout}"))
    };
    for (invocation, function, outcome) in [
        ("register", "Register", "Ok"),
        ("create", "CreateApprovalRequest", "Ok"),
        ("wait", "WaitForAuthyApproval", "Ok"),
        ("bad", "Register", "InvalidPhoneNumber"),
    ] {
        let l = line(invocation);
        assert_eq!(l["span"]["function"], function, "{l}");
        assert_eq!(l["outcome"], outcome, "{l}");
        assert!(l["duration_ms"].is_u64(), "{l}");
    }
    for invocation in ["register", "create", "wait"] {
        let l = line(invocation);
        assert_eq!(l["span"]["correlation_id"], "corr-host-1", "{l}");
        assert_eq!(l["span"]["authy_status"], 200, "{l}");
    }
}
