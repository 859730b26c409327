//! What a misbehaving client can do to a connection, over raw TCP: no path panics the
//! handler, no half-sent request holds a connection or a shutdown past its bounds, and a
//! caller without a certificate learns nothing about the routes.

use std::time::{Duration, Instant};

use crate::support::{spawn_app, HandlerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `raw` on a new connection and reads until the server closes it or `limit` passes.
async fn exchange(base: &str, raw: &[u8], limit: Duration) -> (String, Duration) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[tokio::test]
async fn a_non_ascii_path_is_a_404_in_the_b2c_shape() {
    let app = spawn_app(Duration::from_millis(50), &[]).await;
    // As long as "/api/Register", with a two-byte character across the "/api/" boundary.
    let raw = format!(
        "POST /apiéegister HTTP/1.1\r\nHost: x\r\nX-ARR-ClientCert: {}\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}",
        app.client_cert
    );
    let (answer, _) = exchange(&app.base, raw.as_bytes(), Duration::from_secs(5)).await;
    assert!(status_line(&answer).contains(" 404 "), "{answer}");
    assert!(answer.contains(r#""code":"NotFound""#), "{answer}");
}

#[tokio::test]
async fn a_body_that_never_arrives_ends_inside_the_budget() {
    let app = spawn_app(Duration::from_millis(50), &[("APPROVAL_WAIT_SECONDS", "2")]).await;
    let head = format!(
        "POST /api/Register HTTP/1.1\r\nHost: x\r\nX-ARR-ClientCert: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        app.client_cert
    );
    let (answer, took) = exchange(&app.base, head.as_bytes(), Duration::from_secs(6)).await;
    assert!(status_line(&answer).contains(" 408 "), "{answer}");
    assert!(answer.contains(r#""code":"RequestTimeout""#), "{answer}");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_at_once() {
    let app = spawn_app(Duration::from_millis(50), &[]).await;
    let head = format!(
        "POST /api/Register HTTP/1.1\r\nHost: x\r\nX-ARR-ClientCert: {}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{",
        app.client_cert
    );
    let (answer, took) = exchange(&app.base, head.as_bytes(), Duration::from_secs(5)).await;
    assert!(status_line(&answer).contains(" 413 "), "{answer}");
    assert!(answer.contains(r#""code":"PayloadTooLarge""#), "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} for a body it refuses"
    );
}

#[tokio::test]
async fn headers_that_never_finish_are_cut_off() {
    let app = spawn_app(Duration::from_millis(50), &[]).await;
    let (answer, took) = exchange(
        &app.base,
        b"POST /api/Register HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(15),
    )
    .await;
    assert!(
        took < Duration::from_secs(8),
        "connection held {took:?}: {answer}"
    );
}

#[tokio::test]
async fn without_a_certificate_every_function_path_is_403_whatever_the_method() {
    let app = spawn_app(Duration::from_millis(50), &[]).await;
    for method in ["GET", "PUT", "DELETE", "POST"] {
        let raw = format!("{method} /api/Register HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        let (answer, _) = exchange(&app.base, raw.as_bytes(), Duration::from_secs(5)).await;
        assert!(status_line(&answer).contains(" 403 "), "{method}: {answer}");
    }
}

#[tokio::test]
async fn a_half_sent_request_does_not_hold_up_shutdown() {
    let (handler, _cert) = HandlerProcess::with_simulator(Duration::from_secs(2), "k", "2").await;
    let address = handler.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /api/Register HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    handler.sigterm();
    let (status, _, stderr) = handler.wait(Duration::from_secs(10)).await;
    assert!(status.success(), "{stderr}");
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "exit took {:?} with a half-sent request open",
        signalled.elapsed()
    );
    drop(stream);
}
