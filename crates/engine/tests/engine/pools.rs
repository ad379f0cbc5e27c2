//! Warm pools: filled to their minimum, used when the backend accepts the program, grown to
//! their maximum once drained, shrunk back after idling, destroyed at shutdown; none at all
//! with a backend without warm boxes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coderun_engine::{EngineConfig, ExecuteRequest, PoolStatus};
use coderun_sandbox::{FileSource, InputFile, Limits};

use crate::fake::{Act, Fake};
use crate::{config, renamed, req, wait_until, Setup, CC, PY};

/// `py` with a `[run.pool]` table (sizes from the engine's config unless given).
fn pooled(name: &str, table: &str) -> String {
    format!("{}[run.pool]\n{table}\n", renamed(PY, name))
}

fn ready(s: &Setup, pool: &str) -> usize {
    s.engine.pools()[pool].ready
}

#[tokio::test]
async fn start_pools_fills_each_pool_to_its_minimum() {
    let cfg = EngineConfig {
        pool_min: 2,
        pool_max: 4,
        pool_idle_s: 60,
        ..config()
    };
    let s = Setup::new(
        Fake::new(true),
        cfg.clone(),
        &[
            &pooled("py", ""),
            &pooled("pz", "min = 1\nmax = 3\nidle_s = 1"),
            CC,
        ],
    );
    let empty = |min, max| PoolStatus { ready: 0, min, max };
    assert_eq!(
        s.engine.pools().into_iter().collect::<Vec<_>>(),
        [
            ("py/run".to_string(), empty(2, 4)),
            ("pz/run".to_string(), empty(1, 3))
        ],
        "one pool per pooled step; none before start_pools fills them"
    );
    assert!(s.fake.prepared().is_empty());

    s.engine.start_pools();
    wait_until("the pools are at their minimum", || {
        ready(&s, "py/run") == 2 && ready(&s, "pz/run") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.fake.prepared().len(), 3, "no more than the minimum");
    assert_eq!(s.fake.live(), 3);

    let spec = s
        .fake
        .prepared()
        .into_iter()
        .find(|w| w.label == "py-run-warm")
        .expect("a py box");
    assert_eq!(
        spec.command,
        ["/opt/py/bin/py", "main.py"],
        "the command without args"
    );
    assert_eq!(
        spec.limits,
        Limits {
            wall_time_ms: cfg.wall_time_ms,
            cpu_time_ms: cfg.wall_time_ms,
            memory_mb: cfg.memory_mb,
            max_processes: cfg.max_processes,
            output_bytes: cfg.output_bytes,
            workdir_mb: cfg.workdir_mb,
            workdir_inodes: cfg.workdir_inodes,
            cpu_millicores: cfg.cpu_millicores,
            file_size_mb: cfg.file_size_mb,
            open_files: cfg.open_files,
            stack_mb: cfg.stack_mb,
        },
        "a request without options' limits"
    );
    assert_eq!(spec.mounts.len(), 1);
    assert_eq!(spec.mounts[0].target, std::path::Path::new("/opt/py"));
    assert_eq!(spec.collect, None);
    s.engine.stop_pools();
}

#[tokio::test]
async fn a_request_runs_in_a_warm_box_the_backend_accepts() {
    let s = Setup::new(
        Fake::new(true),
        config(),
        &[&pooled("py", "min = 1\nmax = 1")],
    );
    s.fake.on("py-run-warm", Act::ok("warm\n"));
    s.engine.start_pools();
    wait_until("the pool is filled", || ready(&s, "py/run") == 1).await;

    let r = ExecuteRequest {
        args: vec!["x".into()],
        stdin: Some("in".into()),
        ..req("py", "print(1)")
    };
    let exec = s.engine.execute(r).await.expect("execute");
    assert!(exec.pooled, "{exec:?}");
    assert_eq!(exec.stdout, "warm\n");
    assert!(s.fake.fresh().is_empty(), "nothing ran fresh");
    let started = s.fake.started();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].argv, ["/opt/py/bin/py", "main.py", "x"]);
    assert_eq!(started[0].stdin, b"in");
    assert_eq!(
        started[0].files,
        [InputFile {
            path: "main.py".into(),
            source: FileSource::Inline("print(1)".into()),
            executable: false,
        }]
    );
    assert!(
        !s.fake.warm_alive().contains(&started[0].box_id),
        "a warm box is used once"
    );
    s.assert_idle();
    s.engine.stop_pools();
}

#[tokio::test]
async fn a_box_the_backend_refuses_stays_ready_and_the_request_runs_fresh() {
    let s = Setup::new(
        Fake::new(true),
        config(),
        &[&pooled("py", "min = 1\nmax = 1")],
    );
    s.engine.start_pools();
    wait_until("the pool is filled", || ready(&s, "py/run") == 1).await;
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    s.fake.set_accepts(move |spec, program| {
        count.fetch_add(1, Ordering::SeqCst);
        program.limits == spec.limits
    });

    // Other limits than the box was set up with: the fake refuses it.
    let r = ExecuteRequest {
        memory_mb: Some(200),
        ..req("py", "")
    };
    let exec = s.engine.execute(r).await.expect("execute");
    assert!(!exec.pooled && exec.success, "{exec:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 1, "the box was asked");
    assert_eq!(s.fake.fresh_labelled("py-run").len(), 1);
    assert!(s.fake.started().is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ready(&s, "py/run"), 1, "the box is put back");
    assert_eq!(s.fake.warm_alive(), [0], "the same box, still alive");
    assert_eq!(s.fake.prepared().len(), 1, "no box made to replace it");

    // The next request that fits takes it.
    let exec = s.engine.execute(req("py", "")).await.expect("execute");
    assert!(exec.pooled);
    assert_eq!(s.fake.started()[0].box_id, 0);
    s.engine.stop_pools();
}

#[tokio::test]
async fn a_box_the_backend_refuses_does_not_grow_the_pool() {
    let s = Setup::new(
        Fake::new(true),
        config(),
        &[&pooled("py", "min = 1\nmax = 3\nidle_s = 60")],
    );
    s.engine.start_pools();
    wait_until("the pool is at its minimum", || ready(&s, "py/run") == 1).await;
    for _ in 0..3 {
        let r = ExecuteRequest {
            memory_mb: Some(200),
            ..req("py", "")
        };
        assert!(!s.engine.execute(r).await.expect("execute").pooled);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ready(&s, "py/run"), 1, "no request could use a box");
    assert_eq!(s.fake.prepared().len(), 1);
    s.engine.stop_pools();
}

#[tokio::test]
async fn a_drained_pool_grows_to_its_maximum_then_shrinks_back_after_idling() {
    let s = Setup::new(
        Fake::new(true),
        config(),
        &[&pooled("py", "min = 1\nmax = 3\nidle_s = 1")],
    );
    s.engine.start_pools();
    wait_until("the pool is at its minimum", || ready(&s, "py/run") == 1).await;

    let exec = s.engine.execute(req("py", "")).await.expect("execute");
    assert!(exec.pooled);
    wait_until("the drained pool grows to its maximum", || {
        ready(&s, "py/run") == 3
    })
    .await;
    assert_eq!(s.fake.live(), 3);
    assert_eq!(s.fake.prepared().len(), 4);

    // Each request that takes a box starts the idle time again.
    let mut last_take = Instant::now();
    for _ in 0..2 {
        last_take = Instant::now();
        let exec = s.engine.execute(req("py", "")).await.expect("execute");
        assert!(exec.pooled);
    }
    wait_until("it is full again", || ready(&s, "py/run") == 3).await;

    wait_until("the idle pool shrinks back to its minimum", || {
        ready(&s, "py/run") == 1
    })
    .await;
    let idle = last_take.elapsed();
    assert!(
        idle >= Duration::from_secs(1),
        "shrank after {idle:?}, before its idle time"
    );
    assert_eq!(s.fake.live(), 1, "the extra boxes are destroyed");
    s.engine.stop_pools();
}

#[tokio::test]
async fn pool_sizes_come_from_the_language_file_then_the_engine() {
    let cfg = EngineConfig {
        pool_size: Some(2),
        ..config()
    };
    let s = Setup::new(
        Fake::new(true),
        cfg,
        &[
            &pooled("py", ""),
            &pooled("pz", "max = 5"),
            &pooled("off", "max = 0"),
        ],
    );
    let bounds: Vec<(String, usize, usize)> = s
        .engine
        .pools()
        .into_iter()
        .map(|(k, p)| (k, p.min, p.max))
        .collect();
    assert_eq!(
        bounds,
        [("py/run".to_string(), 2, 2), ("pz/run".to_string(), 2, 5)],
        "pool_size is min and max; a language's max = 0 has no pool"
    );
}

#[tokio::test]
async fn stop_pools_destroys_the_ready_boxes() {
    let s = Setup::new(
        Fake::new(true),
        config(),
        &[&pooled("py", "min = 2\nmax = 2")],
    );
    s.engine.start_pools();
    wait_until("the pool is filled", || ready(&s, "py/run") == 2).await;
    assert_eq!(s.fake.live(), 2);
    s.engine.stop_pools();
    assert_eq!(s.fake.live(), 0);
    assert_eq!(ready(&s, "py/run"), 0);

    // Nothing is prepared any more; requests run fresh.
    let exec = s.engine.execute(req("py", "")).await.expect("execute");
    assert!(!exec.pooled && exec.success);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.fake.prepared().len(), 2);
    assert_eq!(s.fake.live(), 0);
}

#[tokio::test]
async fn a_warm_compile_box_hands_its_output_to_the_run_step() {
    let cc = format!("{CC}[compile.pool]\nmin = 1\nmax = 1\n");
    let s = Setup::new(Fake::new(true), config(), &[&cc]);
    s.engine.start_pools();
    wait_until("the pool is filled", || ready(&s, "cc/compile") == 1).await;
    let warm = s.fake.prepared().pop().expect("a compile box");
    assert_eq!(warm.label, "cc-compile-warm");
    assert_eq!(warm.command, ["/opt/cc/bin/cc", "-o", "main", "main.c"]);
    let collect = warm.collect.expect("the compile box collects");
    assert_eq!(collect.path, "main");
    assert!(collect.host_path.starts_with(s.scratch()), "{collect:?}");

    s.fake
        .on("cc-compile-warm", Act::compiles(b"warm binary", "note\n"));
    let exec = s
        .engine
        .execute(req("cc", "int main(){}"))
        .await
        .expect("execute");
    assert!(exec.success, "{exec:?}");
    assert_eq!(exec.compile_output.as_deref(), Some("note\n"));
    assert!(!exec.pooled, "the run step ran fresh");
    assert!(s.fake.fresh_labelled("cc-compile").is_empty());
    assert_eq!(
        s.fake.host_files(),
        [(
            "cc-run".to_string(),
            "main".to_string(),
            Ok(b"warm binary".to_vec())
        )]
    );
    assert!(s.scratch_files().is_empty(), "{:?}", s.scratch_files());

    // A request with type-checking flags is another command: the fake refuses, it compiles
    // fresh.
    let exec = s
        .engine
        .execute(ExecuteRequest {
            typecheck: true,
            ..req("cc", "")
        })
        .await
        .expect("execute");
    assert_eq!(s.fake.fresh_labelled("cc-compile").len(), 1, "{exec:?}");
    s.engine.stop_pools();
    assert_eq!(s.fake.live(), 0);
    assert!(s.scratch_files().is_empty(), "{:?}", s.scratch_files());
}

/// Counts the warnings logged on this thread.
struct Warnings(Arc<AtomicUsize>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() <= tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Starts the pools of a `[run.pool]` language on `fake` and counts warnings for a while.
async fn warnings_with(fake: Fake) -> (usize, Setup) {
    let warnings = Arc::new(AtomicUsize::new(0));
    let _log = tracing::subscriber::set_default(Warnings(warnings.clone()));
    let s = Setup::new(fake, config(), &[&pooled("py", "min = 1\nmax = 2")]);
    s.engine.start_pools();
    let exec = s.engine.execute(req("py", "")).await.expect("execute");
    assert!(!exec.pooled && exec.success, "{exec:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.engine.stop_pools();
    (warnings.load(Ordering::SeqCst), s)
}

#[tokio::test]
async fn without_warm_boxes_there_are_no_pools_and_nothing_warns() {
    let (warned, s) = warnings_with(Fake::new(false)).await;
    assert!(s.engine.pools().is_empty());
    assert!(s.fake.prepared().is_empty(), "never asked to prepare");
    assert_eq!(warned, 0);

    // The control: a backend that claims warm boxes but cannot make one is warned about.
    let broken = Fake::new(true);
    broken.fail_prepare();
    let (warned, s) = warnings_with(broken).await;
    assert!(warned >= 1, "the counter sees warnings");
    assert!(!s.fake.prepared().is_empty());
}
