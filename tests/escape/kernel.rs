//! 4. Kernel attack surface: the system calls behind most container escapes of the last
//!    decade fail (seccomp, `policies/seccomp.toml`), the program holds no capability, has
//!    `no_new_privs` and runs under a seccomp filter. Called raw (ctypes / `extern "C"
//!    syscall`), so no library wrapper can hide or emulate the answer.

use crate::common::*;
use crate::*;

/// (name, expected errno) of every probe; getpid is the positive control that raw syscalls
/// work at all.
const EXPECTED: [(&str, &str); 13] = [
    ("unshare_newuser", "EPERM"),
    ("clone_newuser", "EPERM"),
    ("mount", "EPERM"),
    ("pivot_root", "EPERM"),
    ("setns", "EPERM"),
    ("ptrace_attach_1", "EPERM"),
    ("bpf", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("keyctl", "EPERM"),
    ("io_uring_setup", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("init_module", "EPERM"),
    ("clone3", "ENOSYS"),
];

const PY_SYSCALLS: &str = r#"
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *args)
    e = ctypes.get_errno()
    return errno.errorcode.get(e, str(e)) if r == -1 else "returned %d" % r
res = {}
res["getpid"] = sc(39)
res["getpid_value"] = os.getpid()
res["unshare_newuser"] = sc(272, 0x10000000)
r = libc.syscall(ctypes.c_long(56), ctypes.c_long(0x10000000 | 17), ctypes.c_long(0),
                 ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
if r == 0:
    os._exit(0)  # a child in a new user namespace: the rule failed; the parent reports it
if r > 0:
    os.waitpid(r, 0)
res["clone_newuser"] = errno.errorcode.get(ctypes.get_errno(), "?") if r == -1 else "returned %d" % r
res["mount"] = sc(165, b"none", b"/tmp", b"tmpfs", 0, None)
res["pivot_root"] = sc(155, b"/tmp", b"/tmp")
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
res["setns"] = sc(308, fd, 0)
res["ptrace_attach_1"] = sc(101, 16, 1, 0, 0)
attr = ctypes.create_string_buffer(128)
res["bpf"] = sc(321, 0, attr, 128)
res["perf_event_open"] = sc(298, attr, 0, -1, -1, 0)
res["keyctl"] = sc(250, 0, -3, 0, 0, 0)
params = ctypes.create_string_buffer(120)
res["io_uring_setup"] = sc(425, 8, params)
res["userfaultfd"] = sc(323, 0)
res["init_module"] = sc(175, attr, 128, b"")
clone_args = ctypes.create_string_buffer(88)
res["clone3"] = sc(435, clone_args, 88)
# Argument-filtered rules and a few more of the policy's denials (Python-only extras).
res["ioctl_tiocsti"] = sc(16, 0, 0x5412, attr)
res["ioctl_tiocsti_high_bits"] = sc(16, 0, 0x1_0000_5412, attr)
res["ioctl_tioclinux"] = sc(16, 0, 0x541C, attr)
res["ioctl_fionread"] = sc(16, 0, 0x541B, attr)  # positive control: allowed, works on a pipe
res["personality_no_aslr"] = sc(135, 0x0040000)
res["personality_query"] = sc(135, 0xFFFFFFFF)  # positive control
res["chroot"] = sc(161, b"/tmp")
res["open_by_handle_at"] = sc(304, -100, attr, 0)
res["process_vm_readv"] = sc(310, 1, attr, 1, attr, 1, 0)
res["socket_vsock_high_bits"] = sc(41, 0x1_0000_0028, 1, 0)
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
res["status"] = {k: status[k].strip() for k in
                 ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}
print(json.dumps(res))
"#;

/// The same probes from a compiled Rust program, through libc's `syscall` declared by hand.
const RS_SYSCALLS: &str = r#"
use std::ffi::c_long;
extern "C" {
    fn syscall(num: c_long, ...) -> c_long;
    fn _exit(code: i32) -> !;
}
fn errno_name(e: i32) -> String {
    match e {
        1 => "EPERM".into(),
        38 => "ENOSYS".into(),
        14 => "EFAULT".into(),
        22 => "EINVAL".into(),
        e => format!("errno {e}"),
    }
}
fn outcome(r: c_long) -> String {
    if r == -1 {
        errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        format!("returned {r}")
    }
}
fn main() {
    let mut buf = [0u8; 128];
    let p = buf.as_mut_ptr() as c_long;
    let none = b"none\0".as_ptr() as c_long;
    let tmp = b"/tmp\0".as_ptr() as c_long;
    let tmpfs = b"tmpfs\0".as_ptr() as c_long;
    let ns = std::fs::File::open("/proc/self/ns/net").unwrap();
    let nsfd = std::os::fd::AsRawFd::as_raw_fd(&ns) as c_long;
    let mut res: Vec<(&str, String)> = Vec::new();
    // SAFETY (all calls below): raw system calls with scalar or valid-buffer arguments.
    unsafe {
        let pid = syscall(39);
        res.push(("getpid", outcome(pid)));
        res.push(("getpid_matches", (pid as u32 == std::process::id()).to_string()));
        res.push(("unshare_newuser", outcome(syscall(272, 0x1000_0000 as c_long))));
        let r = syscall(56, (0x1000_0000 | 17) as c_long, 0 as c_long, 0 as c_long, 0 as c_long, 0 as c_long);
        if r == 0 {
            _exit(0);
        }
        res.push(("clone_newuser", outcome(r)));
        res.push(("mount", outcome(syscall(165, none, tmp, tmpfs, 0 as c_long, 0 as c_long))));
        res.push(("pivot_root", outcome(syscall(155, tmp, tmp))));
        res.push(("setns", outcome(syscall(308, nsfd, 0 as c_long))));
        res.push(("ptrace_attach_1", outcome(syscall(101, 16 as c_long, 1 as c_long, 0 as c_long, 0 as c_long))));
        res.push(("bpf", outcome(syscall(321, 0 as c_long, p, 128 as c_long))));
        res.push(("perf_event_open", outcome(syscall(298, p, 0 as c_long, -1 as c_long, -1 as c_long, 0 as c_long))));
        res.push(("keyctl", outcome(syscall(250, 0 as c_long, -3 as c_long, 0 as c_long, 0 as c_long, 0 as c_long))));
        res.push(("io_uring_setup", outcome(syscall(425, 8 as c_long, p))));
        res.push(("userfaultfd", outcome(syscall(323, 0 as c_long))));
        res.push(("init_module", outcome(syscall(175, p, 128 as c_long, none))));
        res.push(("clone3", outcome(syscall(435, p, 88 as c_long))));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"] {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        res.push((key, v));
    }
    let body: Vec<String> = res.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
    println!("{{{}}}", body.join(","));
}
"#;

fn assert_status_fields(status: &Value) {
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status[key], "0000000000000000", "{key}: {status}");
    }
    assert_eq!(status["NoNewPrivs"], "1", "{status}");
    assert_eq!(status["Seccomp"], "2", "{status}");
}

/// Kernel escape entry points, from Python: new user namespaces (unshare, clone: the door to
/// nf_tables/mount CVEs such as CVE-2022-0185 and CVE-2024-1086), mount and pivot_root,
/// setns, ptrace of init, bpf, perf_event_open (CVE-2013-2094), keyctl (CVE-2016-0728),
/// io_uring (CVE-2022-29582), userfaultfd, module loading: all EPERM; clone3 ENOSYS (so
/// libcs fall back to the checked clone). Positive control: getpid works through the same
/// raw-syscall path. No capability in any set, no_new_privs, seccomp mode 2 (filter).
#[test]
fn python_raw_syscalls_into_escape_surface_fail() {
    let s = shared();
    assert_confined(s);
    let r = s.run(py(PY_SYSCALLS));
    let res = probe(&r);
    assert_eq!(
        res["getpid"],
        format!("returned {}", res["getpid_value"]),
        "{res}"
    );
    for (name, errno) in EXPECTED {
        assert_eq!(res[name], errno, "{name}: {res}");
    }
    assert_status_fields(&res["status"]);
    for (name, errno) in [
        ("ioctl_tiocsti", "EPERM"),
        ("ioctl_tiocsti_high_bits", "EPERM"),
        ("ioctl_tioclinux", "EPERM"),
        ("personality_no_aslr", "EPERM"),
        ("chroot", "EPERM"),
        ("open_by_handle_at", "EPERM"),
        ("process_vm_readv", "EPERM"),
        ("socket_vsock_high_bits", "EAFNOSUPPORT"),
    ] {
        assert_eq!(res[name], errno, "{name}: {res}");
    }
    assert_eq!(res["ioctl_fionread"], "returned 0", "{res}");
    assert!(
        res["personality_query"]
            .as_str()
            .unwrap_or("")
            .starts_with("returned "),
        "{res}"
    );
}

/// The same escape entry points from a compiled Rust program calling libc's `syscall`
/// directly (no Python runtime in between).
#[test]
fn rust_raw_syscalls_into_escape_surface_fail() {
    let s = shared();
    assert_confined(s);
    let r = s.run(rs(RS_SYSCALLS));
    let res = probe(&r);
    assert!(
        res["getpid"]
            .as_str()
            .unwrap_or("")
            .starts_with("returned "),
        "{res}"
    );
    assert_eq!(res["getpid_matches"], "true", "{res}");
    for (name, errno) in EXPECTED {
        assert_eq!(res[name], errno, "{name}: {res}");
    }
    assert_status_fields(&res);
}

/// Enters the kernel through a foreign ABI after a normal x86_64 getpid (the positive
/// control, printed first): argv[1] "i386" uses `int 0x80` (i386 syscall numbers, which
/// would walk around every x86_64 rule), "x32" sets __X32_SYSCALL_BIT.
const RS_FOREIGN_ABI: &str = r#"
use std::arch::asm;
use std::io::Write;
fn main() {
    let which = std::env::args().nth(1).unwrap();
    let pid: i64;
    // SAFETY: getpid through the native syscall instruction.
    unsafe { asm!("syscall", inlateout("rax") 39i64 => pid, lateout("rcx") _, lateout("r11") _) };
    println!("native getpid {pid}");
    std::io::stdout().flush().unwrap();
    let r: i64;
    if which == "i386" {
        // i386 getpid (20) through the 32-bit entry point.
        unsafe { asm!("int 0x80", inlateout("rax") 20i64 => r) };
    } else {
        // x32 getpid.
        unsafe { asm!("syscall", inlateout("rax") (39i64 | 0x4000_0000) => r, lateout("rcx") _, lateout("r11") _) };
    }
    println!("survived {r}");
}
"#;

/// Seccomp bypass through another syscall ABI (the i386 `int 0x80` entry point and the x32
/// bit, whose numbers no x86_64 rule matches): the process is killed with SIGSYS before the
/// call runs. Positive control: the native getpid just before it works and is printed.
#[test]
fn rust_foreign_syscall_abis_are_killed() {
    let s = shared();
    assert_confined(s);
    let r = run_all(
        s,
        vec![
            with(rs(RS_FOREIGN_ABI), json!({"args": ["i386"]})),
            with(rs(RS_FOREIGN_ABI), json!({"args": ["x32"]})),
        ],
    );
    for (abi, r) in ["i386", "x32"].iter().zip(&r) {
        assert_eq!(status(r), "runtime_error", "{abi}: {}", brief(r));
        assert_eq!(r["signal"], "SIGSYS", "{abi}: {}", brief(r));
        assert!(
            stdout(r).starts_with("native getpid "),
            "{abi}: positive control missing: {}",
            brief(r)
        );
        assert!(
            !stdout(r).contains("survived"),
            "{abi}: the foreign-ABI call returned: {}",
            brief(r)
        );
    }
}
