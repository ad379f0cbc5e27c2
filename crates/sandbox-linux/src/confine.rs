//! The ordered confinement: what the box's init does, and what the program's process does
//! between fork and exec. Read top to bottom, this is the whole policy.
//!
//! ```text
//! helper (host root)          init (pid 1, root of the box's user ns)      program
//! clone(NEWUSER|NEWPID|NEWNS|NEWNET|NEWIPC|NEWUTS) ─┐
//! write uid/gid maps                                │
//! add init to the box cgroup                        │
//! send "go" ───────────────────────────────────────►│ 1 become the namespace's root
//!                                                   │ 2 unshare(NEWCGROUP): box cgroup = root
//!                                                   │ 3 build the root fs, pivot_root
//!                                                   │ 4 loopback up (net ns is empty)
//!                                                   │ 5 hostname (uts ns)
//!                                                   │ 6 write input files into /work
//!                                                   │ 7 not dumpable
//!                                                   │ 8 fork ───────────────────────────► a new session, stdio, only fds 0-2
//!                                                   │                                     (a pooled box's runner: also fd 3)
//!                                                   │                                     b default signal dispositions
//!                                                   │                                     c rlimits
//!                                                   │                                     d drop bounding/ambient caps, lock securebits
//!                                                   │                                     e setgroups([]), uid/gid 1000: caps cleared
//!                                                   │                                     f no_new_privs
//!                                                   │                                     g seccomp (last: it denies what a–f use)
//!                                                   │                                     h chdir /work, execve
//!                                                   │                                       (a parked box's process first
//!                                                   │                                       reads its command and files
//!                                                   │                                       on fd 3 and writes the files)
//!                                                   │ 9 report exec, reap every child
//!                                                   │ 10 main exited: kill(-1), reap all
//!                                                   │ 11 copy out the collected file
//! read report ◄─────────────────────────────────────┘ 12 report, exit (the pid ns dies with it)
//! ```
//! Init is forked from the single-threaded helper, so allocating is safe in it. The program's
//! child side (a–h) uses only data prepared before its fork.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use coderun_sandbox::Termination;
use serde::{Deserialize, Serialize};

use crate::files::{self, Content};
use crate::protocol::{self, ExecHeader};
use crate::rlimit::Rlimits;
use crate::rootfs::{self, RootPlan};
use crate::seccomp::Filter;
use crate::sys::{self, close, cvt};
use crate::{caps, namespaces, net};

/// Input file content for init.
pub enum InputContent {
    Bytes(Vec<u8>),
    Fd(RawFd),
}

/// Everything init and the program need, prepared by the helper before the clone.
pub struct Plan {
    pub root: RootPlan,
    pub inputs: Vec<(String, InputContent, bool)>,
    /// (path in /work, host fd to copy it into, max bytes)
    pub collect: Option<(String, RawFd, u64)>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub rlimits: Rlimits,
    pub filter: Filter,
    /// The program's stdin (read end), stdout and stderr (write ends).
    pub stdio: [RawFd; 3],
    /// A pooled box: the read end of the hand-off pipe, fd 3 of the program (a runner that
    /// waits there for the real program). Closed by the runner before user code runs.
    pub handoff: Option<RawFd>,
    /// A parked box: with `handoff`, the program's process stops before step h and reads
    /// its program from fd 3 (see [`park`]).
    pub park: bool,
    /// Init reads one byte here once the helper has written the id maps and cgroup.
    pub go: RawFd,
    /// Init writes its [`InitMessage`]s here.
    pub report: RawFd,
}

/// Lines init sends the helper over the report pipe, one JSON document per line.
#[derive(Debug, Serialize, Deserialize)]
pub enum InitMessage {
    /// The program's execve succeeded: its wall clock starts now.
    Started,
    /// A parked box's program process is confined and waits for its program on fd 3.
    Parked,
    /// The program is over (every process of the box is dead).
    Finished {
        termination: Termination,
        wall_time_us: u64,
        collected: bool,
    },
    /// Set-up failed at `step`; the program never ran.
    Failed { step: String, message: String },
}

fn send(fd: RawFd, msg: &InitMessage) {
    if let Ok(mut line) = serde_json::to_vec(msg) {
        line.push(b'\n');
        let _ = sys::write_all(fd, &line);
    }
}

fn step<T>(fd: RawFd, name: &str, res: Result<T, impl std::fmt::Display>) -> T {
    match res {
        Ok(v) => v,
        Err(e) => {
            send(
                fd,
                &InitMessage::Failed {
                    step: name.to_string(),
                    message: e.to_string(),
                },
            );
            // SAFETY: _exit ends the process without running anything else.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Init: pid 1 of the box. Never returns.
pub fn init_main(plan: Plan) -> ! {
    let r = plan.report;
    let mut go = [0u8; 1];
    if !matches!(sys::read_full(plan.go, &mut go), Ok(1)) {
        // The helper gave up on us before set-up (it already reported why).
        // SAFETY: plain process exit.
        unsafe { libc::_exit(1) }
    }
    close(plan.go);
    step(
        r,
        "user namespace (become root)",
        namespaces::become_namespace_root(),
    );
    // Init dies with the helper, and the box's pid namespace with init: a helper killed
    // outright (or a server crash that took it) leaves no program running. Set after the
    // change of ids above, which clears it; a helper that died before it is seen as the
    // report pipe having no reader.
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if !sys::has_reader(r) {
        // SAFETY: plain process exit.
        unsafe { libc::_exit(1) }
    }
    step(r, "cgroup namespace", namespaces::enter_cgroup_namespace());
    step(r, "root filesystem", rootfs::build_and_enter(&plan.root));
    step(r, "network namespace (loopback)", net::loopback_up());
    step(
        r,
        "uts namespace (hostname)",
        namespaces::set_hostname("coderun"),
    );
    let work = step(r, "open /work", File::open("/work"));
    for (path, content, executable) in &plan.inputs {
        let content = match content {
            InputContent::Bytes(b) => Content::Bytes(b),
            InputContent::Fd(fd) => Content::Fd(*fd),
        };
        step(
            r,
            &format!("write input file {path}"),
            files::write_input(work.as_raw_fd(), path, content, *executable),
        );
    }
    for (_, content, _) in &plan.inputs {
        if let InputContent::Fd(fd) = content {
            close(*fd);
        }
    }
    // SAFETY: prctl with integer arguments; makes /proc/1 unreadable to the program.
    step(
        r,
        "prctl(PR_SET_DUMPABLE)",
        cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }),
    );

    let (exec_r, exec_w) = step(r, "exec status pipe", sys::pipe());
    // SAFETY: init is single-threaded; the child only runs `program_exec`.
    let pid = step(r, "fork program", cvt(unsafe { libc::fork() }));
    if pid == 0 {
        close(exec_r);
        program_exec(&plan, exec_w);
    }
    close(exec_w);
    for fd in plan.stdio.into_iter().chain(plan.handoff) {
        close(fd);
    }
    // The exec pipe closes without data on a successful exec (it is close-on-exec). A parked
    // process first writes PARKED there, then waits for its program.
    let mut errno = [0u8; 4];
    let mut exec_failed = matches!(sys::read_full(exec_r, &mut errno), Ok(4));
    if exec_failed && errno == PARKED {
        send(r, &InitMessage::Parked);
        exec_failed = matches!(sys::read_full(exec_r, &mut errno), Ok(4));
    }
    let started = sys::monotonic_us();
    close(exec_r);
    if exec_failed {
        let err = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
        // Reap it before reporting, so nothing of the box is left.
        reap_all();
        let argv0 = plan
            .argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        step::<()>(r, "exec", Err(format!("cannot execute {argv0}: {err}")));
    }
    send(r, &InitMessage::Started);

    let termination = wait_for(pid);
    let wall_time_us = sys::monotonic_us().saturating_sub(started);
    // Everything else of the run dies with the main process, daemons included.
    let _ = sys::kill(-1, libc::SIGKILL);
    reap_all();
    let mut collected = false;
    if let Some((path, dest, max)) = &plan.collect {
        if termination == Termination::Exited(0) {
            collected = files::collect_output(work.as_raw_fd(), path, *dest, *max).unwrap_or(false);
        }
    }
    send(
        r,
        &InitMessage::Finished {
            termination,
            wall_time_us,
            collected,
        },
    );
    // SAFETY: plain process exit; the kernel tears the namespaces down.
    unsafe { libc::_exit(0) }
}

/// What a parked process writes on the exec-status pipe once it waits (never an errno).
const PARKED: [u8; 4] = [0xff; 4];

/// Reaps children until `main` exits; orphans re-parented to init are reaped on the way.
fn wait_for(main: libc::pid_t) -> Termination {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == -1 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Termination::Signaled(libc::SIGKILL);
        }
        if pid == main {
            if libc::WIFEXITED(status) {
                return Termination::Exited(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Termination::Signaled(libc::WTERMSIG(status));
            }
        }
    }
}

fn reap_all() {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == -1 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// The program's side of the fork: steps a–h, then execve. Never returns.
fn program_exec(plan: &Plan, exec_err: RawFd) -> ! {
    // a: own session; stdio on 0-2; a pooled box's hand-off pipe on 3; the exec-status pipe
    // (close-on-exec) right after; nothing else open.
    let err_fd: RawFd = if plan.handoff.is_some() { 4 } else { 3 };
    let die = || -> ! {
        // SAFETY: plain process exit.
        unsafe { libc::_exit(127) }
    };
    // Park both pipes above the range we are about to fill, so no dup2 clobbers them.
    // SAFETY: fcntl with integer arguments on fds we own.
    let err_hi = unsafe { libc::fcntl(exec_err, libc::F_DUPFD_CLOEXEC, 64) };
    let handoff_hi = match plan.handoff {
        // SAFETY: as above.
        Some(fd) => unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64) },
        None => 0,
    };
    if err_hi == -1 || handoff_hi == -1 {
        die();
    }
    let fail = |err: io::Error| -> ! {
        let code = err.raw_os_error().unwrap_or(libc::EINVAL).to_ne_bytes();
        let _ = sys::write_all(err_fd, &code);
        die()
    };
    // SAFETY: setsid takes no arguments.
    unsafe { libc::setsid() };
    for (target, &fd) in plan.stdio.iter().enumerate() {
        // SAFETY: dup2 on fds we own.
        if unsafe { libc::dup2(fd, target as RawFd) } == -1 {
            die();
        }
    }
    // SAFETY: dup2 on fds we own; the new fd 3 is not close-on-exec (the runner reads it).
    if plan.handoff.is_some() && unsafe { libc::dup2(handoff_hi, 3) } == -1 {
        die();
    }
    // SAFETY: dup2 on fds we own.
    if unsafe { libc::dup2(err_hi, err_fd) } == -1 {
        die();
    }
    // SAFETY: fcntl with integer arguments on an fd we own.
    if unsafe { libc::fcntl(err_fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        die();
    }
    // SAFETY: close_range with integer arguments closes every fd after the exec-status pipe.
    if unsafe { libc::syscall(libc::SYS_close_range, (err_fd + 1) as u32, u32::MAX, 0u32) } == -1 {
        fail(io::Error::last_os_error());
    }
    // b: signal dispositions and mask as a fresh process has them (the helper ignores SIGPIPE).
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition to the default is always valid.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // SAFETY: an all-empty signal set, then unblock everything.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    // c
    if let Err(e) = plan.rlimits.apply() {
        fail(e);
    }
    // d, e: the uid switch clears permitted/effective capabilities; the locked securebits
    // stop anything from bringing them back.
    if let Err(e) = caps::drop_bounding_and_lock() {
        fail(e);
    }
    if let Err(e) = caps::become_unprivileged(namespaces::BOX_ID) {
        fail(e);
    }
    if !caps::effective_is_empty() {
        fail(io::Error::from_raw_os_error(libc::EPERM));
    }
    // f
    if let Err(e) = caps::set_no_new_privs() {
        fail(e);
    }
    // g: last, since the filter denies calls the steps above make.
    if plan.filter.install().is_err() {
        fail(io::Error::from_raw_os_error(libc::EPERM));
    }
    // h
    // SAFETY: NUL-terminated literal.
    if unsafe { libc::chdir(c"/work".as_ptr()) } == -1 {
        fail(io::Error::last_os_error());
    }
    let parked_argv;
    let argv = if plan.park {
        if sys::write_all(err_fd, &PARKED).is_err() {
            die();
        }
        parked_argv = park().unwrap_or_else(|e| fail(e));
        &parked_argv
    } else {
        &plan.argv
    };
    let mut argv: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are null-terminated arrays of NUL-terminated strings that live
    // until execve replaces the process image.
    unsafe { libc::execve(argv[0], argv.as_ptr(), envp.as_ptr()) };
    fail(io::Error::last_os_error())
}

/// A parked process (fully confined, in /work, uid 1000) waits for its program: an
/// [`ExecHeader`] frame on fd 3 and a frame per file, which it writes into /work as the
/// program's own files (beneath /work, never through a symlink). Returns the argv to execute.
fn park() -> io::Result<Vec<CString>> {
    use std::os::fd::FromRawFd;
    // SAFETY: fd 3 is the hand-off pipe, ours alone (dup2'd in step a); File closes it.
    let mut handoff = unsafe { File::from_raw_fd(3) };
    let header = protocol::read_frame(&mut handoff)?;
    let header: ExecHeader = serde_json::from_slice(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let work = File::open(".")?;
    for (path, executable) in &header.files {
        let bytes = protocol::read_frame(&mut handoff)?;
        files::write_input(work.as_raw_fd(), path, Content::Bytes(&bytes), *executable)?;
    }
    drop(handoff);
    header
        .argv
        .into_iter()
        .map(|a| CString::new(a).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL)))
        .collect::<io::Result<Vec<_>>>()
        .and_then(|argv| {
            if argv.is_empty() {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                Ok(argv)
            }
        })
}
