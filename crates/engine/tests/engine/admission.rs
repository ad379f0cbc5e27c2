//! Admission (`concurrency = 1, queue = 1`) and cancellation: a request dropped at any stage
//! — queued, holding a warm box not yet started, compiling, running — gives back its place
//! in the counters and its slot, and its box is destroyed; the next request runs.

use coderun_engine::{EngineError, Status};

use crate::fake::{Act, Fake};
use crate::{config, drive_until, poll_once, req, Setup, CC, PY};

/// Runs one more request to the end: the slot is free.
async fn next_runs(s: &Setup, language: &str) {
    let exec = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.engine.execute(req(language, "")),
    )
    .await
    .expect("the next request is not held up")
    .expect("execute");
    assert_eq!(exec.status, Status::Ok, "{exec:?}");
    s.assert_idle();
}

#[tokio::test]
async fn a_request_dropped_while_queued_leaves_the_queue() {
    let s = Setup::simple(&[PY]);
    let (act, gate) = Act::ok("first").gated();
    s.fake.on("py-run", act);

    let mut first = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut first, "the first request runs", || {
        s.fake.at_gate() == 1
    })
    .await;
    assert_eq!((s.engine.running(), s.engine.queued()), (1, 0));

    let mut second = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut second, "the second request queues", || {
        s.engine.queued() == 1
    })
    .await;
    assert_eq!((s.engine.running(), s.engine.queued()), (1, 1));
    drop(second);
    assert_eq!((s.engine.running(), s.engine.queued()), (1, 0));
    assert_eq!(
        s.fake.fresh().len(),
        1,
        "the dropped request never reached the backend"
    );

    gate.add_permits(1);
    let exec = first.await.expect("execute");
    assert_eq!(exec.stdout, "first");
    s.assert_idle();
    assert_eq!(s.fake.live(), 0);

    s.fake.on("py-run", Act::ok(""));
    next_runs(&s, "py").await;
}

#[tokio::test]
async fn a_request_dropped_during_its_run_frees_its_slot_and_its_box() {
    let s = Setup::simple(&[PY]);
    let (act, _gate) = Act::ok("").gated();
    s.fake.on("py-run", act);

    let mut first = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut first, "the run starts", || s.fake.at_gate() == 1).await;
    let mut queued = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut queued, "the second request queues", || {
        s.engine.queued() == 1
    })
    .await;
    assert_eq!((s.engine.running(), s.fake.live()), (1, 1));

    drop(first);
    assert_eq!(
        s.fake.live(),
        0,
        "the run's box is destroyed with its request"
    );
    assert_eq!(s.fake.running(), 0);
    assert_eq!(s.engine.running(), 0);

    // The queued request gets the slot at once.
    s.fake.on("py-run", Act::ok("second"));
    let exec = tokio::time::timeout(std::time::Duration::from_secs(5), queued)
        .await
        .expect("the queued request gets the freed slot")
        .expect("execute");
    assert_eq!(exec.stdout, "second");
    s.assert_idle();
    next_runs(&s, "py").await;
}

#[tokio::test]
async fn a_request_dropped_during_its_compile_frees_its_slot_and_its_box() {
    let s = Setup::simple(&[CC]);
    let (act, _gate) = Act::compiles(b"binary", "").gated();
    s.fake.on("cc-compile", act);

    let mut fut = Box::pin(s.engine.execute(req("cc", "")));
    drive_until(&mut fut, "the compiler runs", || s.fake.at_gate() == 1).await;
    assert_eq!((s.engine.running(), s.fake.live()), (1, 1));
    drop(fut);
    assert_eq!(s.fake.live(), 0);
    assert!(s.scratch_files().is_empty(), "{:?}", s.scratch_files());
    assert!(s.fake.fresh_labelled("cc-run").is_empty(), "nothing runs");
    s.assert_idle();

    s.fake.on("cc-compile", Act::compiles(b"binary", ""));
    next_runs(&s, "cc").await;
}

fn pooled_py() -> String {
    format!("{PY}[run.pool]\nmin = 1\nmax = 1\n")
}

#[tokio::test]
async fn a_request_dropped_with_a_warm_box_not_yet_started_destroys_that_box() {
    let s = Setup::new(Fake::new(true), config(), &[&pooled_py()]);
    s.engine.start_pools();
    crate::wait_until("the pool is filled", || {
        s.engine.pools()["py/run"].ready == 1
    })
    .await;
    let (act, _gate) = Act::ok("").gated();
    s.fake.on("py-run-warm", act);

    let mut fut = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut fut, "the warm box is handed its program", || {
        s.fake.at_gate() == 1
    })
    .await;
    let taken = s.fake.started()[0].box_id;
    assert!(s.fake.warm_alive().contains(&taken));
    drop(fut);
    assert!(
        !s.fake.warm_alive().contains(&taken),
        "the taken box is destroyed"
    );
    s.assert_idle();

    // The pool refills; the next request runs in a new warm box.
    crate::wait_until("the pool is refilled", || {
        s.engine.pools()["py/run"].ready == 1
    })
    .await;
    s.fake.on("py-run-warm", Act::ok(""));
    let exec = s.engine.execute(req("py", "")).await.expect("execute");
    assert!(exec.pooled && exec.success, "{exec:?}");
    assert!(s.fake.fresh().is_empty(), "nothing ran fresh");
    s.engine.stop_pools();
    assert_eq!(s.fake.live(), 0);
}

#[tokio::test]
async fn a_request_dropped_in_a_warm_compile_box_leaves_no_scratch_file() {
    let cc = format!("{CC}[compile.pool]\nmin = 1\nmax = 1\n");
    let s = Setup::new(Fake::new(true), config(), &[&cc]);
    s.engine.start_pools();
    crate::wait_until("the pool is filled", || {
        s.engine.pools()["cc/compile"].ready == 1
    })
    .await;
    let (act, _gate) = Act::compiles(b"binary", "").gated();
    s.fake.on("cc-compile-warm", act);

    let mut fut = Box::pin(s.engine.execute(req("cc", "")));
    drive_until(&mut fut, "the warm compiler runs", || s.fake.at_gate() == 1).await;
    assert_eq!(s.scratch_files().len(), 1, "the compiler wrote its output");
    drop(fut);
    s.assert_idle();
    assert!(s.scratch_files().is_empty(), "{:?}", s.scratch_files());
    s.engine.stop_pools();
    assert_eq!(s.fake.live(), 0);
}

#[tokio::test]
async fn a_full_queue_is_overloaded_with_the_counts() {
    let s = Setup::simple(&[PY]);
    let (act, gate) = Act::ok("").gated();
    s.fake.on("py-run", act);

    let mut first = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut first, "the first request runs", || {
        s.fake.at_gate() == 1
    })
    .await;
    let mut second = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut second, "the second request queues", || {
        s.engine.queued() == 1
    })
    .await;

    let err = s
        .engine
        .execute(req("py", ""))
        .await
        .expect_err("overloaded");
    match err {
        EngineError::Overloaded {
            running,
            queued,
            retry_after_s,
        } => assert_eq!((running, queued, retry_after_s), (1, 1, 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err_text(&s).await,
        "the server is at capacity (1 running, 1 queued); retry in 1 s"
    );
    assert_eq!(
        (s.engine.running(), s.engine.queued()),
        (1, 1),
        "refusing takes no place"
    );

    gate.add_permits(2);
    assert!(first.await.expect("first").success);
    assert!(second.await.expect("second").success);
    s.assert_idle();
}

async fn err_text(s: &Setup) -> String {
    s.engine
        .execute(req("py", ""))
        .await
        .expect_err("overloaded")
        .to_string()
}

#[tokio::test]
async fn without_a_queue_a_busy_server_refuses_at_once() {
    let s = Setup::new(
        Fake::new(false),
        coderun_engine::EngineConfig {
            queue: 0,
            ..config()
        },
        &[PY],
    );
    let (act, gate) = Act::ok("").gated();
    s.fake.on("py-run", act);
    let mut first = Box::pin(s.engine.execute(req("py", "")));
    drive_until(&mut first, "the first request runs", || {
        s.fake.at_gate() == 1
    })
    .await;
    let mut second = Box::pin(s.engine.execute(req("py", "")));
    match poll_once(&mut second).await {
        Some(Err(EngineError::Overloaded {
            running, queued, ..
        })) => {
            assert_eq!((running, queued), (1, 0))
        }
        other => panic!("{other:?}"),
    }
    gate.add_permits(1);
    assert!(first.await.expect("first").success);
    s.assert_idle();
}

#[tokio::test]
async fn a_slot_is_given_back_after_an_error() {
    let s = Setup::simple(&[PY, CC]);
    s.fake.on("py-run", Act::fail("set-up failed"));
    assert!(s.engine.execute(req("py", "")).await.is_err());
    s.assert_idle();
    // A compile error (no run) too.
    s.fake.on("cc-compile", Act::ok(""));
    let exec = s.engine.execute(req("cc", "")).await.expect("execute");
    assert_eq!(exec.status, Status::CompileError);
    s.assert_idle();
    s.fake.on("py-run", Act::ok(""));
    next_runs(&s, "py").await;
}
