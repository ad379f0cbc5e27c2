//! 9. Symlink planting (Judge0 CVE-2024-28185 / CVE-2024-28189): a program replaces the files
//!    the service touches after or between runs (its source, the compiled binary, the
//!    TypeScript bundle) with symlinks to host paths, hoping host-side code follows them
//!    with root's rights. The verdict comes from the host: the victim file's bytes, owner,
//!    mode, inode and mtime, and its directory's listing, are unchanged.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::common::*;
use crate::*;

/// A host file (and its directory) the planted symlinks point at.
struct Victim {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    file: PathBuf,
    content: Vec<u8>,
}

/// Everything about a host path a write through a symlink, a chmod or a chown would change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    content: Vec<u8>,
    uid: u32,
    gid: u32,
    mode: u32,
    ino: u64,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    dir_listing: Vec<String>,
    dir_mode: u32,
    dir_uid: u32,
}

impl Victim {
    fn new() -> Victim {
        let dir = tempfile::Builder::new()
            .prefix("coderun-escape-victim-")
            .tempdir_in("/tmp")
            .expect("victim dir");
        let file = dir.path().join("victim.txt");
        let content = format!("host file, do not touch {}\n", nonce()).into_bytes();
        std::fs::write(&file, &content).expect("victim file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        Victim {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            file,
            content,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let m = std::fs::symlink_metadata(&self.file).expect("victim metadata");
        assert!(
            m.file_type().is_file(),
            "the victim is no longer a plain file"
        );
        let d = std::fs::symlink_metadata(&self.dir).expect("victim dir metadata");
        let mut dir_listing: Vec<String> = std::fs::read_dir(&self.dir)
            .expect("victim dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        dir_listing.sort();
        Snapshot {
            content: std::fs::read(&self.file).expect("victim content"),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            ino: m.ino(),
            nlink: m.nlink(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            dir_listing,
            dir_mode: d.mode(),
            dir_uid: d.uid(),
        }
    }

    fn args(&self) -> Value {
        json!([
            self.file.to_str().expect("utf-8"),
            self.dir.to_str().expect("utf-8")
        ])
    }

    /// The host file is exactly as created.
    fn assert_untouched(&self, before: &Snapshot) {
        let after = self.snapshot();
        assert_eq!(&after, before, "the host victim changed");
        assert_eq!(after.content, self.content);
        assert_eq!(after.uid, 0, "victim owner");
        assert_eq!(after.mode & 0o7777, 0o640, "victim mode");
        assert_eq!(after.dir_listing, vec!["victim.txt".to_string()]);
    }
}

/// Plants symlinks to the victim (argv[1]), its directory (argv[2]) and / under every name
/// the service uses in /work, then tries to write, chmod and chown through them.
const PY_PLANT: &str = r#"
import errno, json, os, sys
victim, victim_dir = sys.argv[1], sys.argv[2]
os.chdir("/work")
res = {"links": {}}
for name, target in [("main.py", victim), ("main", victim), (".coderun-bundle.json", victim),
                     ("main.js", victim), ("package.json", victim), ("root", "/"),
                     ("hostdir", victim_dir), ("/tmp/victim", victim)]:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
    os.symlink(target, name)
    res["links"][name] = os.readlink(name)
def attempt(f):
    try:
        f()
        return "done"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
res["write main"] = attempt(lambda: open("main", "w").write("pwned"))
res["write bundle"] = attempt(lambda: open(".coderun-bundle.json", "w").write("{}"))
res["write hostdir"] = attempt(lambda: open("hostdir/planted", "w").write("pwned"))
res["chmod main"] = attempt(lambda: os.chmod("main", 0o777))
res["victim exists in box"] = os.path.exists(victim)
res["control"] = attempt(lambda: open("/work/control", "w").write("ok"))
print(json.dumps(res))
"#;

/// At run time the compiled binary replaces itself (/work/main) and plants the other names.
const RS_PLANT: &str = r#"
use std::os::unix::fs::symlink;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (victim, dir) = (args[1].as_str(), args[2].as_str());
    let mut made = 0;
    for (name, target) in [("main", victim), ("main.rs", victim), (".coderun-bundle.json", victim),
                           ("root", "/"), ("hostdir", dir)] {
        let p = format!("/work/{name}");
        let _ = std::fs::remove_file(&p);
        if symlink(target, &p).is_ok() && std::fs::read_link(&p).map(|t| t.to_str() == Some(target)).unwrap_or(false) {
            made += 1;
        }
    }
    let write = match std::fs::write("/work/main", "pwned") {
        Ok(()) => "done".to_string(),
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
    };
    println!("{{\"made\":{made},\"write\":\"{write}\"}}");
}
"#;

/// At run time node replaces main.js, the bundle and package.json with symlinks.
const TS_PLANT: &str = r#"
import * as fs from "fs";
const [victim, dir] = process.argv.slice(2);
let made = 0;
for (const [name, target] of [["main.js", victim], [".coderun-bundle.json", victim],
                              ["package.json", victim], ["main.ts", victim], ["root", "/"],
                              ["hostdir", dir]]) {
  const p = "/work/" + name;
  try { fs.unlinkSync(p); } catch {}
  fs.symlinkSync(target, p);
  if (fs.readlinkSync(p) === target) made++;
}
let write = "done";
try { fs.writeFileSync("/work/main.js", "pwned"); } catch (e: any) { write = e.code; }
console.log(JSON.stringify({ made, write }));
"#;

/// Judge0 CVE-2024-28185 class, Python: main.py, main, .coderun-bundle.json, main.js and
/// package.json become symlinks to a host temp file, `root` to /, `hostdir` to the host dir.
/// In the box the host path does not exist, so writes through them fail (ENOENT); host
/// side the victim is untouched. Positive control: the symlinks were made (readlink returns
/// their targets) and /work/control was written.
#[test]
fn python_planted_symlinks_touch_no_host_file() {
    let s = shared();
    assert_confined(s);
    let v = Victim::new();
    let before = v.snapshot();
    let r = s.run(with(py(PY_PLANT), json!({"args": v.args()})));
    let res = probe(&r);
    assert_eq!(
        res["links"]["main"],
        v.file.to_str().expect("utf-8"),
        "{res}"
    );
    assert_eq!(res["links"]["root"], "/", "{res}");
    assert_eq!(res["control"], "done", "{res}");
    assert_eq!(res["victim exists in box"], false, "{res}");
    for k in ["write main", "write bundle", "write hostdir", "chmod main"] {
        assert_eq!(res[k], "ENOENT", "{k}: {res}");
    }
    v.assert_untouched(&before);
    // The service is unharmed: the next run on the same server works.
    let again = s.run(py("print('next')"));
    assert_ok(&again);
    assert_eq!(stdout(&again), "next\n");
}

/// Judge0 CVE-2024-28189 class, Rust: the running binary replaces /work/main (the file the
/// compile step hands over) with a symlink to a host file. Host side the victim is untouched,
/// and the host's compiled-binary cache is not poisoned: the same code compiles/runs again
/// with the same answer. Positive control: the program made all its symlinks.
#[test]
fn rust_binary_replacing_itself_with_a_symlink_touches_no_host_file() {
    let s = shared();
    assert_confined(s);
    let v = Victim::new();
    let before = v.snapshot();
    let body = with(rs(RS_PLANT), json!({"args": v.args()}));
    let first = probe(&s.run(body.clone()));
    assert_eq!(first["made"], 5, "{first}");
    assert!(
        first["write"].as_str().unwrap_or("").starts_with("errno "),
        "{first}"
    );
    v.assert_untouched(&before);
    let second = probe(&s.run(body));
    assert_eq!(second, first, "a second run of the same code differs");
    v.assert_untouched(&before);
}

/// The same from TypeScript: main.js and .coderun-bundle.json (the compile step's output)
/// become symlinks at run time; the victim is untouched and the code runs again the same.
#[test]
fn typescript_planted_symlinks_touch_no_host_file() {
    let s = shared();
    assert_confined(s);
    let v = Victim::new();
    let before = v.snapshot();
    let body = with(ts(TS_PLANT), json!({"args": v.args()}));
    let first = probe(&s.run(body.clone()));
    assert_eq!(first["made"], 6, "{first}");
    assert_eq!(first["write"], "ENOENT", "{first}");
    v.assert_untouched(&before);
    let second = probe(&s.run(body));
    assert_eq!(second, first, "a second run of the same code differs");
    v.assert_untouched(&before);
    assert!(Path::new(&v.file).is_file());
}
