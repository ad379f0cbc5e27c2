//! Per-process resource limits, set in the program's process just before exec. Totals over
//! the whole box (memory, processes, CPU time) are the cgroup's job; rlimits add what cgroups
//! do not: no core dumps, a cap on file size and open files, a fixed stack, and RLIMIT_CPU as a
//! per-process backstop behind the cgroup CPU-time check.

use std::io;

use coderun_sandbox::Limits;

use crate::sys::cvt;

/// The limits to set, computed before fork.
#[derive(Debug, Clone, Copy)]
pub struct Rlimits(pub [(libc::__rlimit_resource_t, u64); 6]);

impl Rlimits {
    pub fn from_limits(limits: &Limits) -> Rlimits {
        let cpu_secs = limits.cpu_time_ms.div_ceil(1000) + 1;
        Rlimits([
            (libc::RLIMIT_CORE, 0),
            (libc::RLIMIT_FSIZE, limits.file_size_mb << 20),
            (libc::RLIMIT_NOFILE, limits.open_files),
            (libc::RLIMIT_STACK, limits.stack_mb << 20),
            (libc::RLIMIT_CPU, cpu_secs),
            // Pending signals and message queues are per real uid; keep them small.
            (libc::RLIMIT_MSGQUEUE, 0),
        ])
    }

    /// Applies every limit (soft = hard). Async-signal-safe.
    pub fn apply(&self) -> io::Result<()> {
        for &(resource, value) in &self.0 {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: lim is a valid rlimit value.
            cvt(unsafe { libc::setrlimit(resource, &lim) })?;
        }
        Ok(())
    }
}
