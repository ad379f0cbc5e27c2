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
    Backend, BoxFuture, BoxSpec, Check, Handoff, Outcome, PreparedBox, SandboxError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cgroup::Layout;
use crate::instance::Instance;
use crate::protocol::{Mode, Report, Request};
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

/// The native backend. Dropping it removes the instance's cgroups and state dir.
pub struct LinuxBackend {
    config: LinuxConfig,
    instance: Instance,
    cgroup: Option<(Layout, String)>,
    cgroup_error: Option<String>,
    store: Arc<Store>,
    counter: AtomicU64,
    /// Pids of the helpers of boxes given a program (not pooled boxes waiting), until they
    /// exit: after its report a helper still removes its box.
    live: Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
    /// Pids of every helper alive (pooled ones included).
    helpers: Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
}

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
        let instance =
            Instance::create(&config.state_root).map_err(|e| setup("instance state dir", &e))?;
        let (cgroup, cgroup_error) = match Layout::detect() {
            Ok(layout) => match layout.create_instance(&instance.id) {
                Ok(_) => (Some((layout, instance.id.clone())), None),
                Err(e) => (None, Some(e.to_string())),
            },
            Err(e) => (None, Some(e.to_string())),
        };
        if let Some(err) = &cgroup_error {
            return Err(setup("cgroups", err));
        }
        match instance::sweep(
            &config.state_root,
            &instance.id,
            cgroup.as_ref().map(|c| &c.0),
        ) {
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
        Ok(LinuxBackend {
            config,
            instance,
            cgroup,
            cgroup_error,
            store: Arc::new(store),
            counter: AtomicU64::new(0),
            live: Arc::new(std::sync::Mutex::new(std::collections::HashSet::new())),
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

    /// Kills every process of every box of this instance (shutdown after the grace period)
    /// through the boxes' cgroups. Each helper then sees its init end, reports the program
    /// killed, and removes its box as usual.
    pub fn kill_all_boxes(&self) {
        let Some((layout, id)) = &self.cgroup else {
            return;
        };
        let instance = layout.open_instance(id);
        for name in instance.list_boxes().unwrap_or_default() {
            if let Err(e) = instance.open_box(&name).kill_all() {
                tracing::warn!(box_name = %name, "killing a box at shutdown: {e}");
            }
        }
    }

    pub fn cgroup_version(&self) -> Option<cgroup::Version> {
        self.cgroup.as_ref().map(|(l, _)| l.version)
    }

    async fn run_box(&self, spec: BoxSpec) -> Result<Outcome, SandboxError> {
        let stdin = spec.stdin.clone();
        let helper = self.spawn_helper(spec, Mode::Fresh).await?;
        let mut input = Vec::with_capacity(stdin.len() + 8);
        protocol::write_frame(&mut input, &stdin)?;
        helper.finish(input).await
    }

    /// Starts a helper for `spec` and sends it the request (a pooled box also gets its empty
    /// stdin frame and is waited for until it reports ready).
    async fn spawn_helper(&self, spec: BoxSpec, mode: Mode) -> Result<Helper, SandboxError> {
        let pooled = mode.pooled();
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
        if pooled {
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
        let mut helper = Helper {
            stdin: Some(child.stdin.take().ok_or_else(missing)?),
            stdout: child.stdout.take().ok_or_else(missing)?,
            stderr: child.stderr.take().ok_or_else(missing)?,
            registered: Registered {
                pid: child.id(),
                helpers: self.helpers.clone(),
            },
            child,
            backstop,
            live: self.live.clone(),
        };
        if let Some(pid) = helper.registered.pid {
            self.helpers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pid);
        }
        if let Some(stdin) = helper.stdin.as_mut() {
            stdin.write_all(&first).await?;
        }
        if pooled {
            helper.wait_ready().await?;
        }
        Ok(helper)
    }
}

/// A running box helper, talked to over its stdin/stdout.
struct Helper {
    child: tokio::process::Child,
    /// Taken (and closed) once everything is written.
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    backstop: Duration,
    live: Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
    registered: Registered,
}

/// A helper's pid in the backend's set of live helpers, until the helper has been reaped (or,
/// for a helper never run, until it is dropped).
struct Registered {
    pid: Option<u32>,
    helpers: Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            self.helpers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pid);
        }
    }
}

impl Helper {
    async fn wait_ready(&mut self) -> Result<(), SandboxError> {
        let mut len = [0u8; 8];
        let read = async {
            self.stdout.read_exact(&mut len).await?;
            let len = u64::from_le_bytes(len).min(1 << 20) as usize;
            let mut frame = vec![0u8; len];
            self.stdout.read_exact(&mut frame).await?;
            Ok::<_, std::io::Error>(frame)
        };
        let frame = match tokio::time::timeout(Duration::from_secs(60), read).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => {
                return Err(SandboxError::Helper(format!(
                    "pooled box did not start: {e}"
                )))
            }
            Err(_) => {
                return Err(SandboxError::Helper(
                    "pooled box did not start within 60 s".into(),
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
                "pooled box sent an unexpected frame".into(),
            )),
        }
    }

    /// Writes the rest of the input, reads the report, waits for the helper to exit.
    async fn finish(self, input: Vec<u8>) -> Result<Outcome, SandboxError> {
        let backstop = self.backstop;
        // Registered while it runs a program, for kill_all_boxes.
        let pid = self.child.id();
        let live = self.live.clone();
        if let Some(pid) = pid {
            live.lock().unwrap_or_else(|p| p.into_inner()).insert(pid);
        }
        // Unregistered when the helper has exited (see `talk`).
        self.talk(input, backstop).await
    }

    /// Sends the input and reads the report's three frames. The helper removes the box after
    /// sending them, so the answer does not wait for that: the helper's exit is awaited (and
    /// anything it printed logged) by a background task, which keeps it registered until then.
    async fn talk(self, input: Vec<u8>, backstop: Duration) -> Result<Outcome, SandboxError> {
        let Helper {
            mut child,
            stdin,
            mut stdout,
            mut stderr,
            registered,
            live,
            ..
        } = self;
        let unregister = move |pid: Option<u32>| {
            if let Some(pid) = pid {
                live.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
            }
        };
        let stderr_task = tokio::spawn(async move {
            let mut err = Vec::new();
            let _ = stderr.read_to_end(&mut err).await;
            err
        });
        let talk = async {
            let write = async {
                if let Some(mut stdin) = stdin {
                    stdin.write_all(&input).await?;
                }
                Ok::<_, std::io::Error>(())
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
                let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await
                {
                    Ok(Ok(status)) => status.to_string(),
                    _ => "still running".to_string(),
                };
                let err = stderr_task.await.unwrap_or_default();
                unregister(registered.pid);
                drop(registered);
                return Err(SandboxError::Helper(format!(
                    "no report from box helper ({status}): {e}; it printed: {}",
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            Err(_) => {
                return Err(SandboxError::Helper(format!(
                    "box helper did not finish within {} s",
                    backstop.as_secs()
                )))
            }
        };
        tokio::spawn(async move {
            let status = child.wait().await;
            let err = stderr_task.await.unwrap_or_default();
            if !err.is_empty() {
                tracing::warn!(helper_stderr = %String::from_utf8_lossy(&err), "box helper printed errors");
            }
            if let Ok(status) = status {
                if !status.success() {
                    tracing::warn!(%status, "box helper failed after its report");
                }
            }
            unregister(registered.pid);
            drop(registered);
        });
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

impl PreparedBox for Helper {
    fn start(
        self: Box<Self>,
        handoff: Handoff,
    ) -> BoxFuture<'static, Result<Outcome, SandboxError>> {
        Box::pin(async move {
            let header = serde_json::to_vec(&protocol::Handoff {
                message: handoff.message,
                exec: handoff.exec,
                wall_time_ms: handoff.wall_time_ms,
                cpu_time_ms: handoff.cpu_time_ms,
                output_bytes: handoff.output_bytes,
            })
            .map_err(|e| SandboxError::Helper(e.to_string()))?;
            let mut input = Vec::with_capacity(header.len() + handoff.stdin.len() + 16);
            protocol::write_frame(&mut input, &header)?;
            protocol::write_frame(&mut input, &handoff.stdin)?;
            self.finish(input).await
        })
    }
}

impl Drop for LinuxBackend {
    fn drop(&mut self) {
        // Helpers that have reported are removing their boxes: give them a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let busy = self
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|&pid| sys::is_running(pid as libc::pid_t));
            if !busy || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Helpers still alive (warm boxes being dropped, a refill caught mid-way) must not
        // create a box cgroup after the instance is destroyed: end them first.
        for &pid in self
            .helpers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = sys::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        if let Some((layout, id)) = &self.cgroup {
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
        }
        let _ = std::fs::remove_dir_all(&self.instance.dir);
    }
}

impl Backend for LinuxBackend {
    fn name(&self) -> &'static str {
        "linux-native"
    }

    fn run(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Outcome, SandboxError>> {
        Box::pin(self.run_box(spec))
    }

    fn prepare(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Box<dyn PreparedBox>, SandboxError>> {
        Box::pin(async move {
            let helper = self.spawn_helper(spec, Mode::Runner).await?;
            Ok(Box::new(helper) as Box<dyn PreparedBox>)
        })
    }

    fn park(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Box<dyn PreparedBox>, SandboxError>> {
        Box::pin(async move {
            let helper = self.spawn_helper(spec, Mode::Parked).await?;
            Ok(Box::new(helper) as Box<dyn PreparedBox>)
        })
    }

    fn host_checks(&self) -> Vec<Check> {
        let mut checks = host_checks();
        checks.push(match (&self.cgroup, &self.cgroup_error) {
            (Some((layout, _)), _) => Check {
                name: "cgroups".into(),
                ok: true,
                detail: format!("{:?} (instance cgroup created)", layout.version),
                fix: None,
            },
            (None, err) => Check {
                name: "cgroups".into(),
                ok: false,
                detail: err.clone().unwrap_or_default(),
                fix: Some("mount cgroup v1 memory,pids,cpu,cpuacct or cgroup v2 with those controllers delegated".into()),
            },
        });
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
