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

/// A runtime and the router over an engine for one test's cases (building the engine resolves
/// runtimes on the host, which takes a while), and the engine's scratch dir. Fields drop in
/// order: the router (and with it the engine), the runtime, then the scratch dir, removed
/// with whatever the engine left in it.
struct Fixture {
    app: axum::Router,
    rt: tokio::runtime::Runtime,
    scratch: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let scratch = tempfile::Builder::new()
            .prefix("coderun-fuzz-")
            .tempdir()
            .expect("scratch dir");
        let app = router(&rt, scratch.path());
        Fixture { app, rt, scratch }
    }
}

fn router(rt: &tokio::runtime::Runtime, scratch: &Path) -> axum::Router {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../languages");
    let langs = coderun_engine::language::load_dir(&dir).expect("language files");
    let engine = rt.block_on(async {
        Engine::new(
            Arc::new(FixedOutcome) as Arc<dyn Backend>,
            EngineConfig::default(),
            langs,
            Path::new("/nonexistent/coderun"),
            scratch.to_path_buf(),
        )
        .expect("engine")
    });
    app(AppState::new(
        Arc::new(engine),
        coderun_api::DEFAULT_BODY_LIMIT,
    ))
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

const CASES: u32 = 1500;

/// The tests leave nothing in the temp dir: a fixture's scratch dir (where the compile step
/// puts its artefact) is removed with the fixture.
#[test]
fn the_scratch_dir_goes_with_the_fixture() {
    let fx = Fixture::new();
    let dir = fx.scratch.path().to_path_buf();
    let rust = br#"{"language": "rust", "code": "fn main() {}"}"#.to_vec();
    let (status, json) = post(&fx.rt, &fx.app, rust);
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(dir.is_dir(), "{}", dir.display());
    drop(fx);
    assert!(!dir.exists(), "left behind: {}", dir.display());
}

#[test]
fn arbitrary_bytes_never_cause_a_5xx() {
    let fx = Fixture::new();
    proptest!(ProptestConfig::with_cases(CASES), |(bytes in prop::collection::vec(any::<u8>(), 0..512))| {
        let (status, json) = post(&fx.rt, &fx.app, bytes);
        check(status, &json)?;
    });
}

#[test]
fn requestish_json_never_causes_a_5xx() {
    let fx = Fixture::new();
    proptest!(ProptestConfig::with_cases(CASES), |(body in requestish())| {
        let (status, json) = post(&fx.rt, &fx.app, serde_json::to_vec(&body).unwrap());
        check(status, &json)?;
    });
}
