//! The one way to fake Authy where the simulator cannot serve: a test writes the answers as an
//! axum [`Router`] on Authy's paths, [`FakeAuthy::serve`] serves it on a loopback port and
//! records every request the handler's Authy client sends, so a test asserts what went out
//! with plain `assert_eq!`s and counts requests per route.
//!
//! Faults are answers too: a hang or a body that drips is a [`dripping_body`], throttling is
//! a 429 with or without a `Retry-After` header. A reset connection is the one fault an HTTP
//! server cannot answer with, so [`ResettingAuthy`] accepts each TCP connection and closes it
//! without reading or answering.
//!
//! The simulator can be served through [`FakeAuthy::serve`] too, to count what it received.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::Router;

/// Authy's route that registers a user (`POST`).
pub const USERS_NEW: &str = "/protected/json/users/new";
/// Authy's route that creates an approval request, i.e. sends a push (`POST`).
pub const APPROVAL_REQUESTS: &str = "/onetouch/json/users/{authy_id}/approval_requests";
/// Authy's route that reads an approval request's status (`GET`).
pub const APPROVAL_REQUEST_STATUS: &str = "/onetouch/json/approval_requests/{uuid}";

/// Largest request body recorded, in bytes; the handler's Authy requests are a few hundred.
const RECORDED_BODY_LIMIT: usize = 1024 * 1024;

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`, ….
    pub method: Method,
    /// The path, percent-encoded as sent, without the query: `/protected/json/users/new`.
    pub path: String,
    /// The query string without its `?`; `None` when the URL had none.
    pub query: Option<String>,
    /// Every header as sent (names are case-insensitive).
    pub headers: HeaderMap,
    /// The whole body (at most 1 MiB is read).
    pub body: Bytes,
    /// When the request arrived (before it was answered).
    pub at: Instant,
}

impl Recorded {
    /// The value of header `name`; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body decoded as `application/x-www-form-urlencoded`: (name, value) pairs in the
    /// order sent, names and values percent-decoded (`user[email]`, not `user%5Bemail%5D`).
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// Which request this is among those the fake received with the same method and path: 0 for
/// the first. Every request carries it as an extension, so a handler that answers the n-th
/// poll differently takes `Extension(Nth(n)): Extension<Nth>`.
#[derive(Clone, Copy, Debug)]
pub struct Nth(pub usize);

/// A fake Authy on `127.0.0.1:<free port>`, serving a test's [`Router`] until the test's
/// runtime ends, and recording every request it receives (unrouted ones included).
pub struct FakeAuthy {
    /// `http://127.0.0.1:<port>`, no trailing slash: the `AUTHY_API_URL` to give the handler.
    pub url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeAuthy {
    /// Serves `router` on a free loopback port in a background task; returns at once, ready
    /// for connections.
    pub async fn serve(router: Router) -> Self {
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let recorder = log.clone();
        // `Router::layer` also wraps the fallback, so unrouted requests are recorded too.
        let router = router.layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let log = recorder.clone();
                async move {
                    let (mut parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, RECORDED_BODY_LIMIT)
                        .await
                        .expect("a request body the fake can read");
                    let recorded = Recorded {
                        method: parts.method.clone(),
                        path: parts.uri.path().to_owned(),
                        query: parts.uri.query().map(str::to_owned),
                        headers: parts.headers.clone(),
                        body: body.clone(),
                        at: Instant::now(),
                    };
                    // Recorded on arrival, so a request whose answer never finishes counts.
                    let nth = {
                        let mut log = log.lock().unwrap();
                        let nth = log
                            .iter()
                            .filter(|r| r.method == recorded.method && r.path == recorded.path)
                            .count();
                        log.push(recorded);
                        nth
                    };
                    parts.extensions.insert(Nth(nth));
                    next.run(Request::from_parts(parts, Body::from(body))).await
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, log }
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests with `method` matched `route`, an axum route pattern such as
    /// [`APPROVAL_REQUEST_STATUS`]: a `{name}` segment matches any one segment, other
    /// segments match exactly.
    pub fn count(&self, method: Method, route: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && route_matches(route, &r.path))
            .count()
    }
}

/// Whether `path` matches the axum route pattern `route` (`{name}` = one segment).
fn route_matches(route: &str, path: &str) -> bool {
    let (route, path): (Vec<&str>, Vec<&str>) =
        (route.split('/').collect(), path.split('/').collect());
    route.len() == path.len()
        && route
            .iter()
            .zip(&path)
            .all(|(r, p)| (r.starts_with('{') && r.ends_with('}') && !p.is_empty()) || r == p)
}

/// A response body that sends `chunk` `times` times, waiting `every` before each; the status
/// line and headers go out at once. One chunk after 60 s is a hang; 1,000 single bytes 300 ms
/// apart drip for five minutes.
pub fn dripping_body(chunk: &'static [u8], times: usize, every: Duration) -> Body {
    Body::from_stream(futures_util::stream::unfold(
        times,
        move |left| async move {
            if left == 0 {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok::<_, std::io::Error>(chunk), left - 1))
        },
    ))
}

/// An "Authy" that accepts every TCP connection on `127.0.0.1:<free port>` and closes it at
/// once, without reading the request or answering: the client sees a reset (or an early
/// end of stream), as when a proxy drops the connection.
pub struct ResettingAuthy {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    accepted: Arc<AtomicUsize>,
}

impl ResettingAuthy {
    /// Starts accepting in a background task; returns at once.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { url, accepted }
    }

    /// How many connections were accepted (and closed) so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
