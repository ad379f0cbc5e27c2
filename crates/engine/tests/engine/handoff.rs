//! The compile → run hand-off: the run box gets what the compiler left (a binary as a host
//! file, or a bundle as inline files), and a failed compile is the answer (no run box).

use coderun_engine::{EngineError, ExecuteRequest, Status};
use coderun_sandbox::{FileSource, InputFile, LimitHit, Termination};

use crate::fake::{outcome, Act};
use crate::{req, Setup, CC, JS};

#[tokio::test]
async fn a_compiled_binary_is_handed_to_the_run_box() {
    let s = Setup::simple(&[CC]);
    s.fake.on(
        "cc-compile",
        Act::compiles(b"\x7fELF fake binary", "warning: unused x\n"),
    );
    s.fake.on("cc-run", Act::ok("hello\n"));
    let r = ExecuteRequest {
        args: vec!["a1".into(), "a 2".into()],
        stdin: Some("input".into()),
        files: vec![("util.h".into(), "#define X".into())],
        ..req("cc", "int main(){}")
    };
    let exec = s.engine.execute(r).await.expect("execute");
    assert_eq!(exec.status, Status::Ok);
    assert_eq!(exec.stdout, "hello\n");
    assert_eq!(exec.compile_output.as_deref(), Some("warning: unused x\n"));
    assert_eq!(exec.compile_cached, Some(false));
    assert_eq!(exec.compile_time, Some(0.0015));

    let boxes = s.fake.fresh();
    let labels: Vec<&str> = boxes.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["cc-compile", "cc-run"]);
    let (compile, run) = (&boxes[0], &boxes[1]);

    // The compiler sees the sources, no stdin, no args.
    assert_eq!(compile.argv, ["/opt/cc/bin/cc", "-o", "main", "main.c"]);
    assert!(compile.stdin.is_empty());
    let inline = |path: &str, text: &str| InputFile {
        path: path.into(),
        source: FileSource::Inline(text.into()),
        executable: false,
    };
    assert_eq!(
        compile.files,
        [
            inline("main.c", "int main(){}"),
            inline("util.h", "#define X")
        ]
    );
    let host_path = compile.collect.as_ref().expect("collect").host_path.clone();

    // The run box: the request's files, the binary from where the compiler left it, the
    // args and the stdin.
    assert_eq!(run.argv, ["/work/main", "a1", "a 2"]);
    assert_eq!(run.stdin, b"input");
    assert_eq!(run.collect, None);
    assert_eq!(
        run.files,
        [
            inline("main.c", "int main(){}"),
            inline("util.h", "#define X"),
            InputFile {
                path: "main".into(),
                source: FileSource::Host(host_path),
                executable: true,
            }
        ]
    );
    assert_eq!(
        s.fake.host_files(),
        [(
            "cc-run".to_string(),
            "main".to_string(),
            Ok(b"\x7fELF fake binary".to_vec())
        )],
        "the binary was there, with the compiler's bytes, when the run box was made"
    );
    assert_eq!(
        s.scratch_files(),
        Vec::<std::path::PathBuf>::new(),
        "the binary is removed after the run"
    );
    s.assert_idle();
}

#[tokio::test]
async fn a_bundle_becomes_inline_run_files() {
    let s = Setup::simple(&[JS]);
    let bundle = serde_json::json!({
        "main.js": "console.log(1)",
        "lib/util.js": "exports.x = 1",
        "data.txt": "from the compiler",
    });
    s.fake.on(
        "js-compile",
        Act::compiles(bundle.to_string().as_bytes(), ""),
    );
    let r = ExecuteRequest {
        files: vec![("data.txt".into(), "from the client".into())],
        ..req("js", "console.log(1 as number)")
    };
    let exec = s.engine.execute(r).await.expect("execute");
    assert!(exec.success, "{exec:?}");
    let run = s.fake.fresh_labelled("js-run").pop().expect("run box");
    assert_eq!(run.argv, ["/opt/js/bin/node", "main.js"]);
    let mut files: Vec<(String, FileSource)> = run
        .files
        .iter()
        .map(|f| (f.path.clone(), f.source.clone()))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let inline = |p: &str, t: &str| (p.to_string(), FileSource::Inline(t.into()));
    assert_eq!(
        files,
        [
            inline("data.txt", "from the compiler"),
            inline("lib/util.js", "exports.x = 1"),
            inline("main.js", "console.log(1)"),
            inline("main.ts", "console.log(1 as number)"),
            inline("package.json", "{}"),
        ],
        "a bundle entry replaces a file of the same name, never duplicates it"
    );
    assert!(s.scratch_files().is_empty());
}

#[tokio::test]
async fn a_bad_bundle_is_a_sandbox_failure_and_nothing_runs() {
    let s = Setup::simple(&[JS]);
    for bad in [
        &b"not json"[..],
        br#"{"../escape.js": "x"}"#,
        br#"{"/abs.js": "x"}"#,
    ] {
        s.fake.on("js-compile", Act::compiles(bad, ""));
        let err = s
            .engine
            .execute(req("js", ""))
            .await
            .expect_err("bad bundle");
        assert!(matches!(err, EngineError::Sandbox(_)), "{err:?}");
    }
    assert!(s.fake.fresh_labelled("js-run").is_empty());
    assert!(s.scratch_files().is_empty());
    s.assert_idle();
}

/// Compiles with `act` and asserts the compile error and that no run box was made.
async fn compile_error(s: &Setup, act: Act) -> coderun_engine::Execution {
    s.fake.on("cc-compile", act);
    let runs = s.fake.fresh_labelled("cc-run").len();
    let exec = s
        .engine
        .execute(req("cc", "int main("))
        .await
        .expect("execute");
    assert_eq!(exec.status, Status::CompileError, "{exec:?}");
    assert!(!exec.success);
    assert_eq!((exec.exit_code, exec.signal.as_deref()), (None, None));
    assert_eq!((exec.stdout.as_str(), exec.stderr.as_str()), ("", ""));
    assert_eq!(exec.compile_cached, Some(false));
    assert!(!exec.pooled);
    assert_eq!(
        s.fake.fresh_labelled("cc-run").len(),
        runs,
        "the run step never happens"
    );
    assert!(s.scratch_files().is_empty(), "{:?}", s.scratch_files());
    s.assert_idle();
    exec
}

#[tokio::test]
async fn a_compiler_error_is_the_answer_with_the_compiler_text() {
    let s = Setup::simple(&[CC]);
    let text = "main.c:1:10: error: expected ')'\n";
    let exec = compile_error(
        &s,
        Act::outcome(outcome(Termination::Exited(1), None, "", text)),
    )
    .await;
    assert_eq!(exec.error.as_deref(), Some(text));
    assert_eq!(exec.compile_output.as_deref(), Some(text));
    assert_eq!(exec.compile_time, Some(0.0015));

    // Even if the compiler left a file behind.
    let exec = compile_error(
        &s,
        Act::outcome(outcome(Termination::Exited(1), None, "out\n", "err\n")).writing(b"half"),
    )
    .await;
    assert_eq!(exec.compile_output.as_deref(), Some("out\nerr\n"));

    // A compiler killed by a signal.
    compile_error(
        &s,
        Act::outcome(outcome(Termination::Signaled(11), None, "", "")),
    )
    .await;
}

#[tokio::test]
async fn a_compiler_stopped_by_a_limit_names_the_limit() {
    let s = Setup::simple(&[CC]);
    let exec = compile_error(
        &s,
        Act::outcome(outcome(
            Termination::Signaled(9),
            Some(LimitHit::WallTime),
            "",
            "partial\n",
        )),
    )
    .await;
    assert_eq!(
        exec.error.as_deref(),
        Some("Compilation failed: Time limit exceeded (15 s)\npartial\n")
    );
    assert_eq!(exec.compile_output.as_deref(), Some("partial\n"));
    let exec = compile_error(
        &s,
        Act::outcome(outcome(
            Termination::Signaled(9),
            Some(LimitHit::CpuTime),
            "",
            "",
        )),
    )
    .await;
    assert_eq!(
        exec.error.as_deref(),
        Some("Compilation failed: CPU time limit exceeded (30 s)\n")
    );
    // A limit hit with exit code 0 (the output cap) is a failure too.
    let exec = compile_error(
        &s,
        Act::outcome(outcome(
            Termination::Exited(0),
            Some(LimitHit::Output),
            "",
            "",
        ))
        .writing(b"bin"),
    )
    .await;
    assert!(
        exec.error
            .as_deref()
            .is_some_and(|e| e.starts_with("Compilation failed: Output limit exceeded (")),
        "{exec:?}"
    );
}

#[tokio::test]
async fn a_compiler_out_of_memory_names_the_limit_in_mib() {
    let s = Setup::simple(&[CC]);
    let exec = compile_error(
        &s,
        Act::outcome(outcome(
            Termination::Signaled(9),
            Some(LimitHit::Memory),
            "",
            "",
        )),
    )
    .await;
    assert_eq!(
        exec.error.as_deref(),
        Some("Compilation failed: Memory limit exceeded (512 MiB)\n")
    );
}

#[tokio::test]
async fn a_compiler_that_leaves_no_output_is_a_compile_error() {
    let s = Setup::simple(&[CC]);
    let exec = compile_error(&s, Act::ok("all fine\n")).await;
    assert_eq!(
        exec.error.as_deref(),
        Some("all fine\n\nCompilation produced no main (or it was over 67108864 bytes)")
    );
    assert_eq!(exec.compile_output.as_deref(), Some("all fine\n"));
}

#[tokio::test]
async fn a_compiler_output_over_the_cap_is_a_compile_error() {
    let s = Setup::new(
        crate::fake::Fake::new(false),
        coderun_engine::EngineConfig {
            compile_output_bytes: 4,
            ..crate::config()
        },
        &[CC],
    );
    s.fake.on("cc-compile", Act::compiles(b"1234", ""));
    assert!(
        s.engine
            .execute(req("cc", ""))
            .await
            .expect("execute")
            .success,
        "at the cap"
    );
    let exec = compile_error(&s, Act::compiles(b"12345", "")).await;
    assert_eq!(
        exec.error.as_deref(),
        Some("\nCompilation produced no main (or it was over 4 bytes)")
    );
}
