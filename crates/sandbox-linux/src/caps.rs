//! Capabilities: the program keeps none.
//!
//! Init holds every capability of the box's user namespace (it has to mount). Before the
//! program's exec we empty the bounding and ambient sets, lock the securebits so no uid change
//! can bring capabilities back, then switch to the unprivileged uid — which clears the
//! permitted and effective sets — and finally set `no_new_privs` so exec cannot gain any.

use std::io;

use crate::sys::cvt;

/// Highest capability number the kernel may know; dropping unknown ones fails with EINVAL,
/// which we ignore.
const CAP_LAST: libc::c_ulong = 63;

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// Empties the bounding and ambient sets and locks the securebits. Needs CAP_SETPCAP (init's
/// namespace has it), so it runs before the uid switch.
pub fn drop_bounding_and_lock() -> io::Result<()> {
    for cap in 0..=CAP_LAST {
        // SAFETY: prctl with integer arguments.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if ret == -1 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    // SAFETY: prctl with integer arguments.
    cvt(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // NO_SETUID_FIXUP stays *off* (but locked): the uid switch must clear the capability sets.
    let _ = SECBIT_NO_SETUID_FIXUP;
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) })?;
    Ok(())
}

/// Switches to the box's unprivileged uid/gid with no supplementary groups. The uid change
/// clears the permitted and effective capability sets.
pub fn become_unprivileged(id: u32) -> io::Result<()> {
    // SAFETY: an empty group list.
    cvt(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: plain integer syscalls.
    cvt(unsafe { libc::setresgid(id, id, id) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresuid(id, id, id) })?;
    Ok(())
}

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    Ok(())
}

/// Whether the effective capability set is empty (checked after the switch, before exec).
pub fn effective_is_empty() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data have the kernel's capget layout for version 3 (two Data words).
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    ret == 0 && data.iter().all(|d| d.effective == 0 && d.permitted == 0)
}
