//! Graceful shutdown: on SIGTERM the handler stops accepting, lets every in-flight invocation
//! finish inside its budget, then exits 0 — no user waiting on the approval page is cut off.
//!
//! This is for supervisors that send SIGTERM (a container runtime, systemd, a shell). The
//! Azure Functions host does not: it stops its worker with `Process.Kill()`, SIGKILL
//! (azure-functions-host, `Workers/ProcessManagement/WorkerProcess.cs`); `host_emulation.rs`
//! stops the handler that way.

use std::time::{Duration, Instant};

use crate::support::HandlerProcess;
use serde_json::json;

#[tokio::test]
async fn sigterm_during_held_waits_answers_every_one_then_exits_0() {
    let (handler, cert) =
        HandlerProcess::with_simulator(Duration::from_millis(1500), "shutdown-key", "3").await;
    let client = reqwest::Client::builder()
        .timeout(crate::support::CLIENT_TIMEOUT)
        .build()
        .unwrap();

    // 20 held waits: half will be approved (after 1.5 s), half never answered (0103).
    let mut waits = tokio::task::JoinSet::new();
    for i in 0..20 {
        let authy_id = if i % 2 == 0 {
            "14255550100"
        } else {
            "14255550103"
        };
        let request = client
            .post(format!("{}/api/WaitForAuthyApproval", handler.base))
            .header("X-ARR-ClientCert", &cert)
            .json(&json!({"authyId": authy_id}));
        waits.spawn(async move {
            let response = request.send().await.expect("answered, not cut off");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.expect("a JSON body");
            (authy_id, status, body)
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    handler.sigterm();

    // New connections are refused once the signal is handled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = reqwest::Client::new()
        .get(format!("{}/", handler.base))
        .send()
        .await;
    assert!(late.is_err(), "still accepting after SIGTERM");

    let mut approved = 0;
    while let Some(result) = waits.join_next().await {
        let (authy_id, status, body) = result.unwrap();
        if authy_id == "14255550100" {
            assert_eq!(status, 200, "{body}");
            approved += 1;
        } else {
            assert_eq!(status, 409, "{body}");
            assert_eq!(body["code"], "ApprovalPending");
        }
    }
    assert_eq!(approved, 10);
    let (status, _stdout, stderr) = handler.wait(Duration::from_secs(10)).await;
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "exit took {:?}: in-flight calls end inside their 3 s budget",
        signalled.elapsed()
    );
}
