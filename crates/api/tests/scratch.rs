//! The in-process harness leaves nothing in the temp dir: each engine's scratch dir is
//! removed when the engine is dropped. (One test in its own binary: it points `TMPDIR` at a
//! dir of its own, so other tests and other processes cannot disturb the count.)

mod support;

use coderun_api::guard::{AuthConfig, CorsConfig, RateLimitConfig};

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read the temp dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn the_harness_removes_each_engines_scratch_dir() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::env::set_var("TMPDIR", tmp.path());
    let state = support::state(
        &AuthConfig::default(),
        &RateLimitConfig::default(),
        &CorsConfig::default(),
    );
    let app = coderun_api::app(state.clone());
    let a = support::get(&app, "/health", "203.0.113.10:40000", &[]).await;
    assert_eq!(a.status.as_u16(), 503, "{}", a.body);
    let made = entries(tmp.path());
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].starts_with("coderun-api-test-"), "{made:?}");
    drop((app, state));
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}
