//! Request and response bodies of `POST /execute`.
//!
//! The original service's shape (`code`, `language`, `timeout` in; `output`, `error`,
//! `execution_time`, `success` out) is kept as it was; every other field is added beside it.

use coderun_engine::{ExecuteRequest, Execution, Status};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A program to run. Unknown fields are refused (422).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "print(input())", "language": "python", "stdin": "hi", "timeout": 5}))]
pub struct ExecuteBody {
    /// The program's source.
    pub code: String,
    /// Language name or alias (see `GET /languages`), e.g. `python`, `py`, `rust`, `ts`.
    pub language: String,
    /// Seconds (fractions allowed).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Standard input fed to the program.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Command-line arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra files placed beside the program.
    #[serde(default)]
    pub files: Vec<FileBody>,
    /// Memory limit in MiB (capped by the server's maximum).
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Process/thread limit (capped by the server's maximum).
    #[serde(default)]
    pub max_processes: Option<u64>,
    /// Output limit in bytes for stdout and stderr (capped by the server's maximum).
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
    /// TypeScript only: type-check before running (type errors give `compile_error`).
    #[serde(default)]
    pub typecheck: bool,
}

/// A file written into the program's working directory.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileBody {
    /// Relative file name.
    pub name: String,
    pub content: String,
}

/// How a run ended (documentation mirror of the engine's `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    CompileError,
    RuntimeError,
    Timeout,
    MemoryLimit,
    OutputLimit,
}

impl From<ExecuteBody> for ExecuteRequest {
    fn from(b: ExecuteBody) -> ExecuteRequest {
        ExecuteRequest {
            code: b.code,
            language: b.language,
            timeout_s: b.timeout,
            stdin: b.stdin,
            args: b.args,
            files: b.files.into_iter().map(|f| (f.name, f.content)).collect(),
            memory_mb: b.memory_mb,
            max_processes: b.max_processes,
            output_bytes: b.max_output_bytes,
            typecheck: b.typecheck,
        }
    }
}

/// What happened to the program. A program that failed still gives 200 with `success: false`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecuteResponse {
    // The original fields.
    /// Same as `stdout`.
    pub output: String,
    /// Why the run did not succeed, if it did not.
    pub error: Option<String>,
    /// Seconds (same as `wall_time`).
    pub execution_time: f64,
    pub success: bool,
    // Added beside them.
    #[schema(value_type = RunStatus, example = "ok")]
    pub status: Status,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// Name of the signal that killed the program, e.g. `SIGKILL`.
    pub signal: Option<String>,
    pub compile_output: Option<String>,
    /// Seconds spent compiling.
    pub compile_time: Option<f64>,
    /// The compiled program came from the cache.
    pub compile_cached: Option<bool>,
    /// The program ran in a warm pooled box.
    pub pooled: bool,
    /// Seconds the request waited for a run slot.
    pub queue_time: f64,
    /// Seconds.
    pub wall_time: f64,
    /// Seconds.
    pub cpu_time: f64,
    /// Peak memory in KiB.
    pub memory_kb: u64,
    /// stdout or stderr was cut at the output limit.
    pub truncated: bool,
    /// Canonical language name.
    pub language: String,
    pub version: Option<String>,
}

impl From<Execution> for ExecuteResponse {
    fn from(e: Execution) -> ExecuteResponse {
        ExecuteResponse {
            output: e.stdout.clone(),
            error: e.error,
            execution_time: e.wall_time,
            success: e.success,
            status: e.status,
            stdout: e.stdout,
            stderr: e.stderr,
            exit_code: e.exit_code,
            signal: e.signal,
            compile_output: e.compile_output,
            compile_time: e.compile_time,
            compile_cached: e.compile_cached,
            pooled: e.pooled,
            queue_time: e.queue_time,
            wall_time: e.wall_time,
            cpu_time: e.cpu_time,
            memory_kb: e.memory_kb,
            truncated: e.truncated,
            language: e.language,
            version: e.version,
        }
    }
}
