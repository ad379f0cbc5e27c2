//! The network namespace: empty, with only loopback, brought up so programs that talk to
//! themselves over 127.0.0.1 work. There is no other interface and no route out.

use std::io;

use crate::sys::{close, cvt};

/// Sets `lo` up inside the box's (new, empty) network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket takes integers; the fd is closed below.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads into the ifreq we own.
    let res = cvt(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) }).and_then(|_| {
        // SAFETY: the union member ifru_flags is the one SIOCGIFFLAGS filled.
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
        cvt(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })
    });
    close(fd);
    res.map(|_| ())
}
