//! cgroup v1: one hierarchy per controller; the box exists once per hierarchy.
//!
//! Files used: `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` (only with swap
//! accounting), `memory.max_usage_in_bytes`, `memory.usage_in_bytes`, `memory.oom_control`,
//! `pids.max`, `cpu.cfs_period_us`, `cpu.cfs_quota_us`, `cpuacct.usage`.

use super::{flat_keyed, Cg, CgroupLimits, Driver, Result};

pub(super) struct V1;

impl Driver for V1 {
    fn prepare_instance(&self, _own: &Cg, _instance: &Cg) -> Result<()> {
        // v1 has no subtree_control; every controller is usable in every directory.
        Ok(())
    }

    fn apply_limits(&self, cg: &Cg, limits: &CgroupLimits) -> Result<()> {
        let mem = &cg.dirs.memory;
        if limits.memory_bytes > 0 {
            let v = limits.memory_bytes.to_string();
            // memsw must stay >= limit_in_bytes, so the RAM limit goes first.
            cg.write(&mem.join("memory.limit_in_bytes"), &v)?;
            cg.write_optional(&mem.join("memory.memsw.limit_in_bytes"), &v)?;
        }
        let pids = if limits.pids_max > 0 {
            limits.pids_max.to_string()
        } else {
            "max".to_string()
        };
        cg.write(&cg.dirs.pids.join("pids.max"), &pids)?;

        let cpu = &cg.dirs.cpu;
        cg.write(
            &cpu.join("cpu.cfs_period_us"),
            &limits.period_us().to_string(),
        )?;
        let quota = if limits.cpu_quota_us > 0 {
            limits.cpu_quota_us.to_string()
        } else {
            "-1".to_string()
        };
        cg.write(&cpu.join("cpu.cfs_quota_us"), &quota)
    }

    fn set_background(&self, cg: &Cg, background: bool) -> Result<()> {
        let shares = if background { "2" } else { "1024" };
        cg.write(&cg.dirs.cpu.join("cpu.shares"), shares)
    }

    fn cpu_usage_ns(&self, cg: &Cg) -> Result<u64> {
        cg.read_u64(&cg.dirs.cpuacct.join("cpuacct.usage"))
    }

    fn memory_peak_bytes(&self, cg: &Cg) -> Result<u64> {
        cg.read_u64(&cg.dirs.memory.join("memory.max_usage_in_bytes"))
    }

    fn memory_current_bytes(&self, cg: &Cg) -> Result<u64> {
        cg.read_u64(&cg.dirs.memory.join("memory.usage_in_bytes"))
    }

    fn oom_killed(&self, cg: &Cg) -> Result<bool> {
        let path = cg.dirs.memory.join("memory.oom_control");
        let text = cg.read(&path)?;
        // `oom_kill` exists since Linux 4.13; older kernels only have `under_oom`.
        match flat_keyed(&path, &text, "oom_kill")? {
            Some(n) => Ok(n > 0),
            None => Ok(flat_keyed(&path, &text, "under_oom")?.unwrap_or(0) > 0),
        }
    }

    fn kill_fast(&self, _cg: &Cg) -> Result<bool> {
        Ok(false) // no cgroup.kill in v1
    }
}
