//! Turning a box's [`Outcome`] into what the client is told: a status, the streams, the
//! sentence naming the limit that ended the program.

use coderun_sandbox::{LimitHit, Limits, Outcome};

use crate::plan::seconds;
use crate::{signal_name, Execution, Status};

/// The sentence naming a limit, as the client reads it in `error`.
pub(crate) fn limit_sentence(hit: LimitHit, limits: &Limits) -> String {
    match hit {
        LimitHit::WallTime => format!("Time limit exceeded ({})", seconds(limits.wall_time_ms)),
        // The CPU limit defaults to the wall timeout (a box gets at most one CPU, so it is
        // the same limit): then it is the time limit the client set.
        LimitHit::CpuTime if limits.cpu_time_ms == limits.wall_time_ms => {
            format!("Time limit exceeded ({})", seconds(limits.wall_time_ms))
        }
        LimitHit::CpuTime => format!("CPU time limit exceeded ({})", seconds(limits.cpu_time_ms)),
        LimitHit::Memory => format!("Memory limit exceeded ({} MiB)", limits.memory_mb),
        LimitHit::Output => format!(
            "Output limit exceeded ({} byte{} per stream)",
            limits.output_bytes,
            if limits.output_bytes == 1 { "" } else { "s" }
        ),
    }
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The status a run's outcome maps to.
pub(crate) fn status(out: &Outcome) -> Status {
    match out.limit {
        Some(LimitHit::WallTime | LimitHit::CpuTime) => Status::Timeout,
        Some(LimitHit::Memory) => Status::MemoryLimit,
        Some(LimitHit::Output) => Status::OutputLimit,
        None if out.success() => Status::Ok,
        None => Status::RuntimeError,
    }
}

/// What the client is told about a run step that happened.
pub(crate) fn finish(
    language: &str,
    version: Option<String>,
    limits: &Limits,
    out: Outcome,
) -> Execution {
    let stderr = lossy(&out.stderr);
    let error = match out.limit {
        Some(hit) if stderr.is_empty() => Some(limit_sentence(hit, limits)),
        Some(hit) => Some(format!("{}\n{stderr}", limit_sentence(hit, limits))),
        None if stderr.is_empty() => None,
        None => Some(stderr.clone()),
    };
    Execution {
        status: status(&out),
        success: out.success(),
        stdout: lossy(&out.stdout),
        stderr,
        error,
        exit_code: out.exit_code(),
        signal: out.signal().map(signal_name),
        compile_output: None,
        compile_time: None,
        compile_cached: None,
        pooled: false,
        queue_time: 0.0,
        wall_time: out.wall_time_us as f64 / 1e6,
        cpu_time: out.cpu_time_us as f64 / 1e6,
        memory_kb: out.memory_peak_kb,
        truncated: out.stdout_truncated || out.stderr_truncated,
        language: language.to_string(),
        version,
    }
}

/// What the client is told when the compile step failed (the program did not run).
pub(crate) fn compile_failed(
    language: &str,
    version: Option<String>,
    message: String,
    compile_output: String,
    compile_time: f64,
    out: &Outcome,
) -> Execution {
    Execution {
        status: Status::CompileError,
        success: false,
        stdout: String::new(),
        stderr: String::new(),
        error: Some(message),
        exit_code: None,
        signal: None,
        compile_output: Some(compile_output),
        compile_time: Some(compile_time),
        compile_cached: Some(false),
        pooled: false,
        queue_time: 0.0,
        wall_time: 0.0,
        cpu_time: 0.0,
        memory_kb: out.memory_peak_kb,
        truncated: out.stdout_truncated || out.stderr_truncated,
        language: language.to_string(),
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(wall_time_ms: u64, cpu_time_ms: u64) -> Limits {
        Limits {
            wall_time_ms,
            cpu_time_ms,
            memory_mb: 128,
            max_processes: 64,
            output_bytes: 1,
            workdir_mb: 64,
            workdir_inodes: 64,
            cpu_millicores: 1000,
            file_size_mb: 16,
            open_files: 64,
            stack_mb: 8,
        }
    }

    #[test]
    fn a_cpu_limit_derived_from_the_timeout_reads_as_the_time_limit() {
        assert_eq!(
            limit_sentence(LimitHit::CpuTime, &limits(3000, 3000)),
            "Time limit exceeded (3 s)"
        );
        assert_eq!(
            limit_sentence(LimitHit::CpuTime, &limits(10_000, 2500)),
            "CPU time limit exceeded (2.5 s)"
        );
        assert_eq!(
            limit_sentence(LimitHit::Output, &limits(1000, 1000)),
            "Output limit exceeded (1 byte per stream)"
        );
    }
}
