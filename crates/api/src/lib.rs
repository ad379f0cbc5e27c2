//! coderun's HTTP API. `app(state)` builds the router; the binary serves it.
//!
//! | route | what |
//! |---|---|
//! | `POST /execute` | run a program (see [`types::ExecuteBody`]) |
//! | `GET /health` | cached sandbox self-check; 200 healthy, 503 not |
//! | `GET /languages` | languages with aliases, versions, availability |
//! | `GET /livez` | liveness |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /` | name, version, languages, endpoints |
//! | `GET /openapi.json` | the OpenAPI 3 description ([`openapi::ApiDoc`]) |
//! | `GET /docs` | Swagger UI (offline, vendored assets) |
//!
//! Errors are always JSON `{"detail", "code"}` ([`error::ApiError`]), 404 and 405 included.

pub mod error;
pub mod guard;
pub mod metrics;
pub mod openapi;
pub mod types;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coderun_engine::Engine;
use serde::de::DeserializeOwned;

pub use error::ApiError;
use error::ErrorBody;
use types::{
    ExecuteBody, ExecuteResponse, HealthBody, HealthNotReady, HealthReport, HealthStatus,
    LanguageList, LiveStatus, Liveness, NotReadyStatus, SandboxCheck, ServiceInfo,
};

/// Largest request body accepted (4 MiB by default).
pub const DEFAULT_BODY_LIMIT: usize = 4 << 20;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub body_limit: usize,
    pub metrics: Arc<metrics::Metrics>,
    /// Set when the server is shutting down: health says so and new runs are refused.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// API keys and rate limits.
    pub guard: Arc<guard::Guard>,
    /// Longest any request may take (504 past it).
    pub deadline: std::time::Duration,
    pub cors: Option<tower_http::cors::CorsLayer>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, body_limit: usize) -> AppState {
        AppState {
            engine,
            body_limit,
            // Registering fixed, distinct metric names cannot fail.
            metrics: Arc::new(metrics::Metrics::new().expect("metric definitions are valid")),
            draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            guard: Arc::new(guard::Guard::open()),
            deadline: std::time::Duration::from_secs(300),
            cors: None,
        }
    }
}

pub fn app(state: AppState) -> Router {
    let limit = state.body_limit;
    // Idle rate-limit buckets are dropped in the background while the guard lives.
    state.guard.start_sweeping();
    let router = Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics_text))
        .route("/languages", get(languages))
        .route("/execute", post(execute))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs_redirect))
        .route("/docs/", get(openapi::docs_index))
        .route("/docs/{*file}", get(openapi::docs_asset))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe));
    // CORS outermost: a preflight is answered before any key is asked for.
    let router = match state.cors.clone() {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// Every request: a request id (the client's `X-Request-Id` if it is sane, else a new one),
/// returned in `X-Request-Id`; one log line and one span per request (never the program's
/// source or output); HTTP metrics by route and status.
async fn observe(
    State(state): State<AppState>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let span = tracing::info_span!("request", id = %id, %method, route = %route);
    let mut resp = {
        use tracing::Instrument;
        next.run(req).instrument(span.clone()).await
    };
    let took = started.elapsed();
    let status = resp.status().as_u16();
    state.metrics.http(&route, status, took);
    span.in_scope(|| tracing::info!(status, ms = took.as_millis() as u64, "request done"));
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "{:016x}{:08x}",
        t ^ (u64::from(std::process::id()) << 40),
        n as u32
    )
}

/// JSON body extractor with the project's own errors: 413 over the body limit, 400 for a body
/// that is not JSON, 422 for JSON that is not a valid request. The content type is not
/// checked, so `curl -d` without a header works too.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "request body is over the server's limit; send less code, stdin or files",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("cannot read the request body: {rejection}"),
                )
            }
        })?;
        // serde would fill a struct from a JSON array too; a request is an object.
        let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let invalid = |detail: String| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) if is_object => Ok(JsonBody(v)),
            Ok(_) => Err(invalid(
                "invalid request: the body must be a JSON object".into(),
            )),
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                Err(invalid(if is_object {
                    format!("invalid request: {e}")
                } else {
                    "invalid request: the body must be a JSON object".into()
                }))
            }
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("request body is not valid JSON: {e}"),
            )),
        }
    }
}

/// Run a program in the sandbox.
///
/// A program that fails (compile error, non-zero exit, timeout, memory or output limit) is still
/// a 200 with `success: false` and a `status`; the error statuses are for requests that could
/// not be run.
#[utoipa::path(
    post,
    path = "/execute",
    tag = "execute",
    security((), ("bearer" = []), ("api_key" = [])),
    request_body(content = ExecuteBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The program ran (see `success` and `status`)", body = ExecuteResponse),
        (status = 400, description = "The body is not readable or not JSON (`bad_body`, `invalid_json`)", body = ErrorBody),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 413, description = "The body is over the server's limit (`body_too_large`)", body = ErrorBody),
        (status = 422, description = "Not a valid request: missing/unknown/ill-typed field, bad limit, unsupported language (`invalid_request`, `unsupported_language`)", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The sandbox failed; the program did not run (`sandbox_error`)", body = ErrorBody),
        (status = 503, description = "Overloaded, draining, the language is unavailable, or `typecheck: true` was asked of a server without the type checker (`overloaded`, `draining`, `language_unavailable`, `typecheck_unavailable`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait (with `overloaded` and `draining`)"))),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
async fn execute(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ExecuteBody>,
) -> Result<Json<ExecuteResponse>, ApiError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError {
            retry_after_s: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "the server is shutting down; retry on another instance or in a few seconds",
            )
        });
    }
    match state.engine.execute(body.into()).await {
        Ok(exec) => {
            state.metrics.execution(&exec);
            Ok(Json(exec.into()))
        }
        Err(e) => {
            if matches!(
                e,
                coderun_engine::EngineError::Sandbox(_) | coderun_engine::EngineError::Internal(_)
            ) {
                state.metrics.sandbox_failure();
            }
            Err(e.into())
        }
    }
}

/// Liveness for Kubernetes: the process answers. Readiness is `/health`.
///
/// Never needs an API key and is never rate limited.
#[utoipa::path(
    get,
    path = "/livez",
    tag = "service",
    responses(
        (status = 200, description = "The process answers", body = Liveness),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
async fn livez() -> Json<Liveness> {
    Json(Liveness {
        status: LiveStatus::Alive,
    })
}

/// Prometheus metrics (text exposition format).
///
/// Open unless the server protects it (`auth.protect_metrics`); rate limited only when it
/// refuses a key (failed key attempts are limited per client).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Metrics in the Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Too many requests without a valid API key from this client (only when the route is protected and rate limits are on)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.engine),
    )
        .into_response()
}

/// Readiness: the cached sandbox self-check and each language's availability.
///
/// Open unless the server protects it (`auth.protect_health`); rate limited only when it
/// refuses a key (failed key attempts are limited per client).
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Healthy (`status: healthy`)", body = HealthReport),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Too many requests without a valid API key from this client (only when the route is protected and rate limits are on)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Not ready: `unhealthy` (a self-check report), `starting` or `draining`", body = HealthBody),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let engine = &state.engine;
    let not_ready = |status| {
        HealthBody::NotReady(HealthNotReady {
            status,
            backend: engine.backend_name().to_string(),
            running: engine.running() as u64,
            queued: engine.queued() as u64,
        })
    };
    let body = if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        not_ready(NotReadyStatus::Draining)
    } else {
        match engine.health() {
            Some(h) => {
                let pools = engine.pools();
                HealthBody::Report(HealthReport {
                    status: if h.healthy {
                        HealthStatus::Healthy
                    } else {
                        HealthStatus::Unhealthy
                    },
                    backend: h.backend,
                    sandbox: SandboxCheck {
                        ok: h.sandbox_ok,
                        error: h.sandbox_error,
                    },
                    checked_at: h.checked_at,
                    running: engine.running() as u64,
                    queued: engine.queued() as u64,
                    pools: pools
                        .iter()
                        .map(|(k, p)| (k.clone(), p.ready as u64))
                        .collect(),
                    pool_max: pools
                        .iter()
                        .map(|(k, p)| (k.clone(), p.max as u64))
                        .collect(),
                    languages: h.languages.into_iter().map(Into::into).collect(),
                })
            }
            None => not_ready(NotReadyStatus::Starting),
        }
    };
    (body.http_status(), Json(body))
}

/// The languages with aliases, versions and availability.
#[utoipa::path(
    get,
    path = "/languages",
    tag = "service",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The languages (empty before the first self-check)", body = LanguageList),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Rate limit exceeded", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
async fn languages(State(state): State<AppState>) -> Json<LanguageList> {
    let languages = state
        .engine
        .health()
        .map(|h| h.languages.into_iter().map(Into::into).collect())
        .unwrap_or_default();
    Json(LanguageList { languages })
}

/// Name, version, backend, languages and the list of endpoints.
#[utoipa::path(
    get,
    path = "/",
    tag = "service",
    security((), ("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The service document", body = ServiceInfo),
        (status = 401, description = "API keys are configured and none valid was sent", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 429, description = "Rate limit exceeded", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "The request took longer than the server's deadline", body = ErrorBody),
    )
)]
async fn index(State(state): State<AppState>) -> Json<ServiceInfo> {
    let endpoints = [
        ("POST /execute", "run a program: {code, language, timeout?, stdin?, args?, files?, memory_mb?, max_processes?, max_output_bytes?, typecheck?}"),
        ("GET /health", "readiness: sandbox self-check and language availability"),
        ("GET /livez", "liveness: the process answers"),
        ("GET /metrics", "Prometheus metrics"),
        ("GET /languages", "languages with aliases and versions"),
        ("GET /openapi.json", "OpenAPI 3 description of this API"),
        ("GET /docs", "interactive API docs (Swagger UI, rendering /openapi.json)"),
        ("GET /", "this document"),
    ];
    Json(ServiceInfo {
        name: "coderun".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Secure code execution: Python, TypeScript and Rust in a native Linux sandbox"
            .into(),
        backend: state.engine.backend_name().into(),
        languages: state.engine.language_names(),
        endpoints: endpoints
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}
