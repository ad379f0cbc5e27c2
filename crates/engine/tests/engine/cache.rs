//! The compile cache as a request sees it: a hit skips the compile box, a different source
//! misses, nothing is cached without a known compiler version, and a cancelled compile never
//! fills it.

use coderun_engine::EngineConfig;

use coderun_sandbox::{LimitHit, Termination};

use crate::fake::{outcome, Act, Fake};
use crate::{config, drive_until, files_in, req, Setup, CC};

fn cached(fake: Fake) -> (Setup, std::path::PathBuf) {
    let s = Setup::with_config(fake, &[CC], |dir| EngineConfig {
        compile_cache_dir: Some(dir.join("cache")),
        ..config()
    });
    let cache = s.path().join("cache");
    (s, cache)
}

/// Entries in the cache dir (temp files left out).
fn entries(cache: &std::path::Path) -> usize {
    files_in(cache)
        .iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
        })
        .count()
}

#[tokio::test]
async fn an_identical_request_is_a_cache_hit_and_another_source_a_miss() {
    let (s, cache) = cached(Fake::new(false));
    s.fake.on("cc-version", Act::ok("cc 1.0\n"));
    s.fake
        .on("cc-compile", Act::compiles(b"binary one", "warning: w\n"));
    let health = s.engine.self_check().await;
    assert_eq!(health.languages[0].version.as_deref(), Some("cc 1.0"));

    let first = s
        .engine
        .execute(req("cc", "int main(){}"))
        .await
        .expect("execute");
    assert_eq!(first.compile_cached, Some(false));
    assert_eq!(first.version.as_deref(), Some("cc 1.0"));
    assert_eq!(entries(&cache), 2, "an artefact and its compiler output");

    let second = s
        .engine
        .execute(req("cc", "int main(){}"))
        .await
        .expect("execute");
    assert_eq!(second.compile_cached, Some(true));
    assert_eq!(second.compile_output.as_deref(), Some("warning: w\n"));
    assert!(second.success);
    assert_eq!(
        s.fake.fresh_labelled("cc-compile").len(),
        1,
        "no second compile box"
    );
    assert_eq!(s.fake.fresh_labelled("cc-run").len(), 2);
    let copied: Vec<_> = s
        .fake
        .host_files()
        .into_iter()
        .map(|(_, p, b)| (p, b))
        .collect();
    assert_eq!(
        copied,
        [
            ("main".to_string(), Ok(b"binary one".to_vec())),
            ("main".to_string(), Ok(b"binary one".to_vec()))
        ],
        "the hit hands the cached binary to the run box"
    );

    // Another source, other args are not part of the key (args are the run's).
    s.fake.on("cc-compile", Act::compiles(b"binary two", ""));
    let other = s
        .engine
        .execute(req("cc", "int main(){return 1;}"))
        .await
        .expect("execute");
    assert_eq!(other.compile_cached, Some(false));
    assert_eq!(s.fake.fresh_labelled("cc-compile").len(), 2);
    let with_args = coderun_engine::ExecuteRequest {
        args: vec!["x".into()],
        ..req("cc", "int main(){return 1;}")
    };
    let hit = s.engine.execute(with_args).await.expect("execute");
    assert_eq!(hit.compile_cached, Some(true));
    // Another file beside the source is another compile.
    let with_file = coderun_engine::ExecuteRequest {
        files: vec![("util.h".into(), "".into())],
        ..req("cc", "int main(){return 1;}")
    };
    let miss = s.engine.execute(with_file).await.expect("execute");
    assert_eq!(miss.compile_cached, Some(false));
    assert!(s.scratch_files().is_empty(), "{:?}", s.scratch_files());
    s.assert_idle();
}

#[tokio::test]
async fn without_a_known_compiler_version_nothing_is_cached() {
    let (s, cache) = cached(Fake::new(false));
    s.fake.on("cc-compile", Act::compiles(b"bin", ""));
    for _ in 0..2 {
        let exec = s
            .engine
            .execute(req("cc", "int main(){}"))
            .await
            .expect("execute");
        assert_eq!(exec.compile_cached, Some(false));
    }
    assert_eq!(s.fake.fresh_labelled("cc-compile").len(), 2);
    assert_eq!(entries(&cache), 0);
}

#[tokio::test]
async fn a_failed_compile_is_not_cached() {
    let (s, cache) = cached(Fake::new(false));
    s.fake.on("cc-version", Act::ok("cc 1.0\n"));
    s.engine.self_check().await;
    let failures = [
        Act::ok("no output"),
        Act::outcome(outcome(Termination::Exited(1), None, "", "error")).writing(b"half"),
        Act::outcome(outcome(
            Termination::Signaled(9),
            Some(LimitHit::Memory),
            "",
            "",
        ))
        .writing(b"half"),
    ];
    for (i, act) in failures.into_iter().enumerate() {
        s.fake.on("cc-compile", act);
        for _ in 0..2 {
            let exec = s
                .engine
                .execute(req("cc", "int main("))
                .await
                .expect("execute");
            assert_eq!(
                exec.status,
                coderun_engine::Status::CompileError,
                "{exec:?}"
            );
        }
        assert_eq!(s.fake.fresh_labelled("cc-compile").len(), 2 * (i + 1));
        assert_eq!(entries(&cache), 0);
    }
}

#[tokio::test]
async fn a_cancelled_compile_never_fills_the_cache_and_leaves_no_scratch_file() {
    let (s, cache) = cached(Fake::new(false));
    s.fake.on("cc-version", Act::ok("cc 1.0\n"));
    s.engine.self_check().await;
    let (act, _gate) = Act::compiles(b"binary", "").gated();
    s.fake.on("cc-compile", act);

    let mut fut = Box::pin(s.engine.execute(req("cc", "int main(){}")));
    drive_until(&mut fut, "the compiler runs", || s.fake.at_gate() == 1).await;
    assert_eq!(
        s.scratch_files().len(),
        1,
        "the compiler has written its output when the request goes away"
    );
    drop(fut);
    assert!(s.scratch_files().is_empty(), "{:?}", s.scratch_files());
    assert_eq!(entries(&cache), 0);
    assert_eq!(s.fake.live(), 0, "the compile box is destroyed");
    s.assert_idle();

    // The next identical request compiles again, and fills the cache.
    s.fake.on("cc-compile", Act::compiles(b"binary", ""));
    let exec = s
        .engine
        .execute(req("cc", "int main(){}"))
        .await
        .expect("execute");
    assert_eq!(exec.compile_cached, Some(false));
    assert_eq!(s.fake.fresh_labelled("cc-compile").len(), 2);
    assert_eq!(s.fake.fresh_labelled("cc-run").len(), 1);
    let exec = s
        .engine
        .execute(req("cc", "int main(){}"))
        .await
        .expect("execute");
    assert_eq!(exec.compile_cached, Some(true));
}
