//! Property test of the request decoder and validation: whatever bytes arrive, the API
//! answers with a JSON error (400/413/422) or runs the request — never a panic, never a 5xx.
//!
//! The backend here is a stand-in that answers every box with a fixed outcome: this suite
//! tests decoding and validation only. Real programs in the real sandbox are the job of the
//! integration suites under tests/.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use coderun_api::{app, AppState};
use coderun_engine::{Engine, EngineConfig};
use coderun_sandbox::{Backend, BoxFuture, BoxSpec, Check, Outcome, SandboxError, Termination};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;

/// Answers every box "exited 0, printed nothing" without running anything.
struct FixedOutcome;

impl Backend for FixedOutcome {
    fn name(&self) -> &'static str {
        "fixed-outcome"
    }

    fn run(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Outcome, SandboxError>> {
        Box::pin(async move {
            // A compile step must "produce" its artefact for the pipeline to go on.
            if let Some(c) = &spec.collect {
                std::fs::write(&c.host_path, b"{}")?;
            }
            Ok(Outcome {
                termination: Termination::Exited(0),
                limit: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                wall_time_us: 1,
                cpu_time_us: 1,
                memory_peak_kb: 1,
                collected: spec.collect.is_some(),
            })
        })
    }

    fn host_checks(&self) -> Vec<Check> {
        Vec::new()
    }
}

/// One runtime and one router for every case (building the engine resolves runtimes on the
/// host, which takes a while).
fn shared() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static SHARED: std::sync::OnceLock<(tokio::runtime::Runtime, axum::Router)> =
        std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let app = router(&rt);
        (rt, app)
    })
}

fn router(rt: &tokio::runtime::Runtime) -> axum::Router {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../languages");
    let langs = coderun_engine::language::load_dir(&dir).expect("language files");
    let scratch = tempfile_dir();
    let engine = rt.block_on(async {
        Engine::new(
            Arc::new(FixedOutcome) as Arc<dyn Backend>,
            EngineConfig::default(),
            langs,
            Path::new("/nonexistent/coderun"),
            scratch,
        )
        .expect("engine")
    });
    app(AppState::new(
        Arc::new(engine),
        coderun_api::DEFAULT_BODY_LIMIT,
    ))
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("coderun-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn post(
    rt: &tokio::runtime::Runtime,
    app: &axum::Router,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    rt.block_on(async {
        let resp = app
            .clone()
            .oneshot(
                Request::post("/execute")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    })
}

fn check(status: StatusCode, json: &serde_json::Value) -> Result<(), TestCaseError> {
    prop_assert!(
        [200, 400, 413, 422].contains(&status.as_u16()),
        "unexpected status {status}: {json}"
    );
    if status != StatusCode::OK {
        prop_assert!(
            json["code"].is_string() && json["detail"].is_string(),
            "{json}"
        );
    }
    Ok(())
}

/// JSON values shaped like requests: the right keys with wrong, edge or random values.
fn requestish() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(-0.0)),
        ".{0,40}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "python",
            "PY",
            "ts",
            "rust",
            "cobol",
            "",
            "../x",
            "a/../../b",
            "/etc/passwd"
        ])
        .prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec!["name", "content", "x"]).prop_map(String::from),
                inner,
                0..3
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(
        prop::sample::select(vec![
            "code",
            "language",
            "timeout",
            "stdin",
            "args",
            "files",
            "memory_mb",
            "max_processes",
            "max_output_bytes",
            "typecheck",
            "network",
        ])
        .prop_map(String::from),
        value,
        0..8,
    )
    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_cause_a_5xx(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let (rt, app) = shared();
        let (status, json) = post(rt, app, bytes);
        check(status, &json)?;
    }

    #[test]
    fn requestish_json_never_causes_a_5xx(body in requestish()) {
        let (rt, app) = shared();
        let (status, json) = post(rt, app, serde_json::to_vec(&body).unwrap());
        check(status, &json)?;
    }
}
