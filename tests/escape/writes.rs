//! 5. Writes outside the work dir: everything but `/work`, `/tmp` (one box-private tmpfs) and
//!    `/dev/shm` is read-only or absent, and set-uid bits do nothing.

use std::path::Path;

use crate::common::*;
use crate::*;

/// argv[1]: a tag used as file name. Tries to write each target; reads back the permitted ones.
const PY_WRITES: &str = r#"
import errno, json, os, shutil, subprocess, sys
tag = sys.argv[1]
def write(p):
    try:
        with open(p, "w") as f:
            f.write(tag)
        with open(p) as f:
            return "written" if f.read() == tag else "read back differs"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
targets = ["/usr/" + tag, "/usr/bin/" + tag, "/etc/" + tag, "/etc/passwd", "/" + tag,
           "/opt/coderun/python/" + tag, "/proc/sys/kernel/hostname",
           "/sys/fs/cgroup/" + tag, "/sys/fs/cgroup/cgroup.procs",
           "/proc/sysrq-trigger", "/work/" + tag, "/tmp/" + tag]
res = {p: write(p) for p in targets}
try:
    os.mkdir("/usr/" + tag + ".d")
    res["mkdir /usr"] = "made"
except OSError as e:
    res["mkdir /usr"] = errno.errorcode.get(e.errno, str(e.errno))
res["hostname"] = open("/proc/sys/kernel/hostname").read().strip()
# Set-uid: a copy of id in /work with mode 4755.
shutil.copy("/usr/bin/id", "/work/id")
os.chmod("/work/id", 0o4755)
res["id_mode"] = "%o" % os.stat("/work/id").st_mode
res["id_u"] = subprocess.run(["/work/id", "-u"], capture_output=True, text=True).stdout.strip()
res["id_plain"] = subprocess.run(["/usr/bin/id", "-u"], capture_output=True, text=True).stdout.strip()
print(json.dumps(res))
"#;

/// Tampering with the host or the shared runtimes (overwriting /usr binaries or /etc files,
/// dropping files in /, renaming the host via /proc/sys/kernel/hostname, writing cgroupfs, the
/// sysrq trigger): every write fails (EROFS / EACCES / ENOENT) and, host side, no file
/// appeared and the hostname is unchanged. Positive control: /work/x and /tmp/x are written
/// and read back by the same program.
#[test]
fn writes_outside_the_work_dir_fail() {
    let s = shared();
    assert_confined(s);
    let tag = format!("coderun-escape-{}", nonce());
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let host_passwd = std::fs::read("/etc/passwd").expect("passwd");
    let r = s.run(with(py(PY_WRITES), json!({"args": [tag]})));
    let res = probe(&r);
    let expect: [(String, &[&str]); 10] = [
        (format!("/usr/{tag}"), &["EROFS"]),
        (format!("/usr/bin/{tag}"), &["EROFS"]),
        (format!("/etc/{tag}"), &["EROFS"]),
        ("/etc/passwd".to_string(), &["EROFS", "EACCES"]),
        (format!("/{tag}"), &["EROFS"]),
        (format!("/opt/coderun/python/{tag}"), &["EROFS"]),
        (
            "/proc/sys/kernel/hostname".to_string(),
            &["EACCES", "EROFS", "EPERM"],
        ),
        (
            format!("/sys/fs/cgroup/{tag}"),
            &["ENOENT", "EROFS", "EACCES"],
        ),
        (
            "/sys/fs/cgroup/cgroup.procs".to_string(),
            &["ENOENT", "EROFS", "EACCES"],
        ),
        (
            "/proc/sysrq-trigger".to_string(),
            &["EACCES", "EROFS", "EPERM", "ENOENT"],
        ),
    ];
    for (path, allowed) in &expect {
        let got = res[path.as_str()].as_str().unwrap_or("");
        assert!(
            allowed.contains(&got),
            "write {path}: {got}, expected one of {allowed:?}: {res}"
        );
    }
    assert_eq!(res["mkdir /usr"], "EROFS", "{res}");
    // Positive control.
    assert_eq!(res[format!("/work/{tag}")], "written", "{res}");
    assert_eq!(res[format!("/tmp/{tag}")], "written", "{res}");
    // Host side: nothing appeared, nothing changed.
    for p in [
        format!("/usr/{tag}"),
        format!("/usr/bin/{tag}"),
        format!("/etc/{tag}"),
        format!("/{tag}"),
        format!("/usr/{tag}.d"),
        format!("/tmp/{tag}"),
        format!("/work/{tag}"),
    ] {
        assert!(!Path::new(&p).exists(), "{p} appeared on the host");
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname"),
        host_hostname
    );
    assert_eq!(std::fs::read("/etc/passwd").expect("passwd"), host_passwd);
    assert_eq!(
        res["hostname"], "coderun",
        "the box has its own uts namespace: {res}"
    );
}

/// Set-uid escalation (the classic: plant a set-uid binary, run it): a copy of /usr/bin/id
/// chmod 4755 in /work keeps euid 1000, because /work is nosuid and no_new_privs is set.
/// Positive control: the chmod itself took (mode 104755) and plain id runs.
///
/// The copy is owned by the box user, so the set-uid bit could only ever have selected uid
/// 1000; the host's real set-uid-root binaries are behind the read-only, nosuid /usr bind
/// (asserted in `mountinfo_names_no_host_path`) and host root is not even mapped in the box.
#[test]
fn setuid_bit_on_a_copied_binary_has_no_effect() {
    let s = shared();
    assert_confined(s);
    let tag = format!("coderun-escape-{}", nonce());
    let r = s.run(with(py(PY_WRITES), json!({"args": [tag]})));
    let res = probe(&r);
    assert_eq!(res["id_mode"], "104755", "{res}");
    assert_eq!(res["id_plain"], "1000", "{res}");
    assert_eq!(res["id_u"], "1000", "{res}");
}
