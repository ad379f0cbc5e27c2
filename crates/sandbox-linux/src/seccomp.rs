//! Seccomp-BPF deny-list filter: parse the policy (`policies/seccomp.toml`), compile it to a
//! classic BPF program with a small hand-written generator, and install it.
//!
//! # Where it sits
//!
//! The filter is the last layer before the program's `execve`: namespaces, an empty
//! capability set, cgroups and rlimits are already in place, and the caller has set
//! `no_new_privs`. The filter's default action is ALLOW; the policy lists the syscalls (and,
//! for a few, the argument values) that are refused. [`compile`] runs in the supervisor before
//! `fork` (it allocates); [`Filter::install`] runs in the single-threaded child between
//! `fork` and `exec` and performs only `prctl` + `seccomp` system calls, no allocation. The
//! filter is inherited by every thread and child of the program and survives `execve`.
//!
//! # Policy format
//!
//! See the header of `policies/seccomp.toml`. In short: `version = 1` and a list of
//! `[[rule]]`s, each with `syscalls` (names; an unknown name is
//! [`SeccompError::UnknownSyscall`]), an `action` (`{ errno = "NAME" }` or `"kill"`), and at
//! most one of `allow_if_any` / `deny_if_any`, lists of `{ arg, op, value }` conditions on the
//! low 32 bits of an argument (`op` is `eq`, `ne` or `masked_any` = `arg & value != 0`). A
//! syscall may appear in only one rule, so rule order never changes the meaning.
//!
//! # Layout of the generated program
//!
//! `A` is the BPF accumulator; offsets are into `struct seccomp_data`
//! (`nr` at 0, `arch` at 4, `args[i]` at 16 + 8·i, low word first on little-endian x86_64).
//!
//! ```text
//!  0: ld   [4]                        A = arch
//!  1: jeq  #AUDIT_ARCH_X86_64, 1, 0
//!  2: ret  #KILL_PROCESS              i386 entry points (int 0x80, sysenter), foreign ABIs
//!  3: ld   [0]                        A = nr
//!  4: jge  #0x40000000, 0, 1
//!  5: ret  #KILL_PROCESS              x32 ABI (nr | __X32_SYSCALL_BIT), or a negative nr
//!
//!     then one block per (rule, syscall), in policy order:
//!
//!     jeq  #NR, 0, len(body)          skip the body unless this is the syscall, or, when
//!                                     len(body) > 255 (jt/jf are only 8 bits):
//!     jeq  #NR, 1, 0
//!     ja   len(body)                  32-bit offset
//!
//!     body, no conditions:            ret  #ACTION
//!     body, with conditions:          for each condition
//!                                       ld   [16 + 8*arg]   (omitted if A already holds it)
//!                                       jeq  #V, 0, 1   |  jeq #V, 1, 0  |  jset #V, 0, 1
//!                                       (eq)               (ne)             (masked_any)
//!                                       ret  #HIT
//!                                     ret  #MISS
//!
//!     allow_if_any: HIT = ALLOW,  MISS = ACTION;   deny_if_any: HIT = ACTION, MISS = ALLOW.
//!
//!     ret  #ALLOW                     default
//! ```
//!
//! Every conditional jump inside a body is 0 or 1 instructions, and a body always ends in
//! `ret`, so a block never falls through with `A` changed: after any block `A` still holds
//! `nr`. The only long jump is the skip over a body, which switches to `ja` when needed, so
//! the program is correct at any size up to `BPF_MAXINSNS` (4096, checked by [`compile`]).
//!
//! Syscalls that are allowed whatever their arguments never load an argument on their path
//! through the program, so the kernel's seccomp action cache (Linux ≥ 5.11) can prove them
//! always-allowed and skip running the filter for them (`read`, `write`, `futex`, ...).
//!
//! Conditions compare the low 32 bits only. That is complete for arguments the kernel
//! itself truncates to 32 bits (an `int`/`unsigned int` parameter such as the socket domain,
//! the ioctl request or the personality, and clone's `lower_32_bits(flags)`), and it is
//! exactly the comparison the kernel makes, so setting high bits cannot dodge a rule. Do not
//! put conditions on genuinely 64-bit arguments.

use std::fmt;
use std::io;
use std::mem::offset_of;

use serde::Deserialize;

/// Policy shipped with coderun.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/seccomp.toml");

/// The only policy format version understood.
const POLICY_VERSION: i64 = 1;

/// `BPF_MAXINSNS`: the kernel rejects longer programs.
const MAX_INSNS: usize = 4096;

/// `AUDIT_ARCH_X86_64` = `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE` (not in libc).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// `__X32_SYSCALL_BIT`: x32 syscalls are `nr | 0x40000000` with the x86_64 arch token.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const OFF_NR: u32 = offset_of!(libc::seccomp_data, nr) as u32;
const OFF_ARCH: u32 = offset_of!(libc::seccomp_data, arch) as u32;
const OFF_ARGS: u32 = offset_of!(libc::seccomp_data, args) as u32;

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// Errors from compiling or installing a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("invalid seccomp policy: {source}")]
    Parse {
        #[source]
        source: toml::de::Error,
    },
    #[error("unsupported seccomp policy version {0} (this build understands version 1)")]
    UnsupportedVersion(i64),
    #[error("unknown syscall `{0}` in seccomp policy")]
    UnknownSyscall(String),
    #[error("unknown errno `{0}` in seccomp policy")]
    UnknownErrno(String),
    #[error("syscall `{0}` appears in more than one seccomp policy rule")]
    DuplicateSyscall(String),
    #[error("seccomp policy [[rule]] number {rule} (counting from 1): {reason}")]
    InvalidRule { rule: usize, reason: String },
    #[error("compiled seccomp filter exceeds the kernel limit of 4096 BPF instructions")]
    TooLong,
    #[error("seccomp filters are only implemented for x86_64")]
    UnsupportedArch,
    #[error("no_new_privs is not set on the calling thread; set it before installing the filter")]
    NoNewPrivs,
    #[error("installing the seccomp filter failed: {0}")]
    Install(#[source] io::Error),
}

// ---------------------------------------------------------------------------------------------
// Policy (TOML) model.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    version: i64,
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    syscalls: Vec<String>,
    action: Action,
    allow_if_any: Option<Vec<Condition>>,
    deny_if_any: Option<Vec<Condition>>,
}

/// `action = "kill"` or `action = { errno = "EPERM" }`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Kill,
    Errno(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    arg: i64,
    op: Op,
    value: i64,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    /// `(u32)arg == value`
    Eq,
    /// `(u32)arg != value`
    Ne,
    /// `(u32)arg & value != 0`
    MaskedAny,
}

// ---------------------------------------------------------------------------------------------
// Resolved form and code generation.
// ---------------------------------------------------------------------------------------------

/// A validated condition.
#[derive(Clone, Copy)]
struct Check {
    arg: u32,
    op: Op,
    value: u32,
}

/// One syscall's block: `checks` empty means "always `miss`".
struct Block {
    nr: u32,
    checks: Vec<Check>,
    /// Returned when any check holds.
    hit: u32,
    /// Returned when no check holds (or there are none).
    miss: u32,
}

/// The compiled filter. Built before fork (allocates); installing it allocates nothing.
#[derive(Clone)]
pub struct Filter {
    insns: Vec<libc::sock_filter>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.insns.len())
            .finish()
    }
}

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const fn load_word(offset: u32) -> libc::sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset)
}

const fn ret(value: u32) -> libc::sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, value)
}

const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;

/// Parses `policy_toml` and compiles it to a BPF program for the native architecture.
pub fn compile(policy_toml: &str) -> Result<Filter, SeccompError> {
    let policy: Policy =
        toml::from_str(policy_toml).map_err(|source| SeccompError::Parse { source })?;
    if policy.version != POLICY_VERSION {
        return Err(SeccompError::UnsupportedVersion(policy.version));
    }
    if !cfg!(target_arch = "x86_64") {
        return Err(SeccompError::UnsupportedArch);
    }
    let blocks = resolve(&policy)?;
    let insns = assemble(&blocks)?;
    Ok(Filter { insns })
}

/// Validates the rules and turns them into one [`Block`] per syscall.
fn resolve(policy: &Policy) -> Result<Vec<Block>, SeccompError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let invalid = |reason: String| SeccompError::InvalidRule {
            rule: i + 1,
            reason,
        };
        if rule.syscalls.is_empty() {
            return Err(invalid("`syscalls` is empty".into()));
        }
        let action = match &rule.action {
            Action::Kill => RET_KILL_PROCESS,
            Action::Errno(name) => {
                let errno =
                    errno_value(name).ok_or_else(|| SeccompError::UnknownErrno(name.clone()))?;
                libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA)
            }
        };
        let (conditions, hit, miss) = match (&rule.allow_if_any, &rule.deny_if_any) {
            (None, None) => (&[][..], RET_ALLOW, action),
            (Some(c), None) => (&c[..], RET_ALLOW, action),
            (None, Some(c)) => (&c[..], action, RET_ALLOW),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "`allow_if_any` and `deny_if_any` are mutually exclusive".into(),
                ))
            }
        };
        if (rule.allow_if_any.is_some() || rule.deny_if_any.is_some()) && conditions.is_empty() {
            return Err(invalid("empty condition list".into()));
        }
        let mut checks = Vec::with_capacity(conditions.len());
        for c in conditions {
            let arg = u32::try_from(c.arg)
                .ok()
                .filter(|a| *a < 6)
                .ok_or_else(|| invalid(format!("argument index {} is not in 0..=5", c.arg)))?;
            let value = u32::try_from(c.value).map_err(|_| {
                invalid(format!(
                    "value {} does not fit the low 32 bits (0..=0xffffffff)",
                    c.value
                ))
            })?;
            checks.push(Check {
                arg,
                op: c.op,
                value,
            });
        }
        for name in &rule.syscalls {
            let nr = syscall_nr(name).ok_or_else(|| SeccompError::UnknownSyscall(name.clone()))?;
            if seen.contains(&nr) {
                return Err(SeccompError::DuplicateSyscall(name.clone()));
            }
            seen.push(nr);
            blocks.push(Block {
                nr,
                checks: checks.clone(),
                hit,
                miss,
            });
        }
    }
    Ok(blocks)
}

/// Emits the program described in the module documentation.
fn assemble(blocks: &[Block]) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut prog = vec![
        load_word(OFF_ARCH),
        jump(JEQ, AUDIT_ARCH_NATIVE, 1, 0),
        ret(RET_KILL_PROCESS),
        load_word(OFF_NR),
        jump(JGE, X32_SYSCALL_BIT, 0, 1),
        ret(RET_KILL_PROCESS),
    ];
    let mut body = Vec::new();
    for block in blocks {
        body.clear();
        let mut loaded: Option<u32> = None;
        for check in &block.checks {
            if loaded != Some(check.arg) {
                body.push(load_word(OFF_ARGS + 8 * check.arg));
                loaded = Some(check.arg);
            }
            // Falls through to `ret hit` when the condition holds, skips it otherwise.
            body.push(match check.op {
                Op::Eq => jump(JEQ, check.value, 0, 1),
                Op::Ne => jump(JEQ, check.value, 1, 0),
                Op::MaskedAny => jump(JSET, check.value, 0, 1),
            });
            body.push(ret(block.hit));
        }
        body.push(ret(block.miss));

        if let Ok(skip) = u8::try_from(body.len()) {
            prog.push(jump(JEQ, block.nr, 0, skip));
        } else {
            let skip = u32::try_from(body.len()).map_err(|_| SeccompError::TooLong)?;
            prog.push(jump(JEQ, block.nr, 1, 0));
            prog.push(stmt(JA, skip));
        }
        prog.extend_from_slice(&body);
        if prog.len() >= MAX_INSNS {
            return Err(SeccompError::TooLong);
        }
    }
    prog.push(ret(RET_ALLOW));
    if prog.len() > MAX_INSNS {
        return Err(SeccompError::TooLong);
    }
    Ok(prog)
}

impl Filter {
    /// Installs the filter on the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)` without
    /// `SECCOMP_FILTER_FLAG_TSYNC`: other threads are not touched, so call it in the
    /// single-threaded child after `fork`; it is inherited across `fork`/`clone`/`execve`).
    ///
    /// The caller must already have set `prctl(PR_SET_NO_NEW_PRIVS, 1)`; this function checks
    /// it (`PR_GET_NO_NEW_PRIVS`) and returns [`SeccompError::NoNewPrivs`] otherwise, rather
    /// than relying on the kernel's CAP_SYS_ADMIN exception.
    ///
    /// Async-signal-safe: two system calls (`prctl`, `seccomp`) and no allocation; the
    /// errors it can return own no heap memory.
    pub fn install(&self) -> Result<(), SeccompError> {
        // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer arguments.
        let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
        if nnp < 0 {
            return Err(SeccompError::Install(io::Error::last_os_error()));
        }
        if nnp != 1 {
            return Err(SeccompError::NoNewPrivs);
        }
        let len = u16::try_from(self.insns.len()).map_err(|_| SeccompError::TooLong)?;
        let prog = libc::sock_fprog {
            len,
            // The kernel only reads the program; the field is `*mut` for historical reasons.
            filter: self.insns.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `len` initialised instructions owned by `self`, which
        // outlives the call; the kernel copies the program before returning.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                0 as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(SeccompError::Install(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Whether the program is empty (never true for a compiled filter).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Name tables.
// ---------------------------------------------------------------------------------------------

/// Errno names a policy may use.
const ERRNOS: &[(&str, libc::c_int)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("EBADF", libc::EBADF),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EINVAL", libc::EINVAL),
    ("ENOSYS", libc::ENOSYS),
    ("ENOTSUP", libc::ENOTSUP),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("EPROTONOSUPPORT", libc::EPROTONOSUPPORT),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
];

fn errno_value(name: &str) -> Option<u32> {
    ERRNOS
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|&(_, v)| u32::try_from(v).ok())
}

#[cfg(target_arch = "x86_64")]
fn syscall_nr(name: &str) -> Option<u32> {
    SYSCALLS
        .iter()
        .chain(EXTRA_SYSCALLS)
        .find(|(n, _)| *n == name)
        .and_then(|&(_, nr)| u32::try_from(nr).ok())
}

#[cfg(not(target_arch = "x86_64"))]
const AUDIT_ARCH_NATIVE: u32 = 0;

#[cfg(not(target_arch = "x86_64"))]
fn syscall_nr(_name: &str) -> Option<u32> {
    None
}

/// x86_64 syscalls newer than the `libc` crate's table. The x86_64 numbering is kernel ABI
/// and never changes once released (checked against arch/x86/entry/syscalls/syscall_64.tbl).
#[cfg(target_arch = "x86_64")]
const EXTRA_SYSCALLS: &[(&str, libc::c_long)] = &[
    // Linux 6.15: open_tree with a `struct mount_attr`; must be denied with open_tree.
    ("open_tree_attr", 467),
];

/// Every x86_64 syscall known to `libc` (`SYS_*` for x86_64-linux-gnu, 64-bit ABI).
#[cfg(target_arch = "x86_64")]
const SYSCALLS: &[(&str, libc::c_long)] = &[
    ("read", libc::SYS_read),
    ("write", libc::SYS_write),
    ("open", libc::SYS_open),
    ("close", libc::SYS_close),
    ("stat", libc::SYS_stat),
    ("fstat", libc::SYS_fstat),
    ("lstat", libc::SYS_lstat),
    ("poll", libc::SYS_poll),
    ("lseek", libc::SYS_lseek),
    ("mmap", libc::SYS_mmap),
    ("mprotect", libc::SYS_mprotect),
    ("munmap", libc::SYS_munmap),
    ("brk", libc::SYS_brk),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("rt_sigreturn", libc::SYS_rt_sigreturn),
    ("ioctl", libc::SYS_ioctl),
    ("pread64", libc::SYS_pread64),
    ("pwrite64", libc::SYS_pwrite64),
    ("readv", libc::SYS_readv),
    ("writev", libc::SYS_writev),
    ("access", libc::SYS_access),
    ("pipe", libc::SYS_pipe),
    ("select", libc::SYS_select),
    ("sched_yield", libc::SYS_sched_yield),
    ("mremap", libc::SYS_mremap),
    ("msync", libc::SYS_msync),
    ("mincore", libc::SYS_mincore),
    ("madvise", libc::SYS_madvise),
    ("shmget", libc::SYS_shmget),
    ("shmat", libc::SYS_shmat),
    ("shmctl", libc::SYS_shmctl),
    ("dup", libc::SYS_dup),
    ("dup2", libc::SYS_dup2),
    ("pause", libc::SYS_pause),
    ("nanosleep", libc::SYS_nanosleep),
    ("getitimer", libc::SYS_getitimer),
    ("alarm", libc::SYS_alarm),
    ("setitimer", libc::SYS_setitimer),
    ("getpid", libc::SYS_getpid),
    ("sendfile", libc::SYS_sendfile),
    ("socket", libc::SYS_socket),
    ("connect", libc::SYS_connect),
    ("accept", libc::SYS_accept),
    ("sendto", libc::SYS_sendto),
    ("recvfrom", libc::SYS_recvfrom),
    ("sendmsg", libc::SYS_sendmsg),
    ("recvmsg", libc::SYS_recvmsg),
    ("shutdown", libc::SYS_shutdown),
    ("bind", libc::SYS_bind),
    ("listen", libc::SYS_listen),
    ("getsockname", libc::SYS_getsockname),
    ("getpeername", libc::SYS_getpeername),
    ("socketpair", libc::SYS_socketpair),
    ("setsockopt", libc::SYS_setsockopt),
    ("getsockopt", libc::SYS_getsockopt),
    ("clone", libc::SYS_clone),
    ("fork", libc::SYS_fork),
    ("vfork", libc::SYS_vfork),
    ("execve", libc::SYS_execve),
    ("exit", libc::SYS_exit),
    ("wait4", libc::SYS_wait4),
    ("kill", libc::SYS_kill),
    ("uname", libc::SYS_uname),
    ("semget", libc::SYS_semget),
    ("semop", libc::SYS_semop),
    ("semctl", libc::SYS_semctl),
    ("shmdt", libc::SYS_shmdt),
    ("msgget", libc::SYS_msgget),
    ("msgsnd", libc::SYS_msgsnd),
    ("msgrcv", libc::SYS_msgrcv),
    ("msgctl", libc::SYS_msgctl),
    ("fcntl", libc::SYS_fcntl),
    ("flock", libc::SYS_flock),
    ("fsync", libc::SYS_fsync),
    ("fdatasync", libc::SYS_fdatasync),
    ("truncate", libc::SYS_truncate),
    ("ftruncate", libc::SYS_ftruncate),
    ("getdents", libc::SYS_getdents),
    ("getcwd", libc::SYS_getcwd),
    ("chdir", libc::SYS_chdir),
    ("fchdir", libc::SYS_fchdir),
    ("rename", libc::SYS_rename),
    ("mkdir", libc::SYS_mkdir),
    ("rmdir", libc::SYS_rmdir),
    ("creat", libc::SYS_creat),
    ("link", libc::SYS_link),
    ("unlink", libc::SYS_unlink),
    ("symlink", libc::SYS_symlink),
    ("readlink", libc::SYS_readlink),
    ("chmod", libc::SYS_chmod),
    ("fchmod", libc::SYS_fchmod),
    ("chown", libc::SYS_chown),
    ("fchown", libc::SYS_fchown),
    ("lchown", libc::SYS_lchown),
    ("umask", libc::SYS_umask),
    ("gettimeofday", libc::SYS_gettimeofday),
    ("getrlimit", libc::SYS_getrlimit),
    ("getrusage", libc::SYS_getrusage),
    ("sysinfo", libc::SYS_sysinfo),
    ("times", libc::SYS_times),
    ("ptrace", libc::SYS_ptrace),
    ("getuid", libc::SYS_getuid),
    ("syslog", libc::SYS_syslog),
    ("getgid", libc::SYS_getgid),
    ("setuid", libc::SYS_setuid),
    ("setgid", libc::SYS_setgid),
    ("geteuid", libc::SYS_geteuid),
    ("getegid", libc::SYS_getegid),
    ("setpgid", libc::SYS_setpgid),
    ("getppid", libc::SYS_getppid),
    ("getpgrp", libc::SYS_getpgrp),
    ("setsid", libc::SYS_setsid),
    ("setreuid", libc::SYS_setreuid),
    ("setregid", libc::SYS_setregid),
    ("getgroups", libc::SYS_getgroups),
    ("setgroups", libc::SYS_setgroups),
    ("setresuid", libc::SYS_setresuid),
    ("getresuid", libc::SYS_getresuid),
    ("setresgid", libc::SYS_setresgid),
    ("getresgid", libc::SYS_getresgid),
    ("getpgid", libc::SYS_getpgid),
    ("setfsuid", libc::SYS_setfsuid),
    ("setfsgid", libc::SYS_setfsgid),
    ("getsid", libc::SYS_getsid),
    ("capget", libc::SYS_capget),
    ("capset", libc::SYS_capset),
    ("rt_sigpending", libc::SYS_rt_sigpending),
    ("rt_sigtimedwait", libc::SYS_rt_sigtimedwait),
    ("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
    ("rt_sigsuspend", libc::SYS_rt_sigsuspend),
    ("sigaltstack", libc::SYS_sigaltstack),
    ("utime", libc::SYS_utime),
    ("mknod", libc::SYS_mknod),
    ("uselib", libc::SYS_uselib),
    ("personality", libc::SYS_personality),
    ("ustat", libc::SYS_ustat),
    ("statfs", libc::SYS_statfs),
    ("fstatfs", libc::SYS_fstatfs),
    ("sysfs", libc::SYS_sysfs),
    ("getpriority", libc::SYS_getpriority),
    ("setpriority", libc::SYS_setpriority),
    ("sched_setparam", libc::SYS_sched_setparam),
    ("sched_getparam", libc::SYS_sched_getparam),
    ("sched_setscheduler", libc::SYS_sched_setscheduler),
    ("sched_getscheduler", libc::SYS_sched_getscheduler),
    ("sched_get_priority_max", libc::SYS_sched_get_priority_max),
    ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
    ("sched_rr_get_interval", libc::SYS_sched_rr_get_interval),
    ("mlock", libc::SYS_mlock),
    ("munlock", libc::SYS_munlock),
    ("mlockall", libc::SYS_mlockall),
    ("munlockall", libc::SYS_munlockall),
    ("vhangup", libc::SYS_vhangup),
    ("modify_ldt", libc::SYS_modify_ldt),
    ("pivot_root", libc::SYS_pivot_root),
    ("_sysctl", libc::SYS__sysctl),
    ("prctl", libc::SYS_prctl),
    ("arch_prctl", libc::SYS_arch_prctl),
    ("adjtimex", libc::SYS_adjtimex),
    ("setrlimit", libc::SYS_setrlimit),
    ("chroot", libc::SYS_chroot),
    ("sync", libc::SYS_sync),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("init_module", libc::SYS_init_module),
    ("delete_module", libc::SYS_delete_module),
    ("quotactl", libc::SYS_quotactl),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("getpmsg", libc::SYS_getpmsg),
    ("putpmsg", libc::SYS_putpmsg),
    ("afs_syscall", libc::SYS_afs_syscall),
    ("tuxcall", libc::SYS_tuxcall),
    ("security", libc::SYS_security),
    ("gettid", libc::SYS_gettid),
    ("readahead", libc::SYS_readahead),
    ("setxattr", libc::SYS_setxattr),
    ("lsetxattr", libc::SYS_lsetxattr),
    ("fsetxattr", libc::SYS_fsetxattr),
    ("getxattr", libc::SYS_getxattr),
    ("lgetxattr", libc::SYS_lgetxattr),
    ("fgetxattr", libc::SYS_fgetxattr),
    ("listxattr", libc::SYS_listxattr),
    ("llistxattr", libc::SYS_llistxattr),
    ("flistxattr", libc::SYS_flistxattr),
    ("removexattr", libc::SYS_removexattr),
    ("lremovexattr", libc::SYS_lremovexattr),
    ("fremovexattr", libc::SYS_fremovexattr),
    ("tkill", libc::SYS_tkill),
    ("time", libc::SYS_time),
    ("futex", libc::SYS_futex),
    ("sched_setaffinity", libc::SYS_sched_setaffinity),
    ("sched_getaffinity", libc::SYS_sched_getaffinity),
    ("set_thread_area", libc::SYS_set_thread_area),
    ("io_setup", libc::SYS_io_setup),
    ("io_destroy", libc::SYS_io_destroy),
    ("io_getevents", libc::SYS_io_getevents),
    ("io_submit", libc::SYS_io_submit),
    ("io_cancel", libc::SYS_io_cancel),
    ("get_thread_area", libc::SYS_get_thread_area),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("epoll_create", libc::SYS_epoll_create),
    ("epoll_ctl_old", libc::SYS_epoll_ctl_old),
    ("epoll_wait_old", libc::SYS_epoll_wait_old),
    ("remap_file_pages", libc::SYS_remap_file_pages),
    ("getdents64", libc::SYS_getdents64),
    ("set_tid_address", libc::SYS_set_tid_address),
    ("restart_syscall", libc::SYS_restart_syscall),
    ("semtimedop", libc::SYS_semtimedop),
    ("fadvise64", libc::SYS_fadvise64),
    ("timer_create", libc::SYS_timer_create),
    ("timer_settime", libc::SYS_timer_settime),
    ("timer_gettime", libc::SYS_timer_gettime),
    ("timer_getoverrun", libc::SYS_timer_getoverrun),
    ("timer_delete", libc::SYS_timer_delete),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_gettime", libc::SYS_clock_gettime),
    ("clock_getres", libc::SYS_clock_getres),
    ("clock_nanosleep", libc::SYS_clock_nanosleep),
    ("exit_group", libc::SYS_exit_group),
    ("epoll_wait", libc::SYS_epoll_wait),
    ("epoll_ctl", libc::SYS_epoll_ctl),
    ("tgkill", libc::SYS_tgkill),
    ("utimes", libc::SYS_utimes),
    ("vserver", libc::SYS_vserver),
    ("mbind", libc::SYS_mbind),
    ("set_mempolicy", libc::SYS_set_mempolicy),
    ("get_mempolicy", libc::SYS_get_mempolicy),
    ("mq_open", libc::SYS_mq_open),
    ("mq_unlink", libc::SYS_mq_unlink),
    ("mq_timedsend", libc::SYS_mq_timedsend),
    ("mq_timedreceive", libc::SYS_mq_timedreceive),
    ("mq_notify", libc::SYS_mq_notify),
    ("mq_getsetattr", libc::SYS_mq_getsetattr),
    ("kexec_load", libc::SYS_kexec_load),
    ("waitid", libc::SYS_waitid),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
    ("ioprio_set", libc::SYS_ioprio_set),
    ("ioprio_get", libc::SYS_ioprio_get),
    ("inotify_init", libc::SYS_inotify_init),
    ("inotify_add_watch", libc::SYS_inotify_add_watch),
    ("inotify_rm_watch", libc::SYS_inotify_rm_watch),
    ("migrate_pages", libc::SYS_migrate_pages),
    ("openat", libc::SYS_openat),
    ("mkdirat", libc::SYS_mkdirat),
    ("mknodat", libc::SYS_mknodat),
    ("fchownat", libc::SYS_fchownat),
    ("futimesat", libc::SYS_futimesat),
    ("newfstatat", libc::SYS_newfstatat),
    ("unlinkat", libc::SYS_unlinkat),
    ("renameat", libc::SYS_renameat),
    ("linkat", libc::SYS_linkat),
    ("symlinkat", libc::SYS_symlinkat),
    ("readlinkat", libc::SYS_readlinkat),
    ("fchmodat", libc::SYS_fchmodat),
    ("faccessat", libc::SYS_faccessat),
    ("pselect6", libc::SYS_pselect6),
    ("ppoll", libc::SYS_ppoll),
    ("unshare", libc::SYS_unshare),
    ("set_robust_list", libc::SYS_set_robust_list),
    ("get_robust_list", libc::SYS_get_robust_list),
    ("splice", libc::SYS_splice),
    ("tee", libc::SYS_tee),
    ("sync_file_range", libc::SYS_sync_file_range),
    ("vmsplice", libc::SYS_vmsplice),
    ("move_pages", libc::SYS_move_pages),
    ("utimensat", libc::SYS_utimensat),
    ("epoll_pwait", libc::SYS_epoll_pwait),
    ("signalfd", libc::SYS_signalfd),
    ("timerfd_create", libc::SYS_timerfd_create),
    ("eventfd", libc::SYS_eventfd),
    ("fallocate", libc::SYS_fallocate),
    ("timerfd_settime", libc::SYS_timerfd_settime),
    ("timerfd_gettime", libc::SYS_timerfd_gettime),
    ("accept4", libc::SYS_accept4),
    ("signalfd4", libc::SYS_signalfd4),
    ("eventfd2", libc::SYS_eventfd2),
    ("epoll_create1", libc::SYS_epoll_create1),
    ("dup3", libc::SYS_dup3),
    ("pipe2", libc::SYS_pipe2),
    ("inotify_init1", libc::SYS_inotify_init1),
    ("preadv", libc::SYS_preadv),
    ("pwritev", libc::SYS_pwritev),
    ("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("recvmmsg", libc::SYS_recvmmsg),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("fanotify_mark", libc::SYS_fanotify_mark),
    ("prlimit64", libc::SYS_prlimit64),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("syncfs", libc::SYS_syncfs),
    ("sendmmsg", libc::SYS_sendmmsg),
    ("setns", libc::SYS_setns),
    ("getcpu", libc::SYS_getcpu),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("finit_module", libc::SYS_finit_module),
    ("sched_setattr", libc::SYS_sched_setattr),
    ("sched_getattr", libc::SYS_sched_getattr),
    ("renameat2", libc::SYS_renameat2),
    ("seccomp", libc::SYS_seccomp),
    ("getrandom", libc::SYS_getrandom),
    ("memfd_create", libc::SYS_memfd_create),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("bpf", libc::SYS_bpf),
    ("execveat", libc::SYS_execveat),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("membarrier", libc::SYS_membarrier),
    ("mlock2", libc::SYS_mlock2),
    ("copy_file_range", libc::SYS_copy_file_range),
    ("preadv2", libc::SYS_preadv2),
    ("pwritev2", libc::SYS_pwritev2),
    ("pkey_mprotect", libc::SYS_pkey_mprotect),
    ("pkey_alloc", libc::SYS_pkey_alloc),
    ("pkey_free", libc::SYS_pkey_free),
    ("statx", libc::SYS_statx),
    ("rseq", libc::SYS_rseq),
    ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("pidfd_open", libc::SYS_pidfd_open),
    ("clone3", libc::SYS_clone3),
    ("close_range", libc::SYS_close_range),
    ("openat2", libc::SYS_openat2),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("faccessat2", libc::SYS_faccessat2),
    ("process_madvise", libc::SYS_process_madvise),
    ("epoll_pwait2", libc::SYS_epoll_pwait2),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("quotactl_fd", libc::SYS_quotactl_fd),
    ("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
    ("landlock_add_rule", libc::SYS_landlock_add_rule),
    ("landlock_restrict_self", libc::SYS_landlock_restrict_self),
    ("memfd_secret", libc::SYS_memfd_secret),
    ("process_mrelease", libc::SYS_process_mrelease),
    ("futex_waitv", libc::SYS_futex_waitv),
    ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
    ("fchmodat2", libc::SYS_fchmodat2),
    ("mseal", libc::SYS_mseal),
];

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::sync::OnceLock;

    fn default_filter() -> &'static Filter {
        static FILTER: OnceLock<Filter> = OnceLock::new();
        FILTER.get_or_init(|| compile(DEFAULT_POLICY).expect("default policy compiles"))
    }

    // -----------------------------------------------------------------------------------------
    // Compilation.
    // -----------------------------------------------------------------------------------------

    #[test]
    fn default_policy_compiles() {
        let filter = default_filter();
        assert!(!filter.is_empty());
        assert!(filter.len() <= MAX_INSNS);
        // Sanity: the policy denies what the module documentation promises.
        for name in [
            "mount",
            "umount2",
            "fsopen",
            "open_tree_attr",
            "unshare",
            "setns",
            "clone3",
            "ptrace",
            "bpf",
            "io_uring_setup",
            "keyctl",
            "personality",
            "socket",
            "ioctl",
        ] {
            let nr = syscall_nr(name).unwrap();
            assert!(
                filter
                    .insns
                    .iter()
                    .any(|i| i.code == JEQ as u16 && i.k == nr),
                "{name} has no block"
            );
        }
    }

    #[test]
    fn syscall_table_is_consistent() {
        let all: Vec<_> = SYSCALLS.iter().chain(EXTRA_SYSCALLS).collect();
        for (i, (name, nr)) in all.iter().enumerate() {
            for (other, other_nr) in &all[i + 1..] {
                assert_ne!(name, other, "duplicate name");
                assert_ne!(nr, other_nr, "{name} and {other} share a number");
            }
        }
        assert_eq!(syscall_nr("read"), Some(0));
        assert_eq!(syscall_nr("mount"), Some(165));
        assert_eq!(syscall_nr("clone3"), Some(435));
        assert_eq!(syscall_nr("open_tree_attr"), Some(467));
    }

    #[test]
    fn unknown_syscall_is_an_error() {
        let err = compile(
            "version = 1\n[[rule]]\nsyscalls = [\"mount\", \"not_a_syscall\"]\naction = { errno = \"EPERM\" }\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, SeccompError::UnknownSyscall(n) if n == "not_a_syscall"),
            "{err}"
        );
        assert!(err.to_string().contains("not_a_syscall"));
    }

    #[test]
    fn unknown_errno_is_an_error() {
        let err = compile(
            "version = 1\n[[rule]]\nsyscalls = [\"mount\"]\naction = { errno = \"EWHATEVER\" }\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, SeccompError::UnknownErrno(n) if n == "EWHATEVER"),
            "{err}"
        );
    }

    #[test]
    fn malformed_policies_are_rejected() {
        type Expect = fn(&SeccompError) -> bool;
        let cases: &[(&str, Expect)] = &[
            (
                "version = 1\n[[rule]]\nsyscalls = [\"mount\"]\naction = { errno = \"EPERM\" }\n\
                 [[rule]]\nsyscalls = [\"mount\"]\naction = \"kill\"\n",
                |e| matches!(e, SeccompError::DuplicateSyscall(n) if n == "mount"),
            ),
            (
                "version = 2\n",
                |e| matches!(e, SeccompError::UnsupportedVersion(2)),
            ),
            (
                // Typo in a key must not silently drop the condition.
                "version = 1\n[[rule]]\nsyscalls = [\"socket\"]\naction = \"kill\"\nallow_if = []\n",
                |e| matches!(e, SeccompError::Parse { .. }),
            ),
            (
                "version = 1\n[[rule]]\nsyscalls = [\"socket\"]\naction = \"kill\"\n\
                 allow_if_any = [{ arg = 0, op = \"gt\", value = 1 }]\n",
                |e| matches!(e, SeccompError::Parse { .. }),
            ),
            (
                "version = 1\n[[rule]]\nsyscalls = [\"socket\"]\naction = \"kill\"\n\
                 allow_if_any = [{ arg = 6, op = \"eq\", value = 1 }]\n",
                |e| matches!(e, SeccompError::InvalidRule { rule: 1, .. }),
            ),
            (
                "version = 1\n[[rule]]\nsyscalls = [\"socket\"]\naction = \"kill\"\n\
                 allow_if_any = [{ arg = 0, op = \"eq\", value = 0x100000000 }]\n",
                |e| matches!(e, SeccompError::InvalidRule { rule: 1, .. }),
            ),
            (
                "version = 1\n[[rule]]\nsyscalls = [\"socket\"]\naction = \"kill\"\n\
                 allow_if_any = [{ arg = 0, op = \"eq\", value = 1 }]\n\
                 deny_if_any = [{ arg = 0, op = \"eq\", value = 2 }]\n",
                |e| matches!(e, SeccompError::InvalidRule { rule: 1, .. }),
            ),
            (
                "version = 1\n[[rule]]\nsyscalls = [\"socket\"]\naction = \"kill\"\nallow_if_any = []\n",
                |e| matches!(e, SeccompError::InvalidRule { rule: 1, .. }),
            ),
            (
                "version = 1\n[[rule]]\nsyscalls = []\naction = \"kill\"\n",
                |e| matches!(e, SeccompError::InvalidRule { rule: 1, .. }),
            ),
        ];
        for (policy, expected) in cases {
            let err = compile(policy).unwrap_err();
            assert!(expected(&err), "policy {policy:?} gave {err:?}");
        }
    }

    /// A rule with `n` `eq` conditions on ioctl's request, followed by a getppid rule.
    fn long_policy(n: u32) -> String {
        let mut p =
            String::from("version = 1\n[[rule]]\nsyscalls = [\"ioctl\"]\ndeny_if_any = [\n");
        for v in 0..n {
            p.push_str(&format!(
                "  {{ arg = 1, op = \"eq\", value = {} }},\n",
                0x10000 + v
            ));
        }
        p.push_str("]\naction = { errno = \"EPERM\" }\n");
        p.push_str("[[rule]]\nsyscalls = [\"getppid\"]\naction = { errno = \"EACCES\" }\n");
        p
    }

    #[test]
    fn too_long_is_an_error() {
        assert!(matches!(
            compile(&long_policy(2100)),
            Err(SeccompError::TooLong)
        ));
        // Just under the limit still compiles: 6 prologue + 2 (jeq+ja) + 1 ld + 2n + 1 + 2 + 1.
        let filter = compile(&long_policy(2041)).unwrap();
        assert_eq!(filter.len(), 4095);
    }

    // -----------------------------------------------------------------------------------------
    // A tiny interpreter for the instructions the generator emits, to test the program's
    // logic independently of the kernel (including inputs the kernel tests cannot produce).
    // -----------------------------------------------------------------------------------------

    fn emulate(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let insn = prog[pc];
            pc += 1;
            let k = insn.k;
            let (jt, jf) = (usize::from(insn.jt), usize::from(insn.jf));
            match u32::from(insn.code) {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let o = k as usize;
                    acc = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                JEQ => pc += if acc == k { jt } else { jf },
                JGE => pc += if acc >= k { jt } else { jf },
                JSET => pc += if acc & k != 0 { jt } else { jf },
                JA => pc += k as usize,
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const fn errno_ret(e: libc::c_int) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    fn nr(name: &str) -> u32 {
        syscall_nr(name).unwrap()
    }

    #[test]
    fn emulated_default_policy() {
        let p = &default_filter().insns;
        let x86 = AUDIT_ARCH_NATIVE;
        let run = |name: &str, args: [u64; 6]| emulate(p, x86, nr(name), args);
        let none = [0u64; 6];
        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        let a1 = |v: u64| [0, v, 0, 0, 0, 0];

        // Prologue.
        assert_eq!(
            emulate(p, 0x4000_0003 /* i386 */, 20, none),
            RET_KILL_PROCESS
        );
        assert_eq!(emulate(p, x86, 0x4000_0000 | 39, none), RET_KILL_PROCESS);
        assert_eq!(emulate(p, x86, u32::MAX, none), RET_KILL_PROCESS);
        assert_eq!(run("read", none), RET_ALLOW);
        assert_eq!(run("getpid", none), RET_ALLOW);
        assert_eq!(emulate(p, x86, 1000, none), RET_ALLOW);

        assert_eq!(run("mount", none), errno_ret(libc::EPERM));
        assert_eq!(run("open_tree_attr", none), errno_ret(libc::EPERM));
        assert_eq!(run("clone3", none), errno_ret(libc::ENOSYS));

        let sigchld = libc::SIGCHLD as u64;
        let thread_flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(run("clone", a0(sigchld)), RET_ALLOW);
        assert_eq!(run("clone", a0(thread_flags)), RET_ALLOW);
        let vfork = (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | sigchld;
        assert_eq!(run("clone", a0(vfork)), RET_ALLOW);
        for flag in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWTIME,
        ] {
            assert_eq!(
                run("clone", a0(flag as u64 | sigchld)),
                errno_ret(libc::EPERM),
                "flag {flag:#x}"
            );
        }

        for (domain, allowed) in [
            (libc::AF_UNIX, true),
            (libc::AF_INET, true),
            (libc::AF_INET6, true),
            (libc::AF_NETLINK, false),
            (libc::AF_PACKET, false),
            (libc::AF_VSOCK, false),
            (libc::AF_ALG, false),
        ] {
            let want = if allowed {
                RET_ALLOW
            } else {
                errno_ret(libc::EAFNOSUPPORT)
            };
            assert_eq!(run("socket", a0(domain as u64)), want, "socket({domain})");
            assert_eq!(
                run("socketpair", a0(domain as u64)),
                want,
                "socketpair({domain})"
            );
        }

        assert_eq!(run("ioctl", a1(0x5412)), errno_ret(libc::EPERM));
        assert_eq!(run("ioctl", a1(0x541C)), errno_ret(libc::EPERM));
        // The kernel truncates the request to 32 bits; so does the filter.
        assert_eq!(
            run("ioctl", a1(0xdead_0000_0000_5412)),
            errno_ret(libc::EPERM)
        );
        assert_eq!(run("ioctl", a1(libc::FIONREAD)), RET_ALLOW);
        assert_eq!(run("ioctl", a1(libc::TCGETS)), RET_ALLOW);

        assert_eq!(run("personality", a0(0)), RET_ALLOW);
        assert_eq!(run("personality", a0(0xffff_ffff)), RET_ALLOW);
        assert_eq!(run("personality", a0(0x0040000)), errno_ret(libc::EPERM));
        assert_eq!(run("personality", a0(0x0400000)), errno_ret(libc::EPERM));
    }

    #[test]
    fn long_blocks_use_ja() {
        let filter = compile(&long_policy(300)).unwrap();
        let p = &filter.insns;
        assert!(p.iter().any(|i| i.code == JA as u16 && i.k > 255));
        let x86 = AUDIT_ARCH_NATIVE;
        let ioctl = |req: u64| emulate(p, x86, nr("ioctl"), [0, req, 0, 0, 0, 0]);
        assert_eq!(ioctl(0x10000), errno_ret(libc::EPERM));
        assert_eq!(ioctl(0x10000 + 299), errno_ret(libc::EPERM));
        assert_eq!(ioctl(0x10000 + 300), RET_ALLOW);
        assert_eq!(
            emulate(p, x86, nr("getppid"), [0; 6]),
            errno_ret(libc::EACCES)
        );
        assert_eq!(emulate(p, x86, nr("getpid"), [0; 6]), RET_ALLOW);
    }

    #[test]
    fn ne_condition() {
        let filter = compile(
            "version = 1\n[[rule]]\nsyscalls = [\"setpgid\"]\n\
             allow_if_any = [{ arg = 0, op = \"ne\", value = 7 }]\naction = \"kill\"\n",
        )
        .unwrap();
        let run = |v| {
            emulate(
                &filter.insns,
                AUDIT_ARCH_NATIVE,
                nr("setpgid"),
                [v, 0, 0, 0, 0, 0],
            )
        };
        assert_eq!(run(7), RET_KILL_PROCESS);
        assert_eq!(run(8), RET_ALLOW);
    }

    // -----------------------------------------------------------------------------------------
    // Real enforcement: fork, install, probe. The test harness is multi-threaded, so the
    // child only makes raw system calls (no allocation, no locks) and reports via _exit.
    // -----------------------------------------------------------------------------------------

    /// Exit code a probe child uses when the probed call succeeded.
    const SUCCEEDED: i32 = 200;

    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        /// The probe failed with this errno.
        Errno(i32),
        /// The probe returned a non-negative value.
        Ok,
        /// Any other exit code (setup failure in the child).
        Exit(i32),
        /// Killed by this signal.
        Signal(i32),
    }

    fn errno() -> i32 {
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() }
    }

    fn wait_for(pid: libc::pid_t) -> libc::c_int {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                return status;
            }
            assert!(r == -1 && errno() == libc::EINTR, "waitpid failed");
        }
    }

    fn decode(status: libc::c_int) -> Outcome {
        if libc::WIFSIGNALED(status) {
            return Outcome::Signal(libc::WTERMSIG(status));
        }
        match libc::WEXITSTATUS(status) {
            SUCCEEDED => Outcome::Ok,
            code if (1..SUCCEEDED).contains(&code) && code < 150 => Outcome::Errno(code),
            code => Outcome::Exit(code),
        }
    }

    /// Forks; the child sets no_new_privs, installs `filter` (if any), runs `probe` and
    /// exits with its errno (or [`SUCCEEDED`]).
    fn probe(filter: Option<&Filter>, probe: fn() -> libc::c_long) -> Outcome {
        // SAFETY: the child below only performs raw system calls and _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain syscalls in the forked child; no allocation, no locks.
            unsafe {
                // No core file when the probe is meant to be killed by SIGSYS.
                libc::setrlimit(libc::RLIMIT_CORE, &no_core);
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    libc::_exit(160);
                }
                if let Some(filter) = filter {
                    if filter.install().is_err() {
                        libc::_exit(161);
                    }
                }
                let r = probe();
                libc::_exit(if r >= 0 {
                    SUCCEEDED
                } else if r == -1 {
                    errno()
                } else {
                    162
                });
            }
        }
        decode(wait_for(pid))
    }

    fn enforced(p: fn() -> libc::c_long) -> Outcome {
        probe(Some(default_filter()), p)
    }

    fn sys0(nr: libc::c_long) -> libc::c_long {
        // SAFETY: a syscall without pointer arguments.
        unsafe { libc::syscall(nr) }
    }

    /// Raw fork-like clone with `flags`; the new child exits at once. Returns -1/errno on
    /// failure and 0 when the clone succeeded and the child exited cleanly.
    fn clone_and_reap(flags: libc::c_long) -> libc::c_long {
        // SAFETY: without CLONE_VM the child runs on a copy of our stack, like fork().
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
        if pid == 0 {
            // SAFETY: leaving the cloned child immediately.
            unsafe { libc::_exit(0) };
        }
        if pid < 0 {
            return pid;
        }
        let status = wait_for(pid as libc::pid_t);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            0
        } else {
            -2
        }
    }

    fn mount_probe() -> libc::c_long {
        // All-null arguments: EFAULT unfiltered, so nothing is ever mounted.
        // SAFETY: null pointers are valid arguments to the raw syscall.
        unsafe { libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0) }
    }

    fn clone3_probe() -> libc::c_long {
        // NULL args / size 0: EINVAL unfiltered, ENOSYS from the filter.
        // SAFETY: the kernel rejects the null pointer without dereferencing it.
        unsafe { libc::syscall(libc::SYS_clone3, 0, 0) }
    }

    fn socket_probe(domain: libc::c_int, ty: libc::c_int) -> libc::c_long {
        // SAFETY: socket takes no pointers.
        let fd = unsafe { libc::socket(domain, ty, 0) };
        if fd >= 0 {
            // SAFETY: closing the fd just created.
            unsafe { libc::close(fd) };
        }
        fd.into()
    }

    fn socketpair_probe(domain: libc::c_int) -> libc::c_long {
        let mut fds = [-1; 2];
        // SAFETY: fds has room for two descriptors.
        let r = unsafe { libc::socketpair(domain, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        r.into()
    }

    fn ioctl_probe(request: u64) -> libc::c_long {
        // fd -1: EBADF whenever the filter lets the call through.
        // SAFETY: fd -1 is rejected before the argument pointer is used.
        unsafe { libc::syscall(libc::SYS_ioctl, -1, request, 0) }
    }

    fn personality_probe(persona: libc::c_ulong) -> libc::c_long {
        // SAFETY: personality takes no pointers.
        unsafe { libc::syscall(libc::SYS_personality, persona) }
    }

    #[test]
    fn enforced_positive_controls() {
        assert_eq!(enforced(|| sys0(libc::SYS_getpid)), Outcome::Ok);
        // Plain fork through clone(SIGCHLD) still works.
        assert_eq!(
            enforced(|| clone_and_reap(libc::SIGCHLD.into())),
            Outcome::Ok
        );
        assert_eq!(
            enforced(|| socket_probe(libc::AF_INET, libc::SOCK_STREAM)),
            Outcome::Ok
        );
        assert_eq!(
            enforced(|| socket_probe(libc::AF_UNIX, libc::SOCK_STREAM)),
            Outcome::Ok
        );
        assert_eq!(enforced(|| socketpair_probe(libc::AF_UNIX)), Outcome::Ok);
        // Other ioctls pass the filter and reach the kernel (EBADF for fd -1).
        assert_eq!(
            enforced(|| ioctl_probe(libc::FIONREAD)),
            Outcome::Errno(libc::EBADF)
        );
        assert_eq!(enforced(|| personality_probe(0xffff_ffff)), Outcome::Ok);
        assert_eq!(enforced(|| personality_probe(0)), Outcome::Ok);
    }

    #[test]
    fn enforced_mount_and_namespaces() {
        let eperm = Outcome::Errno(libc::EPERM);
        assert_eq!(enforced(mount_probe), eperm);
        assert_eq!(
            enforced(|| {
                // SAFETY: umount2 of a constant NUL-terminated path.
                unsafe { libc::syscall(libc::SYS_umount2, c"/nonexistent".as_ptr(), 0) }
            }),
            eperm
        );
        assert_eq!(
            enforced(|| {
                // SAFETY: fsopen with a constant NUL-terminated name.
                unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 0) }
            }),
            eperm
        );
        assert_eq!(
            enforced(|| {
                // SAFETY: null path; the kernel rejects it without writing anything.
                unsafe {
                    libc::syscall(467 /* open_tree_attr */, -1, 0, 0, 0, 0)
                }
            }),
            eperm
        );
        assert_eq!(
            enforced(|| {
                // SAFETY: unshare takes no pointers.
                unsafe { libc::unshare(libc::CLONE_NEWUSER) }.into()
            }),
            eperm
        );
        assert_eq!(
            enforced(|| clone_and_reap((libc::CLONE_NEWUSER | libc::SIGCHLD).into())),
            eperm
        );
        assert_eq!(
            enforced(|| {
                for flag in [
                    libc::CLONE_NEWNS,
                    libc::CLONE_NEWCGROUP,
                    libc::CLONE_NEWUTS,
                    libc::CLONE_NEWIPC,
                    libc::CLONE_NEWPID,
                    libc::CLONE_NEWNET,
                ] {
                    let r = clone_and_reap((flag | libc::SIGCHLD).into());
                    if r != -1 || errno() != libc::EPERM {
                        return r.max(0);
                    }
                }
                -1
            }),
            eperm
        );
        assert_eq!(enforced(clone3_probe), Outcome::Errno(libc::ENOSYS));
    }

    #[test]
    fn enforced_sockets() {
        let eafnosupport = Outcome::Errno(libc::EAFNOSUPPORT);
        assert_eq!(
            enforced(|| socket_probe(libc::AF_VSOCK, libc::SOCK_STREAM)),
            eafnosupport
        );
        assert_eq!(
            enforced(|| socket_probe(libc::AF_NETLINK, libc::SOCK_RAW)),
            eafnosupport
        );
        assert_eq!(
            enforced(|| socket_probe(libc::AF_PACKET, libc::SOCK_RAW)),
            eafnosupport
        );
        assert_eq!(
            enforced(|| socketpair_probe(libc::AF_NETLINK)),
            eafnosupport
        );
    }

    #[test]
    fn enforced_kernel_attack_surface() {
        let eperm = Outcome::Errno(libc::EPERM);
        assert_eq!(
            enforced(|| {
                // SAFETY: PTRACE_TRACEME takes no pointers.
                unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) }
            }),
            eperm
        );
        assert_eq!(
            enforced(|| {
                // SAFETY: invalid command with a null attr: EINVAL unfiltered.
                unsafe { libc::syscall(libc::SYS_bpf, 9999, 0, 0) }
            }),
            eperm
        );
        assert_eq!(
            enforced(|| {
                // SAFETY: null params: EFAULT/EINVAL unfiltered.
                unsafe { libc::syscall(libc::SYS_io_uring_setup, 0, 0) }
            }),
            eperm
        );
        assert_eq!(
            enforced(|| {
                // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID=0, invalid id) takes no pointers.
                unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0) }
            }),
            eperm
        );
        assert_eq!(enforced(|| ioctl_probe(0x5412)), eperm);
        assert_eq!(enforced(|| ioctl_probe(0x541C)), eperm);
        assert_eq!(enforced(|| ioctl_probe(0xffff_ffff_0000_5412)), eperm);
        assert_eq!(enforced(|| personality_probe(0x0040000)), eperm);
    }

    #[test]
    fn enforced_x32_is_killed() {
        assert_eq!(
            enforced(|| sys0(0x4000_0000 | libc::SYS_getpid)),
            Outcome::Signal(libc::SIGSYS)
        );
    }

    /// i386 `getpid` through `int 0x80` from this 64-bit process.
    fn int80_getpid() -> libc::c_long {
        // __NR_getpid in the i386 syscall table.
        let mut rax: u64 = 20;
        // SAFETY: getpid takes no arguments and touches no memory; r8-r11 are declared
        // clobbered for kernels that do not preserve them on this path.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inout("rax") rax,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                options(nostack)
            );
        }
        let ret = rax as u32 as i32;
        // SAFETY: getpid has no preconditions.
        if ret == unsafe { libc::getpid() } {
            0
        } else {
            -2
        }
    }

    #[test]
    fn enforced_foreign_arch_is_killed() {
        // Only meaningful where the kernel accepts int 0x80 from 64-bit code at all.
        if probe(None, int80_getpid) != Outcome::Ok {
            eprintln!("skipping: int 0x80 (IA32 emulation) unavailable");
            return;
        }
        assert_eq!(enforced(int80_getpid), Outcome::Signal(libc::SIGSYS));
    }

    /// The probes above really depend on the filter: without it they behave differently.
    #[test]
    fn unfiltered_baseline_differs() {
        assert_eq!(probe(None, mount_probe), Outcome::Errno(libc::EFAULT));
        assert_eq!(probe(None, clone3_probe), Outcome::Errno(libc::EINVAL));
        assert_eq!(
            probe(None, || socket_probe(libc::AF_NETLINK, libc::SOCK_RAW)),
            Outcome::Ok
        );
        assert_eq!(
            probe(None, || ioctl_probe(0x5412)),
            Outcome::Errno(libc::EBADF)
        );
        assert_eq!(
            probe(None, || {
                // SAFETY: invalid bpf command, null attr.
                unsafe { libc::syscall(libc::SYS_bpf, 9999, 0, 0) }
            }),
            Outcome::Errno(libc::EINVAL)
        );
    }

    #[test]
    fn install_requires_no_new_privs() {
        let filter = default_filter();
        // SAFETY: the child only makes raw system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = match filter.install() {
                Err(SeccompError::NoNewPrivs) => 0,
                _ => 1,
            };
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(code) };
        }
        assert_eq!(decode(wait_for(pid)), Outcome::Exit(0));
    }

    #[test]
    fn enforced_long_program() {
        static LONG: OnceLock<Filter> = OnceLock::new();
        let filter = LONG.get_or_init(|| compile(&long_policy(300)).unwrap());
        assert!(filter.len() > 600);
        assert_eq!(
            probe(Some(filter), || ioctl_probe(0x10000 + 150)),
            Outcome::Errno(libc::EPERM)
        );
        assert_eq!(
            probe(Some(filter), || ioctl_probe(libc::FIONREAD)),
            Outcome::Errno(libc::EBADF)
        );
        // getppid's block sits after the 600-instruction ioctl block: reached through `ja`.
        assert_eq!(
            probe(Some(filter), || sys0(libc::SYS_getppid)),
            Outcome::Errno(libc::EACCES)
        );
        assert_eq!(probe(Some(filter), || sys0(libc::SYS_getpid)), Outcome::Ok);
    }

    // -----------------------------------------------------------------------------------------
    // Real language runtimes under the default filter (skipped where not installed).
    // -----------------------------------------------------------------------------------------

    /// Runs `argv` under the default filter and returns (wait outcome, stdout+stderr).
    fn exec_under_filter(argv: &[&str]) -> Option<(Outcome, String)> {
        if !std::path::Path::new(argv[0]).exists() {
            eprintln!("skipping: {} not installed", argv[0]);
            return None;
        }
        let filter = default_filter();
        let args: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
        let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let mut fds = [-1; 2];
        // SAFETY: fds has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let [rd, wr] = fds;
        // SAFETY: the child only makes raw system calls, then execs or exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: raw syscalls on fds we own and pointers prepared before fork.
            unsafe {
                libc::dup2(wr, 1);
                libc::dup2(wr, 2);
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || filter.install().is_err()
                {
                    libc::_exit(160);
                }
                libc::execv(ptrs[0], ptrs.as_ptr());
                libc::_exit(161);
            }
        }
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(wr) };
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a valid local buffer.
            let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                out.extend_from_slice(&buf[..n as usize]);
            } else if n == 0 || errno() != libc::EINTR {
                break;
            }
        }
        // SAFETY: closing the read end we own.
        unsafe { libc::close(rd) };
        let status = wait_for(pid);
        let outcome = if libc::WIFEXITED(status) {
            Outcome::Exit(libc::WEXITSTATUS(status))
        } else {
            decode(status)
        };
        Some((outcome, String::from_utf8_lossy(&out).into_owned()))
    }

    #[test]
    fn node_runs_under_filter() {
        if let Some((outcome, out)) = exec_under_filter(&[
            "/usr/bin/node",
            "-e",
            "require('child_process').execFileSync('true'); console.log(1)",
        ]) {
            assert_eq!((outcome, out.as_str()), (Outcome::Exit(0), "1\n"));
        }
    }

    #[test]
    fn python_runs_under_filter() {
        if let Some((outcome, out)) = exec_under_filter(&[
            "/root/.pyenv/versions/3.11.7/bin/python3.11",
            "-c",
            "import multiprocessing,threading,subprocess; print(subprocess.run([\"true\"]).returncode)",
        ]) {
            assert_eq!((outcome, out.as_str()), (Outcome::Exit(0), "0\n"));
        }
    }

    #[test]
    fn rustc_runs_under_filter() {
        if let Some((outcome, out)) = exec_under_filter(&["/root/.cargo/bin/rustc", "--version"]) {
            assert_eq!(outcome, Outcome::Exit(0), "{out}");
            assert!(out.starts_with("rustc "), "{out}");
        }
    }
}
