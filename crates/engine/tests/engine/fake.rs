//! A scripted backend: no box, no process, no root. It records every spec and program it is
//! given, answers with scripted outcomes (per label), can hold a run at a gate until the test
//! opens it, and counts the "boxes" alive so a test can see one destroyed when its future is
//! dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use coderun_sandbox::{
    Backend, BoxFuture, BoxSpec, Capabilities, Check, FileSource, InputFile, LimitHit, Limits,
    Outcome, PreparedBox, Program, SandboxError, Termination, WarmSpec,
};
use tokio::sync::Semaphore;

/// What the fake does for one label.
#[derive(Clone)]
pub struct Act {
    /// The answer, or the message of a `SandboxError::Setup`.
    pub reply: Result<Outcome, String>,
    /// Bytes the "compiler" writes to the collect path before it answers (then `collected`).
    pub write: Option<Vec<u8>>,
    /// The run waits here (after writing) for a permit before it answers.
    pub gate: Option<Arc<Semaphore>>,
}

impl Act {
    pub fn outcome(outcome: Outcome) -> Act {
        Act {
            reply: Ok(outcome),
            write: None,
            gate: None,
        }
    }

    pub fn fail(message: &str) -> Act {
        Act {
            reply: Err(message.to_string()),
            write: None,
            gate: None,
        }
    }

    /// Exits 0 printing `stdout`.
    pub fn ok(stdout: &str) -> Act {
        Act::outcome(outcome(Termination::Exited(0), None, stdout, ""))
    }

    /// A compiler that prints `messages` and writes `bytes` as its output.
    pub fn compiles(bytes: &[u8], messages: &str) -> Act {
        Act::ok(messages).writing(bytes)
    }

    pub fn writing(mut self, bytes: &[u8]) -> Act {
        self.write = Some(bytes.to_vec());
        self
    }

    /// Holds the run until the test adds a permit to the returned gate.
    pub fn gated(mut self) -> (Act, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        self.gate = Some(gate.clone());
        (self, gate)
    }
}

pub fn outcome(
    termination: Termination,
    limit: Option<LimitHit>,
    stdout: &str,
    stderr: &str,
) -> Outcome {
    Outcome {
        termination,
        limit,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
        stdout_truncated: false,
        stderr_truncated: false,
        wall_time_us: 1_500,
        cpu_time_us: 1_000,
        memory_peak_kb: 4_096,
        collected: false,
    }
}

/// What a program handed to a warm box looked like.
#[derive(Debug, Clone)]
pub struct Started {
    /// The label of the warm box (`<language>-<step>-warm`).
    pub label: String,
    pub box_id: usize,
    pub argv: Vec<String>,
    pub files: Vec<InputFile>,
    pub stdin: Vec<u8>,
    pub limits: Limits,
}

type Accepts = dyn Fn(&WarmSpec, &Program) -> bool + Send + Sync;

#[derive(Default)]
struct Record {
    fresh: Vec<BoxSpec>,
    prepared: Vec<WarmSpec>,
    started: Vec<Started>,
    /// Warm boxes alive (ready in a pool or running), by id.
    warm_alive: Vec<usize>,
    /// Host files copied into a box when it was handed its program: (label, path in the
    /// box, the bytes, or why they could not be read).
    host_files: Vec<(String, String, Result<Vec<u8>, String>)>,
}

pub struct Inner {
    warm: bool,
    prepare_fails: std::sync::atomic::AtomicBool,
    scripts: Mutex<BTreeMap<String, Act>>,
    record: Mutex<Record>,
    accepts: Mutex<Arc<Accepts>>,
    /// Boxes alive: fresh boxes in flight and warm boxes (ready or running).
    live: AtomicUsize,
    /// Boxes with a program in them (a fresh run or a started warm box) not yet answered.
    running: AtomicUsize,
    /// Runs waiting at a gate now.
    at_gate: AtomicUsize,
    next_id: AtomicUsize,
}

#[derive(Clone)]
pub struct Fake(pub Arc<Inner>);

/// One box; its drop is the box's destruction.
struct BoxGuard {
    inner: Arc<Inner>,
    warm_id: Option<usize>,
}

impl BoxGuard {
    fn new(inner: &Arc<Inner>, warm_id: Option<usize>) -> BoxGuard {
        inner.live.fetch_add(1, Ordering::SeqCst);
        if let Some(id) = warm_id {
            inner.lock().warm_alive.push(id);
        }
        BoxGuard {
            inner: inner.clone(),
            warm_id,
        }
    }
}

impl Drop for BoxGuard {
    fn drop(&mut self) {
        self.inner.live.fetch_sub(1, Ordering::SeqCst);
        if let Some(id) = self.warm_id {
            self.inner.lock().warm_alive.retain(|i| *i != id);
        }
    }
}

/// Counts one in for as long as it lives.
struct Count<'a>(&'a AtomicUsize);

impl<'a> Count<'a> {
    fn enter(c: &'a AtomicUsize) -> Count<'a> {
        c.fetch_add(1, Ordering::SeqCst);
        Count(c)
    }
}

impl Drop for Count<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies the host files in, as a backend would when it sets the box up.
    fn copy_in(&self, label: &str, files: &[InputFile]) {
        for f in files {
            if let FileSource::Host(path) = &f.source {
                let bytes = std::fs::read(path).map_err(|e| e.to_string());
                self.lock()
                    .host_files
                    .push((label.to_string(), f.path.clone(), bytes));
            }
        }
    }

    fn act(&self, label: &str) -> Act {
        self.scripts
            .lock()
            .unwrap()
            .get(label)
            .cloned()
            .unwrap_or_else(|| Act::ok(""))
    }

    /// Plays an act: writes the collect file, waits at the gate, answers.
    async fn play(
        &self,
        act: Act,
        collect: Option<(PathBuf, u64)>,
    ) -> Result<Outcome, SandboxError> {
        let _running = Count::enter(&self.running);
        let mut collected = false;
        if let (Some(bytes), Some((path, max))) = (&act.write, &collect) {
            std::fs::write(path, bytes)?;
            collected = bytes.len() as u64 <= *max;
        }
        if let Some(gate) = &act.gate {
            let _waiting = Count::enter(&self.at_gate);
            gate.acquire().await.expect("gate closed").forget();
        }
        match act.reply {
            Ok(mut out) => {
                out.collected = collected;
                Ok(out)
            }
            Err(message) => Err(SandboxError::Setup {
                step: "fake".into(),
                message,
            }),
        }
    }
}

impl Fake {
    /// A backend with or without warm boxes. Its warm boxes accept a program when its argv
    /// starts with the box's command and its limits are the box's.
    pub fn new(warm: bool) -> Fake {
        Fake(Arc::new(Inner {
            warm,
            prepare_fails: std::sync::atomic::AtomicBool::new(false),
            scripts: Mutex::new(BTreeMap::new()),
            record: Mutex::new(Record::default()),
            accepts: Mutex::new(Arc::new(|spec: &WarmSpec, p: &Program| {
                p.argv.starts_with(&spec.command) && p.limits == spec.limits
            })),
            live: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            at_gate: AtomicUsize::new(0),
            next_id: AtomicUsize::new(0),
        }))
    }

    pub fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.clone())
    }

    /// Scripts what a box with this label does (a fresh box's label, or a warm box's).
    pub fn on(&self, label: &str, act: Act) {
        self.0.scripts.lock().unwrap().insert(label.into(), act);
    }

    /// Makes every `prepare` fail (a backend that says it has warm boxes but cannot make one).
    pub fn fail_prepare(&self) {
        self.0.prepare_fails.store(true, Ordering::SeqCst);
    }

    pub fn set_accepts(&self, f: impl Fn(&WarmSpec, &Program) -> bool + Send + Sync + 'static) {
        *self.0.accepts.lock().unwrap() = Arc::new(f);
    }

    /// Every fresh box spec, in order.
    pub fn fresh(&self) -> Vec<BoxSpec> {
        self.0.lock().fresh.clone()
    }

    /// Fresh box specs with this label.
    pub fn fresh_labelled(&self, label: &str) -> Vec<BoxSpec> {
        self.fresh()
            .into_iter()
            .filter(|s| s.label == label)
            .collect()
    }

    pub fn prepared(&self) -> Vec<WarmSpec> {
        self.0.lock().prepared.clone()
    }

    pub fn started(&self) -> Vec<Started> {
        self.0.lock().started.clone()
    }

    pub fn warm_alive(&self) -> Vec<usize> {
        self.0.lock().warm_alive.clone()
    }

    /// Host files copied into boxes: (label, path in the box, bytes or error).
    pub fn host_files(&self) -> Vec<(String, String, Result<Vec<u8>, String>)> {
        self.0.lock().host_files.clone()
    }

    pub fn live(&self) -> usize {
        self.0.live.load(Ordering::SeqCst)
    }

    pub fn running(&self) -> usize {
        self.0.running.load(Ordering::SeqCst)
    }

    pub fn at_gate(&self) -> usize {
        self.0.at_gate.load(Ordering::SeqCst)
    }
}

impl Backend for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            warm_boxes: self.0.warm,
            streaming: false,
        }
    }

    fn run(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Outcome, SandboxError>> {
        let inner = self.0.clone();
        let guard = BoxGuard::new(&inner, None);
        inner.lock().fresh.push(spec.clone());
        inner.copy_in(&spec.label, &spec.files);
        let act = inner.act(&spec.label);
        let collect = spec.collect.map(|c| (c.host_path, c.max_bytes));
        Box::pin(async move {
            let _box = guard;
            inner.play(act, collect).await
        })
    }

    fn host_checks(&self) -> Vec<Check> {
        Vec::new()
    }

    fn prepare(&self, spec: WarmSpec) -> BoxFuture<'_, Result<Box<dyn PreparedBox>, SandboxError>> {
        let inner = self.0.clone();
        inner.lock().prepared.push(spec.clone());
        if !inner.warm || inner.prepare_fails.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(SandboxError::InvalidSpec("fake: no warm boxes".into()))
            });
        }
        let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
        let guard = BoxGuard::new(&inner, Some(id));
        let prepared: Box<dyn PreparedBox> = Box::new(FakePrepared {
            inner: inner.clone(),
            spec,
            id,
            guard,
        });
        Box::pin(async move { Ok(prepared) })
    }
}

struct FakePrepared {
    inner: Arc<Inner>,
    spec: WarmSpec,
    id: usize,
    guard: BoxGuard,
}

impl PreparedBox for FakePrepared {
    fn accepts(&self, program: &Program) -> bool {
        let f = self.inner.accepts.lock().unwrap().clone();
        f(&self.spec, program)
    }

    fn start(
        self: Box<Self>,
        program: Program,
    ) -> BoxFuture<'static, Result<Outcome, SandboxError>> {
        let FakePrepared {
            inner,
            spec,
            id,
            guard,
        } = *self;
        inner.copy_in(&spec.label, &program.files);
        inner.lock().started.push(Started {
            label: spec.label.clone(),
            box_id: id,
            argv: program.argv,
            files: program.files,
            stdin: program.stdin,
            limits: program.limits,
        });
        let act = inner.act(&spec.label);
        let collect = spec.collect.map(|c| (c.host_path, c.max_bytes));
        Box::pin(async move {
            let _box = guard;
            inner.play(act, collect).await
        })
    }
}
