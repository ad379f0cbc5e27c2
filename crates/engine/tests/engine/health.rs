//! The self-check and what a client may read of it: sentences, never host paths, errno text
//! or a helper's output; those go to the `detail` fields (log and `coderun doctor`).

use coderun_engine::health::{LANGUAGE_UNAVAILABLE, SANDBOX_FAILED};
use coderun_engine::EngineError;
use coderun_sandbox::Termination;

use crate::fake::{outcome, Act};
use crate::{renamed, req, Setup, PY};

/// A `py` whose runtime path does not exist.
fn missing(name: &str) -> String {
    renamed(PY, name).replace("{rt}", "{rt}/not-installed")
}

/// Asserts `text` holds nothing of the host: no temp path, no errno text.
fn client_safe(s: &Setup, text: &str) {
    let tmp = s.path().to_string_lossy();
    for bad in [
        tmp.as_ref(),
        "/tmp",
        "not-installed",
        "os error",
        "Permission denied",
        "rootfs",
    ] {
        assert!(!text.contains(bad), "{bad:?} in {text:?}");
    }
}

#[tokio::test]
async fn a_missing_runtime_makes_its_language_unavailable_without_naming_host_paths() {
    let s = Setup::simple(&[&missing("gone"), PY]);
    s.fake.on("py-version", Act::ok("Py 3.0\n"));
    let health = s.engine.self_check().await;
    assert!(health.healthy && health.sandbox_ok, "{health:?}");
    let gone = &health.languages[0];
    assert_eq!(gone.name, "gone");
    assert!(!gone.available);
    assert_eq!(gone.version, None);
    assert_eq!(gone.error.as_deref(), Some(LANGUAGE_UNAVAILABLE));
    let detail = gone.detail.as_deref().expect("a detail for the log");
    assert!(detail.contains("not-installed"), "{detail}");
    assert!(
        s.fake.fresh_labelled("gone-version").is_empty(),
        "no box for it"
    );
    let py = &health.languages[1];
    assert!(py.available);
    assert_eq!(py.version.as_deref(), Some("Py 3.0"));
    assert_eq!(s.engine.health(), Some(health.clone()));

    let body = serde_json::to_string(&health).expect("json");
    client_safe(&s, &body);
    assert!(body.contains(LANGUAGE_UNAVAILABLE));

    let err = s
        .engine
        .execute(req("gone", ""))
        .await
        .expect_err("unavailable");
    assert!(
        matches!(err, EngineError::LanguageUnavailable { .. }),
        "{err:?}"
    );
    client_safe(&s, &err.to_string());
    assert!(err.to_string().contains("'gone'"), "{err}");
    assert!(err.detail().contains("not-installed"), "{}", err.detail());
    assert!(s.fake.fresh_labelled("gone-run").is_empty());
    s.assert_idle();
}

#[tokio::test]
async fn a_failing_sandbox_is_reported_without_host_details() {
    let s = Setup::simple(&[PY]);
    let message = format!(
        "cannot mount {}/rootfs: Permission denied (os error 13)",
        s.path().display()
    );
    s.fake.on("py-version", Act::fail(&message));
    let health = s.engine.self_check().await;
    assert!(!health.healthy && !health.sandbox_ok, "{health:?}");
    assert_eq!(health.backend, "fake");
    assert_eq!(health.sandbox_error.as_deref(), Some(SANDBOX_FAILED));
    let detail = health.sandbox_detail.as_deref().expect("a detail");
    assert!(detail.contains(&message), "{detail}");
    let py = &health.languages[0];
    assert!(!py.available);
    assert_eq!(py.error.as_deref(), Some(SANDBOX_FAILED));
    assert!(py.detail.as_deref().is_some_and(|d| d.contains(&message)));

    client_safe(&s, SANDBOX_FAILED);
    client_safe(&s, &serde_json::to_string(&health).expect("json"));
}

#[tokio::test]
async fn a_broken_runtime_is_unavailable_and_its_output_stays_in_the_detail() {
    let s = Setup::simple(&[PY]);
    let said = format!(
        "{}/lib/libpy.so: cannot open shared object file",
        s.path().display()
    );
    s.fake.on(
        "py-version",
        Act::outcome(outcome(Termination::Exited(127), None, "", &said)),
    );
    let health = s.engine.self_check().await;
    assert!(health.sandbox_ok, "a box ran: the sandbox works");
    assert!(!health.healthy, "no language is available");
    assert_eq!(health.sandbox_error, None);
    let py = &health.languages[0];
    assert!(!py.available);
    assert_eq!(py.error.as_deref(), Some(LANGUAGE_UNAVAILABLE));
    assert!(py.detail.as_deref().is_some_and(|d| d.contains(&said)));
    client_safe(&s, &serde_json::to_string(&health).expect("json"));

    // A version command that prints nothing is no version either.
    s.fake.on("py-version", Act::ok(""));
    assert!(!s.engine.self_check().await.languages[0].available);
}

#[tokio::test]
async fn the_self_check_runs_the_version_command_in_a_box() {
    let s = Setup::simple(&[PY]);
    s.fake.on("py-version", Act::ok("Py 3.0\n"));
    let health = s.engine.self_check().await;
    assert!(health.healthy);
    let spec = s
        .fake
        .fresh_labelled("py-version")
        .pop()
        .expect("a version box");
    assert_eq!(spec.argv, ["/opt/py/bin/py", "--version"]);
    assert_eq!(spec.mounts.len(), 1);
    assert!(spec.files.is_empty() && spec.collect.is_none());
    assert_eq!(
        (s.engine.running(), s.engine.queued()),
        (0, 0),
        "the self-check takes no run slot"
    );
}
