//! The contract between the engine and a sandbox backend.
//!
//! A backend takes a [`BoxSpec`] — what to put in a fresh box, what to run in it, under which
//! [`Limits`] — runs it once, destroys the box and answers with an [`Outcome`]. The box is
//! single-use: nothing of it survives the call.
//!
//! Two kinds of failure, as in isolate:
//! - the *program* failing (non-zero exit, signal, time/memory/output limit) is a normal
//!   [`Outcome`];
//! - the *sandbox* failing (a namespace, mount or cgroup could not be set up) is a
//!   [`SandboxError`]: the program did not run, and the caller answers 5xx.
//!
//! Backends: `coderun-sandbox-linux` (native namespaces + cgroups + seccomp) today; gVisor,
//! microVM and Docker backends later implement the same trait.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// Hard limits for one box. Units are in the field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time from exec to exit.
    pub wall_time_ms: u64,
    /// CPU time of all processes of the box together (cgroup accounting).
    pub cpu_time_ms: u64,
    /// Memory of all processes of the box together, runtime and tmpfs pages included.
    pub memory_mb: u64,
    /// Processes plus threads.
    pub max_processes: u64,
    /// Bytes kept per output stream; the program is killed once a stream passes it.
    pub output_bytes: u64,
    /// Size of the writable work directory (tmpfs).
    pub workdir_mb: u64,
    /// Inodes of the writable work directory.
    pub workdir_inodes: u64,
    /// CPU bandwidth in thousandths of one CPU (1000 = one full CPU).
    pub cpu_millicores: u64,
    /// Largest file the program may write (RLIMIT_FSIZE).
    pub file_size_mb: u64,
    /// Open file descriptors per process (RLIMIT_NOFILE).
    pub open_files: u64,
    /// Stack size per process (RLIMIT_STACK).
    pub stack_mb: u64,
}

/// Checks a relative path given by a client: non-empty, no NUL, no absolute path, no `.` or
/// `..` component, no empty component, each component at most 255 bytes, at most 16 levels.
pub fn validate_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("file name is empty".into());
    }
    if path.len() > 1024 {
        return Err("file name is longer than 1024 bytes".into());
    }
    if path.contains('\0') {
        return Err(format!("file name {path:?} contains a NUL byte"));
    }
    if path.starts_with('/') {
        return Err(format!(
            "file name {path:?} is absolute; use a relative name"
        ));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 16 {
        return Err(format!("file name {path:?} is nested more than 16 levels"));
    }
    for part in parts {
        match part {
            "" => return Err(format!("file name {path:?} has an empty component")),
            "." | ".." => return Err(format!("file name {path:?} may not contain '.' or '..'")),
            p if p.len() > 255 => return Err(format!("a component of {path:?} is over 255 bytes")),
            _ => {}
        }
    }
    Ok(())
}

/// A read-only directory from the host's runtimes, shown inside the box at `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuntimeMount {
    /// Directory on the host (e.g. a Python prefix). Never visible by this name in the box.
    pub source: PathBuf,
    /// Absolute path inside the box, e.g. `/opt/coderun/python`.
    pub target: PathBuf,
    /// Paths relative to `source` to include; empty means everything.
    pub include: Vec<String>,
    /// Paths relative to `source` to leave out.
    pub exclude: Vec<String>,
}

/// Where the bytes of an input file come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileSource {
    /// Text sent by the client.
    Inline(String),
    /// A file on the host owned by the service (e.g. a compiled binary from the cache). The
    /// backend copies it into the box; the box never sees the host file itself.
    Host(PathBuf),
}

/// A file placed in the work directory before the program starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Normalised relative path inside the work directory.
    pub path: String,
    pub source: FileSource,
    pub executable: bool,
}

/// A file to copy out of the work directory after the program ends (e.g. a compiled binary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Relative path inside the work directory.
    pub path: String,
    /// New file on the host, created exclusively by the backend (it must not exist).
    pub host_path: PathBuf,
    /// Larger files are not copied (the outcome says so).
    pub max_bytes: u64,
}

/// Everything a backend needs to run one program once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxSpec {
    /// Short label for logs (e.g. `python-run`).
    pub label: String,
    /// Absolute path of the program inside the box, then its arguments.
    pub argv: Vec<String>,
    /// The whole environment of the program.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<RuntimeMount>,
    pub files: Vec<InputFile>,
    /// Bytes fed to the program's stdin. Not serialised: backends move it as raw bytes.
    #[serde(skip, default)]
    pub stdin: Vec<u8>,
    pub limits: Limits,
    pub collect: Option<OutputFile>,
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
}

/// The limit that ended the program, if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitHit {
    WallTime,
    CpuTime,
    Memory,
    Output,
}

/// What happened to the program. A program failing is a normal outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub termination: Termination,
    pub limit: Option<LimitHit>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// From exec to exit.
    pub wall_time_us: u64,
    pub cpu_time_us: u64,
    pub memory_peak_kb: u64,
    /// Whether `BoxSpec::collect` was copied out.
    pub collected: bool,
}

impl Outcome {
    pub fn exit_code(&self) -> Option<i32> {
        match self.termination {
            Termination::Exited(code) => Some(code),
            Termination::Signaled(_) => None,
        }
    }

    pub fn signal(&self) -> Option<i32> {
        match self.termination {
            Termination::Exited(_) => None,
            Termination::Signaled(sig) => Some(sig),
        }
    }

    /// Exit code 0 and no limit hit.
    pub fn success(&self) -> bool {
        self.limit.is_none() && self.termination == Termination::Exited(0)
    }
}

/// The sandbox could not do its job. The program did not run (or its result cannot be trusted).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid box spec: {0}")]
    InvalidSpec(String),
    #[error("sandbox set-up failed at {step}: {message}")]
    Setup { step: String, message: String },
    #[error("sandbox helper failed: {0}")]
    Helper(String),
    #[error("sandbox cleanup failed: {0}")]
    Cleanup(String),
    #[error("sandbox I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A host check as `coderun doctor` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when not ok.
    pub fix: Option<String>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a prepared (pooled) box receives when a request takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// Bytes for the box's runner (its fd 3): the program's files and arguments, in the
    /// runner's own format. Empty for a parked box.
    pub message: String,
    /// For a parked box (see [`Backend::park`]): the program to execute and its files.
    pub exec: Option<Exec>,
    pub stdin: Vec<u8>,
    /// Limits enforced from the hand-off on (the box's memory, process and disk limits were
    /// fixed when it was prepared).
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub output_bytes: u64,
}

/// The program a parked box executes: written into its work dir, then `argv` is executed
/// as a fresh box would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub argv: Vec<String>,
    pub files: Vec<InputFile>,
}

/// A box set up ahead of time with its runtime started and waiting; used once.
pub trait PreparedBox: Send {
    /// Hands the program over; the box runs it and is destroyed. Dropping an unstarted
    /// prepared box destroys it too.
    fn start(
        self: Box<Self>,
        handoff: Handoff,
    ) -> BoxFuture<'static, Result<Outcome, SandboxError>>;
}

/// A way of running one program in a fresh, single-use box.
pub trait Backend: Send + Sync + 'static {
    /// Short name for `/health` and logs, e.g. `linux-native`.
    fn name(&self) -> &'static str;

    /// Runs the spec in a new box, destroys the box, reports what happened.
    fn run(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Outcome, SandboxError>>;

    /// Checks the host mechanisms this backend depends on (for `coderun doctor`).
    fn host_checks(&self) -> Vec<Check>;

    /// Sets a box up ahead of time and starts `spec.argv` (a runner that waits on fd 3 for
    /// the program). Backends that cannot do this answer an error, and callers run unpooled.
    fn prepare(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Box<dyn PreparedBox>, SandboxError>> {
        let _ = spec;
        Box::pin(async {
            Err(SandboxError::InvalidSpec(format!(
                "backend {} has no pool",
                self.name()
            )))
        })
    }

    /// Sets a box up ahead of time, confined all the way to the exec, and parks it there
    /// (`spec.argv` and `spec.files` are not used): the hand-off's [`Exec`] names the program
    /// and its files. For steps with no runtime to start early (a compiler, a compiled
    /// binary). Backends that cannot do this answer an error, and callers run unpooled.
    fn park(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Box<dyn PreparedBox>, SandboxError>> {
        let _ = spec;
        Box::pin(async {
            Err(SandboxError::InvalidSpec(format!(
                "backend {} cannot park boxes",
                self.name()
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names() {
        for ok in ["main.py", "pkg/util.py", "a/b/c.txt", ".hidden", "a..b"] {
            assert!(validate_relative_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "a\0b",
        ] {
            assert!(validate_relative_path(bad).is_err(), "{bad:?}");
        }
        assert!(
            validate_relative_path(&"a/".repeat(17).trim_end_matches('/').to_string()).is_err()
        );
    }
}
