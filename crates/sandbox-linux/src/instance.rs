//! One server instance's footprint on the host, and the sweep of dead instances' footprints.
//!
//! ```text
//! /run/coderun/uids/<slot>                       flock-held uid slots (shared by all instances)
//! <state_root>/instances/<id>/lock               flock-held for the instance's whole life
//! <state_root>/instances/<id>/boxes/<box>/       one dir per live box: helper.pid, root/
//! <own cgroup>/coderun-<id>/<box>                one cgroup per live box, per controller
//! ```
//! An instance whose `lock` can be taken is dead. The start-up sweep kills its helpers, then
//! every process left in its cgroups (the boxes: a box's init outlives its helper), then
//! removes the cgroups and the state dir. A live instance's lock cannot be taken, so its boxes are never
//! touched.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::cgroup::Layout;

/// Prefix of an instance dir being built: `.new-<pid>-<random>`.
const BUILDING: &str = ".new-";

pub struct Instance {
    pub id: String,
    pub dir: PathBuf,
    _lock: File,
}

fn try_lock(path: &Path) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(Some(file))
    } else {
        Ok(None)
    }
}

impl Instance {
    pub fn create(state_root: &Path) -> io::Result<Instance> {
        let instances = state_root.join("instances");
        fs::create_dir_all(&instances)?;
        let id = format!("{}-{:08x}", std::process::id(), crate::random_u64() as u32);
        let dir = instances.join(&id);
        // Built under a name the sweep leaves alone, and shown under its own name only once
        // its lock is held: otherwise another server's start-up sweep could take the lock of
        // a dir just made and remove it as dead.
        let building = instances.join(format!("{BUILDING}{id}"));
        fs::create_dir(&building)?;
        fs::create_dir(building.join("boxes"))?;
        let lock = try_lock(&building.join("lock"))?
            .ok_or_else(|| io::Error::other("fresh instance lock is held by someone else"))?;
        fs::rename(&building, &dir)?;
        Ok(Instance {
            id,
            dir,
            _lock: lock,
        })
    }
}

/// What a sweep removed.
#[derive(Debug, Default)]
pub struct Swept {
    pub instances: usize,
    pub helpers_killed: usize,
    pub cgroups_removed: usize,
}

/// Removes every dead instance under `state_root` (never `own`, never a locked one).
pub fn sweep(state_root: &Path, own: &str, layout: Option<&Layout>) -> io::Result<Swept> {
    let mut swept = Swept::default();
    let instances = state_root.join("instances");
    let Ok(entries) = fs::read_dir(&instances) else {
        return Ok(swept);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == own || !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if let Some(rest) = name.strip_prefix(BUILDING) {
            // Left by a server that died while building it (it held nothing yet).
            let builder = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            if builder.is_some_and(|pid| !crate::sys::is_running(pid)) {
                fs::remove_dir_all(entry.path())?;
            }
            continue;
        }
        let dir = entry.path();
        let Some(_lock) = try_lock(&dir.join("lock"))? else {
            continue; // alive
        };
        for b in fs::read_dir(dir.join("boxes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(pid) = helper_pid(&b.path()) {
                if crate::sys::kill(pid, libc::SIGKILL).is_ok() {
                    swept.helpers_killed += 1;
                }
            }
        }
        if let Some(layout) = layout {
            let cg = layout.open_instance(&name);
            let boxes = cg.list_boxes().unwrap_or_default().len();
            if let Err(e) = cg.destroy() {
                tracing::warn!("sweep: cgroups of dead instance {name}: {e}");
            } else {
                swept.cgroups_removed += boxes;
            }
        }
        fs::remove_dir_all(&dir)?;
        swept.instances += 1;
    }
    Ok(swept)
}

/// The pid in `<box>/helper.pid`, if that process is still a coderun box helper.
fn helper_pid(box_dir: &Path) -> Option<libc::pid_t> {
    let pid: libc::pid_t = fs::read_to_string(box_dir.join("helper.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|&b| b == 0);
    args.next()?;
    (args.next()? == b"__box").then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_shown_only_once_locked_and_a_dead_builders_dir_is_swept() {
        let root = tempfile::tempdir().unwrap();
        let a = Instance::create(root.path()).unwrap();
        assert!(a.dir.join("lock").is_file() && a.dir.join("boxes").is_dir());
        let instances = root.path().join("instances");
        // A dir being built by a live process (this one) is left alone; one whose builder is
        // gone is removed; the live instance is never touched.
        let live = instances.join(format!("{BUILDING}{}-1", std::process::id()));
        let dead = instances.join(format!("{BUILDING}2147483000-1"));
        fs::create_dir(&live).unwrap();
        fs::create_dir(&dead).unwrap();
        let swept = sweep(root.path(), "someone-else", None).unwrap();
        assert_eq!(swept.instances, 0);
        assert!(live.exists() && !dead.exists() && a.dir.exists());
        // Once dropped, the instance is dead and swept.
        let dir = a.dir.clone();
        let id = a.id.clone();
        drop(a);
        let swept = sweep(root.path(), "someone-else", None).unwrap();
        assert_eq!(swept.instances, 1);
        assert!(!dir.exists(), "{id}");
    }
}
