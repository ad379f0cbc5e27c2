//! The native Linux sandbox: coderun's default backend. No daemon, no setuid helper binary:
//! the server runs as root and re-executes itself once per box.
//!
//! # Theory of operation
//! Processes, for one box:
//! ```text
//! coderun serve (multithreaded, tokio)
//!   └─ coderun __box        the helper: host root, single-threaded, one per box   (helper.rs)
//!        └─ init            pid 1 of the box's namespaces, root of its user ns only (confine.rs)
//!             └─ program    uid 1000 in the box (host uid from a per-box slot), no caps,
//!                           no_new_privs, seccomp
//! ```
//! Pipes: the server writes the request (spec + stdin) to the helper's stdin and reads the
//! report (outcome + stdout + stderr) from its stdout ([`protocol`]). The helper owns the
//! program's stdin/stdout/stderr pipes, a "go" pipe to init and a report pipe from init. Only
//! fds 0-2 are open when the program execs.
//!
//! Why a re-executed helper: the server is multithreaded, and mounting, writing uid maps or
//! compiling seccomp after a fork of it could deadlock on locks held by other threads. The
//! helper is a fresh process, so all the confinement happens in ordinary code.
//!
//! Privileges: the helper is host root (it writes uid maps and cgroups). Init holds
//! capabilities only inside the box's user namespace (it mounts). The program holds none.
//!
//! Cancellation: the server holds the helper's stdin open until it has the report; a request
//! dropped before that closes it, and the helper kills the box and removes it. A server that
//! dies closes every helper's stdin the same way, and init dies with its helper
//! (`PR_SET_PDEATHSIG`), so nothing of a box outlives the server by more than a moment.
//!
//! Warm boxes and the runner protocol: see [`runner`].
//!
//! Cleanup: the program's end (or a limit) ends init; init's end kills the whole pid
//! namespace; the mount namespace (with the tmpfs) goes with it; the helper then sends its
//! report and, off the request's critical path, removes the cgroup and the box's state dir
//! (the server keeps the helper registered until it exits). Nothing the program could have touched is opened by host
//! code by path: input and output files cross inside the box ([`files`]).

pub mod caps;
pub mod cgroup;
pub mod confine;
pub mod files;
pub mod helper;
pub mod instance;
pub mod namespaces;
pub mod net;
pub mod protocol;
pub mod rlimit;
pub mod rootfs;
pub mod runner;
pub mod seccomp;
pub mod store;
pub mod sys;
pub mod uids;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coderun_sandbox::{
    Backend, BoxFuture, BoxSpec, Capabilities, Check, Outcome, PreparedBox, Program, SandboxError,
    WarmSpec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cgroup::Layout;
use crate::instance::Instance;
use crate::protocol::{HandoffProgram, Mode, Report, Request};
use crate::runner::Warm;
use crate::store::Store;

/// Settings of the native backend.
#[derive(Debug, Clone)]
pub struct LinuxConfig {
    /// The `coderun` binary, re-executed as `coderun __box` for every box.
    pub helper_exe: PathBuf,
    /// Instance state dirs (`/run/coderun`).
    pub state_root: PathBuf,
    /// Per-box uid slot locks. Shared by every instance on the host whatever its state root,
    /// so no two concurrent boxes ever get the same host uid.
    pub uid_lock_dir: PathBuf,
    /// The runtime store lives in `<data_dir>/runtimes`.
    pub data_dir: PathBuf,
    /// First host uid/gid for boxes and the number of box slots (two ids each).
    pub uid_base: u32,
    pub uid_slots: u32,
    pub seccomp_policy: String,
}

impl LinuxConfig {
    pub fn with_defaults(helper_exe: PathBuf) -> LinuxConfig {
        LinuxConfig {
            helper_exe,
            state_root: "/run/coderun".into(),
            uid_lock_dir: "/run/coderun/uids".into(),
            data_dir: "/var/lib/coderun".into(),
            uid_base: 1_500_000,
            uid_slots: 4096,
            seccomp_policy: seccomp::DEFAULT_POLICY.to_string(),
        }
    }
}

impl LinuxConfig {
    /// Checks the host id range: slot `n` maps to `uid_base + 2n` and `uid_base + 2n + 1`,
    /// which must be real ids (never 0, never past 4294967294: `(uid_t)-1` is no id, and an
    /// overflow would wrap to root).
    pub fn validate(&self) -> Result<(), String> {
        if self.uid_slots == 0 {
            return Err("sandbox.uid_slots must be at least 1".into());
        }
        if self.uid_base < 1000 {
            return Err(format!(
                "sandbox.uid_base = {} is a system id range; use an unused range, e.g. 1500000",
                self.uid_base
            ));
        }
        let last = u64::from(self.uid_base) + 2 * u64::from(self.uid_slots) - 1;
        if last > u64::from(u32::MAX) - 1 {
            return Err(format!(
                "sandbox.uid_base + 2 * uid_slots - 1 = {last} is past the last host id 4294967294"
            ));
        }
        Ok(())
    }
}

/// The native backend. Dropping it removes the instance's cgroups and state dir.
pub struct LinuxBackend {
    config: LinuxConfig,
    instance: Instance,
    cgroup: (Layout, String),
    store: Arc<Store>,
    /// The runner scripts' mount (see [`runner`]).
    runners: coderun_sandbox::RuntimeMount,
    counter: AtomicU64,
    /// Pids of every helper alive (warm ones included), until each has exited: after its
    /// report a helper still removes its box.
    helpers: Helpers,
}

type Helpers = Arc<std::sync::Mutex<std::collections::HashSet<u32>>>;

impl LinuxBackend {
    /// Creates this instance's state dir and cgroup, after sweeping dead instances.
    pub fn new(config: LinuxConfig) -> Result<LinuxBackend, SandboxError> {
        // Fds the server inherited from whoever started it must never reach a helper.
        // SAFETY: close_range with integer arguments; CLOSE_RANGE_CLOEXEC (4) only marks them.
        unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32) };
        let setup = |step: &str, e: &dyn std::fmt::Display| SandboxError::Setup {
            step: step.to_string(),
            message: e.to_string(),
        };
        config.validate().map_err(SandboxError::InvalidSpec)?;
        let instance =
            Instance::create(&config.state_root).map_err(|e| setup("instance state dir", &e))?;
        let layout = Layout::detect().map_err(|e| setup("cgroups", &e))?;
        layout
            .create_instance(&instance.id)
            .map_err(|e| setup("cgroups", &e))?;
        let cgroup = (layout, instance.id.clone());
        match instance::sweep(&config.state_root, &instance.id, Some(&cgroup.0)) {
            Ok(s) if s.instances > 0 => tracing::info!(
                instances = s.instances,
                helpers = s.helpers_killed,
                cgroups = s.cgroups_removed,
                "swept what dead instances left behind"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("start-up sweep failed: {e}"),
        }
        let store =
            Store::new(config.data_dir.join("runtimes")).map_err(|e| setup("runtime store", &e))?;
        let runners = runner::install(&config.data_dir).map_err(|e| setup("runner scripts", &e))?;
        Ok(LinuxBackend {
            config,
            instance,
            cgroup,
            store: Arc::new(store),
            runners,
            counter: AtomicU64::new(0),
            helpers: Arc::new(std::sync::Mutex::new(std::collections::HashSet::new())),
        })
    }

    pub fn instance_id(&self) -> &str {
        &self.instance.id
    }

    /// This instance's state dir (removed when the backend is dropped, swept after a crash).
    pub fn instance_dir(&self) -> &std::path::Path {
        &self.instance.dir
    }

    pub fn cgroup_version(&self) -> cgroup::Version {
        self.cgroup.0.version
    }

    /// Kills every process of every box of this instance through the boxes' cgroups. Each
    /// helper then sees its init end, reports the program killed, and removes its box.
    fn kill_all_boxes(&self) {
        let (layout, id) = &self.cgroup;
        let instance = layout.open_instance(id);
        for name in instance.list_boxes().unwrap_or_default() {
            if let Err(e) = instance.open_box(&name).kill_all() {
                tracing::warn!(box_name = %name, "killing a box at shutdown: {e}");
            }
        }
    }

    async fn run_box(&self, spec: BoxSpec) -> Result<Outcome, SandboxError> {
        let stdin = spec.stdin.clone();
        let helper = self.spawn_helper(spec, Mode::Fresh).await?;
        let mut input = Vec::with_capacity(stdin.len() + 8);
        protocol::write_frame(&mut input, &stdin)?;
        helper.talk(input).await
    }

    async fn prepare_box(&self, spec: WarmSpec) -> Result<WarmBox, SandboxError> {
        let warm = Warm::choose(&spec.command);
        let mut mounts = spec.mounts;
        let (argv, mode) = match &warm {
            Warm::Runner(r) => {
                mounts.push(self.runners.clone());
                (r.argv.clone(), Mode::Runner)
            }
            Warm::Parked => (spec.command.clone(), Mode::Parked),
        };
        let limits = spec.limits.clone();
        let box_spec = BoxSpec {
            label: spec.label,
            argv,
            env: spec.env,
            mounts,
            files: Vec::new(),
            stdin: Vec::new(),
            limits: spec.limits,
            collect: spec.collect,
        };
        let helper = self.spawn_helper(box_spec, mode).await?;
        Ok(WarmBox {
            helper,
            warm,
            limits,
        })
    }

    /// Starts a helper for `spec` and sends it the request (a warm box also gets its empty
    /// stdin frame and is waited for until it reports ready).
    async fn spawn_helper(&self, spec: BoxSpec, mode: Mode) -> Result<Helper, SandboxError> {
        if spec.argv.is_empty() {
            return Err(SandboxError::InvalidSpec("argv is empty".into()));
        }
        let store = self.store.clone();
        let mounts_spec = spec.mounts.clone();
        let mounts = tokio::task::spawn_blocking(move || {
            mounts_spec
                .iter()
                .map(|m| Ok((store.materialize(m)?, m.target.clone())))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| SandboxError::Helper(e.to_string()))?
        .map_err(|e| SandboxError::Setup {
            step: "runtime store".into(),
            message: e.to_string(),
        })?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let box_name = format!("box-{n}-{:06x}", random_u64() as u32 & 0xff_ffff);
        let backstop = Duration::from_millis(spec.limits.wall_time_ms + 60_000);
        let request = Request {
            spec,
            box_name,
            instance_dir: self.instance.dir.clone(),
            uid_lock_dir: self.config.uid_lock_dir.clone(),
            uid_base: self.config.uid_base,
            uid_slots: self.config.uid_slots,
            cgroup: self.cgroup.clone(),
            mounts,
            seccomp_policy: self.config.seccomp_policy.clone(),
            mode,
        };
        let header =
            serde_json::to_vec(&request).map_err(|e| SandboxError::Helper(e.to_string()))?;
        let mut first = Vec::with_capacity(header.len() + 16);
        protocol::write_frame(&mut first, &header)?;
        if mode.warm() {
            protocol::write_frame(&mut first, &[])?;
        }
        let mut child = tokio::process::Command::new(&self.config.helper_exe)
            // The box's init is a fork of the helper and keeps its command line, which every
            // program can read in /proc/1/cmdline: never show the binary's host path there.
            .arg0("coderun")
            .arg("__box")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                SandboxError::Helper(format!(
                    "cannot start {}: {e}",
                    self.config.helper_exe.display()
                ))
            })?;
        let missing = || SandboxError::Helper("helper pipes missing".into());
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let mut helper = Helper {
            stdin,
            stdout,
            process: HelperProcess::new(child, stderr, self.helpers.clone()),
            backstop,
        };
        helper.stdin.write_all(&first).await?;
        if mode.warm() {
            helper.wait_ready().await?;
        }
        Ok(helper)
    }
}

/// A running box helper, talked to over its stdin/stdout.
///
/// Dropping it before its report is read (the request went away) closes its stdin, which
/// tells the helper to kill and remove the box (see [`helper`]).
struct Helper {
    /// Kept open until the report is read: its closing is the helper's signal to cancel.
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    process: HelperProcess,
    backstop: Duration,
}

/// A helper process in the backend's set of live helpers, until it has exited. Dropped,
/// it hands the process to a task that reaps it (logging anything it printed) and only then
/// unregisters it.
struct HelperProcess {
    child: Option<tokio::process::Child>,
    stderr: Option<tokio::process::ChildStderr>,
    pid: Option<u32>,
    helpers: Helpers,
}

impl HelperProcess {
    fn new(
        child: tokio::process::Child,
        stderr: tokio::process::ChildStderr,
        helpers: Helpers,
    ) -> HelperProcess {
        let pid = child.id();
        if let Some(pid) = pid {
            helpers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pid);
        }
        HelperProcess {
            child: Some(child),
            stderr: Some(stderr),
            pid,
            helpers,
        }
    }

    /// What the helper printed and how it ended, once it has exited (for an error report).
    async fn wait_with_stderr(&mut self) -> (String, String) {
        let mut err = Vec::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), stderr.read_to_end(&mut err)).await;
        }
        let status = match self.child.as_mut() {
            Some(child) => match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                _ => "still running".to_string(),
            },
            None => "gone".to_string(),
        };
        (status, String::from_utf8_lossy(&err).trim().to_string())
    }
}

impl Drop for HelperProcess {
    fn drop(&mut self) {
        let unregister = {
            let helpers = self.helpers.clone();
            let pid = self.pid;
            move || {
                if let Some(pid) = pid {
                    helpers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&pid);
                }
            }
        };
        let (Some(mut child), Ok(runtime)) =
            (self.child.take(), tokio::runtime::Handle::try_current())
        else {
            unregister();
            return;
        };
        let stderr = self.stderr.take();
        runtime.spawn(async move {
            let mut err = Vec::new();
            // A helper whose stdin closed kills and removes its box at once; one that does
            // not exit within 10 s is stuck and is killed (init dies with it). Reading what
            // it printed is inside the bound too: a stuck helper never closes its stderr.
            let exited = async {
                if let Some(mut stderr) = stderr {
                    let _ = stderr.read_to_end(&mut err).await;
                }
                child.wait().await
            };
            let status = match tokio::time::timeout(Duration::from_secs(10), exited).await {
                Ok(status) => status.ok(),
                Err(_) => {
                    tracing::warn!(pid = ?child.id(), "box helper did not exit: killing it");
                    let _ = child.start_kill();
                    child.wait().await.ok()
                }
            };
            if !err.is_empty() {
                tracing::warn!(helper_stderr = %String::from_utf8_lossy(&err), "box helper printed errors");
            }
            if let Some(status) = status.filter(|s| !s.success()) {
                tracing::debug!(%status, "box helper exited with a failure (a cancelled box reports one)");
            }
            unregister();
        });
    }
}

impl Helper {
    async fn wait_ready(&mut self) -> Result<(), SandboxError> {
        let frame =
            match tokio::time::timeout(Duration::from_secs(60), read_frame(&mut self.stdout)).await
            {
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => {
                    let (status, printed) = self.process.wait_with_stderr().await;
                    return Err(SandboxError::Helper(format!(
                        "warm box did not start ({status}): {e}; it printed: {printed}"
                    )));
                }
                Err(_) => {
                    return Err(SandboxError::Helper(
                        "warm box did not start within 60 s".into(),
                    ))
                }
            };
        if frame == br#"{"ready":true}"# {
            return Ok(());
        }
        match serde_json::from_slice::<Report>(&frame) {
            Ok(Report { result: Err(e) }) => Err(SandboxError::Setup {
                step: e.step,
                message: e.message,
            }),
            _ => Err(SandboxError::Helper(
                "warm box sent an unexpected frame".into(),
            )),
        }
    }

    /// Sends the rest of the input and reads the report's three frames. The helper removes
    /// the box after sending them, so the answer does not wait for that: the helper's exit
    /// is awaited by [`HelperProcess`]'s drop, which keeps it registered until then.
    async fn talk(self, input: Vec<u8>) -> Result<Outcome, SandboxError> {
        let Helper {
            mut stdin,
            mut stdout,
            mut process,
            backstop,
        } = self;
        let talk = async {
            let write = async {
                stdin.write_all(&input).await?;
                stdin.flush().await
            };
            let read = async {
                let mut frames = Vec::with_capacity(3);
                for _ in 0..3 {
                    frames.push(read_frame(&mut stdout).await?);
                }
                Ok::<_, std::io::Error>(frames)
            };
            let (w, frames) = tokio::join!(write, read);
            // The helper may have refused the request before reading all of it.
            match (w, frames) {
                (_, Ok(frames)) => Ok(frames),
                (Err(w), Err(_)) => Err(w),
                (Ok(()), Err(r)) => Err(r),
            }
        };
        let frames = match tokio::time::timeout(backstop, talk).await {
            Ok(Ok(frames)) => frames,
            Ok(Err(e)) => {
                // No complete report: say how the helper ended and what it printed.
                drop(stdin);
                let (status, printed) = process.wait_with_stderr().await;
                return Err(SandboxError::Helper(format!(
                    "no report from box helper ({status}): {e}; it printed: {printed}"
                )));
            }
            Err(_) => {
                return Err(SandboxError::Helper(format!(
                    "box helper did not finish within {} s",
                    backstop.as_secs()
                )))
            }
        };
        // The report is in: closing stdin now is no longer a cancellation.
        drop(stdin);
        drop(process);
        let [header, stdout, stderr] = &frames[..] else {
            return Err(SandboxError::Helper("box helper sent no report".into()));
        };
        let report: Report = serde_json::from_slice(header)
            .map_err(|e| SandboxError::Helper(format!("bad report from box helper: {e}")))?;
        let o = report.result.map_err(|e| SandboxError::Setup {
            step: e.step,
            message: e.message,
        })?;
        Ok(Outcome {
            termination: o.termination,
            limit: o.limit,
            stdout: stdout.clone(),
            stderr: stderr.clone(),
            stdout_truncated: o.stdout_truncated,
            stderr_truncated: o.stderr_truncated,
            wall_time_us: o.wall_time_us,
            cpu_time_us: o.cpu_time_us,
            memory_peak_kb: o.memory_peak_kb,
            collected: o.collected,
        })
    }
}

/// One frame of the helper's report (see [`protocol`]).
async fn read_frame(r: &mut tokio::process::ChildStdout) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len).await?;
    let len = protocol::checked_len(u64::from_le_bytes(len))?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// A box set up ahead of time, kept warm as [`runner`] describes.
struct WarmBox {
    helper: Helper,
    warm: Warm,
    /// What the box was set up with.
    limits: coderun_sandbox::Limits,
}

impl PreparedBox for WarmBox {
    fn accepts(&self, program: &Program) -> bool {
        self.warm.accepts(&self.limits, program)
    }

    fn start(
        self: Box<Self>,
        program: Program,
    ) -> BoxFuture<'static, Result<Outcome, SandboxError>> {
        Box::pin(async move {
            if !self.accepts(&program) {
                return Err(SandboxError::InvalidSpec(
                    "this warm box cannot run that program (see PreparedBox::accepts)".into(),
                ));
            }
            let handoff_program = match &self.warm {
                Warm::Runner(r) => HandoffProgram::Runner {
                    message: r
                        .message(&program.argv, &program.files)
                        .map_err(SandboxError::InvalidSpec)?,
                },
                Warm::Parked => HandoffProgram::Parked {
                    argv: program.argv,
                    files: program.files,
                },
            };
            let header = serde_json::to_vec(&protocol::Handoff {
                program: handoff_program,
                wall_time_ms: program.limits.wall_time_ms,
                cpu_time_ms: program.limits.cpu_time_ms,
                output_bytes: program.limits.output_bytes,
            })
            .map_err(|e| SandboxError::Helper(e.to_string()))?;
            let mut input = Vec::with_capacity(header.len() + program.stdin.len() + 16);
            protocol::write_frame(&mut input, &header)?;
            protocol::write_frame(&mut input, &program.stdin)?;
            self.helper.talk(input).await
        })
    }
}

impl Drop for LinuxBackend {
    fn drop(&mut self) {
        // Helpers still alive are removing their boxes (those whose stdin closed kill theirs
        // first): give them a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let busy = self
                .helpers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|&pid| sys::is_running(pid as libc::pid_t));
            if !busy || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Helpers still alive must not create a box cgroup after the instance is destroyed:
        // end them first (their boxes' inits die with them).
        for &pid in self
            .helpers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if sys::is_running(pid as libc::pid_t) {
                let _ = sys::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let (layout, id) = &self.cgroup;
        // A helper killed mid-way may leave its box's processes a moment more: retry.
        let mut result = Ok(());
        for _ in 0..20 {
            result = layout.open_instance(id).destroy();
            if result.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Err(e) = result {
            tracing::warn!("removing instance cgroups: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.instance.dir);
    }
}

impl Backend for LinuxBackend {
    fn name(&self) -> &'static str {
        "linux-native"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            warm_boxes: true,
            streaming: false,
        }
    }

    fn run(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Outcome, SandboxError>> {
        Box::pin(self.run_box(spec))
    }

    fn prepare(&self, spec: WarmSpec) -> BoxFuture<'_, Result<Box<dyn PreparedBox>, SandboxError>> {
        Box::pin(async move {
            let warm = self.prepare_box(spec).await?;
            Ok(Box::new(warm) as Box<dyn PreparedBox>)
        })
    }

    fn kill_all(&self) {
        self.kill_all_boxes();
    }

    fn host_checks(&self) -> Vec<Check> {
        let mut checks = host_checks();
        match self.cgroup.0.version {
            cgroup::Version::V1 => {
                checks.push(Check {
                    name: "cgroup v1".into(),
                    ok: true,
                    detail: "memory, pids, cpu, cpuacct usable (instance cgroup created)".into(),
                    fix: None,
                });
                checks.push(Check {
                    name: "cgroup v2".into(),
                    ok: true,
                    detail: "not verified on this host (v1 is in use; v2 support is tested only against a temp-dir hierarchy)".into(),
                    fix: None,
                });
            }
            cgroup::Version::V2 => checks.push(Check {
                name: "cgroup v2".into(),
                ok: true,
                detail: "memory, pids, cpu usable (instance cgroup created)".into(),
                fix: None,
            }),
        }
        checks
    }
}

/// Host facts the backend depends on, readable without creating anything.
pub fn host_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let root = unsafe_free_geteuid() == 0;
    checks.push(Check {
        name: "running as root".into(),
        ok: root,
        detail: if root {
            "euid 0".into()
        } else {
            "not root".into()
        },
        fix: (!root)
            .then(|| "run coderun as root (it maps every box to an unprivileged uid)".into()),
    });
    let max_userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    checks.push(Check {
        name: "user namespaces".into(),
        ok: max_userns > 0,
        detail: format!("user.max_user_namespaces = {max_userns}"),
        fix: (max_userns == 0).then(|| "sysctl -w user.max_user_namespaces=10000".into()),
    });
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false);
    checks.push(Check {
        name: "seccomp".into(),
        ok: seccomp,
        detail: if seccomp {
            "kernel supports seccomp filters".into()
        } else {
            "no Seccomp line in /proc/self/status".into()
        },
        fix: (!seccomp).then(|| "use a kernel built with CONFIG_SECCOMP_FILTER".into()),
    });
    checks
}

fn unsafe_free_geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and has no arguments.
    unsafe { libc::geteuid() }
}

/// Random bits from the kernel (for names only; not for secrets).
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: buf is a valid 8-byte buffer.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != 8 {
        return sys::monotonic_us() ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_range_must_be_real_unprivileged_ids() {
        let mut c = LinuxConfig::with_defaults("/coderun".into());
        assert!(c.validate().is_ok());
        c.uid_base = 4_294_967_292;
        c.uid_slots = 1;
        assert!(c.validate().is_ok(), "ids ...292 and ...293 are real");
        c.uid_base = 4_294_967_294;
        assert!(c.validate().unwrap_err().contains("4294967295"));
        c.uid_base = u32::MAX;
        c.uid_slots = u32::MAX;
        assert!(c.validate().is_err(), "no overflow");
        c.uid_base = 0;
        c.uid_slots = 4;
        assert!(c.validate().unwrap_err().contains("system"));
        c.uid_base = 1_500_000;
        c.uid_slots = 0;
        assert!(c.validate().is_err());
    }
}
