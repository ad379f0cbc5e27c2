//! The box helper: one short-lived process per box, `coderun __box`, started by the server.
//!
//! It is a fresh, single-threaded process (never a fork of the multithreaded server), so it
//! may allocate freely between its own fork-like clone and the box's exec. It:
//! 1. takes a host uid slot and creates the box's state dir and cgroup,
//! 2. clones init into new namespaces (see [`crate::confine`]), maps ids, adds init to the
//!    cgroup and lets it go,
//! 3. supervises: feeds stdin, reads stdout/stderr up to their caps, enforces the wall-clock
//!    limit and the cgroup CPU-time limit, and kills init (so the whole pid namespace) on any
//!    limit,
//! 4. reads peak memory and OOM kills from the cgroup and writes a [`Report`] to stdout,
//! 5. then, off the request's critical path, removes the cgroup and the state dir and exits.
//!
//! Cancellation: the server keeps the helper's stdin open until it has read the report. If
//! the stdin closes first — the request was dropped (client gone, deadline, shutdown) or the
//! server died, whose fds the kernel closes — the helper kills the box at once, removes it
//! and exits. Init has a parent-death signal, so even a helper killed outright takes the
//! box's processes with it (the server's start-up sweep removes what such a helper left).

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use coderun_sandbox::{FileSource, LimitHit, Termination};

use crate::cgroup::{BoxCgroup, CgroupLimits};
use crate::confine::{self, InitMessage, InputContent, Plan};
use crate::protocol::{
    self, ExecHeader, Handoff, HandoffProgram, Mode, Report, ReportError, ReportOutcome, Request,
};
use crate::rlimit::Rlimits;
use crate::rootfs::RootPlan;
use crate::sys::{self, close, cvt};
use crate::uids::Slot;
use crate::{files, namespaces, seccomp};

/// How long set-up (clone to exec) may take before the box is abandoned.
const SETUP_TIMEOUT_US: u64 = 20_000_000;
/// How often the cgroup CPU counter is read.
const TICK_MS: i32 = 10;

/// Entry point of `coderun __box`. Returns the process exit code.
pub fn helper_main() -> i32 {
    // Writing to a pipe whose reader died must be an error, not a signal. (The program gets
    // default dispositions back before its exec.)
    // SAFETY: setting a disposition to SIG_IGN is always valid.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // The helper needs only its protocol pipes (0-2); whatever else it inherited (the
    // server's parent may have leaked fds) must not reach init or a box.
    // SAFETY: close_range with integer arguments.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let mut input = io::stdin().lock();
    let request = protocol::read_frame(&mut input)
        .and_then(|b| serde_json::from_slice::<Request>(&b).map_err(io::Error::from));
    let stdin_data = protocol::read_frame(&mut input);
    drop(input);
    let (result, stdout, stderr, teardown) = match (request, stdin_data) {
        (Ok(req), Ok(stdin)) => match run(req, stdin) {
            Ok((outcome, out, err, teardown)) => (Ok(outcome), out, err, Some(teardown)),
            Err(e) => (Err(e), Vec::new(), Vec::new(), None),
        },
        (Err(e), _) | (_, Err(e)) => (
            Err(ReportError {
                step: "read request".into(),
                message: e.to_string(),
            }),
            Vec::new(),
            Vec::new(),
            None,
        ),
    };
    let report = Report { result };
    let mut out = io::stdout().lock();
    let header = serde_json::to_vec(&report).unwrap_or_default();
    let written = protocol::write_frame(&mut out, &header)
        .and_then(|_| protocol::write_frame(&mut out, &stdout))
        .and_then(|_| protocol::write_frame(&mut out, &stderr))
        .and_then(|_| out.flush());
    drop(out);
    // The server answers its client as soon as it has read the report: the box (every
    // process of the program already dead; init perhaps still unmounting the box's root) is
    // removed after that, off the request's critical path. The server keeps this helper
    // registered until it exits, and the uid slot stays held until the cgroup is gone.
    drop(teardown);
    i32::from(written.is_err())
}

fn fail(step: &str) -> impl FnOnce(io::Error) -> ReportError + '_ {
    move |e| ReportError {
        step: step.to_string(),
        message: e.to_string(),
    }
}

fn fail_msg(step: &str, message: impl std::fmt::Display) -> ReportError {
    ReportError {
        step: step.to_string(),
        message: message.to_string(),
    }
}

/// What is left of a box once its program is over: init (reaped here if it was still
/// exiting), the cgroup and state dir, then the uid slot (fields drop in this order).
struct Teardown {
    _cleanup: Cleanup,
    _slot: Slot,
}

/// Removes the box's state dir and cgroup however `run` ends.
struct Cleanup {
    box_dir: std::path::PathBuf,
    cgroup: Option<BoxCgroup>,
    init: Option<libc::pid_t>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.init.take() {
            let _ = sys::kill(pid, libc::SIGKILL);
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.kill_all().and_then(|_| cg.remove()) {
                eprintln!("coderun box: cgroup cleanup failed: {e}");
            }
        }
        // The root mountpoint saw mounts only inside the box's mount namespace, which is gone:
        // on the host it is an empty directory. remove_dir never follows a symlink.
        let _ = fs::remove_dir(self.box_dir.join("root"));
        let _ = fs::remove_file(self.box_dir.join("helper.pid"));
        if let Err(e) = fs::remove_dir(&self.box_dir) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("coderun box: cannot remove {}: {e}", self.box_dir.display());
            }
        }
    }
}

type RunResult = Result<(ReportOutcome, Vec<u8>, Vec<u8>, Teardown), ReportError>;

fn run(req: Request, stdin_data: Vec<u8>) -> RunResult {
    let spec = &req.spec;
    let limits = &spec.limits;
    if spec.argv.is_empty() {
        return Err(fail_msg("spec", "argv is empty"));
    }
    for f in &spec.files {
        files::validate_relative(&f.path).map_err(|m| fail_msg("spec", m))?;
    }
    let slot =
        Slot::acquire(&req.uid_lock_dir, req.uid_base, req.uid_slots).map_err(fail("uid slot"))?;

    let box_dir = req.instance_dir.join("boxes").join(&req.box_name);
    fs::create_dir(&box_dir).map_err(fail("create box dir"))?;
    let mut cleanup = Cleanup {
        box_dir: box_dir.clone(),
        cgroup: None,
        init: None,
    };
    fs::write(box_dir.join("helper.pid"), std::process::id().to_string())
        .map_err(fail("write helper.pid"))?;
    let root = box_dir.join("root");
    fs::create_dir(&root).map_err(fail("create root mountpoint"))?;

    let (layout, instance) = &req.cgroup;
    let cg_limits = CgroupLimits {
        memory_bytes: limits.memory_mb << 20,
        // Init is a process of the box too; the limit is the program's.
        pids_max: limits.max_processes + 1,
        cpu_quota_us: limits.cpu_millicores * 100,
        cpu_period_us: 100_000,
    };
    let cg = layout
        .open_instance(instance)
        .create_box(&req.box_name, &cg_limits)
        .map_err(|e| fail_msg("cgroup", e))?;
    if req.mode.warm() {
        // Warming up is background work: it must not slow the programs being run.
        cg.set_background(true)
            .map_err(|e| fail_msg("cgroup (background weight)", e))?;
    }
    let cg = &*cleanup.cgroup.insert(cg);

    // Inputs: inline bytes, or host files opened here (never followed through a symlink).
    let mut held: Vec<OwnedFd> = Vec::new();
    let mut inputs = Vec::new();
    for f in &spec.files {
        let content = match &f.source {
            FileSource::Inline(s) => InputContent::Bytes(s.clone().into_bytes()),
            FileSource::Host(path) => {
                let file = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(path)
                    .map_err(fail("open host input file"))?;
                let fd: OwnedFd = file.into();
                let raw = fd.as_raw_fd();
                held.push(fd);
                InputContent::Fd(raw)
            }
        };
        inputs.push((f.path.clone(), content, f.executable));
    }
    let collect_file = match &spec.collect {
        Some(c) => {
            files::validate_relative(&c.path).map_err(|m| fail_msg("spec", m))?;
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&c.host_path)
                .map_err(fail("create collect file"))?;
            Some((c.path.clone(), file, c.max_bytes))
        }
        None => None,
    };

    let filter = seccomp::compile(&req.seccomp_policy).map_err(|e| fail_msg("seccomp", e))?;
    let cstrings = |v: &mut dyn Iterator<Item = String>| -> Result<Vec<CString>, ReportError> {
        v.map(|s| CString::new(s).map_err(|_| fail_msg("spec", "NUL byte in argv or env")))
            .collect()
    };
    let argv = cstrings(&mut spec.argv.iter().cloned())?;
    let envp = cstrings(&mut spec.env.iter().map(|(k, v)| format!("{k}={v}")))?;

    let (stdin_r, stdin_w) = sys::pipe().map_err(fail("pipe"))?;
    let (stdout_r, stdout_w) = sys::pipe().map_err(fail("pipe"))?;
    let (stderr_r, stderr_w) = sys::pipe().map_err(fail("pipe"))?;
    let (go_r, go_w) = sys::pipe().map_err(fail("pipe"))?;
    let (report_r, report_w) = sys::pipe().map_err(fail("pipe"))?;
    let handoff = if req.mode.warm() {
        Some(sys::pipe().map_err(fail("pipe"))?)
    } else {
        None
    };

    let plan = Plan {
        root: RootPlan {
            root: root.clone(),
            binds: req.mounts.clone(),
            workdir_bytes: limits.workdir_mb << 20,
            workdir_inodes: limits.workdir_inodes,
            ld_so_cache: fs::read("/etc/ld.so.cache").ok(),
        },
        inputs,
        collect: collect_file
            .as_ref()
            .map(|(p, f, max)| (p.clone(), f.as_raw_fd(), *max)),
        argv,
        envp,
        rlimits: Rlimits::from_limits(limits),
        filter,
        stdio: [stdin_r, stdout_w, stderr_w],
        handoff: handoff.map(|(r, _)| r),
        park: req.mode == Mode::Parked,
        go: go_r,
        report: report_w,
    };

    let pid = namespaces::clone_into_new_namespaces().map_err(fail("clone"))?;
    if pid == 0 {
        for fd in [stdin_w, stdout_r, stderr_r, go_w, report_r]
            .into_iter()
            .chain(handoff.map(|(_, w)| w))
        {
            close(fd);
        }
        confine::init_main(plan);
    }
    cleanup.init = Some(pid);
    for fd in [stdin_r, stdout_w, stderr_w, go_r, report_w]
        .into_iter()
        .chain(handoff.map(|(r, _)| r))
    {
        close(fd);
    }
    // SAFETY: the write end was just created by pipe2 and is owned by nobody else.
    let handoff_w = handoff.map(|(_, w)| unsafe { OwnedFd::from_raw_fd(w) });
    drop(plan);
    // SAFETY: the fds were just created by pipe2 and are owned by nobody else now.
    let (stdin_w, stdout_r, stderr_r, go_w, report_r) = unsafe {
        (
            OwnedFd::from_raw_fd(stdin_w),
            OwnedFd::from_raw_fd(stdout_r),
            OwnedFd::from_raw_fd(stderr_r),
            OwnedFd::from_raw_fd(go_w),
            OwnedFd::from_raw_fd(report_r),
        )
    };

    namespaces::write_id_maps(pid, slot.first).map_err(fail("write uid/gid maps"))?;
    cg.add_process(pid)
        .map_err(|e| fail_msg("cgroup (add init)", e))?;
    sys::write_all(go_w.as_raw_fd(), b"g").map_err(fail("start init"))?;
    drop(go_w);
    drop(held);

    // A warm box: the runner is started and waits on its fd 3 (or the program's process is
    // parked before its exec). Tell the server we are ready, then wait (without a deadline,
    // burning no CPU) for the program; the server closing our stdin instead ends the box.
    let mut limits = limits.clone();
    let mut stdin_data = stdin_data;
    let already_started = match handoff_w {
        None => false,
        Some(handoff_w) => {
            wait_started(&report_r, req.mode == Mode::Parked)?;
            let mut out = io::stdout().lock();
            protocol::write_frame(&mut out, br#"{"ready":true}"#)
                .and_then(|_| out.flush())
                .map_err(fail("report ready"))?;
            drop(out);
            let mut input = io::stdin().lock();
            let handoff = protocol::read_frame(&mut input)
                .and_then(|b| serde_json::from_slice::<Handoff>(&b).map_err(io::Error::from))
                .map_err(fail("read hand-off (the pool was dropped)"))?;
            stdin_data = protocol::read_frame(&mut input).map_err(fail("read hand-off stdin"))?;
            drop(input);
            limits.wall_time_ms = handoff.wall_time_ms;
            limits.cpu_time_ms = handoff.cpu_time_ms;
            limits.output_bytes = handoff.output_bytes;
            cg.set_background(false)
                .map_err(|e| fail_msg("cgroup (foreground weight)", e))?;
            // The runner reads to EOF; a runner that died meanwhile shows up as its exit.
            match (&handoff.program, req.mode) {
                (HandoffProgram::Parked { argv, files }, Mode::Parked) => {
                    let _ = send_exec(handoff_w.as_raw_fd(), argv, files)?;
                }
                (HandoffProgram::Runner { message }, Mode::Runner) => {
                    let _ = sys::write_all(handoff_w.as_raw_fd(), message.as_bytes());
                }
                _ => {
                    return Err(fail_msg(
                        "hand-off",
                        "a parked box needs a program to execute, a runner box a message",
                    ))
                }
            }
            drop(handoff_w);
            true
        }
    };

    let sup = supervise(
        pid,
        &limits,
        already_started,
        stdin_data,
        stdin_w,
        stdout_r,
        stderr_r,
        report_r,
        cg,
    )?;
    if sup.init_reaped {
        cleanup.init = None;
    }

    let cpu_time_us = cg
        .cpu_usage_ns()
        .unwrap_or(0)
        .saturating_sub(sup.cpu_baseline_ns)
        / 1000;
    let memory_peak_kb = cg.memory_peak_bytes().unwrap_or(0) / 1024;
    let oom = cg.oom_killed().unwrap_or(false);
    let mut limit = sup.limit;
    let termination = sup.termination;
    if limit.is_none() && oom {
        limit = Some(LimitHit::Memory);
    }
    if limit.is_none()
        && (termination == Termination::Signaled(libc::SIGXCPU)
            || cpu_time_us >= limits.cpu_time_ms * 1000)
    {
        limit = Some(LimitHit::CpuTime);
    }
    let outcome = ReportOutcome {
        termination,
        limit,
        stdout_truncated: sup.stdout_truncated,
        stderr_truncated: sup.stderr_truncated,
        wall_time_us: sup.wall_time_us,
        cpu_time_us,
        memory_peak_kb,
        collected: sup.collected,
    };
    if let (Some(c), Some((_, file, _))) = (&spec.collect, collect_file) {
        drop(file);
        if !outcome.collected {
            let _ = fs::remove_file(&c.host_path);
        }
    }
    let teardown = Teardown {
        _cleanup: cleanup,
        _slot: slot,
    };
    Ok((outcome, sup.stdout, sup.stderr, teardown))
}

struct Supervised {
    termination: Termination,
    /// Cgroup CPU usage when the program started.
    cpu_baseline_ns: u64,
    limit: Option<LimitHit>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdout_truncated: bool,
    stderr_truncated: bool,
    wall_time_us: u64,
    collected: bool,
    /// False when init reported the program finished and is still exiting (tearing its
    /// mount namespace down): the teardown waits for it, after the report.
    init_reaped: bool,
}

/// Whether init's report holds its `Finished` line (every process of the program is dead
/// and reaped then, and the collected file copied).
fn has_finished(report: &[u8]) -> bool {
    report
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .any(|l| matches!(serde_json::from_slice(l), Ok(InitMessage::Finished { .. })))
}

/// One output stream being read up to its cap.
struct Stream {
    fd: Option<OwnedFd>,
    buf: Vec<u8>,
    truncated: bool,
}

impl Stream {
    /// Reads what is available; returns true if the cap was passed.
    fn read(&mut self, cap: usize) -> bool {
        let Some(fd) = &self.fd else { return false };
        let mut chunk = [0u8; 65536];
        loop {
            // SAFETY: reading into a valid stack buffer.
            let n = unsafe { libc::read(fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if n == 0 {
                self.fd = None;
                return false;
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() != io::ErrorKind::WouldBlock {
                    self.fd = None;
                }
                return false;
            }
            let n = n as usize;
            let room = cap.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..n.min(room)]);
            if n > room {
                self.truncated = true;
                return true;
            }
        }
    }
}

/// Sends a parked process its program: the header frame, then each file's bytes. Host files
/// are opened here without following a symlink, as for a fresh box. A failed write means the
/// parked process died: that shows up as its exit, so only a bad input file is an error.
fn send_exec(
    fd: RawFd,
    argv: &[String],
    files: &[coderun_sandbox::InputFile],
) -> Result<io::Result<()>, ReportError> {
    let mut frames = Vec::new();
    let header = ExecHeader {
        argv: argv.to_vec(),
        files: files
            .iter()
            .map(|f| (f.path.clone(), f.executable))
            .collect(),
    };
    for f in files {
        files::validate_relative(&f.path).map_err(|m| fail_msg("spec", m))?;
    }
    let header = serde_json::to_vec(&header).map_err(|e| fail_msg("hand-off", e))?;
    protocol::write_frame(&mut frames, &header).map_err(fail("hand-off"))?;
    for f in files {
        match &f.source {
            FileSource::Inline(s) => protocol::write_frame(&mut frames, s.as_bytes()),
            FileSource::Host(path) => {
                let bytes = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(path)
                    .and_then(|mut file| {
                        let mut bytes = Vec::new();
                        io::Read::read_to_end(&mut file, &mut bytes).map(|_| bytes)
                    })
                    .map_err(fail("open host input file"))?;
                protocol::write_frame(&mut frames, &bytes)
            }
        }
        .map_err(fail("hand-off"))?;
    }
    Ok(sys::write_all(fd, &frames))
}

/// Waits (up to the set-up timeout) for init's first message: the runner's exec, or for a
/// parked box, its program process waiting at the exec.
fn wait_started(report_r: &OwnedFd, parked: bool) -> Result<(), ReportError> {
    let deadline = sys::monotonic_us() + SETUP_TIMEOUT_US;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        let left_ms = deadline.saturating_sub(sys::monotonic_us()) / 1000;
        if left_ms == 0 {
            return Err(fail_msg(
                "set-up",
                "the pooled runtime did not start in time",
            ));
        }
        let mut pfds = [
            libc::pollfd {
                fd: report_r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            // The server's end of our stdin closes when it no longer wants this box.
            libc::pollfd {
                fd: 0,
                events: 0,
                revents: 0,
            },
        ];
        // SAFETY: a valid array of two pollfds.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, left_ms.min(1000) as i32) };
        if pfds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Err(fail_msg("set-up", "the server dropped the box"));
        }
        if pfds[0].revents == 0 {
            continue;
        }
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(report_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        if n <= 0 {
            return Err(fail_msg("set-up", "init ended before the runtime started"));
        }
        line.push(byte[0]);
    }
    match serde_json::from_slice::<InitMessage>(&line) {
        Ok(InitMessage::Started) if !parked => Ok(()),
        Ok(InitMessage::Parked) if parked => Ok(()),
        Ok(InitMessage::Failed { step, message }) => Err(ReportError { step, message }),
        other => Err(fail_msg(
            "set-up",
            format!("unexpected message from init: {other:?}"),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn supervise(
    init: libc::pid_t,
    limits: &coderun_sandbox::Limits,
    already_started: bool,
    stdin_data: Vec<u8>,
    stdin_w: OwnedFd,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    report_r: OwnedFd,
    cgroup: &BoxCgroup,
) -> Result<Supervised, ReportError> {
    // SAFETY: pidfd_open takes a pid and flags.
    let pidfd =
        cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, init, 0) }).map_err(fail("pidfd_open"))?;
    // SAFETY: the kernel just gave us this fd.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    for fd in [&stdin_w, &stdout_r, &stderr_r, &report_r] {
        sys::set_nonblocking(fd.as_raw_fd()).map_err(fail("nonblocking pipes"))?;
    }
    let cap = limits.output_bytes as usize;
    // With no stdin the pipe closes at once, so a program reading stdin sees EOF.
    let mut stdin_w = if stdin_data.is_empty() {
        drop(stdin_w);
        None
    } else {
        Some(stdin_w)
    };
    let mut stdin_off = 0usize;
    let mut out = Stream {
        fd: Some(stdout_r),
        buf: Vec::new(),
        truncated: false,
    };
    let mut err = Stream {
        fd: Some(stderr_r),
        buf: Vec::new(),
        truncated: false,
    };
    let mut report = Stream {
        fd: Some(report_r),
        buf: Vec::new(),
        truncated: false,
    };
    let mut init_alive = true;
    let mut init_status = 0;
    let setup_deadline = sys::monotonic_us() + SETUP_TIMEOUT_US;
    let mut started_at: Option<u64> = None;
    let mut cpu_baseline_ns = 0u64;
    if already_started {
        // A pooled box: wall and CPU time count from the hand-off.
        started_at = Some(sys::monotonic_us());
        cpu_baseline_ns = cgroup.cpu_usage_ns().unwrap_or(0);
    }
    let mut limit: Option<LimitHit> = None;
    let mut killed = false;
    let mut cancelled = false;
    let mut exited_at: Option<u64> = None;
    let mut finished_at: Option<u64> = None;
    let wall_us = limits.wall_time_ms * 1000;
    let cpu_ns = limits.cpu_time_ms * 1_000_000;

    let kill_box = |hit: LimitHit, limit: &mut Option<LimitHit>, killed: &mut bool| {
        if !*killed {
            let _ = sys::kill(init, libc::SIGKILL);
            *killed = true;
            limit.get_or_insert(hit);
        }
    };

    loop {
        let now = sys::monotonic_us();
        // Before the check for the end: init's first line ("started") may arrive in the same
        // round as the end of everything (a program killed at once by a limit), and a run
        // that started must not be reported as one that never did.
        if started_at.is_none() && report.buf.contains(&b'\n') {
            started_at = Some(now);
            // CPU time counts from the exec: init's set-up is not the program's.
            cpu_baseline_ns = cgroup.cpu_usage_ns().unwrap_or(0);
        }
        // Done when the program's output is closed and init has either exited or reported
        // it finished: init's own exit (unmounting the box's root) is not waited for here.
        if out.fd.is_none()
            && err.fd.is_none()
            && (!init_alive && report.fd.is_none() || finished_at.is_some())
        {
            break;
        }
        // After init is gone every writer is dead; give stragglers a moment, then stop.
        if let Some(t) = exited_at {
            if now > t + 2_000_000 {
                break;
            }
        }
        match started_at {
            None if now > setup_deadline && init_alive => {
                let _ = sys::kill(init, libc::SIGKILL);
                killed = true;
            }
            Some(t) if now > t + wall_us => kill_box(LimitHit::WallTime, &mut limit, &mut killed),
            _ => {}
        }
        let used = cgroup
            .cpu_usage_ns()
            .unwrap_or(0)
            .saturating_sub(cpu_baseline_ns);
        if started_at.is_some() && used > cpu_ns {
            kill_box(LimitHit::CpuTime, &mut limit, &mut killed);
        }

        let mut pfds = Vec::with_capacity(6);
        let mut push = |fd: RawFd, events: libc::c_short| {
            pfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        };
        push(
            if init_alive { pidfd.as_raw_fd() } else { -1 },
            libc::POLLIN,
        );
        push(out.fd.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
        push(err.fd.as_ref().map_or(-1, |f| f.as_raw_fd()), libc::POLLIN);
        push(
            report.fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            libc::POLLIN,
        );
        push(
            stdin_w.as_ref().map_or(-1, |f| f.as_raw_fd()),
            libc::POLLOUT,
        );
        // The server's end of our stdin: it closes when the request is dropped.
        push(if cancelled { -1 } else { 0 }, 0);
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, TICK_MS) };
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(fail_msg("poll", io::Error::last_os_error()));
        }
        if pfds[1].revents != 0 && out.read(cap) {
            kill_box(LimitHit::Output, &mut limit, &mut killed);
        }
        if pfds[2].revents != 0 && err.read(cap) {
            kill_box(LimitHit::Output, &mut limit, &mut killed);
        }
        if pfds[3].revents != 0 {
            report.read(1 << 20);
            if finished_at.is_none() && !killed && has_finished(&report.buf) {
                finished_at = Some(sys::monotonic_us());
            }
        }
        if pfds[4].revents != 0 {
            if let Some(w) = &stdin_w {
                let rest = &stdin_data[stdin_off..];
                // SAFETY: writing from a valid slice.
                let n = unsafe { libc::write(w.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
                if n > 0 {
                    stdin_off += n as usize;
                }
                if (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock)
                    || stdin_off >= stdin_data.len()
                {
                    stdin_w = None; // EOF for the program (or it closed its stdin).
                }
            }
        }
        if pfds[5].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            cancelled = true;
            if !killed {
                let _ = sys::kill(init, libc::SIGKILL);
                killed = true;
            }
        }
        if init_alive && pfds[0].revents != 0 {
            // SAFETY: reaping our own child; status is a valid out-pointer.
            let r = unsafe { libc::waitpid(init, &mut init_status, libc::WNOHANG) };
            if r == init {
                init_alive = false;
                exited_at = Some(sys::monotonic_us());
                stdin_w = None;
            }
        }
    }
    if cancelled {
        return Err(fail_msg(
            "supervise",
            "the request was dropped: the box was killed",
        ));
    }
    let exited_at = finished_at.or(exited_at).unwrap_or_else(sys::monotonic_us);
    if init_alive && finished_at.is_none() {
        return Err(fail_msg("supervise", "init did not exit"));
    }

    let mut finished = None;
    for line in report.buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<InitMessage>(line) {
            Ok(InitMessage::Failed { step, message }) => {
                return Err(ReportError { step, message });
            }
            Ok(InitMessage::Finished {
                termination,
                wall_time_us,
                collected,
            }) => {
                finished = Some((termination, wall_time_us, collected));
            }
            Ok(InitMessage::Started | InitMessage::Parked) => {}
            Err(e) => return Err(fail_msg("init report", e)),
        }
    }
    let (termination, wall_time_us, collected) = match finished {
        // A pooled box's runner was exec'd long before the program arrived: its wall time
        // counts from the hand-off, as the helper measured it.
        Some((t, _, c)) if limit.is_none() && already_started => (
            t,
            exited_at.saturating_sub(started_at.unwrap_or(exited_at)),
            c,
        ),
        Some(f) if limit.is_none() => f,
        // Killed from outside (a limit): init could not report; the program died by SIGKILL.
        _ => {
            let Some(t) = started_at else {
                return Err(fail_msg(
                    "set-up",
                    format!("init ended before exec (wait status {init_status:#x})"),
                ));
            };
            (
                Termination::Signaled(libc::SIGKILL),
                exited_at.saturating_sub(t),
                false,
            )
        }
    };
    Ok(Supervised {
        termination,
        cpu_baseline_ns,
        limit,
        stdout: out.buf,
        stderr: err.buf,
        stdout_truncated: out.truncated,
        stderr_truncated: err.truncated,
        wall_time_us,
        collected,
        init_reaped: !init_alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_is_recognised_only_as_a_whole_line() {
        let started = b"\"Started\"\n".to_vec();
        assert!(!has_finished(&started));
        let finished =
            br#"{"Finished":{"termination":{"Exited":0},"wall_time_us":5,"collected":false}}"#;
        let mut both = started.clone();
        both.extend_from_slice(finished);
        both.push(b'\n');
        assert!(has_finished(&both));
        // Half a line (init still writing it) is not a report yet.
        let mut half = started;
        half.extend_from_slice(&finished[..20]);
        assert!(!has_finished(&half));
    }
}
