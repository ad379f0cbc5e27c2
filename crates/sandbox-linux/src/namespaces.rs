//! User, pid, mount, network, ipc, uts and cgroup namespaces.
//!
//! The helper clones the box's init straight into new user/pid/mount/net/ipc/uts namespaces.
//! From the host the new user namespace maps two unprivileged host ids per box:
//! inside 0 → `host_id` (init, which sets the box up) and inside 1000 → `host_id + 1` (the
//! program). Host root is never mapped. The cgroup namespace is entered later, by init itself,
//! once the helper has moved it into the box's cgroup, so that the box's cgroup is its root.

use std::fs;
use std::io;

use crate::sys::cvt;

/// Uid and gid of the program inside the box.
pub const BOX_ID: u32 = 1000;

const CLONE_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

/// Forks into new namespaces. Returns 0 in the child (which is pid 1 of the new pid
/// namespace) and the child's host pid in the parent.
///
/// Must be called from a single-threaded process (the helper is one).
pub fn clone_into_new_namespaces() -> io::Result<libc::pid_t> {
    // SAFETY: raw clone with a null stack behaves like fork(): the child continues on a copy of
    // the parent's stack. The helper is single-threaded, so no lock can be held by a thread
    // that does not exist in the child.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (CLONE_FLAGS | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    Ok(cvt(pid)? as libc::pid_t)
}

/// Writes the child's uid and gid maps from the (privileged) parent.
pub fn write_id_maps(child: libc::pid_t, host_id: u32) -> io::Result<()> {
    let map = format!("0 {host_id} 1\n{BOX_ID} {} 1\n", host_id + 1);
    fs::write(format!("/proc/{child}/uid_map"), &map)?;
    fs::write(format!("/proc/{child}/gid_map"), &map)?;
    Ok(())
}

/// In init: become the namespace's root (host `host_id`), keeping the full capability set
/// the namespace's creator has, so files init creates have a mapped owner.
pub fn become_namespace_root() -> io::Result<()> {
    // SAFETY: plain integer syscalls.
    cvt(unsafe { libc::setresgid(0, 0, 0) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresuid(0, 0, 0) })?;
    Ok(())
}

/// In init, after the helper put it in the box's cgroup: make that cgroup the root of a new
/// cgroup namespace so `/proc/self/cgroup` shows nothing of the host's hierarchy.
pub fn enter_cgroup_namespace() -> io::Result<()> {
    // SAFETY: unshare takes a flag word.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) })?;
    Ok(())
}

pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe a valid byte slice.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}
