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
//! Warm boxes: a backend with [`Capabilities::warm_boxes`] sets a box up from a [`WarmSpec`]
//! before the program is known ([`Backend::prepare`]) and later runs a [`Program`] in it
//! ([`PreparedBox::start`]). How a box is kept warm is the backend's business; how many are
//! kept is the engine's.
//!
//! Backends: `coderun-sandbox-linux` (native namespaces + cgroups + seccomp) today; a microVM
//! backend is planned to implement the same trait.

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

/// What a backend can do besides running a program in a fresh box.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Boxes can be set up ahead of time ([`Backend::prepare`]) and handed a program later.
    /// Without this the engine keeps no pools and runs every program fresh.
    pub warm_boxes: bool,
    /// Output can be streamed out and stdin fed while the program runs ([`Streams`]). Without
    /// this a [`Program`] or [`BoxSpec`] carrying streams is refused.
    pub streaming: bool,
}

/// A box to set up before the program it will run is known (for a warm pool).
///
/// The backend decides how to keep it warm: the native backend starts an interpreter that
/// waits for the program, or confines a process up to its exec; a microVM backend restores a
/// snapshot. The engine only owns how many are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmSpec {
    /// Short label for logs (e.g. `python-run`).
    pub label: String,
    /// The command every program of this box starts with, without the program's own
    /// arguments: the interpreter, its flags and the main file (`python3 -E -s main.py`), or a
    /// compiler and its flags. A program whose argv does not start with it may be refused by
    /// [`PreparedBox::accepts`].
    pub command: Vec<String>,
    /// The whole environment of the program.
    pub env: Vec<(String, String)>,
    pub mounts: Vec<RuntimeMount>,
    /// The limits the box is set up with. A backend may fix some of them at set-up (the
    /// native backend: everything but the wall time, the CPU time and the output cap) and then
    /// refuses programs asking for others.
    pub limits: Limits,
    /// A file to copy out after the program ends; `host_path` is fixed at set-up.
    pub collect: Option<OutputFile>,
}

/// A program handed to a box that was set up ahead of time.
#[derive(Debug)]
pub struct Program {
    /// Absolute path of the program inside the box, then its arguments.
    pub argv: Vec<String>,
    pub files: Vec<InputFile>,
    pub stdin: Vec<u8>,
    pub limits: Limits,
    /// Live output and stdin, for backends with [`Capabilities::streaming`].
    pub streams: Option<Streams>,
}

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamKind {
    Stdout,
    Stderr,
}

/// A piece of output, sent while the program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub stream: StreamKind,
    pub bytes: Vec<u8>,
}

/// Stdin fed and output seen while the program runs. The [`Outcome`] still carries the
/// whole (capped) output at the end.
#[derive(Debug)]
pub struct Streams {
    /// Stdin as it arrives, after the program's initial stdin; the sender closing is end of
    /// file.
    pub stdin: tokio::sync::mpsc::Receiver<Vec<u8>>,
    /// Output chunks in the order the program wrote them (per stream).
    pub output: tokio::sync::mpsc::Sender<Chunk>,
}

/// A box set up ahead of time and waiting; used once. Dropping it destroys the box.
pub trait PreparedBox: Send {
    /// Whether this box can run `program` as a fresh box would: the same command, limits
    /// the box was not set up with fixed, files of a kind it takes. The engine asks before
    /// [`start`](Self::start) and runs the program fresh when the answer is no.
    fn accepts(&self, program: &Program) -> bool;

    /// Hands the program over; the box runs it and is destroyed. Dropping the future before
    /// it is ready ends the program and destroys the box.
    fn start(
        self: Box<Self>,
        program: Program,
    ) -> BoxFuture<'static, Result<Outcome, SandboxError>>;
}

/// A way of running one program in a fresh, single-use box.
///
/// Cancellation: every future a backend returns may be dropped before it is ready (the
/// client went away, a deadline fired, the server shuts down). The backend then ends the
/// program and destroys its box promptly (within a second), without the caller's help.
pub trait Backend: Send + Sync + 'static {
    /// Short name for `/health` and logs, e.g. `linux-native`.
    fn name(&self) -> &'static str;

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Runs the spec in a new box, destroys the box, reports what happened.
    fn run(&self, spec: BoxSpec) -> BoxFuture<'_, Result<Outcome, SandboxError>>;

    /// Like [`run`](Self::run), with stdin fed and output sent while the program runs. Only
    /// called when [`Capabilities::streaming`] is set.
    fn run_streaming(
        &self,
        spec: BoxSpec,
        streams: Streams,
    ) -> BoxFuture<'_, Result<Outcome, SandboxError>> {
        let _ = (spec, streams);
        Box::pin(async {
            Err(SandboxError::InvalidSpec(format!(
                "backend {} cannot stream",
                self.name()
            )))
        })
    }

    /// Checks the host mechanisms this backend depends on (for `coderun doctor`).
    fn host_checks(&self) -> Vec<Check>;

    /// Sets a box up ahead of time for programs starting with `spec.command`. Only called
    /// when [`Capabilities::warm_boxes`] is set.
    fn prepare(&self, spec: WarmSpec) -> BoxFuture<'_, Result<Box<dyn PreparedBox>, SandboxError>> {
        let _ = spec;
        Box::pin(async {
            Err(SandboxError::InvalidSpec(format!(
                "backend {} has no warm boxes",
                self.name()
            )))
        })
    }

    /// Ends every program of every box this backend has running (shutdown, once the grace
    /// period is over). Their runs answer as killed.
    fn kill_all(&self) {}
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
        assert!(validate_relative_path("a/".repeat(17).trim_end_matches('/')).is_err());
    }
}
