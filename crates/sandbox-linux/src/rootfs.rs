//! The box's root filesystem, built by init inside its own mount namespace.
//!
//! Layout seen by the program:
//! ```text
//! /                  tmpfs, read-only after set-up (holds only the skeleton below)
//! /usr               host /usr, read-only bind, nosuid,nodev
//! /bin /lib /lib64 /sbin   symlinks into /usr (or read-only binds where the host has dirs)
//! /opt/coderun/...   runtimes from the runtime store, read-only binds, nosuid,nodev
//! /etc               files we write: passwd, group, hosts, hostname, ld.so.cache (copy)
//! /dev               tmpfs: null zero full random urandom (binds of the host's nodes),
//!                    fd/stdin/stdout/stderr links, /dev/shm (small tmpfs)
//! /proc              fresh procfs of the box's pid namespace
//! /work, /tmp        one size- and inode-limited tmpfs (nosuid,nodev), owned by the program
//! ```
//! The mountpoint of the new root is a directory in the box's state dir on the host; after
//! `pivot_root` the old root is detached, so nothing of the host is reachable except the binds.
//! Runtimes are bound from the runtime store (hard-link copies under the service's data dir),
//! never from their install paths, so home directories never show in `/proc/self/mountinfo`.

use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::namespaces::BOX_ID;
use crate::sys::mount;

/// Host directories that are symlinks on merged-/usr systems and binds elsewhere.
const TOP_LEVEL_DIRS: [&str; 4] = ["bin", "lib", "lib64", "sbin"];
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// What init needs to build the root; prepared by the helper before the clone.
#[derive(Debug, Clone)]
pub struct RootPlan {
    /// Empty directory on the host that becomes `/`.
    pub root: PathBuf,
    /// (host dir, absolute path in the box), read-only.
    pub binds: Vec<(PathBuf, PathBuf)>,
    pub workdir_bytes: u64,
    pub workdir_inodes: u64,
    /// Content of the host's /etc/ld.so.cache, if any.
    pub ld_so_cache: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct RootfsError {
    pub what: &'static str,
    pub path: String,
    #[source]
    pub source: io::Error,
}

fn err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RootfsError + 'a {
    move |source| RootfsError {
        what,
        path: path.display().to_string(),
        source,
    }
}

fn cpath(path: &Path) -> CString {
    // Paths here are built by us from config and spec data validated to contain no NUL.
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default()
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Builds the whole root and pivots into it. Runs in init, inside the new mount namespace,
/// holding the namespace's capabilities.
pub fn build_and_enter(plan: &RootPlan) -> Result<(), RootfsError> {
    let root = &plan.root;
    // Nothing we mount may propagate back to the host.
    mount(None, &c("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(err("failed to make / private", Path::new("/")))?;
    mount(
        Some(&c("tmpfs")),
        &cpath(root),
        Some(&c("tmpfs")),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&c("size=4m,nr_inodes=1024,mode=0755")),
    )
    .map_err(err("failed to mount root tmpfs on", root))?;

    bind_ro(Path::new("/usr"), &root.join("usr"))?;
    for dir in TOP_LEVEL_DIRS {
        let host = Path::new("/").join(dir);
        match fs::read_link(&host) {
            Ok(target) => symlink(&target, root.join(dir)).map_err(err("failed to link", &host))?,
            Err(_) if host.is_dir() => bind_ro(&host, &root.join(dir))?,
            Err(_) => {}
        }
    }
    for (source, target) in &plan.binds {
        let inside = root.join(target.strip_prefix("/").unwrap_or(target));
        bind_ro(source, &inside)?;
    }
    write_etc(root, plan.ld_so_cache.as_deref())?;
    // Debian reaches `cc`, `ld` and friends through /etc/alternatives symlinks.
    let alternatives = Path::new("/etc/alternatives");
    if alternatives.is_dir() {
        bind_ro(alternatives, &root.join("etc/alternatives"))?;
    }
    build_dev(root)?;
    let proc_dir = root.join("proc");
    mkdir(&proc_dir)?;
    mount(
        Some(&c("proc")),
        &cpath(&proc_dir),
        Some(&c("proc")),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .map_err(err("failed to mount proc on", &proc_dir))?;
    build_workdir(plan)?;
    pivot(root)?;
    // The skeleton itself becomes read-only.
    mount(
        None,
        &c("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
    .map_err(err("failed to remount read-only", Path::new("/")))?;
    Ok(())
}

fn mkdir(path: &Path) -> Result<(), RootfsError> {
    fs::create_dir_all(path).map_err(err("failed to create", path))
}

/// Read-only, nosuid, nodev bind of a host directory (or file).
fn bind_ro(source: &Path, target: &Path) -> Result<(), RootfsError> {
    if source.is_dir() {
        mkdir(target)?;
    } else {
        if let Some(parent) = target.parent() {
            mkdir(parent)?;
        }
        fs::write(target, b"").map_err(err("failed to create", target))?;
    }
    let t = cpath(target);
    mount(
        Some(&cpath(source)),
        &t,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(err("failed to bind", source))?;
    // A bind remount must repeat the flags the kernel locked on the source mount (atime
    // flags, noexec, …) or it fails with EPERM inside a user namespace.
    let locked = locked_flags(&t);
    mount(
        None,
        &t,
        None,
        libc::MS_REMOUNT
            | libc::MS_BIND
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | locked,
        None,
    )
    .map_err(err("failed to remount read-only", target))
}

fn locked_flags(path: &CStr) -> libc::c_ulong {
    // SAFETY: statvfs is plain old data; all-zero is valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    flags
}

fn write_etc(root: &Path, ld_so_cache: Option<&[u8]>) -> Result<(), RootfsError> {
    let etc = root.join("etc");
    mkdir(&etc)?;
    let files: [(&str, &[u8]); 6] = [
        (
            "passwd",
            b"root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:1000:1000:sandbox:/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        ("group", b"root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"),
        ("hosts", b"127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
        ("hostname", b"coderun\n"),
        ("nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files\n"),
        ("ld.so.cache", ld_so_cache.unwrap_or_default()),
    ];
    for (name, content) in files {
        let path = etc.join(name);
        fs::write(&path, content).map_err(err("failed to write", &path))?;
    }
    Ok(())
}

fn build_dev(root: &Path) -> Result<(), RootfsError> {
    let dev = root.join("dev");
    mkdir(&dev)?;
    mount(
        Some(&c("tmpfs")),
        &cpath(&dev),
        Some(&c("tmpfs")),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&c("size=64k,nr_inodes=64,mode=0755")),
    )
    .map_err(err("failed to mount tmpfs on", &dev))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        let inside = dev.join(name);
        fs::write(&inside, b"").map_err(err("failed to create", &inside))?;
        mount(
            Some(&cpath(&host)),
            &cpath(&inside),
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(err("failed to bind", &host))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = dev.join(name);
        symlink(target, &link).map_err(err("failed to link", &link))?;
    }
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount(
        Some(&c("tmpfs")),
        &cpath(&shm),
        Some(&c("tmpfs")),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(&c("size=16m,nr_inodes=256,mode=1777")),
    )
    .map_err(err("failed to mount tmpfs on", &shm))?;
    Ok(())
}

/// One tmpfs for everything the program may write: `/work` (its cwd) and `/tmp` are binds of
/// two directories of it, so one size and one inode limit bound both.
fn build_workdir(plan: &RootPlan) -> Result<(), RootfsError> {
    let scratch = plan.root.join("box");
    mkdir(&scratch)?;
    let opts = format!(
        "size={},nr_inodes={},mode=0755,uid={BOX_ID},gid={BOX_ID}",
        plan.workdir_bytes.max(4096),
        plan.workdir_inodes.max(16)
    );
    mount(
        Some(&c("tmpfs")),
        &cpath(&scratch),
        Some(&c("tmpfs")),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&c(&opts)),
    )
    .map_err(err("failed to mount work tmpfs on", &scratch))?;
    for (dir, mode) in [("work", 0o755), ("tmp", 0o1777)] {
        let inner = scratch.join(dir);
        mkdir(&inner)?;
        fs::set_permissions(&inner, fs::Permissions::from_mode(mode))
            .map_err(err("failed to chmod", &inner))?;
        std::os::unix::fs::chown(&inner, Some(BOX_ID), Some(BOX_ID))
            .map_err(err("failed to chown", &inner))?;
        let target = plan.root.join(dir);
        mkdir(&target)?;
        mount(
            Some(&cpath(&inner)),
            &cpath(&target),
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(err("failed to bind", &inner))?;
    }
    // The scratch mount itself is not needed any more: /work and /tmp keep the tmpfs alive.
    crate::sys::cvt(
        // SAFETY: NUL-terminated path, integer flags.
        unsafe { libc::umount2(cpath(&scratch).as_ptr(), libc::MNT_DETACH) },
    )
    .map_err(err("failed to detach", &scratch))?;
    Ok(())
}

/// `pivot_root(".", ".")` as runc does it: the old root ends up stacked under the new one and
/// is detached at once, so no path leads back to the host.
fn pivot(root: &Path) -> Result<(), RootfsError> {
    std::env::set_current_dir(root).map_err(err("failed to chdir to", root))?;
    let dot = c(".");
    // SAFETY: both arguments are NUL-terminated paths.
    crate::sys::cvt(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })
        .map_err(err("failed to pivot_root into", root))?;
    // SAFETY: NUL-terminated path, integer flags.
    crate::sys::cvt(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })
        .map_err(err("failed to detach the old root", root))?;
    std::env::set_current_dir("/").map_err(err("failed to chdir to", Path::new("/")))?;
    Ok(())
}
