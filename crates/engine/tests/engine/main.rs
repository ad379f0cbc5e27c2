//! The engine against a scripted fake backend: no root, no sandbox, no process. Each module
//! covers one stage of a request (plan, compile → run, cache, result, admission and
//! cancellation, pools, health).

mod admission;
mod cache;
mod fake;
mod handoff;
mod health;
mod limits;
mod pools;
mod results;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use coderun_engine::{Engine, EngineConfig, ExecuteRequest, LanguageFile};
use tempfile::TempDir;

use crate::fake::Fake;

/// An interpreted language: runtime `py` at `{rt}`, no compile step.
pub const PY: &str = r#"
name = "py"
display_name = "Py"
source_file = "main.py"
version_command = ["/opt/py/bin/py", "--version"]
[runtimes.py]
path = "{rt}"
mount_at = "/opt/py"
[run]
command = ["/opt/py/bin/py", "{source}", "{args}"]
runtimes = ["py"]
"#;

/// A compiled language whose compiler leaves a binary `main`.
pub const CC: &str = r#"
name = "cc"
display_name = "CC"
source_file = "main.c"
version_command = ["/opt/cc/bin/cc", "--version"]
[runtimes.cc]
path = "{rt}"
mount_at = "/opt/cc"
[compile]
command = ["/opt/cc/bin/cc", "-o", "main", "{flags}", "{source}"]
runtimes = ["cc"]
output = "main"
output_kind = "binary"
typecheck_flags = ["-Werror"]
[run]
command = ["/work/main", "{args}"]
"#;

/// A compiled language whose compiler leaves a JSON bundle of files for the run box.
pub const JS: &str = r#"
name = "js"
display_name = "JS"
source_file = "main.ts"
version_command = ["/opt/js/bin/tsc", "--version"]
[extra_files]
"package.json" = "{}"
[runtimes.js]
path = "{rt}"
mount_at = "/opt/js"
[compile]
command = ["/opt/js/bin/tsc", "{source}"]
runtimes = ["js"]
output = "bundle.json"
output_kind = "bundle"
[run]
command = ["/opt/js/bin/node", "main.js", "{args}"]
runtimes = ["js"]
"#;

/// A test's engine, its fake backend and its temp dir (runtimes, scratch, cache).
pub struct Setup {
    pub dir: TempDir,
    pub fake: Fake,
    pub engine: Engine,
}

impl Setup {
    /// An engine over `fake` with these language files; `{rt}` in a file becomes a runtime
    /// dir of its own that exists.
    pub fn new(fake: Fake, config: EngineConfig, langs: &[&str]) -> Setup {
        Setup::with_config(fake, langs, |_| config)
    }

    /// Like [`Setup::new`], with a config that may name paths in the test's temp dir.
    pub fn with_config(
        fake: Fake,
        langs: &[&str],
        config: impl FnOnce(&Path) -> EngineConfig,
    ) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config(dir.path());
        let files = langs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let rt = dir.path().join(format!("runtime-{i}"));
                std::fs::create_dir_all(rt.join("bin")).expect("runtime dir");
                language(dir.path(), &text.replace("{rt}", &rt.to_string_lossy()))
            })
            .collect();
        let engine = Engine::new(
            fake.backend(),
            config,
            files,
            &dir.path().join("bin/coderun"),
            dir.path().join("scratch"),
        )
        .expect("engine");
        Setup { dir, fake, engine }
    }

    /// A backend without warm boxes, one request at a time plus one queued, no cache.
    pub fn simple(langs: &[&str]) -> Setup {
        Setup::new(Fake::new(false), config(), langs)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// What the engine left in its scratch dir.
    pub fn scratch_files(&self) -> Vec<PathBuf> {
        files_in(&self.scratch())
    }

    /// Asserts nothing of any request is left: no running or queued request, no box with a
    /// program in it, no box alive but the pools' ready ones.
    pub fn assert_idle(&self) {
        assert_eq!(self.engine.running(), 0, "running");
        assert_eq!(self.engine.queued(), 0, "queued");
        assert_eq!(self.fake.running(), 0, "boxes with a program in them");
        let ready: usize = self.engine.pools().values().map(|p| p.ready).sum();
        assert_eq!(
            self.fake.live(),
            ready,
            "boxes alive besides the ready ones"
        );
    }
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.expect("dir entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Parses a language file as if it were `<dir>/languages/<name>.toml`.
pub fn language(dir: &Path, text: &str) -> LanguageFile {
    LanguageFile::parse(text, &dir.join("languages/lang.toml")).expect("language file")
}

/// Defaults, with `concurrency = 1, queue = 1`.
pub fn config() -> EngineConfig {
    EngineConfig {
        concurrency: 1,
        queue: 1,
        ..EngineConfig::default()
    }
}

pub fn req(language: &str, code: &str) -> ExecuteRequest {
    ExecuteRequest {
        language: language.into(),
        code: code.into(),
        ..ExecuteRequest::default()
    }
}

/// Waits (polling) until `ok` holds, for at most 5 s.
pub async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls `fut` (without finishing it) until `ok` holds; panics if it finishes first.
pub async fn drive_until<F>(fut: &mut Pin<Box<F>>, what: &str, ok: impl FnMut() -> bool)
where
    F: Future,
    F::Output: std::fmt::Debug,
{
    tokio::select! {
        biased;
        out = fut.as_mut() => panic!("the request finished before {what}: {out:?}"),
        () = wait_until(what, ok) => {}
    }
}

/// Polls `fut` once; `Some` if it finished.
pub async fn poll_once<F: Future>(fut: &mut Pin<Box<F>>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// A language file under another name (its labels change with it: `<name>-run`).
pub fn renamed(text: &str, name: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("name = ") {
                format!("name = {name:?}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
