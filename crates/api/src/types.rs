//! Request and response bodies of `POST /execute`.
//!
//! The original service's shape (`code`, `language`, `timeout` in; `output`, `error`,
//! `execution_time`, `success` out) is kept as it was; every other field is added beside it.

use coderun_engine::{ExecuteRequest, Execution, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteBody {
    pub code: String,
    pub language: String,
    /// Seconds (fractions allowed).
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub stdin: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub files: Vec<FileBody>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub max_processes: Option<u64>,
    #[serde(default)]
    pub max_output_bytes: Option<u64>,
    #[serde(default)]
    pub typecheck: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBody {
    pub name: String,
    pub content: String,
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

#[derive(Debug, Clone, Serialize)]
pub struct ExecuteResponse {
    // The original fields.
    pub output: String,
    pub error: Option<String>,
    pub execution_time: f64,
    pub success: bool,
    // Added beside them.
    pub status: Status,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub compile_output: Option<String>,
    pub compile_time: Option<f64>,
    pub compile_cached: Option<bool>,
    /// The program ran in a warm pooled box.
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
