//! Planning: which limits a box gets (the request, then the language file's `[limits]`, then
//! the engine's defaults, never past the maxima), and which requests are refused before any
//! box is made (422).

use coderun_engine::{EngineConfig, EngineError, ExecuteRequest};
use coderun_sandbox::{FileSource, Limits};

use crate::{config, renamed, req, Setup, CC, JS, PY};

/// A language with its own defaults for every run limit.
fn with_limits() -> String {
    renamed(PY, "lim")
        + "[limits]\nwall_time_ms = 4000\ncpu_time_ms = 3000\nmemory_mb = 200\nmax_processes = 20\noutput_bytes = 5000\n"
}

/// A language whose own defaults are all past the engine's maxima.
fn greedy() -> String {
    renamed(PY, "greedy")
        + "[limits]\nwall_time_ms = 99000\nmemory_mb = 9999\nmax_processes = 9999\noutput_bytes = 1073741824\n"
}

/// Runs the request and returns the limits its run box got.
async fn run_limits(s: &Setup, r: ExecuteRequest) -> Limits {
    let label = format!("{}-run", r.language);
    let exec = s.engine.execute(r).await.expect("execute");
    assert!(exec.success, "{exec:?}");
    s.fake
        .fresh_labelled(&label)
        .pop()
        .expect("a run box")
        .limits
}

fn defaults(cfg: &EngineConfig) -> Limits {
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
    }
}

#[tokio::test]
async fn limits_come_from_the_request_then_the_language_file_then_the_engine_defaults() {
    let s = Setup::simple(&[PY, &with_limits()]);
    let cfg = config();

    // Nothing set anywhere: the engine's defaults, the CPU time as long as the wall time.
    let got = run_limits(&s, req("py", "print(1)")).await;
    assert_eq!(got, defaults(&cfg));

    // The language file's defaults.
    let got = run_limits(&s, req("lim", "print(1)")).await;
    assert_eq!(
        (
            got.wall_time_ms,
            got.cpu_time_ms,
            got.memory_mb,
            got.max_processes,
            got.output_bytes
        ),
        (4000, 3000, 200, 20, 5000)
    );
    assert_eq!(
        got.workdir_mb, cfg.workdir_mb,
        "not in [limits]: the engine's"
    );

    // The request's, over the language file's.
    let got = run_limits(
        &s,
        ExecuteRequest {
            timeout_s: Some(2.5),
            memory_mb: Some(300),
            max_processes: Some(30),
            output_bytes: Some(7000),
            ..req("lim", "print(1)")
        },
    )
    .await;
    assert_eq!(
        (
            got.wall_time_ms,
            got.memory_mb,
            got.max_processes,
            got.output_bytes
        ),
        (2500, 300, 30, 7000)
    );
    assert_eq!(
        got.cpu_time_ms, 2500,
        "a request's timeout is also its CPU-time limit, over the language file's 3000"
    );

    // Exactly the maxima are allowed.
    let got = run_limits(
        &s,
        ExecuteRequest {
            timeout_s: Some(30.0),
            memory_mb: Some(1024),
            max_processes: Some(256),
            output_bytes: Some(16 << 20),
            ..req("py", "print(1)")
        },
    )
    .await;
    assert_eq!(
        (
            got.wall_time_ms,
            got.cpu_time_ms,
            got.memory_mb,
            got.max_processes,
            got.output_bytes
        ),
        (30_000, 30_000, 1024, 256, 16 << 20)
    );

    // A fraction of a millisecond rounds up, never down to nothing.
    let got = run_limits(
        &s,
        ExecuteRequest {
            timeout_s: Some(0.0001),
            ..req("py", "print(1)")
        },
    )
    .await;
    assert_eq!((got.wall_time_ms, got.cpu_time_ms), (1, 1));
}

#[tokio::test]
async fn the_engine_cpu_time_default_applies_until_a_request_sets_a_timeout() {
    let s = Setup::new(
        crate::fake::Fake::new(false),
        EngineConfig {
            cpu_time_ms: 5000,
            ..config()
        },
        &[PY],
    );
    let got = run_limits(&s, req("py", "")).await;
    assert_eq!((got.wall_time_ms, got.cpu_time_ms), (10_000, 5000));
    let got = run_limits(
        &s,
        ExecuteRequest {
            timeout_s: Some(1.0),
            ..req("py", "")
        },
    )
    .await;
    assert_eq!((got.wall_time_ms, got.cpu_time_ms), (1000, 1000));
}

#[tokio::test]
async fn a_language_file_never_raises_a_limit_past_the_engine_maxima() {
    let s = Setup::simple(&[&greedy()]);
    let got = run_limits(&s, req("greedy", "")).await;
    assert_eq!(
        (
            got.wall_time_ms,
            got.memory_mb,
            got.max_processes,
            got.output_bytes
        ),
        (30_000, 1024, 256, 16 << 20)
    );
}

#[tokio::test]
async fn compile_limits_come_from_the_language_file_then_the_engine() {
    let cc_own =
        renamed(CC, "cc2") + "[limits]\ncompile_wall_time_ms = 20000\ncompile_memory_mb = 700\n";
    let s = Setup::simple(&[CC, &cc_own]);
    s.fake
        .on("cc-compile", crate::fake::Act::compiles(b"bin", ""));
    s.fake
        .on("cc2-compile", crate::fake::Act::compiles(b"bin", ""));
    let cfg = config();

    // A request's run limits do not change its compile limits.
    let r = ExecuteRequest {
        timeout_s: Some(1.0),
        memory_mb: Some(300),
        ..req("cc", "int main(){}")
    };
    assert!(s.engine.execute(r).await.expect("execute").success);
    let compile = s
        .fake
        .fresh_labelled("cc-compile")
        .pop()
        .expect("compile box");
    assert_eq!(
        compile.limits,
        Limits {
            wall_time_ms: cfg.compile_wall_time_ms,
            cpu_time_ms: 2 * cfg.compile_wall_time_ms,
            memory_mb: cfg.compile_memory_mb,
            max_processes: cfg.compile_max_processes,
            output_bytes: cfg.output_bytes,
            workdir_mb: 256,
            workdir_inodes: cfg.workdir_inodes,
            cpu_millicores: cfg.cpu_millicores,
            file_size_mb: 256,
            open_files: 1024,
            stack_mb: cfg.stack_mb,
        }
    );
    let collect = compile.collect.expect("the compiler's output is collected");
    assert_eq!(collect.path, "main");
    assert_eq!(collect.max_bytes, cfg.compile_output_bytes);
    assert!(collect.host_path.starts_with(s.scratch()), "{collect:?}");
    let run = s.fake.fresh_labelled("cc-run").pop().expect("run box");
    assert_eq!((run.limits.wall_time_ms, run.limits.memory_mb), (1000, 300));

    assert!(
        s.engine
            .execute(req("cc2", ""))
            .await
            .expect("execute")
            .success
    );
    let compile = s
        .fake
        .fresh_labelled("cc2-compile")
        .pop()
        .expect("compile box");
    assert_eq!(
        (
            compile.limits.wall_time_ms,
            compile.limits.cpu_time_ms,
            compile.limits.memory_mb
        ),
        (20_000, 40_000, 700)
    );
}

/// The request is refused with this field named, and no box is made.
async fn refused(s: &Setup, r: ExecuteRequest, field: &str) -> String {
    let before = s.fake.fresh().len();
    match s.engine.execute(r).await {
        Err(EngineError::InvalidRequest { field: f, message }) => {
            assert_eq!(f, field, "{message}");
            assert_eq!(s.fake.fresh().len(), before, "a box was made for {field}");
            s.assert_idle();
            message
        }
        other => panic!("expected a 422 on {field}, got {other:?}"),
    }
}

#[tokio::test]
async fn out_of_range_limits_are_refused() {
    let s = Setup::simple(&[PY]);
    let r = |f: fn(&mut ExecuteRequest)| {
        let mut r = req("py", "");
        f(&mut r);
        r
    };
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY, 30.001, 1e300] {
        let msg = refused(
            &s,
            ExecuteRequest {
                timeout_s: Some(t),
                ..req("py", "")
            },
            "timeout",
        )
        .await;
        assert!(!msg.is_empty());
    }
    let msg = refused(&s, r(|r| r.timeout_s = Some(31.0)), "timeout").await;
    assert!(msg.contains("30 s"), "names the maximum: {msg}");
    refused(&s, r(|r| r.memory_mb = Some(0)), "memory_mb").await;
    let msg = refused(&s, r(|r| r.memory_mb = Some(1025)), "memory_mb").await;
    assert!(msg.contains("1024"), "{msg}");
    refused(&s, r(|r| r.max_processes = Some(0)), "max_processes").await;
    refused(&s, r(|r| r.max_processes = Some(257)), "max_processes").await;
    refused(&s, r(|r| r.output_bytes = Some(0)), "max_output_bytes").await;
    refused(
        &s,
        r(|r| r.output_bytes = Some((16 << 20) + 1)),
        "max_output_bytes",
    )
    .await;
}

#[tokio::test]
async fn oversize_inputs_are_refused() {
    let cfg = EngineConfig {
        max_code_bytes: 100,
        max_stdin_bytes: 10,
        max_args: 2,
        max_arg_bytes: 5,
        max_files: 2,
        max_files_bytes: 8,
        ..config()
    };
    let s = Setup::new(crate::fake::Fake::new(false), cfg, &[PY]);
    let ok = |r: ExecuteRequest| async { s.engine.execute(r).await.expect("at the limit").success };

    assert!(ok(req("py", &"x".repeat(100))).await);
    refused(&s, req("py", &"x".repeat(101)), "code").await;

    assert!(
        ok(ExecuteRequest {
            stdin: Some("0123456789".into()),
            ..req("py", "")
        })
        .await
    );
    refused(
        &s,
        ExecuteRequest {
            stdin: Some("0123456789a".into()),
            ..req("py", "")
        },
        "stdin",
    )
    .await;

    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(
        ok(ExecuteRequest {
            args: args(&["12345", "b"]),
            ..req("py", "")
        })
        .await
    );
    refused(
        &s,
        ExecuteRequest {
            args: args(&["a", "b", "c"]),
            ..req("py", "")
        },
        "args",
    )
    .await;
    refused(
        &s,
        ExecuteRequest {
            args: args(&["a", "123456"]),
            ..req("py", "")
        },
        "args[1]",
    )
    .await;
    refused(
        &s,
        ExecuteRequest {
            args: args(&["a\0b"]),
            ..req("py", "")
        },
        "args[0]",
    )
    .await;

    let files = |f: &[(&str, &str)]| {
        f.iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    };
    assert!(
        ok(ExecuteRequest {
            files: files(&[("a", "1234"), ("b", "5678")]),
            ..req("py", "")
        })
        .await
    );
    refused(
        &s,
        ExecuteRequest {
            files: files(&[("a", ""), ("b", ""), ("c", "")]),
            ..req("py", "")
        },
        "files",
    )
    .await;
    refused(
        &s,
        ExecuteRequest {
            files: files(&[("a", "1234"), ("b", "56789")]),
            ..req("py", "")
        },
        "files",
    )
    .await;
}

fn with_files(language: &str, names: &[&str]) -> ExecuteRequest {
    ExecuteRequest {
        files: names.iter().map(|n| (n.to_string(), "x".into())).collect(),
        ..req(language, "")
    }
}

#[tokio::test]
async fn bad_and_duplicate_file_names_are_refused() {
    let s = Setup::simple(&[PY, CC, JS]);
    s.fake
        .on("cc-compile", crate::fake::Act::compiles(b"bin", ""));
    s.fake
        .on("js-compile", crate::fake::Act::compiles(b"{}", ""));

    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../b",
        "a//b",
        "./a",
        "a/",
        "a\0b",
    ] {
        refused(&s, with_files("py", &["ok.py", bad]), "files[1].name").await;
    }
    // The main source, another entry, a file the language adds, the compiler's output.
    refused(&s, with_files("py", &["main.py"]), "files[0].name").await;
    refused(
        &s,
        with_files("py", &["util.py", "util.py"]),
        "files[1].name",
    )
    .await;
    refused(&s, with_files("js", &["package.json"]), "files[0].name").await;
    refused(&s, with_files("cc", &["main"]), "files[0].name").await;
    // A file where another one's directory is, either way round.
    refused(&s, with_files("py", &["lib", "lib/x.py"]), "files[1].name").await;
    refused(&s, with_files("py", &["lib/x.py", "lib"]), "files[1].name").await;
    refused(&s, with_files("py", &["main.py/x"]), "files[0].name").await;

    // Names that are fine.
    for good in [
        &["pkg/util.py", "pkg/data.txt"][..],
        &[".hidden", "a..b"],
        &["main.pyc", "mainx"],
    ] {
        let exec = s
            .engine
            .execute(with_files("py", good))
            .await
            .expect("execute");
        assert!(exec.success);
        let run = s.fake.fresh_labelled("py-run").pop().expect("run box");
        for name in good {
            assert!(
                run.files.iter().any(|f| f.path == *name),
                "{name} in {:?}",
                run.files
            );
        }
    }
}

#[tokio::test]
async fn a_file_under_a_file_the_language_adds_is_refused() {
    let s = Setup::simple(&[JS]);
    s.fake
        .on("js-compile", crate::fake::Act::compiles(b"{}", ""));
    refused(&s, with_files("js", &["package.json/x"]), "files[0].name").await;
}

#[tokio::test]
async fn a_file_under_the_compiler_output_name_is_refused() {
    let s = Setup::simple(&[CC]);
    s.fake
        .on("cc-compile", crate::fake::Act::compiles(b"bin", ""));
    refused(&s, with_files("cc", &["main/x.h"]), "files[0].name").await;
}

#[tokio::test]
async fn typecheck_is_refused_for_a_language_without_type_checking() {
    let s = Setup::simple(&[PY, CC]);
    let msg = refused(
        &s,
        ExecuteRequest {
            typecheck: true,
            ..req("py", "")
        },
        "typecheck",
    )
    .await;
    assert!(msg.contains("py"), "{msg}");

    // A language with type-checking flags gets them in its compile command.
    s.fake
        .on("cc-compile", crate::fake::Act::compiles(b"bin", ""));
    let exec = s
        .engine
        .execute(ExecuteRequest {
            typecheck: true,
            ..req("cc", "")
        })
        .await
        .expect("execute");
    assert!(exec.success);
    let compile = s
        .fake
        .fresh_labelled("cc-compile")
        .pop()
        .expect("compile box");
    assert_eq!(
        compile.argv,
        ["/opt/cc/bin/cc", "-o", "main", "-Werror", "main.c"]
    );
}

#[tokio::test]
async fn the_denylist_refuses_code_and_files_that_contain_a_pattern() {
    let mut cfg = config();
    cfg.denylist
        .insert("py".into(), vec!["import os".into(), String::new()]);
    let s = Setup::new(crate::fake::Fake::new(false), cfg, &[PY, CC]);
    refused(&s, req("py", "import os\n"), "code").await;
    let r = ExecuteRequest {
        files: vec![
            ("a.py".into(), "x".into()),
            ("b.py".into(), "import os".into()),
        ],
        ..req("py", "print(1)")
    };
    refused(&s, r, "files[1].content").await;
    // An empty pattern matches nothing; other languages are not concerned.
    assert!(
        s.engine
            .execute(req("py", "print(1)"))
            .await
            .expect("execute")
            .success
    );
    s.fake
        .on("cc-compile", crate::fake::Act::compiles(b"bin", ""));
    assert!(
        s.engine
            .execute(req("cc", "import os"))
            .await
            .expect("execute")
            .success
    );
}

#[tokio::test]
async fn an_unknown_language_names_the_supported_ones() {
    let s = Setup::simple(&[PY, CC]);
    let err = s
        .engine
        .execute(req("cobol", ""))
        .await
        .expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "language 'cobol' is not supported; supported: py, cc"
    );
    // Names are matched case-insensitively.
    assert!(
        s.engine
            .execute(req(" PY ", ""))
            .await
            .expect("execute")
            .success
    );
    let run = s.fake.fresh_labelled("py-run").pop().expect("run box");
    assert_eq!(run.files[0].source, FileSource::Inline(String::new()));
}
