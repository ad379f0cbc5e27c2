//! What the client is told about a run: the status and the `error` sentence for each way a
//! program ends.

use coderun_engine::{ExecuteRequest, Status};
use coderun_sandbox::{LimitHit, Outcome, Termination};

use crate::fake::{outcome, Act};
use crate::{req, Setup, PY};

/// Runs a `py` request whose run box answers `out`.
async fn answer(s: &Setup, r: ExecuteRequest, out: Outcome) -> coderun_engine::Execution {
    s.fake.on("py-run", Act::outcome(out));
    s.engine.execute(r).await.expect("execute")
}

fn timeout(t: f64) -> ExecuteRequest {
    ExecuteRequest {
        timeout_s: Some(t),
        ..req("py", "")
    }
}

#[tokio::test]
async fn each_limit_maps_to_its_status_and_sentence() {
    let s = Setup::simple(&[PY]);
    let killed = Termination::Signaled(9);
    let cases = [
        (
            timeout(2.0),
            LimitHit::WallTime,
            Status::Timeout,
            "Time limit exceeded (2 s)",
        ),
        (
            timeout(1.5),
            LimitHit::WallTime,
            Status::Timeout,
            "Time limit exceeded (1.5 s)",
        ),
        (
            // The CPU limit a timeout implies reads as the time limit the client set.
            timeout(2.0),
            LimitHit::CpuTime,
            Status::Timeout,
            "Time limit exceeded (2 s)",
        ),
        (
            ExecuteRequest {
                memory_mb: Some(64),
                ..req("py", "")
            },
            LimitHit::Memory,
            Status::MemoryLimit,
            "Memory limit exceeded (64 MiB)",
        ),
        (
            ExecuteRequest {
                output_bytes: Some(100),
                ..req("py", "")
            },
            LimitHit::Output,
            Status::OutputLimit,
            "Output limit exceeded (100 bytes per stream)",
        ),
        (
            ExecuteRequest {
                output_bytes: Some(1),
                ..req("py", "")
            },
            LimitHit::Output,
            Status::OutputLimit,
            "Output limit exceeded (1 byte per stream)",
        ),
    ];
    for (r, hit, status, sentence) in cases {
        let exec = answer(&s, r, outcome(killed, Some(hit), "partial", "")).await;
        assert_eq!(exec.status, status, "{hit:?}");
        assert_eq!(exec.error.as_deref(), Some(sentence), "{hit:?}");
        assert!(!exec.success);
        assert_eq!(exec.stdout, "partial");
        assert_eq!(exec.signal.as_deref(), Some("SIGKILL"));
        assert_eq!(exec.exit_code, None);
    }

    // The sentence, then what the program said.
    let exec = answer(
        &s,
        timeout(2.0),
        outcome(killed, Some(LimitHit::WallTime), "", "Traceback\n"),
    )
    .await;
    assert_eq!(
        exec.error.as_deref(),
        Some("Time limit exceeded (2 s)\nTraceback\n")
    );
    assert_eq!(exec.stderr, "Traceback\n");

    // A limit hit while the program exits 0 is still not a success.
    let exec = answer(
        &s,
        req("py", ""),
        outcome(Termination::Exited(0), Some(LimitHit::Output), "", ""),
    )
    .await;
    assert_eq!((exec.status, exec.success), (Status::OutputLimit, false));
    assert_eq!(exec.exit_code, Some(0));
}

#[tokio::test]
async fn a_runtime_error_carries_stderr_and_the_exit_code() {
    let s = Setup::simple(&[PY]);
    let exec = answer(
        &s,
        req("py", ""),
        outcome(Termination::Exited(3), None, "out", "boom\n"),
    )
    .await;
    assert_eq!(exec.status, Status::RuntimeError);
    assert!(!exec.success);
    assert_eq!(exec.error.as_deref(), Some("boom\n"));
    assert_eq!(
        (exec.stdout.as_str(), exec.stderr.as_str()),
        ("out", "boom\n")
    );
    assert_eq!((exec.exit_code, exec.signal.as_deref()), (Some(3), None));

    let exec = answer(
        &s,
        req("py", ""),
        outcome(Termination::Exited(1), None, "", ""),
    )
    .await;
    assert_eq!(
        (exec.status, exec.error.as_deref()),
        (Status::RuntimeError, None)
    );
}

#[tokio::test]
async fn a_signal_is_named() {
    let s = Setup::simple(&[PY]);
    for (sig, name) in [
        (9, "SIGKILL"),
        (11, "SIGSEGV"),
        (6, "SIGABRT"),
        (31, "SIGSYS"),
        (40, "SIG40"),
        (0, "SIG0"),
        (-1, "SIG-1"),
    ] {
        let exec = answer(
            &s,
            req("py", ""),
            outcome(Termination::Signaled(sig), None, "", ""),
        )
        .await;
        assert_eq!(exec.status, Status::RuntimeError, "{sig}");
        assert_eq!(exec.signal.as_deref(), Some(name), "{sig}");
        assert_eq!(exec.exit_code, None);
    }
}

#[tokio::test]
async fn a_success_reports_the_streams_and_the_measurements() {
    let s = Setup::simple(&[PY]);
    s.fake.on("py-version", Act::ok("Py 3.0\nmore\n"));
    s.engine.self_check().await;
    let mut out = outcome(Termination::Exited(0), None, "hi\n", "a warning\n");
    out.stdout_truncated = true;
    let exec = answer(&s, req("py", "print('hi')"), out).await;
    assert_eq!(exec.status, Status::Ok);
    assert!(exec.success);
    assert_eq!(exec.stdout, "hi\n");
    assert_eq!(
        exec.error.as_deref(),
        Some("a warning\n"),
        "stderr, when there is any"
    );
    assert_eq!((exec.exit_code, exec.signal.as_deref()), (Some(0), None));
    assert_eq!(
        (exec.wall_time, exec.cpu_time, exec.memory_kb),
        (0.0015, 0.001, 4096)
    );
    assert!(exec.truncated);
    assert_eq!(exec.language, "py");
    assert_eq!(
        exec.version.as_deref(),
        Some("Py 3.0"),
        "the self-check's first line"
    );
    assert_eq!(
        (exec.compile_output, exec.compile_time, exec.compile_cached),
        (None, None, None),
        "nothing compiled"
    );
    assert!(!exec.pooled);

    let exec = answer(
        &s,
        req("py", ""),
        outcome(Termination::Exited(0), None, "", ""),
    )
    .await;
    assert_eq!((exec.status, exec.error), (Status::Ok, None));
    assert!(!exec.truncated);
}

#[tokio::test]
async fn invalid_utf8_is_replaced() {
    let s = Setup::simple(&[PY]);
    let mut out = outcome(Termination::Exited(1), None, "", "");
    out.stdout = b"a\xffb".to_vec();
    out.stderr = b"\xfe".to_vec();
    let exec = answer(&s, req("py", ""), out).await;
    assert_eq!(exec.stdout, "a\u{fffd}b");
    assert_eq!(exec.error.as_deref(), Some("\u{fffd}"));
}

#[tokio::test]
async fn a_sandbox_failure_is_an_error_not_an_outcome() {
    let s = Setup::simple(&[PY]);
    s.fake.on("py-run", Act::fail("cannot mount tmpfs"));
    let err = s
        .engine
        .execute(req("py", ""))
        .await
        .expect_err("sandbox failure");
    assert!(
        matches!(err, coderun_engine::EngineError::Sandbox(_)),
        "{err:?}"
    );
    s.assert_idle();
    s.fake.on("py-run", Act::ok(""));
    assert!(
        s.engine
            .execute(req("py", ""))
            .await
            .expect("execute")
            .success
    );
}
