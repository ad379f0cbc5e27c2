//! The execution engine: languages, limits, admission and the compile → run pipeline.
//!
//! It knows nothing of HTTP and makes no system calls of its own: every program (and every
//! compiler) runs through a [`coderun_sandbox::Backend`]. The only host commands it runs are
//! the language files' `locate` commands, at start-up, to find runtimes (an optional runtime
//! found missing, like the type checker, is looked for again when a request needs it).
//!
//! A request reads forward: [`plan`] (check it, work out its limits), admission (a run slot
//! or a place in the queue), [`compile`] (with the compile cache), the run [`step`], then
//! [`result`] (what the client is told). Every stage holds what it took in a guard, so a
//! request dropped at any await (client gone, deadline, shutdown) gives back its slot and
//! its place in the counters, and the backend ends its box.

pub mod cache;
mod compile;
pub mod config;
pub mod health;
pub mod language;
mod plan;
mod pool;
mod result;
mod runtimes;
mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use coderun_sandbox::{Backend, RuntimeMount, SandboxError};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::compile::CompileResult;
use crate::step::Step;

pub use config::EngineConfig;
pub use language::LanguageFile;

/// The name under which a language file may ask for the `coderun` binary itself (used by
/// TypeScript, whose transpiler is built into coderun and runs inside the compile box).
pub const SELF_RUNTIME: &str = "coderun";

/// One execution as the engine receives it (already decoded from JSON by the API).
#[derive(Debug, Clone, Default)]
pub struct ExecuteRequest {
    pub code: String,
    pub language: String,
    pub timeout_s: Option<f64>,
    pub stdin: Option<String>,
    pub args: Vec<String>,
    pub files: Vec<(String, String)>,
    pub memory_mb: Option<u64>,
    pub max_processes: Option<u64>,
    pub output_bytes: Option<u64>,
    pub typecheck: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    CompileError,
    RuntimeError,
    Timeout,
    MemoryLimit,
    OutputLimit,
}

/// What happened, ready to be serialised by the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Execution {
    pub status: Status,
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub compile_output: Option<String>,
    pub compile_time: Option<f64>,
    /// Whether the compile step was served by the compile cache (None: nothing compiled).
    pub compile_cached: Option<bool>,
    /// Whether the program ran in a warm pooled box.
    pub pooled: bool,
    /// Seconds the request waited for a run slot.
    pub queue_time: f64,
    pub wall_time: f64,
    pub cpu_time: f64,
    pub memory_kb: u64,
    pub truncated: bool,
    pub language: String,
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{field}: {message}")]
    InvalidRequest { field: String, message: String },
    #[error("language '{requested}' is not supported; supported: {}", supported.join(", "))]
    UnsupportedLanguage {
        requested: String,
        supported: Vec<String>,
    },
    /// The client reads only the sentence; `detail` (host paths) goes to the log.
    #[error("language '{language}' is not available on this server: its runtime is not installed or does not work here; the operator can run `coderun doctor`")]
    LanguageUnavailable { language: String, detail: String },
    #[error("the server is at capacity ({running} running, {queued} queued); retry in {retry_after_s} s")]
    Overloaded {
        running: usize,
        queued: usize,
        retry_after_s: u64,
    },
    #[error("sandbox failure: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("type checking is not installed on this server; send the request without `typecheck`, or ask the operator to run scripts/setup.sh")]
    TypecheckUnavailable { language: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// Everything known about the error, host details included: for the log and `doctor`,
    /// never for a client.
    pub fn detail(&self) -> String {
        match self {
            EngineError::LanguageUnavailable { language, detail } => {
                format!("language {language}: {detail}")
            }
            other => other.to_string(),
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> EngineError {
    EngineError::InvalidRequest {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A language with its runtimes resolved on this host.
#[derive(Debug)]
pub(crate) struct Language {
    pub file: LanguageFile,
    /// Runtime name → its mount, or why it could not be found (host details). An optional
    /// runtime found missing is looked for again when a request needs it.
    pub mounts: RwLock<BTreeMap<String, Result<RuntimeMount, String>>>,
    /// Runtimes that may be missing without making the language unavailable.
    pub optional: Vec<String>,
}

impl Language {
    /// The mounts of these runtimes; a missing optional one is left out.
    fn mounts_for(&self, names: &[String]) -> Result<Vec<RuntimeMount>, EngineError> {
        let mounts = self.mounts.read().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .filter(|n| !(self.optional.contains(n) && matches!(mounts.get(*n), Some(Err(_)))))
            .map(|n| match mounts.get(n) {
                Some(Ok(m)) => Ok(m.clone()),
                Some(Err(reason)) => Err(EngineError::LanguageUnavailable {
                    language: self.file.name.clone(),
                    detail: reason.clone(),
                }),
                None => Err(EngineError::Internal(format!("runtime {n} not resolved"))),
            })
            .collect()
    }

    fn all_mounts(&self) -> Result<Vec<RuntimeMount>, EngineError> {
        let names: Vec<String> = self
            .mounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        self.mounts_for(&names)
    }

    /// Whether every optional runtime among `names` is there. One found missing is looked
    /// for again first (it may have been installed while the server runs: `scripts/setup.sh`
    /// installs the type checker).
    fn optional_present(&self, names: &[String]) -> bool {
        let missing: Vec<&String> = {
            let mounts = self.mounts.read().unwrap_or_else(|p| p.into_inner());
            names
                .iter()
                .filter(|n| self.optional.contains(n) && matches!(mounts.get(*n), Some(Err(_))))
                .collect()
        };
        let mut all = true;
        for name in missing {
            let Some(def) = self.file.runtimes.get(name) else {
                continue;
            };
            match runtimes::resolve_runtime(name, def, &self.file.base_dir) {
                Ok(mount) => {
                    tracing::info!(language = %self.file.name, runtime = %name, "optional runtime found");
                    self.mounts
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), Ok(mount));
                }
                Err(_) => all = false,
            }
        }
        all
    }

    /// Whether type checking can run here (None: the language has none).
    fn typecheck_available(&self) -> Option<bool> {
        let compile = self.file.compile.as_ref()?;
        if compile.typecheck_flags.is_empty() {
            return None;
        }
        Some(self.optional_present(&compile.runtimes))
    }
}

/// Per-language health as `/health` and `/languages` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LanguageHealth {
    pub name: String,
    pub display_name: String,
    pub aliases: Vec<String>,
    pub compiled: bool,
    pub available: bool,
    pub version: Option<String>,
    /// Whether `typecheck: true` works here (None: the language has no type check).
    pub typecheck: Option<bool>,
    /// Why it is unavailable, in a sentence a client may read.
    pub error: Option<String>,
    /// The host details behind `error` (paths, output): for the log and `doctor` only.
    #[serde(skip)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub backend: String,
    pub sandbox_ok: bool,
    /// Why the sandbox failed its self-check, in a sentence a client may read.
    pub sandbox_error: Option<String>,
    /// The host details behind `sandbox_error`: for the log and `doctor` only.
    #[serde(skip)]
    pub sandbox_detail: Option<String>,
    /// Unix seconds of the self-check this reports.
    pub checked_at: u64,
    pub languages: Vec<LanguageHealth>,
}

/// A warm pool as `/health` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    pub ready: usize,
    pub min: usize,
    pub max: usize,
}

/// One more in a counter for as long as it lives.
struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    /// Counts one in; returns the count before.
    fn enter(counter: &'a AtomicUsize) -> (Gauge<'a>, usize) {
        let before = counter.fetch_add(1, Ordering::AcqRel);
        (Gauge(counter), before)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Engine {
    backend: Arc<dyn Backend>,
    config: EngineConfig,
    languages: Vec<Language>,
    slots: Arc<Semaphore>,
    running: AtomicUsize,
    waiting: AtomicUsize,
    health: RwLock<Option<Health>>,
    scratch: PathBuf,
    counter: AtomicU64,
    cache: Option<cache::CompileCache>,
    /// Warm pools by `<language>/<step>`.
    pools: BTreeMap<String, Arc<pool::Pool>>,
    /// Wakes the self-check loop early.
    refresh: Arc<tokio::sync::Notify>,
}

impl Engine {
    /// Resolves every language's runtimes on this host. `self_exe` is the coderun binary
    /// (mounted for languages that use the [`SELF_RUNTIME`]); `scratch` is a host directory
    /// owned by the service for compiler artefacts.
    pub fn new(
        backend: Arc<dyn Backend>,
        config: EngineConfig,
        files: Vec<LanguageFile>,
        self_exe: &Path,
        scratch: PathBuf,
    ) -> Result<Engine, EngineError> {
        config
            .validate()
            .map_err(|m| EngineError::Internal(format!("invalid engine config: {m}")))?;
        std::fs::create_dir_all(&scratch).map_err(|e| {
            EngineError::Internal(format!("cannot create {}: {e}", scratch.display()))
        })?;
        let languages: Vec<Language> = files
            .into_iter()
            .map(|file| {
                let mut mounts = BTreeMap::new();
                let mut optional = Vec::new();
                for (name, def) in &file.runtimes {
                    let resolved = runtimes::resolve_runtime(name, def, &file.base_dir);
                    if let (true, Err(e)) = (def.optional, &resolved) {
                        tracing::info!(language = %file.name, "optional runtime not found: {e}");
                    }
                    if def.optional {
                        optional.push(name.clone());
                    }
                    mounts.insert(name.clone(), resolved);
                }
                let needs_self = file
                    .run
                    .runtimes
                    .iter()
                    .chain(file.compile.iter().flat_map(|c| c.runtimes.iter()))
                    .any(|r| r == SELF_RUNTIME);
                if needs_self {
                    mounts.insert(SELF_RUNTIME.to_string(), runtimes::self_mount(self_exe));
                }
                Language {
                    file,
                    mounts: RwLock::new(mounts),
                    optional,
                }
            })
            .collect();
        let slots = Arc::new(Semaphore::new(config.effective_concurrency()));
        let cache = match (&config.compile_cache_dir, config.compile_cache_mb) {
            (Some(dir), mb) if mb > 0 => Some(
                cache::CompileCache::open(dir.clone(), mb << 20).map_err(|e| {
                    EngineError::Internal(format!("compile cache {}: {e}", dir.display()))
                })?,
            ),
            _ => None,
        };
        // The engine owns the pools and their sizes; a backend without warm boxes gets none.
        let mut pools = BTreeMap::new();
        if backend.capabilities().warm_boxes {
            for lang in &languages {
                let defaults = ExecuteRequest {
                    language: lang.file.name.clone(),
                    ..Default::default()
                };
                let Ok(plan) = plan::plan(&config, &lang.file, &defaults) else {
                    continue;
                };
                for t in pool::templates(&config, lang, &plan) {
                    let name = format!("{}/{}", lang.file.name, t.step);
                    let pool = pool::Pool::new(name.clone(), t.spec, t.sizing);
                    pools.insert(name, Arc::new(pool));
                }
            }
        }
        Ok(Engine {
            backend,
            config,
            languages,
            slots,
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            health: RwLock::new(None),
            scratch,
            counter: AtomicU64::new(0),
            cache,
            pools,
            refresh: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Starts filling the warm pools (call once, from within the runtime).
    pub fn start_pools(&self) {
        for pool in self.pools.values() {
            let scratch = self.scratch.clone();
            let name = pool.name.replace('/', "-");
            pool.spawn_refill(self.backend.clone(), move || {
                scratch.join(format!("pool-{name}-{}-{}", std::process::id(), unique()))
            });
        }
    }

    /// Stops the warm pools (shutdown): nothing more is prepared, ready boxes are destroyed.
    pub fn stop_pools(&self) {
        for pool in self.pools.values() {
            pool.stop();
        }
    }

    /// Ends every program the backend is running (shutdown, after the grace period).
    pub fn kill_all(&self) {
        self.backend.kill_all();
    }

    /// The backend's host checks (for `coderun doctor`).
    pub fn host_checks(&self) -> Vec<coderun_sandbox::Check> {
        self.backend.host_checks()
    }

    fn pool(&self, language: &str, step: &str) -> Option<Arc<pool::Pool>> {
        self.pools.get(&format!("{language}/{step}")).cloned()
    }

    /// Every pool with its ready boxes and its bounds.
    pub fn pools(&self) -> BTreeMap<String, PoolStatus> {
        self.pools
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    PoolStatus {
                        ready: p.ready_count(),
                        min: p.sizing.min,
                        max: p.sizing.max,
                    },
                )
            })
            .collect()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn language_names(&self) -> Vec<String> {
        self.languages.iter().map(|l| l.file.name.clone()).collect()
    }

    /// The language for a request's `language` field (case-insensitive, aliases accepted).
    fn language(&self, requested: &str) -> Result<&Language, EngineError> {
        let wanted = requested.trim().to_ascii_lowercase();
        self.languages
            .iter()
            .find(|l| l.file.answers_to(&wanted))
            .ok_or_else(|| EngineError::UnsupportedLanguage {
                requested: requested.to_string(),
                supported: self.language_names(),
            })
    }

    /// Maps a file extension (`py`) to a language name, for `coderun run FILE`.
    pub fn language_for_extension(&self, ext: &str) -> Option<String> {
        self.languages
            .iter()
            .find(|l| {
                l.file
                    .extensions
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(ext))
            })
            .map(|l| l.file.name.clone())
    }

    /// Runs one request: plan, admission, compile, run, result. Dropping the future at any
    /// point frees its slot and ends its box.
    pub async fn execute(&self, req: ExecuteRequest) -> Result<Execution, EngineError> {
        let lang = self.language(&req.language)?;
        let plan = plan::plan(&self.config, &lang.file, &req)?;
        if plan.typecheck {
            if lang.typecheck_available() == Some(false) {
                return Err(EngineError::TypecheckUnavailable {
                    language: lang.file.name.clone(),
                });
            }
            self.note_typecheck_available(lang);
        }
        let queued_at = Instant::now();
        let _slot = self.admit().await?;
        let queue_time = queued_at.elapsed().as_secs_f64();
        let (_running, _) = Gauge::enter(&self.running);
        let res = self.compile_and_run(lang, plan).await;
        match res {
            Ok(mut exec) => {
                exec.queue_time = queue_time;
                Ok(exec)
            }
            Err(e) => {
                tracing::error!(language = %lang.file.name, error = %e.detail(), "execution failed");
                Err(e)
            }
        }
    }

    async fn compile_and_run(
        &self,
        lang: &Language,
        plan: plan::Plan,
    ) -> Result<Execution, EngineError> {
        let file = &lang.file;
        let compiled = match &file.compile {
            None => None,
            Some(def) => match compile::compile(self, lang, def, &plan).await? {
                CompileResult::Failed(exec) => return Ok(exec),
                CompileResult::Compiled(c) => Some(c),
            },
        };
        let run_files = match &compiled {
            Some(c) => c.run_files.clone(),
            None => plan.files,
        };
        let step = Step {
            label: format!("{}-run", file.name),
            argv: plan::expand(&file.run.command, &file.source_file, &plan.args, &[]),
            env: plan::env(&file.run.env),
            mounts: lang.mounts_for(&file.run.runtimes)?,
            files: run_files,
            stdin: plan.stdin,
            limits: plan.run_limits.clone(),
            collect: None,
        };
        let pool = self.pool(&file.name, "run");
        let ran = step::run(self.backend.as_ref(), pool.as_deref(), step).await?;
        let mut exec = result::finish(
            &file.name,
            self.version(lang),
            &plan.run_limits,
            ran.outcome,
        );
        exec.pooled = ran.pooled;
        if let Some(c) = compiled {
            exec.compile_output = Some(c.output);
            exec.compile_time = Some(c.time);
            exec.compile_cached = Some(c.cached);
        }
        Ok(exec)
    }

    /// A run slot, waiting in the queue if there is room there. The permit and the place in
    /// the queue are guards: a request dropped while waiting leaves the queue.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, EngineError> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        let (_waiting, queued) = Gauge::enter(&self.waiting);
        if queued >= self.config.queue {
            return Err(EngineError::Overloaded {
                running: self.running(),
                queued,
                retry_after_s: 1,
            });
        }
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// Requests running now (past admission).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Requests waiting for a run slot.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// The last self-check (None before the first one finished).
    pub fn health(&self) -> Option<Health> {
        self.health
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs every language's version command in a real box and caches the result.
    pub async fn self_check(&self) -> Health {
        let health = health::self_check(self).await;
        *self.health.write().unwrap_or_else(|p| p.into_inner()) = Some(health.clone());
        health
    }

    /// Refreshes the self-check every `self_check_interval_s` (or at once when a request
    /// found a runtime the last one missed) until the engine is dropped.
    pub fn spawn_self_check_loop(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = std::time::Duration::from_secs(self.config.self_check_interval_s.max(1));
        tokio::spawn(async move {
            loop {
                let Some(refresh) = weak.upgrade().map(|e| e.refresh.clone()) else {
                    return;
                };
                let _ = tokio::time::timeout(every, refresh.notified()).await;
                let Some(engine) = weak.upgrade() else { return };
                engine.self_check().await;
            }
        });
    }

    /// A type checker found since the last self-check shows in `/health` and `/languages`
    /// at once (the next self-check refreshes the version line too).
    fn note_typecheck_available(&self, lang: &Language) {
        let mut health = self.health.write().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = health
            .as_mut()
            .and_then(|h| h.languages.iter_mut().find(|l| l.name == lang.file.name))
        {
            if entry.typecheck != Some(true) {
                entry.typecheck = Some(true);
                // The version line names the checker: refresh it now, not in a minute.
                self.refresh.notify_one();
            }
        }
    }

    /// The version the last self-check found for a language.
    fn version(&self, lang: &Language) -> Option<String> {
        self.health()
            .and_then(|h| h.languages.into_iter().find(|l| l.name == lang.file.name))
            .and_then(|l| l.version)
    }

    fn scratch_file(&self, what: &str) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.scratch
            .join(format!("{what}-{}-{n}", std::process::id()))
    }
}

/// A number unique within this process (for temp file names).
pub(crate) fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Names of the common signals, for the response's `signal` field.
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig).ok().and_then(|i| NAMES.get(i)) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!("SIG{sig}"),
    }
}
