//! 2. Host files: the box's filesystem holds nothing of the host beyond read-only `/usr` and
//!    the runtimes, and `/proc/self/mountinfo` does not even name host paths (the runtimes'
//!    real install dirs under /root, the repository, other boxes' state dirs).

use crate::common::*;
use crate::*;

/// For every path in argv: "absent", "empty", "dir:[names]", "file", "errno N".
/// Then /proc/1/root, the mount table and the box's /etc/passwd.
const PY_LOOK: &str = r#"
import json, os, sys
def look(p):
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            names = sorted(os.listdir(p))
            return "empty" if not names else "dir:" + ",".join(names)
        os.lstat(p)
        return "file"
    except FileNotFoundError:
        return "absent"
    except OSError as e:
        return "errno %d" % e.errno
res = {"paths": {p: look(p) for p in sys.argv[1:]}}
try:
    res["init_root"] = "readlink:" + os.readlink("/proc/1/root")
except OSError as e:
    res["init_root"] = "errno %d" % e.errno
try:
    res["init_root_list"] = "dir:" + ",".join(sorted(os.listdir("/proc/1/root/")))
except OSError as e:
    res["init_root_list"] = "errno %d" % e.errno
res["init_root_repo"] = look("/proc/1/root/work/main/Cargo.toml")
res["mountinfo"] = open("/proc/self/mountinfo").read()
res["passwd"] = open("/etc/passwd").read()
print(json.dumps(res))
"#;

/// (mount point, filesystem type, mount options) of every line of a mountinfo text.
fn mounts(mountinfo: &str) -> Vec<(String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            Some((
                f.get(4)?.to_string(),
                fstype.to_string(),
                f.get(5)?.to_string(),
            ))
        })
        .collect()
}

/// Host-file exposure (the general container-escape precondition: reading the host's secrets
/// or toolchains through the box's filesystem): /etc/shadow, /root, /home, the runtimes'
/// install paths (/root/.pyenv, /root/.rustup) and the repository (/work/main) are not there,
/// /proc/1/root does not lead to the host. Positive controls: the program does see /usr, its
/// runtime at /opt/coderun, and the box's own /etc/passwd.
#[test]
fn host_files_and_install_paths_are_not_in_the_box() {
    let s = shared();
    assert_confined(s);
    let hidden = [
        "/etc/shadow",
        "/root/.pyenv",
        "/root/.rustup",
        "/root/.cargo",
        "/work/main",
        "/work/main/Cargo.toml",
        "/run",
        "/run/coderun",
        "/var/lib/coderun",
        "/sys",
    ];
    // The test only means something where the host has them.
    for p in [
        "/etc/shadow",
        "/root/.pyenv",
        "/root/.rustup",
        "/work/main",
        "/run/coderun",
    ] {
        assert!(
            std::path::Path::new(p).exists(),
            "host has no {p}: test is void"
        );
    }
    let visible = [
        "/usr/bin/id",
        "/opt/coderun/python/bin/python3",
        "/etc/passwd",
        "/work",
        "/tmp",
    ];
    let mut args: Vec<&str> = hidden.to_vec();
    args.extend(["/root", "/home"]);
    args.extend(visible);
    let r = s.run(with(py(PY_LOOK), json!({"args": args})));
    let res = probe(&r);
    let paths = &res["paths"];
    for p in hidden {
        assert_eq!(paths[p], "absent", "{p} is reachable in the box: {res}");
    }
    for p in ["/root", "/home"] {
        let v = paths[p].as_str().unwrap_or("");
        assert!(
            v == "absent" || v == "empty",
            "{p} should be absent or empty, is {v}"
        );
    }
    for p in visible {
        assert_ne!(paths[p], "absent", "positive control {p} missing: {res}");
    }
    // /proc/1 is the box's init: not dumpable, so its root link is not even readable; were it
    // readable it would be the box's root, which holds no repository.
    let init_root = res["init_root"].as_str().unwrap_or("");
    assert!(
        init_root == "errno 13" || init_root == "readlink:/",
        "/proc/1/root: {init_root}"
    );
    let list = res["init_root_list"].as_str().unwrap_or("");
    if let Some(names) = list.strip_prefix("dir:") {
        let names: Vec<&str> = names.split(',').collect();
        assert!(
            !names.contains(&"root") && !names.contains(&"home") && !names.contains(&"var"),
            "/proc/1/root lists like the host's root: {list}"
        );
    } else {
        assert!(list.starts_with("errno"), "/proc/1/root: {list}");
    }
    let repo = res["init_root_repo"].as_str().unwrap_or("");
    assert!(
        repo == "absent" || repo == "errno 13",
        "/proc/1/root/work/main/Cargo.toml is reachable ({repo}): {res}"
    );
    // The box's /etc/passwd is the one coderun writes, not the host's.
    let passwd = res["passwd"].as_str().unwrap_or("");
    assert!(passwd.contains("sandbox:x:1000:1000"), "{passwd}");
    let host_passwd = std::fs::read_to_string("/etc/passwd").expect("host passwd");
    assert_ne!(passwd, host_passwd, "the box shows the host's /etc/passwd");
}

/// Path disclosure through the mount table: /proc/self/mountinfo names no home directory,
/// no install path of a runtime, not the repository and no state dir under /run/coderun
/// (another box's root would be there); /work and /tmp are the box's tmpfs, nosuid,nodev.
/// Positive control: it does list /usr and the runtime at /opt/coderun/python.
#[test]
fn mountinfo_names_no_host_path() {
    let s = shared();
    assert_confined(s);
    let r = s.run(py(PY_LOOK));
    let res = probe(&r);
    let mountinfo = res["mountinfo"].as_str().expect("mountinfo");
    for needle in [
        "/root",
        ".pyenv",
        ".rustup",
        "/work/main",
        "/home",
        "/run/coderun",
        "/run/",
    ] {
        assert!(
            !mountinfo.contains(needle),
            "mountinfo names {needle}:\n{mountinfo}"
        );
    }
    let m = mounts(mountinfo);
    let find = |point: &str| {
        m.iter()
            .find(|(p, _, _)| p == point)
            .unwrap_or_else(|| panic!("no {point} mount:\n{mountinfo}"))
    };
    for point in ["/work", "/tmp"] {
        let (_, fstype, opts) = find(point);
        assert_eq!(fstype, "tmpfs", "{point}:\n{mountinfo}");
        for flag in ["nosuid", "nodev"] {
            assert!(
                opts.split(',').any(|o| o == flag),
                "{point} is not {flag}:\n{mountinfo}"
            );
        }
    }
    for point in ["/usr", "/opt/coderun/python"] {
        let (_, _, opts) = find(point);
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "{point} is writable:\n{mountinfo}"
        );
        assert!(
            opts.split(',').any(|o| o == "nosuid"),
            "{point} is not nosuid:\n{mountinfo}"
        );
    }
    let (_, _, opts) = find("/");
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "/ is writable:\n{mountinfo}"
    );
}

/// Every /proc/<pid>/{cmdline,comm,stat,status} readable in the box, at run time.
const PY_PROC_TEXT: &str = r#"
import json, os
out = {}
for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
    for what in ("cmdline", "comm", "stat", "status"):
        try:
            out["/proc/%s/%s" % (pid, what)] = open("/proc/%s/%s" % (pid, what), "rb").read().decode("latin-1")
        except OSError as e:
            out["/proc/%s/%s" % (pid, what)] = "errno %d" % e.errno
print(json.dumps(out))
"#;

/// The same at compile time: what rustc can `include_bytes!` of the compile box's /proc.
const RS_PROC_TEXT: &str = r#"
const INIT: &[u8] = include_bytes!("/proc/1/cmdline");
const RUSTC: &[u8] = include_bytes!("/proc/self/cmdline");
const MOUNTS: &[u8] = include_bytes!("/proc/self/mountinfo");
fn main() {
    for b in [INIT, RUSTC, MOUNTS] {
        println!("{}", String::from_utf8_lossy(b).replace('\0', " "));
    }
}
"#;

/// Host paths the box must never learn: where the service binary lives (here inside the
/// repository; with `cargo install` it would be /root/.cargo/bin) and home directories.
fn host_path_needles() -> Vec<String> {
    let bin = env!("CARGO_BIN_EXE_coderun");
    vec![
        bin.to_string(),
        "/work/main".to_string(),
        "/root".to_string(),
        ".cargo".to_string(),
        ".rustup".to_string(),
        ".pyenv".to_string(),
        "/home".to_string(),
    ]
}

/// Host path disclosure through the process table: the box's pid 1 is the box init, a fork
/// of the `coderun __box` helper, so unless something hides it its command line is the
/// helper's argv, which starts with the coderun binary's HOST path. Neither a program at run
/// time (reading /proc/*/cmdline) nor rustc at compile time (`include_bytes!("/proc/1/
/// cmdline")`) may see a host path. Positive control: the program's own command line
/// (/opt/coderun/python/...) and rustc's (/opt/coderun/rust/bin/rustc) are in the dumps, so
/// the dumps do cover the process table.
#[test]
fn box_process_table_names_no_host_path() {
    let s = shared();
    assert_confined(s);
    let r = run_all(s, vec![py(PY_PROC_TEXT), rs(RS_PROC_TEXT)]);
    let py_dump = probe(&r[0]).to_string();
    assert_ok(&r[1]);
    let rs_dump = stdout(&r[1]).to_string();
    assert!(
        py_dump.contains("/opt/coderun/python/bin/python3"),
        "positive control: the dump lacks the program's own command line: {py_dump}"
    );
    assert!(
        rs_dump.contains("/opt/coderun/rust/bin/rustc"),
        "positive control: the dump lacks rustc's own command line: {rs_dump}"
    );
    let mut leaks = Vec::new();
    for needle in host_path_needles() {
        if py_dump.contains(&needle) {
            leaks.push(format!("run time, /proc of the run box: {needle}"));
        }
        if rs_dump.contains(&needle) {
            leaks.push(format!("compile time, /proc of the compile box: {needle}"));
        }
    }
    // Found by this test: the box's init (a fork of the helper) kept the helper's argv, so
    // /proc/1/cmdline in every run and compile box read the host path of the coderun binary.
    // The helper is now started with argv[0] = "coderun".
    assert!(
        leaks.is_empty(),
        "host paths visible in the box's process table: {leaks:?}\nrun-time dump: {py_dump}\ncompile-time dump: {rs_dump}"
    );
}
