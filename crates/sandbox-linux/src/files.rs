//! Files going into and out of the work directory.
//!
//! Host-side code never opens a path inside a box: init writes the input files and reads the
//! collected output file from inside the box's own mount namespace, relative to a directory fd
//! of `/work`, with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`.
//! A symlink the program planted (the Judge0 CVE-2024-28185 class) cannot redirect either
//! direction: the open fails instead.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;

use crate::namespaces::BOX_ID;
use crate::sys::cvt;

pub use coderun_sandbox::validate_relative_path as validate_relative;

const RESOLVE_FLAGS: u64 = 0x08 /* RESOLVE_BENEATH */
    | 0x04 /* RESOLVE_NO_SYMLINKS */
    | 0x02 /* RESOLVE_NO_MAGICLINKS */
    | 0x01 /* RESOLVE_NO_XDEV */;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2` beneath `dir`, never following a symlink.
fn open_beneath(dir: RawFd, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let cpath = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64,
        mode: mode as u64,
        resolve: RESOLVE_FLAGS,
    };
    // SAFETY: cpath is NUL-terminated, how is a valid open_how of the size we pass.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            cpath.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = cvt(fd)? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mkdir_beneath(dir: RawFd, path: &str) -> io::Result<()> {
    let cpath = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: NUL-terminated path relative to a directory fd we own.
    match cvt(unsafe { libc::mkdirat(dir, cpath.as_ptr(), 0o755) }) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(()),
        Err(e) => return Err(e),
    }
    // Verify what we made is a plain directory beneath `dir` and hand it to the program.
    let fd = open_beneath(dir, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // SAFETY: fchown on an fd we own.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), BOX_ID, BOX_ID) })?;
    Ok(())
}

/// Where an input file's bytes come from, inside init.
pub enum Content<'a> {
    Bytes(&'a [u8]),
    /// An fd the helper opened on the host before the clone (e.g. a cached binary).
    Fd(RawFd),
}

/// Writes one input file under the work dir fd, creating parent directories.
pub fn write_input(
    work: RawFd,
    path: &str,
    content: Content<'_>,
    executable: bool,
) -> io::Result<()> {
    validate_relative(path).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        mkdir_beneath(work, &prefix)?;
    }
    let mode = if executable { 0o755 } else { 0o644 };
    let fd = open_beneath(
        work,
        path,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode,
    )?;
    let mut file = File::from(fd);
    match content {
        Content::Bytes(bytes) => file.write_all(bytes)?,
        Content::Fd(src) => {
            // SAFETY: the helper owns src and keeps it open; ManuallyDrop stops us closing it.
            let mut src = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(src) });
            io::copy(&mut *src, &mut file)?;
        }
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    // SAFETY: fchown on an fd we own.
    cvt(unsafe { libc::fchown(file.as_raw_fd(), BOX_ID, BOX_ID) })?;
    Ok(())
}

/// Copies `path` from the work dir into `dest` (a host file the helper created), if it is a
/// regular file of at most `max_bytes`. Runs after every process of the program is dead.
pub fn collect_output(work: RawFd, path: &str, dest: RawFd, max_bytes: u64) -> io::Result<bool> {
    let fd = match open_beneath(work, path, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    };
    let file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.file_type().is_file() || meta.len() > max_bytes {
        return Ok(false);
    }
    // SAFETY: the helper owns dest; ManuallyDrop stops us closing it.
    let mut out = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(dest) });
    let copied = io::copy(&mut file.take(max_bytes), &mut *out)?;
    Ok(copied == meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_beneath_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dfd = File::open(dir.path()).unwrap();
        write_input(
            dfd.as_raw_fd(),
            "pkg/mod.py",
            Content::Bytes(b"x = 1\n"),
            false,
        )
        .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("pkg/mod.py")).unwrap(),
            b"x = 1\n"
        );
        std::os::unix::fs::symlink(outside.path(), dir.path().join("evil")).unwrap();
        assert!(write_input(dfd.as_raw_fd(), "evil/x", Content::Bytes(b"no"), false).is_err());
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        let target = outside.path().join("victim");
        std::fs::write(&target, b"host").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("main")).unwrap();
        let dest = tempfile::tempfile().unwrap();
        assert!(collect_output(dfd.as_raw_fd(), "main", dest.as_raw_fd(), 1 << 20).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"host");
    }
}
