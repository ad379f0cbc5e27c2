//! Engine settings: default and maximum limits, admission (concurrency and queue) and input
//! caps. Units are in the field names. Order of precedence for a limit: the request, then the
//! language file, then these defaults; a request may never go past the maxima.

use serde::{Deserialize, Serialize};

/// Limits a language file may set for itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub wall_time_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub max_processes: Option<u64>,
    pub output_bytes: Option<u64>,
    pub compile_wall_time_ms: Option<u64>,
    pub compile_memory_mb: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    // Run step, defaults.
    pub wall_time_ms: u64,
    /// 0 means "same as the wall time".
    pub cpu_time_ms: u64,
    pub memory_mb: u64,
    pub max_processes: u64,
    pub output_bytes: u64,
    pub workdir_mb: u64,
    pub workdir_inodes: u64,
    /// CPU bandwidth per box in thousandths of a CPU.
    pub cpu_millicores: u64,
    pub file_size_mb: u64,
    pub open_files: u64,
    pub stack_mb: u64,
    // Run step, maxima a request may ask for.
    pub max_wall_time_ms: u64,
    pub max_memory_mb: u64,
    pub max_max_processes: u64,
    pub max_output_bytes: u64,
    // Compile step.
    pub compile_wall_time_ms: u64,
    pub compile_memory_mb: u64,
    pub compile_max_processes: u64,
    /// Largest compiler artefact copied out of the compile box.
    pub compile_output_bytes: u64,
    // Inputs.
    pub max_code_bytes: u64,
    pub max_stdin_bytes: u64,
    pub max_files: u64,
    pub max_files_bytes: u64,
    pub max_args: u64,
    pub max_arg_bytes: u64,
    // Admission. 0 = number of CPUs.
    pub concurrency: usize,
    pub queue: usize,
    /// Seconds between health self-checks.
    pub self_check_interval_s: u64,
    /// Compile cache directory; unset disables the cache.
    pub compile_cache_dir: Option<std::path::PathBuf>,
    /// Size cap of the compile cache (LRU); 0 disables it.
    pub compile_cache_mb: u64,
    /// Warm boxes kept ready per pooled language step while it is quiet (a language file's
    /// `[run.pool] min` overrides it).
    pub pool_min: usize,
    /// How far a pool grows once requests drain it; 0 disables the pools.
    pub pool_max: usize,
    /// Seconds without a request after which a grown pool shrinks back to its minimum.
    pub pool_idle_s: u64,
    /// Shorthand for a fixed size: `pool_min = pool_max = pool_size` (0 disables the pools).
    pub pool_size: Option<usize>,
    /// Optional denylist: language name → substrings a request's code and files may not
    /// contain (422). Off by default. Defence in depth only: the sandbox is the boundary, and
    /// a denylist is always bypassable by a determined program.
    pub denylist: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            wall_time_ms: 10_000,
            cpu_time_ms: 0,
            memory_mb: 128,
            max_processes: 64,
            output_bytes: 1 << 20,
            workdir_mb: 64,
            workdir_inodes: 4096,
            cpu_millicores: 1000,
            file_size_mb: 64,
            open_files: 256,
            stack_mb: 8,
            max_wall_time_ms: 30_000,
            max_memory_mb: 1024,
            max_max_processes: 256,
            max_output_bytes: 16 << 20,
            compile_wall_time_ms: 15_000,
            compile_memory_mb: 512,
            compile_max_processes: 256,
            compile_output_bytes: 64 << 20,
            max_code_bytes: 64 << 10,
            max_stdin_bytes: 1 << 20,
            max_files: 16,
            max_files_bytes: 1 << 20,
            max_args: 64,
            max_arg_bytes: 4096,
            concurrency: 0,
            queue: 64,
            self_check_interval_s: 60,
            compile_cache_dir: None,
            compile_cache_mb: 512,
            pool_min: 2,
            pool_max: 8,
            pool_idle_s: 60,
            pool_size: None,
            denylist: std::collections::BTreeMap::new(),
        }
    }
}

impl EngineConfig {
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency > 0 {
            self.concurrency
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// The pool bounds (min, max) in force, after the `pool_size` shorthand.
    pub fn pool_bounds(&self) -> (usize, usize) {
        match self.pool_size {
            Some(n) => (n, n),
            None => (self.pool_min.min(self.pool_max), self.pool_max),
        }
    }

    /// Checks that defaults fit under maxima and nothing is zero that must not be.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool_size.is_none() && self.pool_min > self.pool_max {
            return Err(format!(
                "pool_min = {} must be <= pool_max = {}",
                self.pool_min, self.pool_max
            ));
        }
        let checks = [
            ("wall_time_ms", self.wall_time_ms, self.max_wall_time_ms),
            ("memory_mb", self.memory_mb, self.max_memory_mb),
            ("max_processes", self.max_processes, self.max_max_processes),
            ("output_bytes", self.output_bytes, self.max_output_bytes),
        ];
        for (name, default, max) in checks {
            if default == 0 || default > max {
                return Err(format!(
                    "{name} = {default} must be > 0 and <= max_{name} = {max}"
                ));
            }
        }
        Ok(())
    }
}
