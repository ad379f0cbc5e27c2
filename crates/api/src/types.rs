//! Request and response bodies: `POST /execute`'s, and the service routes' (`GET /health`,
//! `/livez`, `/languages`, `/`). Each handler serializes exactly these types, and the OpenAPI
//! document is generated from them, so the spec and the bodies cannot drift apart.
//!
//! The original service's shape (`code`, `language`, `timeout` in; `output`, `error`,
//! `execution_time`, `success` out) is kept as it was; every other field is added beside it.

use std::collections::BTreeMap;

use coderun_engine::{ExecuteRequest, Execution, LanguageHealth, Status};
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

/// `GET /livez`: the process answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Liveness {
    pub status: LiveStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    Alive,
}

/// One language as `GET /languages` and `GET /health` show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"name": "python", "display_name": "Python", "aliases": ["py", "python3"],
    "compiled": false, "available": true, "version": "Python 3.11.2", "semver": "3.11.2", "typecheck": null, "error": null}))]
pub struct LanguageInfo {
    /// Canonical name (what `language` in `POST /execute` resolves to).
    pub name: String,
    pub display_name: String,
    /// Other names accepted in `language`.
    pub aliases: Vec<String>,
    /// The program is compiled in a box of its own before it runs.
    pub compiled: bool,
    /// The language's runtime passed the last self-check.
    pub available: bool,
    /// The runtime's version line, e.g. `Python 3.11.2` (null when unavailable).
    #[schema(required = true)]
    pub version: Option<String>,
    /// The plain version number of `version`, e.g. `3.11.2` (null when unavailable or when
    /// the version line holds none).
    #[schema(required = true)]
    pub semver: Option<String>,
    /// Whether `"typecheck": true` works on this server (null for a language without a type
    /// check).
    #[schema(required = true)]
    pub typecheck: Option<bool>,
    /// Why the language is unavailable (null when available).
    #[schema(required = true)]
    pub error: Option<String>,
}

impl From<LanguageHealth> for LanguageInfo {
    fn from(l: LanguageHealth) -> LanguageInfo {
        LanguageInfo {
            name: l.name,
            display_name: l.display_name,
            aliases: l.aliases,
            compiled: l.compiled,
            available: l.available,
            semver: l.version.as_deref().and_then(semver),
            version: l.version,
            typecheck: l.typecheck,
            error: l.error,
        }
    }
}

/// The first `MAJOR.MINOR.PATCH` in a version line before any parenthesis (`rustc 1.95.0
/// (59807616e)` → `1.95.0`, `v20.20.2` → `20.20.2`), with a pre-release suffix if one follows.
/// What is in parentheses is about something else (a commit, the runtime under TypeScript).
pub fn semver(line: &str) -> Option<String> {
    let line = line.split('(').next().unwrap_or("");
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'v')
        {
            let rest = &line[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .unwrap_or(rest.len());
            let candidate = rest[..end].trim_end_matches(['.', '-']);
            let core: Vec<&str> = candidate
                .split('-')
                .next()
                .unwrap_or("")
                .split('.')
                .collect();
            if core.len() == 3
                && core
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                return Some(candidate.to_string());
            }
            i += end.max(1);
        } else {
            i += 1;
        }
    }
    None
}

/// `GET /languages`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LanguageList {
    /// Empty until the first self-check has finished.
    pub languages: Vec<LanguageInfo>,
}

/// `GET /health` once a self-check has run: 200 when `healthy`, 503 when `unhealthy`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "healthy", "backend": "linux-native", "sandbox": {"ok": true, "error": null},
    "checked_at": 1_700_000_000, "running": 0, "queued": 0, "pools": {"python/run": 2},
    "pool_max": {"python/run": 8},
    "languages": [{"name": "python", "display_name": "Python", "aliases": ["py", "python3"],
        "compiled": false, "available": true, "version": "Python 3.11.2", "semver": "3.11.2",
        "typecheck": null, "error": null}]
}))]
pub struct HealthReport {
    pub status: HealthStatus,
    /// Sandbox backend, e.g. `linux-native`.
    pub backend: String,
    pub sandbox: SandboxCheck,
    /// Unix seconds of the self-check reported.
    pub checked_at: u64,
    /// Programs running now.
    pub running: u64,
    /// Requests waiting for a run slot.
    pub queued: u64,
    /// Ready boxes per warm pool (`<language>/<step>`).
    pub pools: BTreeMap<String, u64>,
    /// How far each warm pool grows once requests drain it (it shrinks back after idling).
    pub pool_max: BTreeMap<String, u64>,
    pub languages: Vec<LanguageInfo>,
}

/// Verdict of a self-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
}

/// The sandbox part of the self-check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SandboxCheck {
    pub ok: bool,
    /// Why the sandbox failed its check (null when `ok`).
    #[schema(required = true)]
    pub error: Option<String>,
}

/// `GET /health` while the server is not ready: `starting` (no self-check has finished yet)
/// or `draining` (shutting down). Always 503.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"status": "draining", "backend": "linux-native", "running": 1, "queued": 0}))]
pub struct HealthNotReady {
    pub status: NotReadyStatus,
    /// Sandbox backend, e.g. `linux-native`.
    pub backend: String,
    /// Programs running now.
    pub running: u64,
    /// Requests waiting for a run slot.
    pub queued: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotReadyStatus {
    Starting,
    Draining,
}

/// Any `GET /health` body: a self-check report (`healthy`/`unhealthy`) or not ready
/// (`starting`/`draining`); `status` tells which.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HealthBody {
    Report(HealthReport),
    NotReady(HealthNotReady),
}

impl HealthBody {
    /// 200 when healthy, else 503.
    pub fn http_status(&self) -> axum::http::StatusCode {
        match self {
            HealthBody::Report(r) if r.status == HealthStatus::Healthy => {
                axum::http::StatusCode::OK
            }
            _ => axum::http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// `GET /`: what this service is and where its endpoints are.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceInfo {
    /// Always `coderun`.
    pub name: String,
    pub version: String,
    pub description: String,
    /// Sandbox backend, e.g. `linux-native`.
    pub backend: String,
    /// Canonical language names.
    pub languages: Vec<String>,
    /// `METHOD /path` to what it does.
    pub endpoints: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::semver;

    #[test]
    fn semver_is_the_first_plain_version_number() {
        assert_eq!(semver("Python 3.11.7").as_deref(), Some("3.11.7"));
        assert_eq!(
            semver("rustc 1.95.0 (59807616e 2026-04-14)").as_deref(),
            Some("1.95.0")
        );
        assert_eq!(semver("v20.20.2").as_deref(), Some("20.20.2"));
        assert_eq!(
            semver("TypeScript 7.0.0-dev.20250101.1 (node 20.20.2)").as_deref(),
            Some("7.0.0-dev.20250101.1")
        );
        assert_eq!(semver("x86_64 1.2"), None);
        assert_eq!(semver("build a1.2.3"), None);
        assert_eq!(semver(""), None);
        assert_eq!(semver("TypeScript (transpile only; node 20.20.2)"), None);
    }
}
