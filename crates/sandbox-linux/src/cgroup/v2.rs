//! cgroup v2: one unified hierarchy; controllers are enabled top-down via
//! `cgroup.subtree_control`.
//!
//! Files used: `cgroup.subtree_control`, `memory.max`, `memory.swap.max`,
//! `memory.oom.group`, `memory.peak`, `memory.current`, `memory.events`, `pids.max`,
//! `cpu.max`, `cpu.stat`, `cgroup.kill`.

use std::fs;
use std::path::Path;

use super::{flat_keyed, Cg, CgroupError, CgroupLimits, Driver, Result, V2_CONTROLLERS};

pub(super) struct V2;

/// What we write into `cgroup.subtree_control`.
const ENABLE: &str = "+memory +pids +cpu";

/// Enable our controllers for the children of `dir`, unless they already are.
fn enable_controllers(cg: &Cg, dir: &Path) -> Result<()> {
    let path = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&path).unwrap_or_default();
    let enabled: Vec<&str> = current.split_whitespace().collect();
    if V2_CONTROLLERS.iter().all(|c| enabled.contains(c)) {
        return Ok(());
    }
    match cg.write(&path, ENABLE) {
        Err(CgroupError::Write {
            path,
            value,
            source,
        }) if source.raw_os_error() == Some(libc::EBUSY) => Err(CgroupError::NoInternalProcesses {
            path,
            value,
            source,
        }),
        other => other,
    }
}

impl Driver for V2 {
    fn prepare_instance(&self, own: &Cg, instance: &Cg) -> Result<()> {
        enable_controllers(own, &own.dirs.memory)?;
        enable_controllers(instance, &instance.dirs.memory)
    }

    fn apply_limits(&self, cg: &Cg, limits: &CgroupLimits) -> Result<()> {
        let dir = &cg.dirs.memory;
        let mem = if limits.memory_bytes > 0 {
            limits.memory_bytes.to_string()
        } else {
            "max".to_string()
        };
        cg.write(&dir.join("memory.max"), &mem)?;
        cg.write_optional(&dir.join("memory.swap.max"), "0")?;
        cg.write_optional(&dir.join("memory.oom.group"), "1")?;

        let pids = if limits.pids_max > 0 {
            limits.pids_max.to_string()
        } else {
            "max".to_string()
        };
        cg.write(&cg.dirs.pids.join("pids.max"), &pids)?;

        let quota = if limits.cpu_quota_us > 0 {
            limits.cpu_quota_us.to_string()
        } else {
            "max".to_string()
        };
        cg.write(
            &cg.dirs.cpu.join("cpu.max"),
            &format!("{quota} {}", limits.period_us()),
        )
    }

    fn set_background(&self, cg: &Cg, background: bool) -> Result<()> {
        let weight = if background { "1" } else { "100" };
        cg.write(&cg.dirs.cpu.join("cpu.weight"), weight)
    }

    fn cpu_usage_ns(&self, cg: &Cg) -> Result<u64> {
        let path = cg.dirs.cpu.join("cpu.stat");
        let text = cg.read(&path)?;
        match flat_keyed(&path, &text, "usage_usec")? {
            Some(us) => Ok(us.saturating_mul(1000)),
            None => Err(CgroupError::Parse {
                path,
                content: text,
                reason: "no usage_usec line".into(),
            }),
        }
    }

    fn memory_peak_bytes(&self, cg: &Cg) -> Result<u64> {
        let path = cg.dirs.memory.join("memory.peak");
        if !path.exists() {
            return Ok(0); // memory.peak appeared in Linux 5.19
        }
        cg.read_u64(&path)
    }

    fn memory_current_bytes(&self, cg: &Cg) -> Result<u64> {
        cg.read_u64(&cg.dirs.memory.join("memory.current"))
    }

    fn oom_killed(&self, cg: &Cg) -> Result<bool> {
        let path = cg.dirs.memory.join("memory.events");
        let text = cg.read(&path)?;
        Ok(flat_keyed(&path, &text, "oom_kill")?.unwrap_or(0) > 0)
    }

    fn kill_fast(&self, cg: &Cg) -> Result<bool> {
        let path = cg.dirs.memory.join("cgroup.kill");
        if !path.exists() {
            return Ok(false); // cgroup.kill appeared in Linux 5.14
        }
        cg.write(&path, "1")?;
        Ok(true)
    }
}
