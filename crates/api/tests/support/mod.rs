//! In-process harness for the API's own tests: the real router over an engine with no
//! languages and a backend that runs nothing, so the HTTP edge (guard, CORS, bodies) can be
//! tested without a sandbox. Requests go through `tower::ServiceExt::oneshot` and carry the
//! peer address the server would attach (`ConnectInfo`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use coderun_api::guard::{self, AuthConfig, CorsConfig, Guard, RateLimitConfig};
use coderun_api::AppState;
use coderun_engine::{Engine, EngineConfig};
use coderun_sandbox::{Backend, BoxFuture, BoxSpec, Check, Outcome, SandboxError};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A backend that never runs anything (no language is loaded, so nothing asks it to). It
/// holds the engine's scratch dir, so the dir is removed when the engine (its owner) is dropped.
struct NoBackend {
    _scratch: tempfile::TempDir,
}

impl Backend for NoBackend {
    fn name(&self) -> &'static str {
        "test"
    }

    fn run(&self, _spec: BoxSpec) -> BoxFuture<'_, Result<Outcome, SandboxError>> {
        Box::pin(async {
            Err(SandboxError::InvalidSpec(
                "the test backend runs nothing".into(),
            ))
        })
    }

    fn host_checks(&self) -> Vec<Check> {
        Vec::new()
    }
}

/// An engine with no languages over [`NoBackend`].
pub fn engine() -> Arc<Engine> {
    let scratch = tempfile::Builder::new()
        .prefix("coderun-api-test-")
        .tempdir()
        .expect("scratch dir");
    let path = scratch.path().to_path_buf();
    Arc::new(
        Engine::new(
            Arc::new(NoBackend { _scratch: scratch }) as Arc<dyn Backend>,
            EngineConfig::default(),
            Vec::new(),
            Path::new("/nonexistent/coderun"),
            path,
        )
        .expect("engine"),
    )
}

/// App state with the guard and CORS built from these configs, as the server builds them.
pub fn state(auth: &AuthConfig, rate: &RateLimitConfig, cors: &CorsConfig) -> AppState {
    let mut state = AppState::new(engine(), coderun_api::DEFAULT_BODY_LIMIT);
    state.guard = Arc::new(Guard::new(auth, rate).expect("guard config"));
    state.cors = guard::cors(cors).expect("cors config");
    state
}

/// The real router with these configs.
pub fn app(auth: &AuthConfig, rate: &RateLimitConfig, cors: &CorsConfig) -> Router {
    coderun_api::app(state(auth, rate, cors))
}

/// Auth with these keys (given in clear; the config holds their hashes).
pub fn keys(keys: &[&str]) -> AuthConfig {
    AuthConfig {
        key_sha256: keys.iter().map(|k| guard::hash_key(k)).collect(),
        ..AuthConfig::default()
    }
}

/// A rate limit of `per_second` with `burst`, trusting these proxies.
pub fn rate(per_second: u32, burst: u32, trusted: &[&str]) -> RateLimitConfig {
    RateLimitConfig {
        enabled: true,
        per_second,
        burst,
        trusted_proxies: trusted.iter().map(|t| t.parse().expect("ip")).collect(),
    }
}

/// A request from peer `from` (`ip:port`) with these headers (repeated names give repeated
/// header lines).
pub fn request(method: Method, path: &str, from: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Body::empty()).expect("request");
    req.extensions_mut().insert(ConnectInfo(
        from.parse::<SocketAddr>().expect("peer address"),
    ));
    req
}

/// A finished response: status, headers and the body as JSON (or a JSON string).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        status,
        headers,
        body,
    }
}

/// GET `path` from `from` with these headers.
pub async fn get(app: &Router, path: &str, from: &str, headers: &[(&str, &str)]) -> Answer {
    send(app, request(Method::GET, path, from, headers)).await
}
